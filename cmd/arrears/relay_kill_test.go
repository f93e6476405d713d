package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/workers"
)

// TestRelaySIGKILLExactlyOnce SIGKILLs `arrears serve` repeatedly while it
// is publishing and events keep being appended, and then requires that
// JetStream holds every event exactly once, as stream sequence k = the k-th
// event of the global order.
func TestRelaySIGKILLExactlyOnce(t *testing.T) {
	const kills = 6
	began := time.Now()
	in := newInstallation(t)
	env := in.env("ARREARS_RELAY_POLL_INTERVAL=20ms")
	relaySeq := func() int64 { return in.scalar(t, `SELECT coalesce(max(seq), 0) FROM relay_log`) }

	stopAppending := goAppenders(t, in.store, "relay-kill", 4, 13)

	var adopted int
	for i := range kills {
		base := relaySeq()
		p := startProc(t, "serve-"+strconv.Itoa(i), "", env, "serve")
		p.waitReady(30 * time.Second)
		// Kill it while it is publishing: right after its checkpoint moved.
		var now int64
		waitFor(t, 20*time.Second, func() string { return "relay_log did not advance past " + strconv.FormatInt(base, 10) },
			func() bool { now = relaySeq(); return now > base })
		if i%2 == 1 {
			// Sometimes a little later, still under a steady load.
			time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
			now = relaySeq()
		}
		p.Kill()
		t.Logf("kill %d: SIGKILLed serve (pid %d) at relay sequence ≥ %d (was %d at start), %d events in the store",
			i+1, p.pid(), now, base, in.eventCount(t))
		if strings.Contains(p.log(), "relay adopted messages acknowledged before a restart") {
			adopted++
		}
	}

	last := startProc(t, "serve-last", "", env, "serve")
	last.waitReady(30 * time.Second)
	// Keep appending for a few seconds in all, and across the last start.
	waitFor(t, 30*time.Second, func() string { return "the last serve's relay did not lead" }, func() bool {
		return time.Since(began) > 3*time.Second && strings.Contains(last.log(), `"msg":"relay is the leader"`)
	})
	appended := stopAppending()
	stoppedAt := time.Now()
	n := in.eventCount(t)
	require.Equal(t, appended, n, "events appended vs events in the store")
	if strings.Contains(last.log(), "relay adopted messages acknowledged before a restart") {
		adopted++
	}

	nc, err := nats.Connect(testNATS.URL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, in.topo.Stream)
	require.NoError(t, err)
	var state jetstream.StreamState
	waitFor(t, 30*time.Second, func() string {
		return "stream state " + jsonString(state) + ", want last sequence " + strconv.FormatInt(n, 10)
	},
		func() bool {
			info, err := stream.Info(ctx)
			require.NoError(t, err)
			state = info.State
			return state.LastSeq >= uint64(n)
		})
	require.Equal(t, uint64(n), state.LastSeq, "JetStream has more messages than the event store has events")
	require.Equal(t, uint64(n), state.Msgs)
	require.Equal(t, uint64(1), state.FirstSeq)
	waitFor(t, 10*time.Second, func() string { return "relay_log did not reach " + strconv.FormatInt(n, 10) },
		func() bool { return relaySeq() == n })
	t.Logf("JetStream caught up %s after the appends stopped", time.Since(stoppedAt).Round(time.Millisecond))
	t.Logf("%d events appended during %d SIGKILLs; restarts that adopted an acknowledged but unrecorded batch: %d", n, kills, adopted)

	// The global order, from PostgreSQL.
	type row struct {
		id, stream     string
		version        int64
		txID, position int64
	}
	rows, err := in.pool.Query(ctx, `SELECT id, stream_id, stream_version, tx_id::text::bigint, position FROM events ORDER BY tx_id, position`)
	require.NoError(t, err)
	var order []row
	for rows.Next() {
		var r row
		require.NoError(t, rows.Scan(&r.id, &r.stream, &r.version, &r.txID, &r.position))
		order = append(order, r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, order, int(n))

	// Every message, in stream order.
	readAt := time.Now()
	cons, err := js.OrderedConsumer(ctx, in.topo.Stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	require.NoError(t, err)
	seen := make(map[string]uint64, n)
	lastVersion := map[string]int64{}
	var got uint64
	for got < uint64(n) {
		batch, err := cons.Fetch(int(min(1000, uint64(n)-got)), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		before := got
		for m := range batch.Messages() {
			md, err := m.Metadata()
			require.NoError(t, err)
			got++
			seq := md.Sequence.Stream
			require.Equal(t, got, seq, "stream sequences are not 1…N without gaps")
			want := order[seq-1]
			id := m.Headers().Get(jetstream.MsgIDHeader)
			if prev, dup := seen[id]; dup {
				t.Fatalf("event %s published twice: sequences %d and %d", id, prev, seq)
			}
			seen[id] = seq
			require.Equal(t, want.id, id, "sequence %d is not the %d-th event of the global order", seq, seq)

			var ce domain.CloudEvent
			require.NoError(t, json.Unmarshal(m.Data(), &ce), "sequence %d: body %s", seq, m.Data())
			require.Equal(t, "1.0", ce.SpecVersion, "sequence %d", seq)
			require.Equal(t, id, ce.ID, "sequence %d: CloudEvent id vs Nats-Msg-Id", seq)
			require.True(t, json.Valid(ce.Data) && len(ce.Data) > 0 && ce.Data[0] == '{', "sequence %d: data %s", seq, ce.Data)
			require.Equal(t, "relay-kill", ce.TenantID)
			require.Equal(t, want.stream, ce.StreamID, "sequence %d", seq)
			require.Equal(t, want.version, ce.StreamVersion, "sequence %d", seq)
			require.Equal(t, want.position, ce.Position, "sequence %d", seq)
			require.Equal(t, strconv.FormatInt(want.txID, 10), m.Headers().Get(workers.HeaderTxID), "sequence %d", seq)
			require.Equal(t, in.topo.SubjectPrefix+".relay-kill.account."+ce.Type, m.Subject())

			if ce.StreamVersion <= lastVersion[ce.StreamID] {
				t.Fatalf("stream %s: version %d at sequence %d after version %d", ce.StreamID, ce.StreamVersion, seq, lastVersion[ce.StreamID])
			}
			require.Equal(t, lastVersion[ce.StreamID]+1, ce.StreamVersion, "stream %s: versions skip at sequence %d", ce.StreamID, seq)
			lastVersion[ce.StreamID] = ce.StreamVersion
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			require.NoError(t, err)
		}
		require.Greater(t, got, before, "no messages fetched after sequence %d of %d", got, n)
	}
	t.Logf("read and checked %d messages in %s", got, time.Since(readAt).Round(time.Millisecond))
	require.Len(t, seen, int(n))
	for _, r := range order {
		if _, ok := seen[r.id]; !ok {
			t.Fatalf("event %s was never published", r.id)
		}
	}

	last.Stop(30 * time.Second)
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
