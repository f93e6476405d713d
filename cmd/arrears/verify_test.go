package main_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/projections/projectiontest"
)

// TestVerifyCommand: `arrears verify` passes on an untouched event store and
// exits 1 naming the stream and version of an event changed behind its back.
func TestVerifyCommand(t *testing.T) {
	in := newInstallation(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newAppender(in.store, "verify", 3, 7)
	for range 3 {
		_, err := a.appendBatch(ctx, a.streams, 2)
		require.NoError(t, err)
	}
	env := []string{"DATABASE_URL=" + in.dbURL}

	stdout, stderr, code := runTool(t, 30*time.Second, env, "verify")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "OK: every chain verifies")
	require.Contains(t, stdout, "hash chains: 3 streams, 18 events")

	// Change one event's data as a superuser would, bypassing the
	// append-only trigger.
	victim := a.streams[1]
	err := pgx.BeginFunc(ctx, in.pool, func(tx pgx.Tx) error {
		for _, sql := range []string{
			`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
			fmt.Sprintf(`UPDATE events SET data = '{"x":1}' WHERE tenant_id = 'verify' AND stream_id = '%s' AND stream_version = 4`, victim),
			`ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete`,
		} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
		return nil
	})
	require.NoError(t, err)
	_, err = in.pool.Exec(ctx, `UPDATE events SET data = '{}' WHERE stream_id = $1`, victim)
	require.ErrorContains(t, err, "append-only", "the trigger is back on")

	stdout, stderr, code = runTool(t, 30*time.Second, env, "verify")
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.NotContains(t, stdout, "OK:")
	require.Contains(t, stdout, fmt.Sprintf("BROKEN tenant=verify stream=%s version=4 ", victim), "stdout:\n%s", stdout)
	require.Contains(t, stderr, "problem(s) found")
	for _, s := range []string{a.streams[0], a.streams[2]} {
		require.NotContains(t, stdout, s, "an untouched stream is reported broken")
	}
}

// TestVerifyCommandProjections: `arrears verify` also rebuilds every
// projection beside the live one and compares them: it passes on untouched
// projections, and exits 1 naming the projection, the table and the key of
// a row changed behind the projection's back (the chains still verify).
func TestVerifyCommandProjections(t *testing.T) {
	in := newInstallation(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	projectiontest.MoneyWorkload(t, projectiontest.NewRand(21), in.store)
	catchUpAll(t, in)
	events := in.eventCount(t)
	env := []string{"DATABASE_URL=" + in.dbURL}

	stdout, stderr, code := runTool(t, 60*time.Second, env, "verify")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "OK: every chain verifies")
	require.Contains(t, stdout, "projections: every one matches its rebuild")
	for _, p := range projections.All() {
		require.Contains(t, stdout, fmt.Sprintf("projection %s: matches its rebuild at sequence %d (", p.Name(), events))
	}

	var tenant, account, stream string
	require.NoError(t, in.pool.QueryRow(ctx, `SELECT tenant_id, id FROM accounts ORDER BY 1, 2 LIMIT 1`).Scan(&tenant, &account))
	require.NoError(t, in.pool.QueryRow(ctx, `SELECT stream_id FROM stream_heads WHERE tenant_id = $1 ORDER BY 1 LIMIT 1`, tenant).Scan(&stream))
	for _, sql := range []string{
		fmt.Sprintf(`UPDATE accounts SET paid = paid + 1 WHERE tenant_id = '%s' AND id = '%s'`, tenant, account),
		fmt.Sprintf(`UPDATE stream_heads SET event_count = event_count + 1 WHERE tenant_id = '%s' AND stream_id = '%s'`, tenant, stream),
	} {
		_, err := in.pool.Exec(ctx, sql)
		require.NoError(t, err)
	}

	stdout, stderr, code = runTool(t, 60*time.Second, env, "verify")
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	t.Logf("arrears verify after tampering:\n%s", stdout)
	require.Contains(t, stdout, "OK: every chain verifies", "the events are untouched")
	require.NotContains(t, stdout, "projections: every one matches")
	require.Contains(t, stdout, fmt.Sprintf("projection ledger: DIFFERS from its rebuild at sequence %d", events))
	require.Contains(t, stdout, "  table accounts: DIFFERS: ")
	require.Contains(t, stdout, fmt.Sprintf("    changed          tenant_id=%s id=%s: outstanding: live ", tenant, account))
	require.Contains(t, stdout, "; paid: live ")
	require.Contains(t, stdout, "  table ledger_entries: matches (")
	require.Contains(t, stdout, fmt.Sprintf("projection stream_heads: DIFFERS from its rebuild at sequence %d", events))
	require.Contains(t, stdout, fmt.Sprintf("    changed          tenant_id=%s stream_id=%s: event_count: live ", tenant, stream))
	require.Contains(t, stdout, fmt.Sprintf("projection debtors: matches its rebuild at sequence %d", events))
	require.Contains(t, stderr, "2 problem(s) found")
	require.Contains(t, stderr, "projection(s) differing from a rebuild: stream_heads, ledger")
}

// catchUpAll applies the whole event store to every projection, as a live
// runner would.
func catchUpAll(t *testing.T, in *installation) {
	t.Helper()
	ctx := context.Background()
	last, err := in.store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, in.store.AwaitVisible(ctx, last))
	engine := projections.NewEngine(in.store)
	for _, p := range projections.All() {
		_, err := engine.CatchUp(ctx, p, -1, 1000)
		require.NoError(t, err)
	}
}
