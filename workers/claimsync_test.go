package workers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/workers"
)

const csTenant = "ten_claimsync"

// ledger is a database of its own, written through the domain and
// Store.Execute as the API writes it.
type ledger struct {
	t     testing.TB
	url   string
	pool  *pgxpool.Pool
	store *eventstore.Store
	ids   *domain.IDGenerator
}

func newLedger(t testing.TB) *ledger {
	url, pool := testDB.Isolated(t, 20)
	return &ledger{t: t, url: url, pool: pool, store: eventstore.New(pool), ids: domain.NewIDGenerator(nil)}
}

// otherProcess is the same database seen by another process: a pool and
// a store (locks, cache) of its own.
func (l *ledger) otherProcess() *ledger {
	l.t.Helper()
	pool, err := pgxpool.New(context.Background(), l.url)
	require.NoError(l.t, err)
	l.t.Cleanup(pool.Close)
	return &ledger{t: l.t, url: l.url, pool: pool, store: eventstore.New(pool), ids: l.ids}
}

func (l *ledger) account(cmd func(a *domain.Account) ([]domain.NewEvent, error)) func(id string) error {
	return func(id string) error {
		_, err := l.store.Execute(context.Background(), domain.Metadata{Actor: "test"}, []eventstore.Command{{
			TenantID: csTenant, StreamType: domain.StreamTypeAccount, StreamID: id,
			New:    func() domain.Aggregate { return domain.NewAccount(csTenant, id) },
			Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) { return cmd(agg.(*domain.Account)) },
		}}, nil)
		return err
	}
}

// do runs cmd on account id, requiring success.
func (l *ledger) do(id string, cmd func(a *domain.Account) ([]domain.NewEvent, error)) {
	l.t.Helper()
	require.NoError(l.t, l.account(cmd)(id))
}

func (l *ledger) open(sandbox bool) string {
	id := l.ids.New(domain.PrefixAccount, time.Now())
	l.do(id, func(a *domain.Account) ([]domain.NewEvent, error) {
		return a.Open(domain.OpenAccount{Currency: "EUR", DebtorIDs: []string{"dbt_1"}, Sandbox: sandbox}, time.Now())
	})
	return id
}

func (l *ledger) post(id string, ins ...domain.EntryInput) {
	l.t.Helper()
	l.do(id, func(a *domain.Account) ([]domain.NewEvent, error) { return a.PostEntries(ins, time.Now(), nil) })
}

func (l *ledger) pay(id, payID, amount string) {
	l.t.Helper()
	l.do(id, func(a *domain.Account) ([]domain.NewEvent, error) {
		_, evs, err := a.RecordPayment(payID, domain.PaymentInput{Amount: decimal.RequireFromString(amount)}, time.Now())
		return evs, err
	})
}

func (l *ledger) amend(id, ref, amount string) {
	l.t.Helper()
	l.do(id, func(a *domain.Account) ([]domain.NewEvent, error) {
		return a.Amend(ref, decimal.RequireFromString(amount), "amended", time.Now())
	})
}

func (l *ledger) accountState(id string) *domain.Account {
	l.t.Helper()
	a := domain.NewAccount(csTenant, id)
	_, err := l.store.Load(context.Background(), csTenant, id, a)
	require.NoError(l.t, err)
	return a
}

// claimEvents returns the managed claim's events.
func (l *ledger) claimEvents(acct, ref string) []domain.Event {
	l.t.Helper()
	evs, err := l.store.ReadStream(context.Background(), csTenant, domain.ManagedClaimID(acct, ref), 0)
	require.NoError(l.t, err)
	return evs
}

func (l *ledger) claim(acct, ref string) *domain.Claim {
	l.t.Helper()
	c := domain.NewClaim(csTenant, domain.ManagedClaimID(acct, ref))
	for _, e := range l.claimEvents(acct, ref) {
		require.NoError(l.t, c.Apply(e.Type, e.Data))
	}
	return c
}

