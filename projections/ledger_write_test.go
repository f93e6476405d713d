package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
)

// TestLedgerRefusesPostedTwice: an entry posted, or a payment recorded,
// a second time fails the batch, whether the first is in the same batch
// (the fold sees it) or an earlier one (its row is not looked up: the
// table's key refuses the second).
func TestLedgerRefusesPostedTwice(t *testing.T) {
	for _, c := range []struct{ typ, data, want string }{
		{domain.EventEntryPosted, `{"entry":{"reference":"inv-1","kind":"invoice","amount":"5","due_date":"2026-02-01"},"credit_applied":"0","to_credit":"0","at":"2026-01-01T00:00:00Z"}`, "posted twice"},
		{domain.EventPaymentRecorded, `{"payment":{"amount":"5","status":"pending"},"id":"pay_1","at":"2026-01-01T00:00:00Z"}`, "recorded twice"},
	} {
		for _, batch := range []int{2, 10} {
			t.Run(fmt.Sprintf("%s/batch=%d", c.typ, batch), func(t *testing.T) {
				ctx := context.Background()
				_, pool := testDB.Isolated(t, 4)
				store := eventstore.New(pool)
				a := domain.NewAccount("ten_u", "acct_u")
				evs, err := a.Open(domain.OpenAccount{Currency: "EUR"}, scenarioStart)
				require.NoError(t, err)
				twice := domain.NewEvent{Type: c.typ, Data: json.RawMessage(c.data)}
				evs = append(evs, twice, twice)
				_, err = store.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_u", StreamType: domain.StreamTypeAccount, StreamID: "acct_u", Events: evs})
				require.NoError(t, err)
				last, err := store.LastTxID(ctx)
				require.NoError(t, err)
				require.NoError(t, store.AwaitVisible(ctx, last))
				engine := projections.NewEngine(store)
				_, err = engine.CatchUp(ctx, projections.Ledger{}, -1, batch)
				require.ErrorContains(t, err, c.want)
				cp, err := engine.Load(ctx, "ledger")
				require.NoError(t, err)
				applied := int64(0) // batch 10: the only batch holds both
				if batch == 2 {
					applied = 2 // the opening and the first
				}
				assert.Equal(t, applied, cp.Seq, "the batches before the failing one applied")
			})
		}
	}
}

// TestLedgerReadIndexes: every read index Ledger names is a plain index of
// one of its tables (a renamed one would silently be maintained row by
// row again), and Rebuild and Replay of a history of several pages (which
// drop them while they fold) leave the tables with the indexes they had.
func TestLedgerReadIndexes(t *testing.T) {
	projections.SetRebuildPage(t, 2)
	projections.SetShadowBatch(t, 2)
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 4)
	p := projections.Ledger{}
	var tables []string
	for _, tb := range p.Tables() {
		tables = append(tables, tb.Name)
	}
	indexes := func() []string {
		rows, err := pool.Query(ctx, `SELECT c.relname || ' ' || pg_get_indexdef(i.indexrelid) FROM pg_index i
			JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
			WHERE t.relname = ANY ($1) AND t.relnamespace = 'public'::regnamespace ORDER BY 1`, tables)
		require.NoError(t, err)
		var out []string
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			out = append(out, s)
		}
		require.NoError(t, rows.Err())
		return out
	}
	before := indexes()
	var plain []string
	require.NoError(t, func() error {
		rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
			WHERE t.relname = ANY ($1) AND t.relnamespace = 'public'::regnamespace AND NOT i.indisunique`, tables)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			plain = append(plain, s)
		}
		return rows.Err()
	}())
	for _, name := range p.ReadIndexes() {
		assert.True(t, slices.Contains(plain, name), "read index %s is not a plain index of the ledger's tables", name)
	}

	store := eventstore.New(pool)
	for i := range 5 {
		id := fmt.Sprintf("acct_i%d", i)
		a := domain.NewAccount("ten_i", id)
		evs, err := a.Open(domain.OpenAccount{Currency: "EUR", Reference: fmt.Sprintf("A-%d", i)}, scenarioStart)
		require.NoError(t, err)
		_, err = store.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_i", StreamType: domain.StreamTypeAccount, StreamID: id, Events: evs})
		require.NoError(t, err)
	}
	last, err := store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, store.AwaitVisible(ctx, last))
	engine := projections.NewEngine(store)
	cp, err := engine.Rebuild(ctx, p, nil)
	require.NoError(t, err)
	require.Equal(t, int64(5), cp.Seq)
	assert.Equal(t, before, indexes(), "after Rebuild")
	var accounts int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE reference <> ''`).Scan(&accounts))
	assert.Equal(t, 5, accounts)
	_, err = engine.Replay(ctx, p, nil)
	require.NoError(t, err)
	assert.Equal(t, before, indexes(), "after Replay")
}
