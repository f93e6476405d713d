package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/projections/projectiontest"
)

// rowsOf returns a table's rows as JSON text (minus the columns dropped),
// in a stable order.
func (in *installation) rowsOf(t *testing.T, table string, drop ...string) []string {
	t.Helper()
	expr := "to_jsonb(x)"
	for _, c := range drop {
		expr += " - '" + c + "'"
	}
	rows, err := in.pool.Query(context.Background(), `SELECT (`+expr+`)::text AS j FROM `+pgx.Identifier{table}.Sanitize()+` x ORDER BY j`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// balances folds every account of the installation from its events and
// returns each one's balance as JSON, by tenant and account id.
func (in *installation) balances(t *testing.T, asOf domain.Date) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := in.pool.Query(ctx, `SELECT DISTINCT tenant_id, stream_id FROM events WHERE stream_type = $1`, domain.StreamTypeAccount)
	require.NoError(t, err)
	type key struct{ tenant, id string }
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (key, error) {
		var k key
		return k, r.Scan(&k.tenant, &k.id)
	})
	require.NoError(t, err)
	out := map[string]string{}
	for _, k := range keys {
		a := domain.NewAccount(k.tenant, k.id)
		_, err := in.store.Load(ctx, k.tenant, k.id, a)
		require.NoError(t, err)
		b, err := json.Marshal(a.Balance(asOf))
		require.NoError(t, err)
		out[k.tenant+"/"+k.id] = string(b)
	}
	return out
}

// TestEventsExportImport is the test: export → import into a fresh
// database → verify passes and balances equal. A money history (accounts
// with entries, amendments, payments and their reversals, through the
// domain commands) and a tenant with an API key are exported with `arrears
// events export`, imported with `arrears events import` into a second fresh
// installation, `arrears verify` passes there, every account's balance
// (folded from its events) and every read-model row equal the source's, the
// source's API key works on the target, and the relay publishes the
// imported history to the target's new JetStream stream.
func TestEventsExportImport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, dst := newInstallation(t), newInstallation(t)

	var secret string
	require.NoError(t, src.store.WithTx(ctx, func(tx pgx.Tx) error {
		ten, _, err := src.store.CreateTenantTx(ctx, tx, "Auditors Ltd", domain.Metadata{Actor: "system:test"})
		if err != nil {
			return err
		}
		_, secret, _, err = src.store.CreateKeyTx(ctx, tx, eventstore.NewKey{TenantID: ten.ID, Name: "ci", Mode: domain.ModeLive}, domain.Metadata{})
		return err
	}))
	projectiontest.MoneyHistory(t, projectiontest.NewRand(42), src.store, 1500)
	n := src.eventCount(t)
	last, err := src.store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, src.store.AwaitVisible(ctx, last))
	engine := projections.NewEngine(src.store)
	for _, p := range projections.All() {
		_, err := engine.Rebuild(ctx, p, nil)
		require.NoError(t, err)
	}
	require.Positive(t, src.scalar(t, `SELECT count(*) FROM payments`))
	require.Positive(t, src.scalar(t, `SELECT count(*) FROM ledger_entries`))

	// Export to standard output (`arrears events export > file`).
	stdout, stderr, code := runTool(t, time.Minute, []string{"DATABASE_URL=" + src.dbURL}, "events", "export")
	require.Equal(t, 0, code, "stderr:\n%s", stderr)
	require.Contains(t, stderr, fmt.Sprintf("exported %d events (1 tenants, 1 API keys, ", n))
	require.NotContains(t, stdout, secret)
	file := filepath.Join(t.TempDir(), "events.ndjson")
	require.NoError(t, os.WriteFile(file, []byte(stdout), 0o600))
	require.True(t, strings.HasPrefix(stdout, `{"format":"arrears-events","version":1,`))
	require.Equal(t, int(n)+1+1+1+1, strings.Count(stdout, "\n"), "header, tenant, key, events, trailer")

	stdout, stderr, code = runTool(t, time.Minute, []string{"DATABASE_URL=" + dst.dbURL}, "events", "import", "--file", file)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, fmt.Sprintf("imported %d events (1 tenants, 1 API keys, 0 stream references)", n))
	require.Contains(t, stdout, "every hash chain verified")
	for _, p := range projections.All() {
		require.Contains(t, stdout, fmt.Sprintf("%s: rebuilt from %d events", p.Name(), n))
	}
	t.Logf("export/import of %d events:\n%s", n, stdout)

	stdout, stderr, code = runTool(t, time.Minute, []string{"DATABASE_URL=" + dst.dbURL}, "verify")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "OK: every chain verifies")
	require.Contains(t, stdout, fmt.Sprintf(", %d events in ", n))

	// Balances: folded from the events, and the read models.
	for _, asOf := range []domain.Date{"2025-11-01", "2026-03-01", "2027-01-01"} {
		want := src.balances(t, asOf)
		require.NotEmpty(t, want)
		require.Equal(t, want, dst.balances(t, asOf), "balances as of %s", asOf)
	}
	for _, p := range projections.All() {
		for _, tbl := range p.Tables() {
			var drop []string
			if tbl.Name == "stream_heads" {
				drop = []string{"last_position"} // positions are reassigned on import
			}
			want := src.rowsOf(t, tbl.Name, drop...)
			assert.Equal(t, want, dst.rowsOf(t, tbl.Name, drop...), "%s rows", tbl.Name)
		}
	}
	require.NotEmpty(t, src.rowsOf(t, "accounts"))
	for _, tbl := range []string{"tenants", "api_keys", "stream_references"} {
		assert.Equal(t, src.rowsOf(t, tbl), dst.rowsOf(t, tbl), tbl)
	}
	pr, err := eventstore.NewAuthenticator(dst.store).Authenticate(ctx, secret)
	require.NoError(t, err, "the source's API key works on the target")
	assert.NotEmpty(t, pr.TenantID)

	// The relay publishes the imported history to the target's new stream,
	// as sequences 1…n in the global order.
	relay := startProc(t, "relay", "", dst.env(), "relay")
	waitFor(t, 30*time.Second, func() string {
		return fmt.Sprintf("relay_log at %d, want %d", dst.scalar(t, `SELECT coalesce(max(seq), 0) FROM relay_log`), n)
	}, func() bool { return dst.scalar(t, `SELECT coalesce(max(seq), 0) FROM relay_log`) == n })
	relay.Stop(10 * time.Second)
	var lastID string
	require.NoError(t, dst.pool.QueryRow(ctx, `SELECT event_id FROM relay_log ORDER BY seq DESC LIMIT 1`).Scan(&lastID))
	var wantLast string
	require.NoError(t, src.pool.QueryRow(ctx, `SELECT id FROM events ORDER BY tx_id DESC, position DESC LIMIT 1`).Scan(&wantLast))
	assert.Equal(t, wantLast, lastID)

	// Importing again is refused: the target is not empty any more.
	_, stderr, code = runTool(t, time.Minute, []string{"DATABASE_URL=" + dst.dbURL}, "events", "import", "--file", file)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "the database is not empty")
}

