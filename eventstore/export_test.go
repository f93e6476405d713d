package eventstore_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections/projectiontest"
)

// exportHistory appends a varied history: a tenant with live, test and
// revoked API keys, an account opened with a creditor reference, events
// whose JSON needs care (HTML characters, non-ASCII, numbers in several
// spellings), and the money workload over several tenants. It returns a
// secret of a live key.
func exportHistory(t *testing.T, s *eventstore.Store, seed uint64) (secret string) {
	t.Helper()
	ctx := context.Background()
	var tenant domain.Tenant
	require.NoError(t, s.WithTx(ctx, func(tx pgx.Tx) error {
		var err error
		if tenant, _, err = s.CreateTenantTx(ctx, tx, "Acme <Export> & Co", domain.Metadata{Actor: "system:test"}); err != nil {
			return err
		}
		if _, secret, _, err = s.CreateKeyTx(ctx, tx, eventstore.NewKey{TenantID: tenant.ID, Name: "live", Mode: domain.ModeLive,
			Scopes: []string{"accounts:read"}}, domain.Metadata{}); err != nil {
			return err
		}
		exp := time.Now().Add(48 * time.Hour)
		_, _, _, err = s.CreateKeyTx(ctx, tx, eventstore.NewKey{TenantID: tenant.ID, Name: "test", Mode: domain.ModeTest, ExpiresAt: &exp, ReadOnly: true}, domain.Metadata{})
		return err
	}))
	var revoked domain.APIKey
	require.NoError(t, s.WithTx(ctx, func(tx pgx.Tx) error {
		var err error
		revoked, _, _, err = s.CreateKeyTx(ctx, tx, eventstore.NewKey{TenantID: tenant.ID, Name: "gone", Mode: domain.ModeLive}, domain.Metadata{})
		return err
	}))
	require.NoError(t, s.WithTx(ctx, func(tx pgx.Tx) error {
		_, _, err := s.RevokeKeyTx(ctx, tx, tenant.ID, domain.ModeLive, revoked.ID, domain.Metadata{})
		return err
	}))

	c := accountCmd(tenant.ID, newStream(domain.PrefixAccount), func(a *domain.Account) ([]domain.NewEvent, error) {
		return a.Open(domain.OpenAccount{Reference: "ACC-<1>", Currency: "EUR"}, time.Now())
	})
	c.Reference = "ACC-<1>"
	_, err := s.Execute(ctx, domain.Metadata{RequestID: "req_é", IdempotencyKey: "k&1", CorrelationID: "c"}, []eventstore.Command{c}, nil)
	require.NoError(t, err)

	odd := newStream("odd")
	var v int64
	for _, data := range []string{
		`{"b":1,"a":"x<y>&z","n":1.50}`,
		`{"nested":{"z":[1,2.0,1e2,-0.0],"a":null},"s":"\u00e9\u2028\t\"q\""}`,
		`{"big":123456789012345678901234567890.125,"tiny":1E-7,"emoji":"💶"}`,
	} {
		evs, err := s.Append(ctx, domain.Metadata{Actor: "key_x", Sandbox: v%2 == 1}, eventstore.StreamAppend{TenantID: "ten_odd-Export", StreamType: "misc",
			StreamID: odd, ExpectedVersion: v, Events: []domain.NewEvent{{Type: "misc.noted", SchemaVersion: 1 + int(v), Data: json.RawMessage(data)}}})
		require.NoError(t, err)
		v = evs[0].StreamVersion
	}

	projectiontest.MoneyHistory(t, projectiontest.NewRand(seed), s, 600)
	return secret
}

// storedEvent is an event row as stored, for field-by-field comparison.
type storedEvent struct {
	ID, TenantID, StreamType, StreamID string
	StreamVersion                      int64
	Type                               string
	SchemaVersion                      int32
	Data, Metadata                     string
	RecordedAt                         time.Time
	Hash                               []byte
}