func eventTypes(evs []domain.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func (l *ledger) countEvents() int {
	l.t.Helper()
	var n int
	require.NoError(l.t, l.pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
	return n
}

func (l *ledger) claimSync(cfg workers.ClaimSyncConfig) (*workers.ClaimSync, func()) {
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.LeaderRetry == 0 {
		cfg.LeaderRetry = 50 * time.Millisecond
	}
	w := workers.NewClaimSync(l.store, cfg, logger)
	l.store.OnAppend(w.Wake)
	return w, run(l.t, w.Run)
}

// settled waits until the claim sync has synced every committed event
// (including the claim events it recorded itself).
func (l *ledger) settled(t *testing.T, d time.Duration) {
	t.Helper()
	eventually(t, d, "the claim sync to catch up", func() bool {
		lag, err := workers.MeasureClaimSyncLag(context.Background(), l.store)
		require.NoError(t, err)
		return lag.Pending == 0
	})
}

func inv(ref, amount, due string) domain.EntryInput {
	return domain.EntryInput{Reference: ref, Kind: domain.KindInvoice, Amount: decimal.RequireFromString(amount), DueDate: domain.Date(due)}
}

// TestClaimSyncFollowsTheLedger: invoices posted, fees, payments,
// amendments and a chargeback reach their managed claims, in both modes;
// the claims projection folds what the sync records; and a re-run from
// checkpoint 0 records nothing.
func TestClaimSyncFollowsTheLedger(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	a := l.open(false)
	b := l.open(true)
	l.post(a, inv("INV-1", "100.00", "2026-01-01"), inv("INV-2", "50.00", "2026-02-01"),
		domain.EntryInput{Reference: "FEE-1", Kind: domain.KindFee, Amount: decimal.RequireFromString("10.00"), TargetReference: "INV-2", DueDate: "2026-03-01"},
		domain.EntryInput{Reference: "REP-1", Kind: domain.KindReporting, Amount: decimal.RequireFromString("1.00")})
	l.post(b, inv("INV-1", "20.00", "2026-01-01"))

	w, stop := l.claimSync(workers.ClaimSyncConfig{})
	l.settled(t, 20*time.Second)
	for _, ref := range []string{"INV-1", "INV-2"} {
		require.Equal(t, []string{domain.EventClaimCreated}, eventTypes(l.claimEvents(a, ref)), ref)
	}
	assert.Empty(t, l.claimEvents(a, "FEE-1"), "fees have no claim of their own")
	assert.Empty(t, l.claimEvents(a, "REP-1"))
	sb := l.claimEvents(b, "INV-1")
	require.Len(t, sb, 1)
	assert.True(t, sb[0].Metadata.Sandbox, "a sandbox account's claim events are sandbox events")
	assert.Equal(t, workers.ClaimSyncActor, sb[0].Metadata.Actor)
	assert.True(t, l.claim(b, "INV-1").Sandbox)
	c2 := l.claim(a, "INV-2")
	assert.Equal(t, "10", c2.TotalFees.String())
	assert.True(t, l.claim(a, "INV-1").Managed())

	// A payment pays INV-1 (oldest) and part of INV-2; INV-2 is amended up,
	// its fee amended; then the payment is charged back.
	l.pay(a, "pay_1", "130.00")
	l.amend(a, "INV-2", "70.00")
	l.amend(a, "FEE-1", "15.00")
	l.settled(t, 20*time.Second)
	assert.Equal(t, []string{domain.EventClaimCreated, domain.EventClaimPaid, domain.EventClaimResolved}, eventTypes(l.claimEvents(a, "INV-1")))
	c2 = l.claim(a, "INV-2")
	assert.Equal(t, "40", c2.Amount.String())
	assert.Equal(t, "30", c2.Paid.String())
	assert.Equal(t, "15", c2.TotalFees.String())

	l.do(a, func(acct *domain.Account) ([]domain.NewEvent, error) {
		return acct.ChargebackPayment("pay_1", "bank", time.Now())
	})
	l.settled(t, 20*time.Second)
	c1 := l.claim(a, "INV-1")
	assert.Equal(t, domain.ClaimOpen, c1.Status, "re-opened by the chargeback")
	assert.Equal(t, 1, c1.Recreations)
	assert.Equal(t, "100", c1.Amount.String())
	c2 = l.claim(a, "INV-2")
	assert.Equal(t, "70", c2.Amount.String())
	assert.Equal(t, "0", c2.Paid.String())
	evs2 := eventTypes(l.claimEvents(a, "INV-2"))
	assert.Equal(t, domain.EventClaimPaymentReversed, evs2[len(evs2)-1])
	assert.Zero(t, w.Skipped())
	assert.NoError(t, w.LastError())

	// The claims projection folds what the sync recorded.
	_, err := projections.NewEngine(l.store).CatchUp(ctx, projections.Claims{}, -1, 1000)
	require.NoError(t, err)
	var amount, paid, entryRef string
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT amount::text, paid::text, entry_reference FROM claims WHERE tenant_id = $1 AND id = $2`,
		csTenant, domain.ManagedClaimID(a, "INV-2")).Scan(&amount, &paid, &entryRef))
	assert.Equal(t, []string{"70", "0", "INV-2"}, []string{amount, paid, entryRef})

	// A re-run from the very beginning records nothing.
	stop()
	before := l.countEvents()
	_, err = l.pool.Exec(ctx, `UPDATE claim_sync_checkpoints SET tx_id = 0, position = 0`)
	require.NoError(t, err)
	w2, _ := l.claimSync(workers.ClaimSyncConfig{BatchSize: 3})
	l.settled(t, 20*time.Second)
	assert.Equal(t, before, l.countEvents(), "a replay from checkpoint 0 records no event")
	assert.Zero(t, w2.Recorded())
}

// TestClaimSyncKeepsUpWithABigBatch: one posting of 10,000 invoices gets
// its 10,000 managed claims.
func TestClaimSyncKeepsUpWithABigBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	const n = 10_000
	l := newLedger(t)
	a := l.open(false)
	ins := make([]domain.EntryInput, n)
	for i := range ins {
		ins[i] = inv(fmt.Sprintf("INV-%05d", i), "12.34", "2026-01-01")
	}
	l.post(a, ins...)
	start := time.Now()
	w, _ := l.claimSync(workers.ClaimSyncConfig{})
	l.settled(t, 3*time.Minute)
	t.Logf("%d invoices synced in %s", n, time.Since(start).Round(time.Millisecond))
	var created int
	require.NoError(t, l.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM events WHERE stream_type = 'claim' AND type = $1`, domain.EventClaimCreated).Scan(&created))
	assert.Equal(t, n, created)
	assert.EqualValues(t, n, w.Recorded())
	assert.Equal(t, "12.34", l.claim(a, "INV-09999").Amount.StringFixed(2))
}

