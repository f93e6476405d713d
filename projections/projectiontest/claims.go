package projectiontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// ClaimsWorkload drives random claim command sequences — create (direct,
// some on an implicit account opened in the same Execute), update, credit
// (to zero too: resolved as paid), debit, payment allocations, pause,
// resume, resolve, stop, recreate and overdue marking, refused commands
// and duplicate references included — through eventstore.Store.Execute,
// over a few tenants, live and sandbox.
func ClaimsWorkload(t *testing.T, rng *rand.Rand, store *eventstore.Store) {
	ClaimsHistory(t, rng, store, 200+rng.IntN(200))
}

// ClaimsHistory is ClaimsWorkload with a given number of steps.
func ClaimsHistory(t testing.TB, rng *rand.Rand, store *eventstore.Store, steps int) {
	w := &claimsWorld{t: t, rng: rng, store: store, now: time.Date(2025, 10, 1, 9, 0, 0, 0, time.UTC)}
	w.ids = domain.NewIDGenerator(rngReader{rng})
	for i := range 2 + rng.IntN(2) {
		w.tenants = append(w.tenants, fmt.Sprintf("ten_claims%d", i))
	}
	for range steps {
		w.now = w.now.Add(time.Duration(1+rng.IntN(48*60)) * time.Minute)
		w.step()
	}
}

type claimsWorld struct {
	t     testing.TB
	rng   *rand.Rand
	store *eventstore.Store
	ids   *domain.IDGenerator
	now   time.Time

	tenants []string
	claims  []claimRef
	n       int
}

type claimRef struct {
	tenant, id, reference, account, currency string
	sandbox                                  bool
}

func (w *claimsWorld) command(tenant, id string, decide func(*domain.Claim) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.Command{TenantID: tenant, StreamType: domain.StreamTypeClaim, StreamID: id,
		New:    func() domain.Aggregate { return domain.NewClaim(tenant, id) },
		Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(*domain.Claim)) }}
}

// run executes cmds; a refusal of the domain is part of the mix.
func (w *claimsWorld) run(sandbox bool, cmds ...eventstore.Command) bool {
	_, err := w.store.Execute(context.Background(), domain.Metadata{Sandbox: sandbox, Actor: "system:claims-workload"}, cmds, nil)
	var de *domain.Error
	if err != nil && !errors.As(err, &de) {
		require.NoError(w.t, err)
	}
	return err == nil
}

var claimCurrencies = []string{"EUR", "EUR", "USD", "JPY", "KWD"}

func (w *claimsWorld) amount(currency string, maxMajor int64) decimal.Decimal {
	units, _ := domain.MinorUnits(currency)
	scale := decimal.New(1, units).IntPart()
	return decimal.New(1+w.rng.Int64N(maxMajor*scale), -units)
}

func (w *claimsWorld) input(ref claimRef) domain.ClaimInput {
	rng := w.rng
	in := domain.ClaimInput{Reference: ref.reference, AccountID: ref.account, Amount: w.amount(ref.currency, 500), Currency: ref.currency,
		OriginalDueDate: domain.DateOf(w.now.AddDate(0, 0, rng.IntN(90)-60))}
	if rng.IntN(2) == 0 {
		in.TotalFees = w.amount(ref.currency, 20)
	}
	if rng.IntN(3) == 0 {
		in.CurrentDueDate = domain.DateOf(w.now.AddDate(0, 0, rng.IntN(30)))
	}
	if rng.IntN(2) == 0 {
		in.ProductReference, in.PortfolioReference = "P1", pick(rng, []string{"PF-A", "PF-B"})
	}
	if rng.IntN(3) == 0 {
		in.CreditorReference = "CR-" + ref.reference
	}
	if rng.IntN(3) == 0 {
		in.PrimaryDebtorID = "dbt_claims" + pick(rng, []string{"1", "2", "3"})
	}
	if rng.IntN(3) == 0 {
		in.Scores = []domain.Score{{Type: "risk", Value: decimal.RequireFromString("0.42"), Provider: "p"}}
	}
	if rng.IntN(3) == 0 {
		in.Meta = json.RawMessage(`{"origin": "import", "n": 1}`)
	}
	if rng.IntN(20) == 0 {
		in.OriginalDueDate = "" // refused
	}
	return in
}