func storedEvents(t *testing.T, pool *pgxpool.Pool) []storedEvent {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, tenant_id, stream_type, stream_id, stream_version, type, schema_version,
		data::text, metadata::text, recorded_at, hash FROM events ORDER BY tx_id, position`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedEvent, error) {
		var e storedEvent
		err := r.Scan(&e.ID, &e.TenantID, &e.StreamType, &e.StreamID, &e.StreamVersion, &e.Type, &e.SchemaVersion,
			&e.Data, &e.Metadata, &e.RecordedAt, &e.Hash)
		e.RecordedAt = e.RecordedAt.UTC()
		return e, err
	})
	require.NoError(t, err)
	return out
}

// tableRows returns a table's rows as JSON text in a stable order.
func tableRows(t *testing.T, pool *pgxpool.Pool, table string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT to_jsonb(x)::text FROM `+pgx.Identifier{table}.Sanitize()+` x ORDER BY to_jsonb(x)::text`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func count(t *testing.T, pool *pgxpool.Pool, table string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n))
	return n
}

// awaitVisible is AwaitVisible with a deadline: the read horizon is the
// whole PostgreSQL cluster's, which other tests' transactions hold back.
func awaitVisible(s *eventstore.Store, txID int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.AwaitVisible(ctx, txID)
}

func export(t *testing.T, s *eventstore.Store, opts eventstore.ExportOptions) ([]byte, eventstore.ExportSummary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := s.Export(context.Background(), &buf, opts)
	require.NoError(t, err)
	return buf.Bytes(), sum
}

func lines(b []byte) []string { return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n") }

// eventLines returns the "event" lines of an export, decoded.
func eventLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		if m["record"] == "event" {
			out = append(out, m)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestExportImportRoundTrip: an export imported into a fresh database gives
// back every event field by field, in the same global order, with chains
// that verify, the tenants, keys (a source secret authenticates on the
// target) and references, and a store that keeps appending on the chains.
func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, srcPool := testDB.Isolated(t, 4)
	src := eventstore.New(srcPool)
	secret := exportHistory(t, src, 11)
	want := storedEvents(t, srcPool)
	require.Greater(t, len(want), 300)

	start := time.Now()
	file, sum := export(t, src, eventstore.ExportOptions{PageSize: 97})
	exportTook := time.Since(start)
	assert.Equal(t, int64(len(want)), sum.Trailer.Events)
	assert.Equal(t, int64(len(want)), sum.Header.Events)
	assert.Equal(t, int64(1), sum.Trailer.Tenants)
	assert.Equal(t, int64(3), sum.Trailer.APIKeys)
	assert.Equal(t, int64(1), sum.Trailer.StreamReferences)
	ls := lines(file)
	require.Len(t, ls, 1+1+3+1+len(want)+1)
	assert.True(t, strings.HasPrefix(ls[0], `{"format":"arrears-events","version":1,`), ls[0])
	assert.True(t, strings.HasPrefix(ls[len(ls)-1], `{"record":"trailer",`), ls[len(ls)-1])
	assert.NotContains(t, string(file), secret, "never a secret")

	_, dstPool := testDB.Isolated(t, 4)
	dst := eventstore.New(dstPool)
	var calls int
	var lastDone, lastTotal int64
	start = time.Now()
	isum, err := dst.Import(ctx, bytes.NewReader(file), func(done, total int64) { calls, lastDone, lastTotal = calls+1, done, total })
	importTook := time.Since(start)
	require.NoError(t, err)
	t.Logf("%d events: export %s (%.0f events/s), import %s (%.0f events/s), %d bytes", len(want),
		exportTook.Round(time.Millisecond), float64(len(want))/exportTook.Seconds(),
		importTook.Round(time.Millisecond), float64(len(want))/importTook.Seconds(), len(file))
	assert.Equal(t, int64(len(want)), isum.Events)
	assert.Equal(t, int64(len(want)), lastDone)
	assert.Equal(t, int64(len(want)), lastTotal)
	assert.Positive(t, calls)

	got := storedEvents(t, dstPool)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i], got[i], "event %d (%s)", i, want[i].ID)
	}
	// Positions are reassigned in the same order, in one transaction.
	var txs, ordered int64
	require.NoError(t, dstPool.QueryRow(ctx, `SELECT count(DISTINCT tx_id), count(*) FILTER (WHERE position = rn)
		FROM (SELECT tx_id, position, row_number() OVER (ORDER BY position) + min(position) OVER () - 1 AS rn FROM events) x`).Scan(&txs, &ordered))
	assert.Equal(t, int64(1), txs)
	assert.Equal(t, int64(len(want)), ordered)
	assert.Equal(t, isum.TxID, func() int64 {
		var x int64
		require.NoError(t, dstPool.QueryRow(ctx, `SELECT max(tx_id)::text::bigint FROM events`).Scan(&x))
		return x
	}())

	for _, table := range []string{"tenants", "api_keys", "stream_references"} {
		assert.Equal(t, tableRows(t, srcPool, table), tableRows(t, dstPool, table), table)
	}
	rep, err := dst.VerifyChains(ctx, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%+v", rep.Problems)
	assert.Equal(t, int64(len(want)), rep.Events)

	// A working installation: the source's key authenticates, and appends
	// continue the imported chains.
	p, err := eventstore.NewAuthenticator(dst).Authenticate(ctx, secret)
	require.NoError(t, err)
	assert.Equal(t, want[0].TenantID, p.TenantID)
	last := want[len(want)-1]
	require.NoError(t, awaitVisible(dst, isum.TxID))
	appended, err := dst.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: last.TenantID, StreamType: last.StreamType, StreamID: last.StreamID,
		ExpectedVersion: last.StreamVersion, Events: []domain.NewEvent{ev("misc.after_import", map[string]any{"ok": true})}})
	require.NoError(t, err)
	require.NoError(t, awaitVisible(dst, appended[0].TxID))
	rep, err = dst.VerifyChains(ctx, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%+v", rep.Problems)
	evs, err := dst.ReadAll(ctx, domain.Checkpoint{}, len(want)+10)
	require.NoError(t, err)
	require.Len(t, evs, len(want)+1, "ReadAll sees the imported history in order, then the new event")
	for i := range want {
		require.Equal(t, want[i].ID, evs[i].ID)
	}

	// Exporting the imported installation gives the same events again.
	again, _ := export(t, dst, eventstore.ExportOptions{})
	a, b := eventLines(t, file), eventLines(t, again)
	require.Len(t, b, len(a)+1)
	for i := range a {
		delete(a[i], "position")
		delete(b[i], "position")
		require.Equal(t, a[i], b[i])
	}
}

