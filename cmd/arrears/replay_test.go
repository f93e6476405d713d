package main_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/projections/projectiontest"
)

// TestReplayCommand: `arrears replay --all`, run while a relay and a
// projection worker serve and events keep arriving, rebuilds every
// projection into fresh tables and swaps them in: a reader of the live
// tables never fails, a row gone wrong is put right, the worker carries on
// from the replay's checkpoints, and `arrears verify` then passes.
func TestReplayCommand(t *testing.T) {
	in := newInstallation(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	projectiontest.MoneyWorkload(t, projectiontest.NewRand(31), in.store)
	catchUpAll(t, in)
	before := map[string]map[string][]string{}
	for _, p := range []projections.Projection{projections.Ledger{}, projections.Debtors{}} {
		d, err := projections.Dump(ctx, in.pool, p)
		require.NoError(t, err)
		before[p.Name()] = d
	}
	var tenant, account string
	require.NoError(t, in.pool.QueryRow(ctx, `SELECT tenant_id, id FROM accounts ORDER BY 1, 2 LIMIT 1`).Scan(&tenant, &account))
	_, err := in.pool.Exec(ctx, `UPDATE accounts SET paid = paid + 1 WHERE tenant_id = $1 AND id = $2`, tenant, account)
	require.NoError(t, err)

	env := in.env("ARREARS_RELAY_POLL_INTERVAL=20ms")
	relay := startProc(t, "relay", "", env, "relay")
	relay.waitReady(30 * time.Second)
	worker := startProc(t, "worker", "", env, "worker")
	worker.waitReady(30 * time.Second)

	stopAppends := goAppenders(t, in.store, "replay-live", 2, 5)
	var reads atomic.Int64
	var readErr error
	var stopReads atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stopReads.Load() {
			var n int64
			if err := in.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM ledger_entries) + (SELECT count(*) FROM stream_heads)`).Scan(&n); err != nil {
				readErr = err
				return
			}
			reads.Add(1)
		}
	})

	initial := in.eventCount(t)
	waitFor(t, 30*time.Second, func() string { return "no appends" }, func() bool { return in.eventCount(t) > initial+200 })
	// The read horizon is cluster-wide: wait until these appends are
	// readable (another database's open transaction may hold it back).
	last, err := in.store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, in.store.AwaitVisible(ctx, last))
	readable := in.scalar(t, `SELECT count(*) FROM events WHERE tx_id <= $1::bigint::text::xid8`, last)
	stdout, stderr, code := runTool(t, 90*time.Second, []string{"DATABASE_URL=" + in.dbURL}, "replay", "--all")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	t.Logf("arrears replay --all:\n%s", stdout)
	for _, p := range projections.All() {
		m := regexp.MustCompile(fmt.Sprintf(`(?m)^%s: rebuilt from (\d+) events in \S+ \(\d+ events/s\) and swapped in$`, p.Name())).FindStringSubmatch(stdout)
		require.NotNil(t, m, "%s: no summary line", p.Name())
		n, err := strconv.ParseInt(m[1], 10, 64)
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, readable, "%s: the replay includes the events appended while the server ran", p.Name())
	}
	appended := stopAppends()
	stopReads.Store(true)
	wg.Wait()
	require.NoError(t, readErr, "a reader during the replay")
	t.Logf("%d reads and %d events appended during the replay", reads.Load(), appended)
	require.Positive(t, appended)

	total := in.eventCount(t)
	waitFor(t, 60*time.Second, func() string { return fmt.Sprintf("projections not caught up to %d events", total) }, func() bool {
		return in.scalar(t, `SELECT count(*) FROM projection_checkpoints WHERE seq = $1`, total) == int64(len(projections.All()))
	})
	for _, p := range []projections.Projection{projections.Ledger{}, projections.Debtors{}} {
		after, err := projections.Dump(ctx, in.pool, p)
		require.NoError(t, err)
		require.Equal(t, before[p.Name()], after, "%s after the replay (the appends touch only stream_heads)", p.Name())
	}
	require.Zero(t, in.scalar(t, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'arrears\_%'`), "no shadow schema left")

	stdout, stderr, code = runTool(t, 60*time.Second, []string{"DATABASE_URL=" + in.dbURL}, "verify")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "projections: every one matches its rebuild")

	_, stderr, code = runTool(t, 30*time.Second, []string{"DATABASE_URL=" + in.dbURL}, "replay", "--projection", "nope")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `no projection "nope"`)
	_, stderr, code = runTool(t, 30*time.Second, []string{"DATABASE_URL=" + in.dbURL}, "replay")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "usage: arrears replay --projection NAME | --all")
}