func (w *claimsWorld) step() {
	rng := w.rng
	if len(w.claims) == 0 || (rng.IntN(100) < 15 && len(w.claims) < 40) {
		w.create()
		return
	}
	c := pick(rng, w.claims)
	at := w.now
	var decide func(*domain.Claim) ([]domain.NewEvent, error)
	switch r := rng.IntN(100); {
	case r < 12:
		f := domain.ClaimFields{}
		switch rng.IntN(5) {
		case 0:
			d := domain.DateOf(w.now.AddDate(0, 0, rng.IntN(40)))
			f.CurrentDueDate = &d
		case 1:
			fees := w.amount(c.currency, 30).String()
			f.TotalFees, f.PortfolioReference = &fees, ptr("PF-C")
		case 2:
			f.Scores = &[]domain.Score{{Type: "collect", Value: decimal.RequireFromString("12.5")}}
			f.Meta = json.RawMessage(`{"origin":"api","v":2}`)
		case 3:
			f.Scores = &[]domain.Score{{Type: "x"}, {Type: "x"}} // refused
		default:
			f.ProductReference, f.CreditorReference = ptr("P2"), ptr("")
		}
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Update(f, at) }
	case r < 32:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) {
			amount := w.amount(c.currency, 200)
			if rng.IntN(4) == 0 && cl.Amount.IsPositive() {
				amount = cl.Amount // to zero: resolved as paid
			}
			if rng.IntN(2) == 0 {
				return cl.Credit(amount, "goodwill", at)
			}
			return cl.AllocatePayment(w.ids.New(domain.PrefixPayment, at), amount, at)
		}
	case r < 42:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) {
			return cl.Debit(w.amount(c.currency, 50), "interest", at)
		}
	case r < 54:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Pause("dispute", at) }
	case r < 64:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Resume(at) }
	case r < 72:
		res := pick(rng, append([]domain.ClaimResolution{"bogus"}, domain.ClaimResolutions...))
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Resolve(res, "by workload", at) }
	case r < 78:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Stop("stopped", at) }
	case r < 88:
		in := w.input(c)
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Recreate(in, at) }
	default:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.MarkOverdue(domain.DateOf(at), at) }
	}
	w.run(c.sandbox, w.command(c.tenant, c.id, decide))
}

// create creates a claim: on an account of its own opened in the same
// Execute (an implicit account) or on a made-up account id; now and then
// with a reference already taken (refused: nothing is written).
func (w *claimsWorld) create() {
	rng := w.rng
	w.n++
	ref := claimRef{tenant: pick(rng, w.tenants), id: w.ids.New(domain.PrefixClaim, w.now), reference: fmt.Sprintf("CLM-%d", w.n),
		currency: pick(rng, claimCurrencies), sandbox: rng.IntN(4) == 0}
	if len(w.claims) > 0 && rng.IntN(10) == 0 {
		old := pick(rng, w.claims)
		ref.tenant, ref.reference, ref.sandbox = old.tenant, old.reference, old.sandbox // duplicate reference
	}
	in := w.input(ref)
	at := w.now
	var cmds []eventstore.Command
	if rng.IntN(2) == 0 {
		ref.account = w.ids.New(domain.PrefixAccount, at)
		id, tenant := ref.account, ref.tenant
		var debtors []string
		if in.PrimaryDebtorID != "" {
			debtors = []string{in.PrimaryDebtorID}
		}
		cmds = append(cmds, eventstore.Command{TenantID: tenant, StreamType: domain.StreamTypeAccount, StreamID: id,
			New: func() domain.Aggregate { return domain.NewAccount(tenant, id) },
			Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) {
				return agg.(*domain.Account).Open(domain.OpenAccount{Currency: ref.currency, DebtorIDs: debtors, Sandbox: ref.sandbox}, at)
			}})
	} else {
		ref.account = "acct_claims" + pick(rng, []string{"1", "2"})
	}
	in.AccountID = ref.account
	cmd := w.command(ref.tenant, ref.id, func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Create(in, ref.sandbox, at) })
	cmd.Reference, cmd.Sandbox = ref.reference, ref.sandbox
	cmds = append(cmds, cmd)
	if w.run(ref.sandbox, cmds...) {
		w.claims = append(w.claims, ref)
	}
}