// TestImportRefusesDamagedFiles: a changed, removed or reordered line, a
// missing trailer or a wrong checksum refuse the import, naming the line,
// and leave the database empty.
func TestImportRefusesDamagedFiles(t *testing.T) {
	ctx := context.Background()
	_, srcPool := testDB.Isolated(t, 4)
	src := eventstore.New(srcPool)
	exportHistory(t, src, 12)
	file, _ := export(t, src, eventstore.ExportOptions{})
	ls := lines(file)

	// The victim: an event in the middle that is not its stream's first.
	victim := -1
	var ve map[string]any
	for i := len(ls) / 2; i < len(ls)-1; i++ {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(ls[i]), &m))
		if m["record"] == "event" && m["stream_version"].(float64) > 1 &&
			strings.Contains(strings.Join(ls[i+1:], ""), fmt.Sprintf(`"stream_id":%q,"stream_version":%d,`, m["stream_id"], int64(m["stream_version"].(float64))+1)) {
			victim, ve = i, m // and its stream goes on after it
			break
		}
	}
	require.Positive(t, victim)
	lineNo := victim + 1
	stream := ve["stream_id"].(string)
	version := fmt.Sprintf("version %d", int64(ve["stream_version"].(float64)))

	edit := func(f func(ls []string) []string) []byte {
		cp := append([]string(nil), ls...)
		return []byte(strings.Join(f(cp), ""))
	}
	tamperData := func(ls []string) []string {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(ls[victim]), &m))
		m["data"].(map[string]any)["tampered"] = "1000.00"
		b, err := json.Marshal(m)
		require.NoError(t, err)
		ls[victim] = string(b) + "\n"
		return ls
	}
	for _, tc := range []struct {
		name string
		file []byte
		want []string
	}{
		{"data changed", edit(tamperData), []string{fmt.Sprintf("line %d: ", lineNo), stream, version, "hash mismatch"}},
		{"metadata changed", edit(func(ls []string) []string {
			changed := strings.Replace(ls[victim], `"actor":"system:money-workload"`, `"actor":"system:someone-else"`, 1)
			require.NotEqual(t, ls[victim], changed)
			ls[victim] = changed
			return ls
		}), []string{fmt.Sprintf("line %d: ", lineNo), stream, version, "hash mismatch"}},
		{"line removed", edit(func(ls []string) []string {
			return append(ls[:victim], ls[victim+1:]...)
		}), []string{stream, fmt.Sprintf("version %d follows %d", int64(ve["stream_version"].(float64))+1, int64(ve["stream_version"].(float64))-1)}},
		{"trailer missing", edit(func(ls []string) []string { return ls[:len(ls)-1] }),
			[]string{"truncated: no trailer"}},
		{"cut mid-line", file[:len(file)-len(ls[len(ls)-1])-len(ls[len(ls)-2])/2],
			[]string{fmt.Sprintf("line %d", len(ls)-1)}},
		{"checksum wrong", edit(func(ls []string) []string {
			ls[len(ls)-1] = strings.Replace(ls[len(ls)-1], `"sha256":"`, `"sha256":"00`, 1)
			return ls
		}), []string{fmt.Sprintf("line %d: trailer", len(ls)), "SHA-256"}},
		{"data after the trailer", append(append([]byte(nil), file...), ls[victim]...),
			[]string{"data after the trailer"}},
		{"key row changed, checksum recomputed", edit(func(ls []string) []string {
			for i, l := range ls {
				if strings.Contains(l, `"record":"api_key"`) && strings.Contains(l, `"mode":"test"`) {
					ls[i] = strings.Replace(l, `"mode":"test"`, `"mode":"live"`, 1)
				}
			}
			return resum(t, ls)
		}), []string{"API key key_", "has no matching api_key.created event"}},
		{"key un-revoked, checksum recomputed", edit(func(ls []string) []string {
			for i, l := range ls {
				if strings.Contains(l, `"record":"api_key"`) && !strings.Contains(l, `"revoked_at":null`) {
					var m map[string]any
					require.NoError(t, json.Unmarshal([]byte(l), &m))
					m["revoked_at"] = nil
					b, err := json.Marshal(m)
					require.NoError(t, err)
					ls[i] = string(b) + "\n"
				}
			}
			return resum(t, ls)
		}), []string{"is not revoked but its api_key.revoked event is in the file"}},
		{"not an export", []byte("{\"hello\":1}\n"), []string{"line 1: not an arrears events export"}},
		{"empty", nil, []string{"empty input"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, dstPool := testDB.Isolated(t, 2)
			dst := eventstore.New(dstPool)
			_, err := dst.Import(ctx, bytes.NewReader(tc.file), nil)
			require.Error(t, err)
			t.Log(err)
			assert.True(t, strings.HasPrefix(err.Error(), "eventstore: import: "), err.Error())
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			for _, table := range []string{"events", "tenants", "api_keys", "stream_references"} {
				assert.Zero(t, count(t, dstPool, table), "nothing imported into %s", table)
			}
			// The file intact still imports into the same database.
			_, err = dst.Import(ctx, bytes.NewReader(file), nil)
			require.NoError(t, err)
		})
	}
}