// TestEventsImportRefusesTampering: a file with one event's data changed is
// refused by `arrears events import`, naming the line, stream and version,
// and nothing is imported.
func TestEventsImportRefusesTampering(t *testing.T) {
	src, dst := newInstallation(t), newInstallation(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newAppender(src.store, "audit", 3, 9)
	for range 4 {
		_, err := a.appendBatch(ctx, a.streams, 2)
		require.NoError(t, err)
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	_, stderr, code := runTool(t, time.Minute, []string{"DATABASE_URL=" + src.dbURL}, "events", "export", "--file", file, "--tenant", "audit")
	require.Equal(t, 0, code, "stderr:\n%s", stderr)
	require.Contains(t, stderr, "exported 24 events")

	b, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	victim := fmt.Sprintf(`"stream_id":%q,"stream_version":5,`, a.streams[1])
	found := -1
	for i, l := range lines {
		if strings.Contains(l, victim) {
			found = i
			lines[i] = strings.Replace(l, `"n":5`, `"n":5000`, 1)
			require.NotEqual(t, l, lines[i])
		}
	}
	require.Positive(t, found)
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "")), 0o600))

	_, stderr, code = runTool(t, time.Minute, []string{"DATABASE_URL=" + dst.dbURL}, "events", "import", "--file", file)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, fmt.Sprintf("arrears: eventstore: import: line %d: event ", found+1))
	require.Contains(t, stderr, fmt.Sprintf("stream %s, version 5): hash mismatch", a.streams[1]))
	assert.Zero(t, dst.eventCount(t))

	_, stderr, code = runTool(t, time.Minute, []string{"DATABASE_URL=" + src.dbURL}, "events", "export", "--since", "yesterday")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--since: want an RFC 3339 time")
	_, stderr, code = runTool(t, time.Minute, nil, "events")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "arrears events export")
}
