package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// readAccount reads account id of tenant through s.Read: its version and
// its balance as of asOf.
func readAccount(ctx context.Context, s *eventstore.Store, tenant, id string, asOf domain.Date) (int64, domain.Balance, error) {
	var v int64
	var b domain.Balance
	err := s.Read(ctx, accountCmd(tenant, id, nil), func(agg domain.Aggregate, version int64) error {
		a := agg.(*domain.Account)
		if a.Version != version {
			return fmt.Errorf("the aggregate is at version %d, Read says %d", a.Version, version)
		}
		v, b = version, a.Balance(asOf)
		return nil
	})
	return v, b, err
}

// readDerived is readAccount through s.ReadDerived: the balance derived
// once per version.
func readDerived(ctx context.Context, s *eventstore.Store, tenant, id string, asOf domain.Date) (int64, domain.Balance, error) {
	type view struct {
		v int64
		b domain.Balance
	}
	val, err := s.ReadDerived(ctx, accountCmd(tenant, id, nil), "balance/"+string(asOf), func(agg domain.Aggregate, version int64) (any, error) {
		a := agg.(*domain.Account)
		if a.Version != version {
			return nil, fmt.Errorf("the aggregate is at version %d, Read says %d", a.Version, version)
		}
		return &view{version, a.Balance(asOf)}, nil
	})
	if err != nil {
		return 0, domain.Balance{}, err
	}
	return val.(*view).v, val.(*view).b, nil
}

// loadAccount folds account id of tenant from its first event.
func loadAccount(t *testing.T, s *eventstore.Store, tenant, id string, asOf domain.Date) (int64, domain.Balance) {
	t.Helper()
	a := domain.NewAccount(tenant, id)
	v, err := s.Load(context.Background(), tenant, id, a)
	require.NoError(t, err)
	return v, a.Balance(asOf)
}

// show is a balance as the API shows it (amounts to the cent), to compare
// states folded along different paths.
func show(b domain.Balance) string {
	f := func(d decimal.Decimal) string { return d.StringFixed(2) }
	g := func(a domain.Aging) string {
		return f(a.Current) + "/" + f(a.Days1to30) + "/" + f(a.Days31to60) + "/" + f(a.Days61to90) + "/" + f(a.Over90)
	}
	s := fmt.Sprintf("%s invoiced %s fees %s paid %s adjustments %s discounts %s chargebacks %s refunded %s outstanding %s overdue %s credit %s dpd %d aging %s",
		b.AsOf, f(b.Invoiced), f(b.Fees), f(b.Paid), f(b.Adjustments), f(b.Discounts), f(b.Chargebacks), f(b.Refunded), f(b.Outstanding),
		f(b.Overdue), f(b.Credit), b.DaysPastDue, g(b.Aging))
	for _, p := range b.Products {
		s += fmt.Sprintf(" [%s %s %s %s %s %d %s]", p.ProductReference, f(p.Invoiced), f(p.Fees), f(p.Outstanding), f(p.Overdue), p.DaysPastDue, g(p.Aging))
	}
	return s
}