// resum recomputes the trailer's checksum over the lines before it, as a
// forger would.
func resum(t *testing.T, ls []string) []string {
	t.Helper()
	h := sha256.New()
	for _, l := range ls[:len(ls)-1] {
		h.Write([]byte(l))
	}
	var tr map[string]any
	require.NoError(t, json.Unmarshal([]byte(ls[len(ls)-1]), &tr))
	tr["sha256"] = hex.EncodeToString(h.Sum(nil))
	b, err := json.Marshal(tr)
	require.NoError(t, err)
	ls[len(ls)-1] = string(b) + "\n"
	return ls
}

// TestImportRefusesNonEmptyDatabase: import only into an empty database.
func TestImportRefusesNonEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	_, srcPool := testDB.Isolated(t, 4)
	src := eventstore.New(srcPool)
	exportHistory(t, src, 13)
	file, _ := export(t, src, eventstore.ExportOptions{})

	_, dstPool := testDB.Isolated(t, 4)
	dst := eventstore.New(dstPool)
	_, err := dst.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_x", StreamType: "misc", StreamID: "s1",
		Events: []domain.NewEvent{ev("misc.noted", map[string]any{})}})
	require.NoError(t, err)
	_, err = dst.Import(ctx, bytes.NewReader(file), nil)
	require.ErrorContains(t, err, "eventstore: import: the database is not empty")
	assert.Equal(t, int64(1), count(t, dstPool, "events"))

	// Importing twice: the second finds the first's events.
	_, dst2Pool := testDB.Isolated(t, 4)
	dst2 := eventstore.New(dst2Pool)
	_, err = dst2.Import(ctx, bytes.NewReader(file), nil)
	require.NoError(t, err)
	_, err = dst2.Import(ctx, bytes.NewReader(file), nil)
	require.ErrorContains(t, err, "not empty")
}