// TestClaimSyncTwoWorkers: two claim syncs — two "processes" with stores
// of their own, without the leadership lock so both really work — follow a
// ledger that keeps changing under them; every claim event is recorded
// exactly once: one claim.created per invoice, and every claim adds up to
// its invoice. With the leadership lock, only one of two leads.
func TestClaimSyncTwoWorkers(t *testing.T) {
	l := newLedger(t)
	const accounts, invoices = 12, 4
	ids := make([]string, accounts)
	for i := range ids {
		ids[i] = l.open(i%3 == 0)
		for j := range invoices {
			l.post(ids[i], inv(fmt.Sprintf("INV-%d", j), "100.00", fmt.Sprintf("2026-01-%02d", j+1)))
		}
	}
	var syncs []*workers.ClaimSync
	for _, x := range []*ledger{l, l.otherProcess()} {
		for range 2 {
			w, _ := x.claimSync(workers.ClaimSyncConfig{NoLeadership: true, BatchSize: 7, MaxCommands: 5})
			syncs = append(syncs, w)
		}
	}

	// A writer keeps paying, amending, charging back.
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for k := range 12 {
				var err error
				switch rng.IntN(4) {
				case 0:
					err = l.account(func(a *domain.Account) ([]domain.NewEvent, error) {
						_, evs, err := a.RecordPayment(fmt.Sprintf("pay_%d", k), domain.PaymentInput{Amount: decimal.NewFromInt(int64(1 + rng.IntN(150)))}, time.Now())
						return evs, err
					})(id)
				case 1:
					err = l.account(func(a *domain.Account) ([]domain.NewEvent, error) {
						return a.Amend(fmt.Sprintf("INV-%d", rng.IntN(invoices)), decimal.NewFromInt(int64(100+rng.IntN(100))), "rate", time.Now())
					})(id)
				case 2:
					err = l.account(func(a *domain.Account) ([]domain.NewEvent, error) {
						for _, p := range a.Payments {
							if p.Status == domain.PaymentCompleted {
								return a.ChargebackPayment(p.ID, "bank", time.Now())
							}
						}
						return nil, nil
					})(id)
				default:
					err = l.account(func(a *domain.Account) ([]domain.NewEvent, error) {
						return a.PostEntries([]domain.EntryInput{{Reference: fmt.Sprintf("FEE-%d", k), Kind: domain.KindFee,
							Amount: decimal.NewFromInt(5), TargetReference: fmt.Sprintf("INV-%d", rng.IntN(invoices))}}, time.Now(), nil)
					})(id)
				}
				if c := domain.ErrorCode(err); c != "" && c != domain.EINVALID && c != domain.ECONFLICT {
					t.Errorf("writer: %v", err)
				}
			}
		})
	}
	wg.Wait()
	l.settled(t, 60*time.Second)

	var dupCreates int
	require.NoError(t, l.pool.QueryRow(context.Background(), `
		SELECT count(*) FROM (SELECT stream_id FROM events WHERE stream_type = 'claim' AND type = $1
		GROUP BY stream_id HAVING count(*) > 1) d`, domain.EventClaimCreated).Scan(&dupCreates))
	assert.Zero(t, dupCreates, "one claim.created per invoice")
	recorded := make([]int64, len(syncs))
	for i, w := range syncs {
		assert.NoError(t, w.LastError(), "sync %d", i)
		assert.Zero(t, w.Skipped(), "sync %d", i)
		recorded[i] = w.Recorded()
	}
	t.Logf("claim events recorded by each sync: %v", recorded)
	for _, id := range ids {
		acct := l.accountState(id)
		for j := range invoices {
			ref := fmt.Sprintf("INV-%d", j)
			e, _ := acct.Entry(ref)
			c := l.claim(id, ref)
			require.True(t, c.Created, "%s %s", id, ref)
			var fees decimal.Decimal
			for _, f := range acct.Entries {
				if f.Kind == domain.KindFee && f.TargetReference == ref {
					fees = fees.Add(f.Amount)
				}
			}
			switch {
			case c.Status == domain.ClaimOpen:
				assert.True(t, c.Amount.Equal(e.Remaining()), "%s %s: claim %s, entry remaining %s", id, ref, c.Amount, e.Remaining())
				assert.True(t, c.Paid.Equal(e.Paid), "%s %s: claim paid %s, entry paid %s", id, ref, c.Paid, e.Paid)
				assert.True(t, c.TotalFees.Equal(fees), "%s %s: fees", id, ref)
			default:
				assert.Equal(t, domain.ClaimResolved, c.Status)
				assert.True(t, e.Remaining().IsZero(), "%s %s: resolved while %s remains", id, ref, e.Remaining())
			}
			assert.True(t, c.Amount.Equal(c.OriginalAmount.Add(c.Debits).Sub(c.Credits).Sub(c.Paid)))
		}
	}

	// With the leadership lock, one of two leads.
	l2 := newLedger(t)
	w1, _ := l2.claimSync(workers.ClaimSyncConfig{})
	w2, _ := l2.claimSync(workers.ClaimSyncConfig{})
	eventually(t, 10*time.Second, "a leader", func() bool { return w1.Leader() != w2.Leader() })
}