// TestReadDuringWrites is the cached read under concurrent writes (run it
// with -race): writers record payments and post fees on one account through
// two Stores (two "processes" on one database, so the caches must catch up
// with writes they did not make), while readers read its balance through
// both, by Read and by ReadDerived. Every read is a committed state — its figures equal the fold of
// the stream's first v events, for its version v, and two reads of one
// version agree; paid, invoiced and the version never go back for a
// reader; outstanding + paid = invoiced + fees — and as fresh as a fold: a
// read started after a write returned includes it. At the end both caches
// equal a full fold.
func TestReadDuringWrites(t *testing.T) {
	writers, each, readers := 8, 30, 6
	if testing.Short() {
		writers, each = 4, 15
	}
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 30)
	stores := []*eventstore.Store{eventstore.New(pool), eventstore.New(pool)}
	tenant, id := "ten_read", newStream("acct")
	openWithInvoice(t, stores[0], tenant, id, "1000.00") // owes more than every payment: none is refused
	asOf := domain.Date("2026-03-01")

	var failOnce sync.Once
	fail := func(format string, args ...any) { failOnce.Do(func() { t.Errorf(format, args...) }) }
	var mu sync.Mutex
	observed := map[int64]string{} // version → the balance read at it
	observe := func(v int64, b domain.Balance) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := observed[v]; ok && prev != show(b) {
			fail("two reads of version %d differ:\n%s\n%s", v, prev, show(b))
		}
		observed[v] = show(b)
	}

	done := make(chan struct{})
	var reads atomic.Int64
	var rg sync.WaitGroup
	for r := range readers {
		rg.Go(func() {
			s := stores[r%2]
			read := readAccount
			if r >= 2 {
				read = readDerived
			}
			var lastV int64
			lastPaid, lastInvoiced := decimal.Zero, decimal.Zero
			for {
				select {
				case <-done:
					return
				default:
				}
				v, b, err := read(ctx, s, tenant, id, asOf)
				if err != nil {
					fail("read: %v", err)
					return
				}
				reads.Add(1)
				observe(v, b)
				if v < lastV || b.Paid.LessThan(lastPaid) || b.Invoiced.LessThan(lastInvoiced) {
					fail("went back: version %d → %d, paid %s → %s, invoiced %s → %s", lastV, v, lastPaid, b.Paid, lastInvoiced, b.Invoiced)
				}
				if !b.Outstanding.Add(b.Paid).Equal(b.Invoiced.Add(b.Fees)) {
					fail("version %d: outstanding %s + paid %s ≠ invoiced %s + fees %s", v, b.Outstanding, b.Paid, b.Invoiced, b.Fees)
				}
				lastV, lastPaid, lastInvoiced = v, b.Paid, b.Invoiced
			}
		})
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				s := stores[(w+i)%2]
				cmd := accountCmd(tenant, id, func(a *domain.Account) ([]domain.NewEvent, error) {
					if i%5 == 4 {
						return a.PostEntries([]domain.EntryInput{{Reference: fmt.Sprintf("fee-%d-%d", w, i), Kind: domain.KindFee,
							Amount: decimal.RequireFromString("2.50"), TargetReference: "inv", FeeType: "reminder"}}, time.Now(), nil)
					}
					_, evs, err := a.RecordPayment(fmt.Sprintf("pay_%d_%d", w, i), domain.PaymentInput{Amount: decimal.RequireFromString("1.25")}, time.Now())
					return evs, err
				})
				evs, err := s.Execute(ctx, domain.Metadata{}, []eventstore.Command{cmd}, nil)
				if err != nil || len(evs) == 0 {
					fail("write %d/%d: %d events, %v", w, i, len(evs), err)
					return
				}
				// Fresh: a read started now includes the write, through
				// either store.
				written := evs[len(evs)-1].StreamVersion
				for _, rs := range stores {
					v, b, err := readAccount(ctx, rs, tenant, id, asOf)
					if err != nil {
						fail("read after write: %v", err)
						return
					}
					if v < written {
						fail("a read after the write of version %d is at version %d", written, v)
					}
					observe(v, b)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	require.False(t, t.Failed())

	// Every state read is the fold of the stream's first v events.
	evs, err := stores[0].ReadStream(ctx, tenant, id, 0)
	require.NoError(t, err)
	fold := domain.NewAccount(tenant, id)
	checked := 0
	for _, e := range evs {
		require.NoError(t, fold.Apply(e.Type, e.Data))
		if want, ok := observed[e.StreamVersion]; ok {
			require.Equal(t, show(fold.Balance(asOf)), want, "the state read at version %d", e.StreamVersion)
			checked++
		}
	}
	require.Equal(t, len(observed), checked, "every version read exists")
	require.Greater(t, checked, 10, "the reads saw the account change")
	t.Logf("%d reads during %d writes saw %d versions", reads.Load(), writers*each, checked)

	// Both caches end equal to a full fold, and to each other.
	wantV, want := loadAccount(t, stores[0], tenant, id, asOf)
	require.EqualValues(t, len(evs), wantV)
	for _, s := range stores {
		v, b, err := readAccount(ctx, s, tenant, id, asOf)
		require.NoError(t, err)
		require.Equal(t, wantV, v)
		require.Equal(t, show(want), show(b))
		j1, _ := json.Marshal(want)
		j2, _ := json.Marshal(b)
		require.JSONEq(t, string(j1), string(j2))
	}
	paid := decimal.RequireFromString("1.25").Mul(decimal.NewFromInt(int64(writers * (each - each/5))))
	require.Equal(t, paid.StringFixed(2), want.Paid.StringFixed(2))
}

// TestReadCache: what Read caches and from where. A stream with no event
// is read as the empty aggregate and not cached; the first read of an
// aggregate Execute cached moves it (no copy); later reads catch up with
// writes of any writer (Execute, on the cache's store or another; a plain
// Append); an event the aggregate cannot apply fails the read as it fails
// a fold, and drops the cached state.
func TestReadCache(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 8)
	s, other := eventstore.New(pool), eventstore.New(pool)
	tenant, id := "ten_rc", newStream("acct")
	asOf := domain.Date("2026-03-01")
	same := func(what string) {
		t.Helper()
		v, b, err := readAccount(ctx, s, tenant, id, asOf)
		require.NoError(t, err, what)
		wantV, want := loadAccount(t, s, tenant, id, asOf)
		require.Equal(t, wantV, v, what)
		require.Equal(t, show(want), show(b), what)
	}

	err := s.Read(ctx, accountCmd(tenant, id, nil), func(agg domain.Aggregate, v int64) error {
		assert.EqualValues(t, 0, v)
		assert.False(t, agg.(*domain.Account).Opened)
		return nil
	})
	require.NoError(t, err)
	_, _, readAggs, _ := eventstore.CacheSizes(s)
	assert.Zero(t, readAggs, "no stream, nothing cached")

	openWithInvoice(t, s, tenant, id, "100.00")
	execAggs, _, readAggs, _ := eventstore.CacheSizes(s)
	require.Equal(t, []int{1, 0}, []int{execAggs, readAggs})
	same("after the account was opened")
	execAggs, execEvents, readAggs, readEvents := eventstore.CacheSizes(s)
	assert.Equal(t, []int64{0, 0, 1, 2}, []int64{int64(execAggs), execEvents, int64(readAggs), readEvents}, "moved from Execute's cache to Read's")

	pay := func(st *eventstore.Store, pid, amount string) {
		t.Helper()
		_, err := st.Execute(ctx, domain.Metadata{}, []eventstore.Command{accountCmd(tenant, id, func(a *domain.Account) ([]domain.NewEvent, error) {
			_, evs, err := a.RecordPayment(pid, domain.PaymentInput{Amount: decimal.RequireFromString(amount)}, time.Now())
			return evs, err
		})}, nil)
		require.NoError(t, err)
	}
	pay(s, "pay_1", "10.00") // Execute folds it afresh (Read has it)
	same("after a payment on this store")
	pay(s, "pay_2", "5.00") // now from Execute's own cache
	same("after another")
	pay(other, "pay_3", "1.00")
	same("after a payment through another store")
	_, _, _, readEvents = eventstore.CacheSizes(s)
	assert.EqualValues(t, 8, readEvents, "the cached state grew with its version")

	live := domain.NewAccount(tenant, id) // a fee decided elsewhere, appended without Execute
	_, err = s.Load(ctx, tenant, id, live)
	require.NoError(t, err)
	evs, err := live.PostEntries([]domain.EntryInput{{Reference: "fee-1", Kind: domain.KindFee, Amount: decimal.RequireFromString("3.00"), TargetReference: "inv", FeeType: "late"}}, time.Now(), nil)
	require.NoError(t, err)
	_, err = s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: domain.StreamTypeAccount, StreamID: id, ExpectedVersion: 8, Events: evs})
	require.NoError(t, err)
	same("after an append")

	_, err = s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: domain.StreamTypeAccount, StreamID: id, ExpectedVersion: 9,
		Events: []domain.NewEvent{{Type: "account.exploded", Data: json.RawMessage(`{}`)}}})
	require.NoError(t, err)
	_, loadErr := s.Load(ctx, tenant, id, domain.NewAccount(tenant, id))
	require.Error(t, loadErr)
	_, _, err = readAccount(ctx, s, tenant, id, asOf)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown event type")
	_, _, readAggs, readEvents = eventstore.CacheSizes(s)
	assert.Equal(t, []int64{0, 0}, []int64{int64(readAggs), readEvents}, "the half-applied state is dropped")
	_, _, err = readAccount(ctx, s, tenant, id, asOf)
	require.Error(t, err, "and a fresh fold fails the same")
}

