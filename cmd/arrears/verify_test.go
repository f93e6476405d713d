package main_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
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