// TestExportSelections: --since exports only events recorded from then on,
// --after-position only the events after one in the global order, and
// --tenant one tenant's history, which imports on its own. Partial exports
// are refused by import.
func TestExportSelections(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 4)
	clock := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s := eventstore.New(pool, eventstore.WithClock(func() time.Time { return clock }))
	streams := []string{newStream("acct"), newStream("acct"), newStream("acct")}
	versions := map[string]int64{}
	for i := range 30 {
		clock = clock.Add(time.Minute + 1500*time.Nanosecond) // nanoseconds are dropped
		tenant := fmt.Sprintf("ten_%d", i%2)
		id := streams[i%3] + tenant
		_, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: "misc", StreamID: id,
			ExpectedVersion: versions[id], Events: []domain.NewEvent{ev("misc.noted", map[string]any{"i": i})}})
		require.NoError(t, err)
		versions[id]++
	}
	full, _ := export(t, s, eventstore.ExportOptions{})
	all := eventLines(t, full)
	require.Len(t, all, 30)

	since := time.Date(2025, 6, 1, 12, 20, 0, 0, time.UTC)
	part, sum := export(t, s, eventstore.ExportOptions{Since: since})
	got := eventLines(t, part)
	require.Len(t, got, 11, "events 19…29 were recorded from 12:20:00.00003 on")
	assert.Equal(t, all[19:], got)
	require.NotNil(t, sum.Header.Since)
	assert.True(t, sum.Header.Partial())
	assert.Zero(t, sum.Trailer.Tenants)
	_, dstPool := testDB.Isolated(t, 2)
	_, err := eventstore.New(dstPool).Import(ctx, bytes.NewReader(part), nil)
	require.ErrorContains(t, err, "partial export")

	pos := int64(all[9]["position"].(float64))
	part, sum = export(t, s, eventstore.ExportOptions{AfterPosition: pos})
	assert.Equal(t, all[10:], eventLines(t, part))
	assert.Equal(t, int64(all[29]["position"].(float64)), sum.Trailer.LastPosition)
	_, err = s.Export(ctx, &bytes.Buffer{}, eventstore.ExportOptions{AfterPosition: 1 << 40})
	require.ErrorContains(t, err, "eventstore: export: no event has position")
	_, err = s.Export(ctx, &bytes.Buffer{}, eventstore.ExportOptions{AfterPosition: pos, Since: since})
	require.ErrorContains(t, err, "exclude each other")

	part, _ = export(t, s, eventstore.ExportOptions{TenantID: "ten_1"})
	got = eventLines(t, part)
	require.Len(t, got, 15)
	for _, e := range got {
		assert.Equal(t, "ten_1", e["tenant_id"])
	}
	isum, err := eventstore.New(dstPool).Import(ctx, bytes.NewReader(part), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(15), isum.Events)
	rep, err := eventstore.New(dstPool).VerifyChains(ctx, nil)
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%+v", rep.Problems)
	assert.Equal(t, int64(3), rep.Streams)
}