// TestReadCacheBounded: the read cache keeps at most its bounds — by count,
// and by the events in its aggregates (an aggregate of more events than
// the bound is read, never cached) — and reads stay exact when evicted.
func TestReadCacheBounded(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 8)
	s := eventstore.New(pool, eventstore.WithCacheLimits(2, 10))
	tenant := "ten_bound"
	asOf := domain.Date("2026-03-01")
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = newStream("acct")
		openWithInvoice(t, s, tenant, ids[i], "50.00") // 2 events each
	}
	for range 2 {
		for _, id := range ids {
			v, b, err := readAccount(ctx, s, tenant, id, asOf)
			require.NoError(t, err)
			wantV, want := loadAccount(t, s, tenant, id, asOf)
			require.Equal(t, wantV, v)
			require.Equal(t, show(want), show(b))
		}
		_, _, readAggs, readEvents := eventstore.CacheSizes(s)
		require.Equal(t, []int64{2, 4}, []int64{int64(readAggs), readEvents})
	}
	// Grow one account past the bound of 10 events.
	for i := range 5 {
		_, err := s.Execute(ctx, domain.Metadata{}, []eventstore.Command{accountCmd(tenant, ids[0], func(a *domain.Account) ([]domain.NewEvent, error) {
			_, evs, err := a.RecordPayment(fmt.Sprintf("pay_%d", i), domain.PaymentInput{Amount: decimal.RequireFromString("1.00")}, time.Now())
			return evs, err
		})}, nil)
		require.NoError(t, err)
	}
	v, b, err := readAccount(ctx, s, tenant, ids[0], asOf)
	require.NoError(t, err)
	wantV, want := loadAccount(t, s, tenant, ids[0], asOf)
	require.EqualValues(t, 12, wantV)
	require.Equal(t, wantV, v)
	require.Equal(t, show(want), show(b))
	execAggs, execEvents, readAggs, readEvents := eventstore.CacheSizes(s)
	assert.LessOrEqual(t, execAggs, 2)
	assert.LessOrEqual(t, execEvents, int64(10))
	assert.LessOrEqual(t, readAggs, 2)
	assert.LessOrEqual(t, readEvents, int64(10))
}

