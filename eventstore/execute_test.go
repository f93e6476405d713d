package eventstore_test

import (
	"context"
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

func accountCmd(tenant, id string, decide func(a *domain.Account) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.Command{TenantID: tenant, StreamType: domain.StreamTypeAccount, StreamID: id,
		New:    func() domain.Aggregate { return domain.NewAccount(tenant, id) },
		Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(*domain.Account)) }}
}

func openWithInvoice(t *testing.T, s *eventstore.Store, tenant, id, amount string) {
	t.Helper()
	_, err := s.Execute(context.Background(), domain.Metadata{}, []eventstore.Command{accountCmd(tenant, id, func(a *domain.Account) ([]domain.NewEvent, error) {
		evs, err := a.Open(domain.OpenAccount{Currency: "EUR"}, time.Now())
		if err != nil {
			return nil, err
		}
		more, err := a.PostEntries([]domain.EntryInput{{Reference: "inv", Kind: domain.KindInvoice, Amount: decimal.RequireFromString(amount), DueDate: "2026-01-01"}}, time.Now(), nil)
		return append(evs, more...), err
	})}, nil)
	require.NoError(t, err)
}

// TestHotAccount: 50 writers × 40 payments of 1.00 on one account that owes
// 1,600.00 — through two Store instances (two "processes" sharing the
// database, so optimistic concurrency and not only the in-process lock is
// exercised): exactly 8,000 succeed, every other is refused as an
// overpayment, nothing is lost, the account ends at exactly zero.
func TestHotAccount(t *testing.T) {
	writers, each := 50, 40
	owed := 1600
	if testing.Short() {
		writers, each, owed = 10, 50, 400
	}
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 40)
	a, b := eventstore.New(pool), eventstore.New(pool)
	id := newStream("acct")
	openWithInvoice(t, a, "ten_hot", id, fmt.Sprintf("%d.00", owed))

	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := range each {
				pid := fmt.Sprintf("pay_%d_%d", w, i)
				_, err := s.Execute(ctx, domain.Metadata{}, []eventstore.Command{accountCmd("ten_hot", id, func(acc *domain.Account) ([]domain.NewEvent, error) {
					_, evs, err := acc.RecordPayment(pid, domain.PaymentInput{Amount: decimal.NewFromInt(1)}, time.Now())
					return evs, err
				})}, nil)
				switch domain.ErrorCode(err) {
				case "":
					ok.Add(1)
				case domain.EINVALID:
					refused.Add(1)
				default:
					t.Errorf("payment %s: %v", pid, err)
					return
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(owed), ok.Load(), "successful payments")
	assert.Equal(t, int64(writers*each-owed), refused.Load(), "refused overpayments")

	acc := domain.NewAccount("ten_hot", id)
	_, err := a.Load(ctx, "ten_hot", id, acc)
	require.NoError(t, err)
	assert.True(t, acc.Outstanding().IsZero(), "outstanding %s", acc.Outstanding())
	assert.Equal(t, owed, len(acc.Payments))
	var completed int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'payment.completed'`, id).Scan(&completed))
	assert.Equal(t, owed, completed)
}

// TestBatchOfTenThousandIsAtomic: 10,000 entries over 100 accounts in one
// command; one bad entry refuses all of them, names it by its index in the
// batch, and changes nothing; fixed, the batch commits in one transaction.
func TestBatchOfTenThousandIsAtomic(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 8)
	s := eventstore.New(pool)
	tenant := "ten_batch"
	accounts := make([]string, 100)
	for i := range accounts {
		accounts[i] = newStream("acct")
		openWithInvoice(t, s, tenant, accounts[i], "1.00")
	}
	count := func() (n int) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
		return n
	}
	before := count()

	type item struct {
		index int
		entry domain.EntryInput
	}
	batch := func(bad int) []eventstore.Command {
		per := map[string][]item{}
		for i := range 10_000 {
			e := domain.EntryInput{Reference: fmt.Sprintf("e-%05d", i), Kind: domain.KindInvoice, Amount: decimal.RequireFromString("12.34"), DueDate: "2026-02-01"}
			if i == bad {
				e.Amount = decimal.RequireFromString("12.345")
			}
			acct := accounts[i%len(accounts)]
			per[acct] = append(per[acct], item{i, e})
		}
		var cmds []eventstore.Command
		for _, acct := range accounts {
			items := per[acct]
			cmds = append(cmds, accountCmd(tenant, acct, func(a *domain.Account) ([]domain.NewEvent, error) {
				ins := make([]domain.EntryInput, len(items))
				for i, it := range items {
					ins[i] = it.entry
				}
				return a.PostEntries(ins, time.Now(), func(i int) string { return fmt.Sprintf("entries[%d]", items[i].index) })
			}))
		}
		return cmds
	}

	_, err := s.Execute(ctx, domain.Metadata{}, batch(7345), nil)
	var de *domain.Error
	require.ErrorAs(t, err, &de)
	assert.Equal(t, domain.EINVALID, de.Code)
	require.Len(t, de.Fields, 1)
	assert.Equal(t, "entries[7345].amount", de.Fields[0].Field)
	assert.Equal(t, before, count(), "a refused batch appends nothing")

	evs, err := s.Execute(ctx, domain.Metadata{}, batch(-1), nil)
	require.NoError(t, err)
	assert.Len(t, evs, 10_000)
	assert.Equal(t, before+10_000, count())
	tx := map[int64]bool{}
	for _, e := range evs {
		tx[e.TxID] = true
	}
	assert.Len(t, tx, 1, "one transaction")
}

// TestReferencesAreUnique: a creditor reference names one stream per tenant
// and mode, even when two creates race.
func TestReferencesAreUnique(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 8)
	s := eventstore.New(pool)
	create := func(id string, sandbox bool) error {
		c := accountCmd("ten_ref", id, func(a *domain.Account) ([]domain.NewEvent, error) {
			return a.Open(domain.OpenAccount{Reference: "ACC-1", Currency: "EUR", Sandbox: sandbox}, time.Now())
		})
		c.Reference, c.Sandbox = "ACC-1", sandbox
		_, err := s.Execute(ctx, domain.Metadata{}, []eventstore.Command{c}, nil)
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	ids := make([]string, 8)
	for i := range errs {
		ids[i] = newStream("acct")
		wg.Go(func() { errs[i] = create(ids[i], false) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			assert.Equal(t, domain.ECONFLICT, domain.ErrorCode(err))
		}
	}
	assert.Equal(t, 1, won)
	var accounts int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'account.opened'`).Scan(&accounts))
	assert.Equal(t, 1, accounts, "the losers appended nothing")
	require.NoError(t, create(newStream("acct"), true), "the sandbox has its own references")
	owner, err := s.StreamByReference(ctx, "ten_ref", false, domain.StreamTypeAccount, "ACC-1")
	require.NoError(t, err)
	assert.Contains(t, ids, owner)
}
