package main_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/projections"
)

// TestProjectorSIGKILLMidBatch SIGKILLs `arrears worker` while it holds an
// open projection transaction, restarts it, and requires the stream_heads
// projection to end up exactly as a rebuild from the event store makes it:
// every event applied once, none twice, none lost.
func TestProjectorSIGKILLMidBatch(t *testing.T) {
	const (
		kills        = 3
		nStreams     = 2000
		perStream    = 10
		total        = nStreams * perStream
		streamsPerTx = 25 // events per append: streamsPerTx × eventsPerTx
		eventsPerTx  = 2
		phases       = kills + 1
	)
	in := newInstallation(t)
	env := in.env("ARREARS_RELAY_POLL_INTERVAL=20ms", "ARREARS_PROJECTION_BATCH_SIZE=200")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	relay := startProc(t, "relay", "", env, "relay")
	relay.waitReady(30 * time.Second)
	worker := startProc(t, "worker-0", "", env, "worker")
	worker.waitReady(30 * time.Second)
	waitProjectorStarted(t, worker)

	// The appends: 2,000 streams × 10 events, 50 events per transaction over
	// 25 streams, in phases of 5,000 events; phase k+1 starts after the k-th
	// kill, so every kill finds a backlog to apply.
	a := newAppender(in.store, "projector-kill", nStreams, 42)
	type job struct{ streams []string }
	var jobs []job
	for range perStream / eventsPerTx {
		for i := 0; i < nStreams; i += streamsPerTx {
			jobs = append(jobs, job{a.streams[i : i+streamsPerTx]})
		}
	}
	killed := make(chan struct{}, kills)
	appendDone := make(chan error, 1)
	go func() {
		perPhase := len(jobs) / phases
		for i, j := range jobs {
			if i > 0 && i%perPhase == 0 {
				select {
				case <-killed:
				case <-ctx.Done():
					appendDone <- ctx.Err()
					return
				}
			}
			if _, err := a.appendBatch(ctx, j.streams, eventsPerTx); err != nil {
				appendDone <- err
				return
			}
		}
		appendDone <- nil
	}()

	watch, err := pgx.Connect(ctx, in.dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { watch.Close(context.Background()) })
	checkpoint := func() int64 {
		return in.scalar(t, `SELECT coalesce((SELECT seq FROM projection_checkpoints WHERE name = 'stream_heads'), 0)`)
	}

	var cpAtStart int64 // the checkpoint when the current worker started
	for i := range kills {
		// Poll until the worker (this process of it) has committed at least
		// one batch and has a transaction open in which it is writing, or
		// has written, a batch's rows or its checkpoint, with the projection
		// not yet at the end; then SIGKILL it at once.
		deadline := time.Now().Add(30 * time.Second)
		var (
			backend      int
			state, query string
			xactAge      float64
			cp           int64
			polls        int
		)
		for {
			polls++
			err := watch.QueryRow(ctx, `
				SELECT a.pid, a.state, left(a.query, 120), extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
				       coalesce((SELECT seq FROM projection_checkpoints WHERE name = 'stream_heads'), 0)
				FROM pg_stat_activity a
				WHERE a.datname = current_database() AND a.application_name = 'arrears-worker'
				  AND a.backend_start >= $1 AND a.xact_start IS NOT NULL
				  AND a.backend_xid IS NOT NULL
				  AND (a.query LIKE '%INSERT INTO stream_heads%' OR a.query LIKE '%UPDATE projection_checkpoints%')
				LIMIT 1`, worker.started).Scan(&backend, &state, &query, &xactAge, &cp)
			if err == nil && cp > cpAtStart && cp < total {
				worker.Kill()
				break
			}
			if err != nil && err != pgx.ErrNoRows {
				require.NoError(t, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: no open worker transaction seen in %d polls (checkpoint %d, %d events); worker log:\n%s",
					i+1, polls, checkpoint(), in.eventCount(t), worker.tail(30))
			}
		}
		t.Logf("kill %d: SIGKILLed worker pid %d while its backend %d was %q in a transaction open for %s (query %q); checkpoint %d, %d events, %d polls",
			i+1, worker.pid(), backend, state, time.Duration(xactAge*float64(time.Second)).Round(time.Microsecond), strings.Join(strings.Fields(query), " "), cp, in.eventCount(t), polls)
		killed <- struct{}{}
		cpAtStart = checkpoint()
		worker = startProc(t, "worker-"+strconv.Itoa(i+1), "", env, "worker")
		worker.waitReady(30 * time.Second)
		waitProjectorStarted(t, worker)
	}
	select {
	case err := <-appendDone:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("appends did not finish")
	}
	require.Equal(t, int64(total), in.eventCount(t))

	start := time.Now()
	waitFor(t, 45*time.Second, func() string {
		return fmt.Sprintf("stream_heads checkpoint %d, want %d; relay at %d", checkpoint(), total,
			in.scalar(t, `SELECT coalesce(max(seq), 0) FROM relay_log`))
	}, func() bool { return checkpoint() == total })
	t.Logf("projection caught up %s after the appends ended", time.Since(start).Round(time.Millisecond))

	// The live result is right: one row per stream, its count and head.
	require.Equal(t, int64(nStreams), in.scalar(t, `SELECT count(*) FROM stream_heads`))
	require.Zero(t, in.scalar(t, `
		SELECT count(*)
		FROM (SELECT tenant_id, stream_id, count(*) AS n, max(stream_version) AS v FROM events GROUP BY 1, 2) e
		FULL JOIN stream_heads h USING (tenant_id, stream_id)
		LEFT JOIN events l ON l.tenant_id = e.tenant_id AND l.stream_id = e.stream_id AND l.stream_version = e.v
		WHERE h.event_count IS DISTINCT FROM e.n OR h.version IS DISTINCT FROM e.v
		   OR h.last_event_id IS DISTINCT FROM l.id OR h.last_position IS DISTINCT FROM l.position`),
		"stream_heads rows that disagree with the events table")
	live, err := projections.Dump(ctx, in.pool, projections.StreamHeads{})
	require.NoError(t, err)

	// And it equals a rebuild from the event store.
	stdout, stderr, code := runTool(t, 60*time.Second, env, "replay", "--projection", "stream_heads")
	require.Equal(t, 0, code, "replay failed:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, fmt.Sprintf("stream_heads: rebuilt from %d events", total), "stderr:\n%s", stderr)
	rebuilt, err := projections.Dump(ctx, in.pool, projections.StreamHeads{})
	require.NoError(t, err)
	require.Equal(t, len(live["stream_heads"]), len(rebuilt["stream_heads"]))
	require.True(t, equalDumps(live, rebuilt), "the live projection differs from its rebuild; first difference: %s", firstDiff(live, rebuilt))
	require.Equal(t, int64(total), checkpoint())

	worker.Stop(30 * time.Second)
	relay.Stop(30 * time.Second)
}

// waitProjectorStarted waits until the worker's stream_heads projector has
// started consuming from JetStream (its durable consumer is in place). If it
// keeps failing to start instead, the test is marked failed, with the
// error, and goes on: the worker still has to keep the projection exact.
func waitProjectorStarted(t *testing.T, w *proc) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var restarts []string
		for _, m := range w.logLines() {
			// A projector logs the projections it runs (a group: several).
			if name, _ := m["projection"].(string); !slices.Contains(strings.Split(name, ","), "stream_heads") {
				continue
			}
			switch m["msg"] {
			case "projector started":
				return
			case "projector restarting":
				restarts = append(restarts, fmt.Sprint(m["err"]))
			}
		}
		if len(restarts) >= 3 || time.Now().After(deadline) || w.exited() {
			t.Errorf("%s: the stream_heads projector does not consume from JetStream (%d failed attempts to start, last: %v)",
				w.name, len(restarts), restarts[max(len(restarts)-1, 0):])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func equalDumps(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
	}
	return true
}

func firstDiff(a, b map[string][]string) string {
	for k, x := range a {
		y := b[k]
		for i := range max(len(x), len(y)) {
			var xi, yi string
			if i < len(x) {
				xi = x[i]
			}
			if i < len(y) {
				yi = y[i]
			}
			if xi != yi {
				return fmt.Sprintf("%s row %d:\n live:    %s\n rebuilt: %s", k, i, xi, yi)
			}
		}
	}
	return "none"
}