// TestReadDerived: the derived value is kept with the cached state and
// returned as it is until the state changes or the key is another; an
// error is not kept.
func TestReadDerived(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 4)
	tenant, id := "ten_derived", newStream("acct")
	openWithInvoice(t, s, tenant, id, "100.00")
	calls := 0
	derive := func(key string, fail bool) (any, error) {
		return s.ReadDerived(ctx, accountCmd(tenant, id, nil), key, func(agg domain.Aggregate, v int64) (any, error) {
			calls++
			if fail {
				return nil, fmt.Errorf("refused")
			}
			return &struct{ v int64 }{v}, nil
		})
	}
	first, err := derive("a", false)
	require.NoError(t, err)
	again, err := derive("a", false)
	require.NoError(t, err)
	assert.Same(t, first, again, "kept")
	assert.Equal(t, 1, calls)

	other, err := derive("b", false)
	require.NoError(t, err)
	assert.NotSame(t, first, other, "another key")
	assert.Equal(t, 2, calls)

	_, err = s.Execute(ctx, domain.Metadata{}, []eventstore.Command{accountCmd(tenant, id, func(a *domain.Account) ([]domain.NewEvent, error) {
		_, evs, err := a.RecordPayment("pay_1", domain.PaymentInput{Amount: decimal.RequireFromString("1.00")}, time.Now())
		return evs, err
	})}, nil)
	require.NoError(t, err)
	after, err := derive("b", false)
	require.NoError(t, err)
	assert.EqualValues(t, 4, after.(*struct{ v int64 }).v, "the state changed: derived again")
	assert.Equal(t, 3, calls)

	_, err = derive("c", true)
	require.Error(t, err)
	_, err = derive("c", true)
	require.Error(t, err)
	assert.Equal(t, 5, calls, "an error is not kept")
	kept, err := derive("b", false)
	require.NoError(t, err)
	assert.Same(t, after, kept, "nor does it replace the kept value")
}