// TestExportIsAPrefixWhileAppending: events appended while an export runs
// are either all in it or not at all, and an export never has a gap.
func TestExportIsAPrefixWhileAppending(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 8)
	s := eventstore.New(pool)
	id := newStream("acct")
	var v int64
	appendOne := func() {
		evs, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_p", StreamType: "misc", StreamID: id,
			ExpectedVersion: v, Events: []domain.NewEvent{ev("misc.noted", map[string]any{"v": v + 1})}})
		require.NoError(t, err)
		v = evs[0].StreamVersion
	}
	for range 50 {
		appendOne()
	}
	evs50, err := s.LastTxID(ctx)
	require.NoError(t, err)
	// Hold a transaction open: its events (and every later one) stay
	// beyond the horizon, so the export ends before them.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }() // also when the test fails: the pool closes only with every connection back
	_, err = tx.Exec(ctx, `SELECT pg_current_xact_id()`)
	require.NoError(t, err)
	for range 5 {
		appendOne()
	}
	require.NoError(t, awaitVisible(s, evs50))
	file, sum := export(t, s, eventstore.ExportOptions{PageSize: 7, Settle: 200 * time.Millisecond})
	require.NoError(t, tx.Rollback(ctx))
	assert.Equal(t, int64(50), sum.Trailer.Events)
	assert.Equal(t, int64(5), sum.LeftOut, "the export says what it left out")
	for i, e := range eventLines(t, file) {
		assert.Equal(t, float64(i+1), e["stream_version"])
	}
	_, dstPool := testDB.Isolated(t, 2)
	_, err = eventstore.New(dstPool).Import(ctx, bytes.NewReader(file), nil)
	require.NoError(t, err)
}

// BenchmarkExportImport measures export and import throughput over a
// history of 50,000 events in 500 streams (reported as events/s).
func BenchmarkExportImport(b *testing.B) {
	ctx := context.Background()
	_, pool := testDB.Isolated(b, 4)
	s := eventstore.New(pool)
	const streams, perStream, rounds = 500, 10, 10
	ids := make([]string, streams)
	for i := range ids {
		ids[i] = newStream(domain.PrefixAccount)
	}
	for r := range rounds {
		appends := make([]eventstore.StreamAppend, 0, streams)
		for _, id := range ids {
			evs := make([]domain.NewEvent, perStream)
			for j := range evs {
				evs[j] = ev("ledger_entry.posted", map[string]any{"reference": fmt.Sprintf("inv-%d-%d", r, j), "kind": "invoice",
					"amount": "123.45", "currency": "EUR", "due_date": "2026-01-31", "meta": map[string]any{"source": "bench", "n": j}})
			}
			appends = append(appends, eventstore.StreamAppend{TenantID: "ten_bench", StreamType: "account", StreamID: id,
				ExpectedVersion: int64(r * perStream), Events: evs})
		}
		_, err := s.Append(ctx, domain.Metadata{Actor: "system:bench", RequestID: "req_bench"}, appends...)
		require.NoError(b, err)
	}
	const n = streams * perStream * rounds
	var exportTime, importTime time.Duration
	for b.Loop() {
		var buf bytes.Buffer
		start := time.Now()
		sum, err := s.Export(ctx, &buf, eventstore.ExportOptions{})
		exportTime += time.Since(start)
		require.NoError(b, err)
		require.Equal(b, int64(n), sum.Trailer.Events)
		b.StopTimer()
		_, dstPool := testDB.Isolated(b, 2)
		b.StartTimer()
		start = time.Now()
		isum, err := eventstore.New(dstPool).Import(ctx, &buf, nil)
		importTime += time.Since(start)
		require.NoError(b, err)
		require.Equal(b, int64(n), isum.Events)
	}
	b.ReportMetric(float64(n*b.N)/exportTime.Seconds(), "export-events/s")
	b.ReportMetric(float64(n*b.N)/importTime.Seconds(), "import-events/s")
}
