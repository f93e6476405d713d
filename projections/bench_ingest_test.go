package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
)

// BenchmarkLedgerRebuildIngest is BenchmarkLedgerRebuild over the history
// a bulk import leaves (what `arrears bench` replays): 1,000 accounts, each
// with its own debtor, then 50,000 invoices posted in batches of 1,000
// spread over the accounts. Rebuild and Replay of the ledger in the same
// run, as there.
func BenchmarkLedgerRebuildIngest(b *testing.B) {
	ctx := context.Background()
	_, pool := testDB.Isolated(b, 4)
	store := eventstore.New(pool)
	ingestHistory(b, store, 1000, 50_000)
	last, err := store.LastTxID(ctx)
	require.NoError(b, err)
	require.NoError(b, store.AwaitVisible(ctx, last))
	var events int64
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events))
	engine := projections.NewEngine(store)
	for _, how := range []string{"rebuild", "replay"} {
		b.Run("ledger/"+how, func(b *testing.B) {
			for b.Loop() {
				var err error
				if how == "rebuild" {
					_, err = engine.Rebuild(ctx, projections.Ledger{}, nil)
				} else {
					_, err = engine.Replay(ctx, projections.Ledger{}, nil)
				}
				require.NoError(b, err)
			}
			b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// ingestHistory appends accounts accounts (one debtor each), then entries
// invoices in batches of 1,000, eight consecutive ones per account.
func ingestHistory(t testing.TB, store *eventstore.Store, accounts, entries int) {
	ctx := context.Background()
	ids := domain.NewIDGenerator(nil)
	now := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	type account struct {
		agg     *domain.Account
		version int64
	}
	var as []*account
	var pending []eventstore.StreamAppend
	flush := func() {
		if len(pending) > 0 {
			_, err := store.Append(ctx, domain.Metadata{Actor: "system:bench"}, pending...)
			require.NoError(t, err)
			pending = nil
		}
	}
	name := "Bench"
	for i := range accounts {
		d := domain.NewDebtor("ten_bench", ids.New(domain.PrefixDebtor, now))
		ref := fmt.Sprintf("D-%d", i)
		evs, err := d.Create(domain.DebtorFields{Reference: &ref, FirstName: &name, LastName: &name}, false, now)
		require.NoError(t, err)
		pending = append(pending, eventstore.StreamAppend{TenantID: "ten_bench", StreamType: domain.StreamTypeDebtor, StreamID: d.ID, Events: evs})
		a := &account{agg: domain.NewAccount("ten_bench", ids.New(domain.PrefixAccount, now))}
		evs, err = a.agg.Open(domain.OpenAccount{Reference: fmt.Sprintf("A-%d", i), Currency: "EUR", DebtorIDs: []string{d.ID}}, now)
		require.NoError(t, err)
		pending = append(pending, eventstore.StreamAppend{TenantID: "ten_bench", StreamType: domain.StreamTypeAccount, StreamID: a.agg.ID, Events: evs})
		a.version = int64(len(evs))
		as = append(as, a)
		if len(pending) >= 1000 {
			flush()
		}
	}
	flush()
	for n := 0; n < entries; {
		now = now.Add(2 * time.Hour)
		batch := map[*account][]domain.EntryInput{}
		var order []*account
		for j := 0; j < 1000 && n < entries; j, n = j+1, n+1 {
			a := as[(n/8)%len(as)]
			if batch[a] == nil {
				order = append(order, a)
			}
			batch[a] = append(batch[a], domain.EntryInput{Reference: fmt.Sprintf("INV-%d", n), Kind: domain.KindInvoice,
				Amount: decimal.New(int64(1000+n*7919%90000), -2), DueDate: domain.DateOf(now.AddDate(0, 0, n%300))})
		}
		for _, a := range order {
			evs, err := a.agg.PostEntries(batch[a], now, nil)
			require.NoError(t, err)
			pending = append(pending, eventstore.StreamAppend{TenantID: "ten_bench", StreamType: domain.StreamTypeAccount, StreamID: a.agg.ID, ExpectedVersion: a.version, Events: evs})
			a.version += int64(len(evs))
		}
		flush()
	}
}
