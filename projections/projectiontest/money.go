package projectiontest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// MoneyWorkload drives the real domain commands — debtors created and
// updated, accounts opened and updated, ledger entries of all seven kinds
// (with targets, re-posts and conflicts), amendments, payments recorded in
// every initial status and match strategy and then processed, completed,
// failed, refunded and charged back — over a few tenants, accounts and
// debtors, with unallocated credit made and spent, and appends what they
// produce at the right expected versions, several streams per append now
// and then. Commands the domain refuses are part of the mix: their
// aggregate is then reloaded from the store.
func MoneyWorkload(t *testing.T, rng *rand.Rand, store *eventstore.Store) {
	MoneyHistory(t, rng, store, 300+rng.IntN(200))
}

// MoneyHistory is MoneyWorkload with a given number of steps (one command
// each, a few refused) — for benchmarks that want a longer history.
func MoneyHistory(t testing.TB, rng *rand.Rand, store *eventstore.Store, steps int) {
	w := &moneyWorld{t: t, rng: rng, store: store, now: time.Date(2025, 11, 3, 8, 0, 0, 0, time.UTC)}
	w.ids = domain.NewIDGenerator(rngReader{rng})
	for i := range 2 + rng.IntN(2) {
		w.tenants = append(w.tenants, fmt.Sprintf("ten_money%d", i))
	}
	for _, ten := range w.tenants {
		w.createDebtor(ten)
		w.openAccount(ten)
	}
	for range steps {
		w.now = w.now.Add(time.Duration(1+rng.IntN(36*60)) * time.Minute)
		w.step()
	}
	w.flush()
}

// rngReader is ULID entropy from the workload's rng, so a seed reproduces
// the same ids.
type rngReader struct{ r *rand.Rand }

func (x rngReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(x.r.Uint32())
	}
	return len(p), nil
}

type moneyWorld struct {
	t     testing.TB
	rng   *rand.Rand
	store *eventstore.Store
	ids   *domain.IDGenerator
	now   time.Time

	tenants  []string
	accounts []*moneyAccount
	debtors  []*moneyDebtor
	n        int // reference counter

	pending        []eventstore.StreamAppend
	pendingSandbox bool
}

type moneyAccount struct {
	tenant, id string
	agg        *domain.Account
	version    int64
}

type moneyDebtor struct {
	tenant, id string
	agg        *domain.Debtor
	version    int64
}

// ref returns a fresh reference with prefix.
func (w *moneyWorld) ref(prefix string) string {
	w.n++
	return fmt.Sprintf("%s-%d", prefix, w.n)
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// keep queues a command's events for the stream, appended with the next
// flush (now, or together with other streams' events).
func (w *moneyWorld) keep(tenant, streamType, id string, version *int64, sandbox bool, evs []domain.NewEvent) {
	if len(evs) == 0 {
		return
	}
	if len(w.pending) > 0 && w.pendingSandbox != sandbox {
		w.flush()
	}
	w.pending = append(w.pending, eventstore.StreamAppend{TenantID: tenant, StreamType: streamType, StreamID: id, ExpectedVersion: *version, Events: evs})
	w.pendingSandbox = sandbox
	*version += int64(len(evs))
	if w.rng.IntN(3) > 0 {
		w.flush()
	}
}

func (w *moneyWorld) flush() {
	if len(w.pending) == 0 {
		return
	}
	_, err := w.store.Append(context.Background(), domain.Metadata{Sandbox: w.pendingSandbox, Actor: "system:money-workload"}, w.pending...)
	require.NoError(w.t, err)
	w.pending = nil
}

// touch flushes first if id's events are still pending: one append holds a
// stream once, and a refused command reloads the stream from the store.
func (w *moneyWorld) touch(id string) {
	for _, a := range w.pending {
		if a.StreamID == id {
			w.flush()
			return
		}
	}
}

func (w *moneyWorld) reloadAccount(a *moneyAccount) {
	agg := domain.NewAccount(a.tenant, a.id)
	v, err := w.store.Load(context.Background(), a.tenant, a.id, agg)
	require.NoError(w.t, err)
	a.agg, a.version = agg, v
}

func (w *moneyWorld) reloadDebtor(d *moneyDebtor) {
	agg := domain.NewDebtor(d.tenant, d.id)
	v, err := w.store.Load(context.Background(), d.tenant, d.id, agg)
	require.NoError(w.t, err)
	d.agg, d.version = agg, v
}

// account runs cmd on a and keeps its events, or reloads a if it failed.
func (w *moneyWorld) account(a *moneyAccount, cmd func(*domain.Account) ([]domain.NewEvent, error)) {
	w.touch(a.id)
	evs, err := cmd(a.agg)
	if err != nil {
		w.reloadAccount(a)
		return
	}
	w.keep(a.tenant, domain.StreamTypeAccount, a.id, &a.version, a.agg.Sandbox, evs)
}

func (w *moneyWorld) debtor(d *moneyDebtor, cmd func(*domain.Debtor) ([]domain.NewEvent, error)) {
	w.touch(d.id)
	evs, err := cmd(d.agg)
	if err != nil {
		w.reloadDebtor(d)
		return
	}
	w.keep(d.tenant, domain.StreamTypeDebtor, d.id, &d.version, d.agg.Sandbox, evs)
}

func (w *moneyWorld) step() {
	rng := w.rng
	switch r := rng.IntN(100); {
	case r < 4 && len(w.debtors) < 12:
		w.createDebtor(pick(rng, w.tenants))
	case r < 9:
		w.updateDebtor(pick(rng, w.debtors))
	case r < 13 && len(w.accounts) < 10:
		w.openAccount(pick(rng, w.tenants))
	case r < 16:
		w.updateAccount(pick(rng, w.accounts))
	case r < 52:
		w.postEntries(pick(rng, w.accounts))
	case r < 58:
		w.amend(pick(rng, w.accounts))
	case r < 72:
		w.recordPayment(pick(rng, w.accounts))
	case r < 76:
		w.credit(pick(rng, w.accounts))
	default:
		w.movePayment(pick(rng, w.accounts))
	}
}

func (w *moneyWorld) createDebtor(tenant string) {
	rng := w.rng
	d := &moneyDebtor{tenant: tenant, id: w.ids.New(domain.PrefixDebtor, w.now)}
	d.agg = domain.NewDebtor(tenant, d.id)
	w.debtors = append(w.debtors, d)
	f := domain.DebtorFields{Reference: ptr(w.ref("D")), Email: ptr(fmt.Sprintf("d%d@example.com", w.n))}
	if rng.IntN(3) == 0 {
		f.Type, f.CompanyName = ptr(domain.DebtorLegal), ptr(pick(rng, []string{"Acme GmbH", " Müller & Söhne KG ", "Initech Ltd"}))
	} else {
		if rng.IntN(2) == 0 {
			f.Type = ptr(domain.DebtorNatural) // else the default
		}
		f.FirstName, f.LastName = ptr(pick(rng, []string{"Ana", " Jörg", "Li"})), ptr(pick(rng, []string{"Silva", "Weiß ", "Wei"}))
		if rng.IntN(2) == 0 {
			f.BirthDate = ptr(domain.Date(fmt.Sprintf("19%02d-0%d-1%d", 40+rng.IntN(60), 1+rng.IntN(9), rng.IntN(10))))
		}
	}
	if rng.IntN(2) == 0 {
		f.Phone = ptr("+49 30 1234567")
	}
	if rng.IntN(2) == 0 {
		f.Address = &domain.Address{Line1: "Hauptstraße 1", City: "Berlin", PostalCode: "10115", Country: "DE"}
	}
	if rng.IntN(2) == 0 {
		f.Locale = ptr(pick(rng, []string{"de-DE", "en-GB"}))
	}
	if rng.IntN(3) == 0 {
		f.Meta = json.RawMessage(`{"segment": "retail", "n": 1}`)
	}
	sandbox := rng.IntN(4) == 0
	w.debtor(d, func(agg *domain.Debtor) ([]domain.NewEvent, error) { return agg.Create(f, sandbox, w.now) })
}

func (w *moneyWorld) updateDebtor(d *moneyDebtor) {
	rng := w.rng
	var f domain.DebtorFields
	switch rng.IntN(8) {
	case 0:
		f.Email = ptr("not an email") // refused
	case 1:
		f.Type = ptr(domain.DebtorLegal) // refused unless it has a company name
	case 2:
		f.BirthDate = ptr(domain.Date("")) // cleared
	case 3:
		f.Address = &domain.Address{Line1: "Rue de Rivoli 2", City: "Paris", Country: "FR"}
		f.Locale = ptr("fr-FR")
	case 4:
		f.Meta = json.RawMessage(`{"segment":"vip"}`)
		f.Reference = ptr(" " + w.ref("D") + " ")
	case 5:
		f.Email = ptr(d.agg.Email) // no change: a no-op
	default:
		f.Phone, f.LastName = ptr(fmt.Sprintf("+1 555 %07d", rng.IntN(10_000_000))), ptr(pick(rng, []string{"Okafor", "Nakamura"}))
		if d.agg.Type == domain.DebtorLegal {
			f.CompanyName = ptr("Renamed AG")
		}
	}
	w.debtor(d, func(agg *domain.Debtor) ([]domain.NewEvent, error) { return agg.Update(f, w.now) })
}

func (w *moneyWorld) debtorIDs(tenant string) []string {
	ids := []string{}
	for _, d := range w.debtors {
		if d.tenant == tenant && w.rng.IntN(2) == 0 {
			ids = append(ids, d.id)
		}
	}
	return ids
}

func (w *moneyWorld) openAccount(tenant string) {
	rng := w.rng
	a := &moneyAccount{tenant: tenant, id: w.ids.New(domain.PrefixAccount, w.now)}
	a.agg = domain.NewAccount(tenant, a.id)
	w.accounts = append(w.accounts, a)
	in := domain.OpenAccount{Reference: w.ref("A"), Currency: pick(rng, []string{"EUR", "EUR", "USD", "JPY", "KWD"}), DebtorIDs: w.debtorIDs(tenant), Sandbox: rng.IntN(4) == 0}
	if rng.IntN(2) == 0 {
		in.Products = []domain.Product{{Reference: "P1", Type: "loan", Name: "Loan"}, {Reference: "P2", Code: "X", Meta: json.RawMessage(`{"a":1}`)}}
	}
	if rng.IntN(2) == 0 {
		in.Scores = []domain.Score{{Type: "risk", Value: decimal.RequireFromString("0.73"), Provider: "schufa"}}
	}
	if rng.IntN(3) == 0 {
		in.Mandates = []domain.Mandate{{ID: "m1", Type: "sepa", Reference: "MREF-1"}}
	}
	if rng.IntN(3) == 0 {
		in.Meta = json.RawMessage(`{"origin":"import"}`)
	}
	if rng.IntN(15) == 0 {
		in.Currency = "XXX" // refused
	}
	w.account(a, func(agg *domain.Account) ([]domain.NewEvent, error) { return agg.Open(in, w.now) })
}

func (w *moneyWorld) updateAccount(a *moneyAccount) {
	rng := w.rng
	var u domain.AccountUpdated
	switch rng.IntN(5) {
	case 0:
		u.DebtorIDs = ptr(w.debtorIDs(a.tenant))
	case 1:
		u.Products = &[]domain.Product{{Reference: "P3", Name: "Card"}}
		u.Meta = json.RawMessage(`{"origin":"api","v":2}`)
	case 2:
		u.Scores = &[]domain.Score{{Type: "collect", Value: decimal.RequireFromString("12.5")}}
		u.Mandates = &[]domain.Mandate{}
	case 3:
		u.Products = &[]domain.Product{{Reference: "dup"}, {Reference: "dup"}} // refused
	default:
		u.Mandates = &[]domain.Mandate{{ID: "m2", Meta: json.RawMessage(`{"iban":"DE00"}`)}}
	}
	w.account(a, func(agg *domain.Account) ([]domain.NewEvent, error) { return agg.Update(u, w.now) })
}

// amount returns a random amount of at most maxMajor major units in the
// account's currency (at least one minor unit).
func (w *moneyWorld) amount(a *domain.Account, maxMajor int64) decimal.Decimal {
	units, _ := domain.MinorUnits(a.Currency)
	scale := decimal.New(1, units).IntPart()
	return decimal.New(1+w.rng.Int64N(maxMajor*scale), -units)
}

// upTo returns a random amount in (0, limit] (limit > 0), in minor units.
func (w *moneyWorld) upTo(a *domain.Account, limit decimal.Decimal) decimal.Decimal {
	units, _ := domain.MinorUnits(a.Currency)
	minor := limit.Shift(units).IntPart()
	if minor <= 0 {
		return decimal.New(1, -units)
	}
	if w.rng.IntN(4) == 0 {
		return limit // exactly: settles
	}
	return decimal.New(1+w.rng.Int64N(minor), -units)
}

func (w *moneyWorld) date(days int) domain.Date {
	return domain.DateOf(w.now.AddDate(0, 0, days))
}

// entries returns a's entries matching ok.
func entries(a *domain.Account, ok func(*domain.Entry) bool) []*domain.Entry {
	var out []*domain.Entry
	for _, e := range a.Entries {
		if ok(e) {
			out = append(out, e)
		}
	}
	return out
}

func (w *moneyWorld) postEntries(a *moneyAccount) {
	rng := w.rng
	agg := a.agg
	if !agg.Opened {
		return
	}
	var ins []domain.EntryInput
	for range 1 + rng.IntN(3) {
		if in, ok := w.entry(agg, ins); ok {
			ins = append(ins, in)
		}
	}
	if len(ins) == 0 {
		return
	}
	w.account(a, func(agg *domain.Account) ([]domain.NewEvent, error) { return agg.PostEntries(ins, w.now, nil) })
}

// entry makes an entry to post to a after the ones in batch.
func (w *moneyWorld) entry(a *domain.Account, batch []domain.EntryInput) (domain.EntryInput, bool) {
	rng := w.rng
	debits := entries(a, func(e *domain.Entry) bool { return e.IsDebit() })
	open := entries(a, func(e *domain.Entry) bool { return e.Remaining().IsPositive() })
	product := func() string {
		if rng.IntN(3) == 0 {
			return pick(rng, []string{"P1", "P2"})
		}
		return ""
	}
	switch r := rng.IntN(100); {
	case r < 28:
		in := domain.EntryInput{Reference: w.ref("inv"), Kind: domain.KindInvoice, Amount: w.amount(a, 400), DueDate: w.date(rng.IntN(120) - 90), ProductReference: product()}
		if rng.IntN(3) == 0 {
			in.OriginalDueDate = w.date(-100 - rng.IntN(30))
		}
		if rng.IntN(4) == 0 {
			in.Meta = json.RawMessage(`{"invoice_no":"2025-001"}`)
		}
		return in, true
	case r < 42:
		in := domain.EntryInput{Reference: w.ref("fee"), Kind: domain.KindFee, Amount: w.amount(a, 40), FeeType: pick(rng, []string{"late", "collection", "admin"}), ProductReference: product()}
		var invoices []string
		for _, e := range a.Entries {
			if e.Kind == domain.KindInvoice {
				invoices = append(invoices, e.Reference)
			}
		}
		for _, b := range batch {
			if b.Kind == domain.KindInvoice {
				invoices = append(invoices, b.Reference)
			}
		}
		if len(invoices) > 0 && rng.IntN(4) > 0 {
			in.TargetReference = pick(rng, invoices)
		}
		if rng.IntN(3) == 0 {
			in.DueDate = w.date(rng.IntN(30))
		}
		return in, true
	case r < 56:
		avail := a.Available()
		in := domain.EntryInput{Reference: w.ref("payent"), Kind: domain.KindPayment, PaymentReference: w.ref("bank"), Provider: "bank", ProductReference: product()}
		switch {
		case rng.IntN(12) == 0:
			in.Amount = avail.Add(decimal.NewFromInt(1)) // refused
		case !avail.IsPositive():
			return in, false
		default:
			in.Amount = w.upTo(a, avail)
		}
		if len(open) > 0 && rng.IntN(3) == 0 {
			in.TargetReference = pick(rng, open).Reference
		}
		return in, true
	case r < 68:
		in := domain.EntryInput{Reference: w.ref("adj"), Kind: domain.KindAdjustment, Reason: "correction"}
		if rng.IntN(2) == 0 {
			in.Amount = w.amount(a, 60)
			if rng.IntN(2) == 0 {
				in.DueDate = w.date(10)
			}
		} else {
			// Negative: sometimes more than is owed, leaving credit.
			in.Amount = w.amount(a, 150).Neg()
			if len(debits) > 0 && rng.IntN(3) == 0 {
				in.TargetReference = pick(rng, debits).Reference
			}
		}
		return in, true
	case r < 78:
		if len(open) == 0 {
			return domain.EntryInput{}, false
		}
		t := pick(rng, open)
		in := domain.EntryInput{Reference: w.ref("disc"), Kind: domain.KindDiscount, Amount: w.upTo(a, t.Remaining()), TargetReference: t.Reference, Reason: "goodwill"}
		if rng.IntN(12) == 0 {
			in.Amount = t.Remaining().Add(decimal.NewFromInt(5)) // refused
		}
		return in, true
	case r < 88:
		pays := entries(a, func(e *domain.Entry) bool { return e.Kind == domain.KindPayment && e.Amount.GreaterThan(e.ChargedBack) })
		if len(pays) == 0 {
			return domain.EntryInput{}, false
		}
		t := pick(rng, pays)
		return domain.EntryInput{Reference: w.ref("cb"), Kind: domain.KindChargeback, Amount: w.upTo(a, t.Amount.Sub(t.ChargedBack)), TargetReference: t.Reference, Reason: "disputed"}, true
	case r < 93:
		return domain.EntryInput{Reference: w.ref("rep"), Kind: domain.KindReporting, Amount: w.upTo(a, decimal.NewFromInt(int64(rng.IntN(100)))), Reason: "interest accrued"}, true
	default:
		if len(a.Entries) == 0 {
			return domain.EntryInput{}, false
		}
		in := pick(rng, a.Entries).Original // the same again: a no-op
		if rng.IntN(3) == 0 {
			in.Reason = "changed" // a conflict: refused
		}
		return in, true
	}
}

func (w *moneyWorld) amend(a *moneyAccount) {
	rng := w.rng
	debts := entries(a.agg, func(e *domain.Entry) bool {
		return e.Kind == domain.KindInvoice || e.Kind == domain.KindFee || rng.IntN(20) == 0 // sometimes a refused kind
	})
	if len(debts) == 0 {
		return
	}
	e := pick(rng, debts)
	var amount decimal.Decimal
	switch rng.IntN(6) {
	case 0:
		amount = e.Amount // no-op
	case 1:
		amount = e.Paid.Sub(decimal.NewFromInt(1)) // below what is paid: refused
	case 2:
		amount = decimal.Max(e.Paid, decimal.New(1, 0)) // down to what is paid: settles
	default:
		amount = e.Paid.Add(w.amount(a.agg, 300))
	}
	w.account(a, func(agg *domain.Account) ([]domain.NewEvent, error) {
		return agg.Amend(e.Reference, amount, "corrected invoice", w.now)
	})
}

func (w *moneyWorld) recordPayment(a *moneyAccount) {
	rng := w.rng
	agg := a.agg
	if !agg.Opened {
		return
	}
	avail := agg.Available()
	in := domain.PaymentInput{
		Reference:     w.ref("PAY"),
		Method:        pick(rng, []string{"card", "bank_transfer", "direct_debit"}),
		Provider:      pick(rng, []string{"", "stripe", "adyen"}),
		TrackingID:    w.ref("trk"),
		MatchStrategy: pick(rng, append([]domain.MatchStrategy{""}, domain.MatchStrategies...)),
		Status:        pick(rng, []domain.PaymentStatus{"", domain.PaymentPending, domain.PaymentPending, domain.PaymentProcessing, domain.PaymentCompleted}),
	}
	if in.MatchStrategy == domain.MatchCustomOrderedFees {
		in.FeeOrder = pick(rng, [][]string{{"admin", "late"}, {"collection"}, nil})
	}
	if rng.IntN(4) == 0 {
		in.ProductReference = pick(rng, []string{"P1", "P2"})
	}
	if rng.IntN(3) == 0 {
		in.Meta = json.RawMessage(`{"channel":"portal"}`)
	}
	switch {
	case rng.IntN(10) == 0:
		in.Amount = avail.Add(decimal.NewFromInt(1)) // refused
	case rng.IntN(15) == 0 && len(agg.Payments) > 0:
		in = pick(rng, agg.Payments).PaymentInput // recorded again: a no-op (or a conflict without reference)
	case !avail.IsPositive():
		return
	default:
		in.Amount = w.upTo(agg, avail)
	}
	id := w.ids.New(domain.PrefixPayment, w.now)
	w.account(a, func(agg *domain.Account) ([]domain.NewEvent, error) {
		_, evs, err := agg.RecordPayment(id, in, w.now)
		return evs, err
	})
}

// credit gives an account unallocated credit — a negative adjustment larger
// than what is owed — and then spends it: on an invoice amended up, or on
// the debits a refund, a payment chargeback or a chargeback entry re-opens.
func (w *moneyWorld) credit(a *moneyAccount) {
	rng := w.rng
	if !a.agg.Opened {
		return
	}
	in := domain.EntryInput{Reference: w.ref("adj"), Kind: domain.KindAdjustment, Amount: a.agg.Outstanding().Add(w.amount(a.agg, 80)).Neg(), Reason: "settlement"}
	w.account(a, func(agg *domain.Account) ([]domain.NewEvent, error) {
		return agg.PostEntries([]domain.EntryInput{in}, w.now, nil)
	})
	switch rng.IntN(3) {
	case 0:
		w.amend(a)
	case 1:
		var completed []string
		for _, p := range a.agg.Payments {
			if p.Status == domain.PaymentCompleted {
				completed = append(completed, p.ID)
			}
		}
		if len(completed) == 0 {
			return
		}
		id := pick(rng, completed)
		w.account(a, func(agg *domain.Account) ([]domain.NewEvent, error) {
			if rng.IntN(2) == 0 {
				return agg.RefundPayment(id, "returned", w.now)
			}
			return agg.ChargebackPayment(id, "disputed", w.now)
		})
	default:
		pays := entries(a.agg, func(e *domain.Entry) bool { return e.Kind == domain.KindPayment && e.Amount.GreaterThan(e.ChargedBack) })
		if len(pays) == 0 {
			return
		}
		t := pick(rng, pays)
		cb := domain.EntryInput{Reference: w.ref("cb"), Kind: domain.KindChargeback, Amount: w.upTo(a.agg, t.Amount.Sub(t.ChargedBack)), TargetReference: t.Reference}
		w.account(a, func(agg *domain.Account) ([]domain.NewEvent, error) {
			return agg.PostEntries([]domain.EntryInput{cb}, w.now, nil)
		})
	}
}

func (w *moneyWorld) movePayment(a *moneyAccount) {
	rng := w.rng
	if len(a.agg.Payments) == 0 {
		return
	}
	// Prefer payments that can move; sometimes try any (refused).
	var movable []*domain.Payment
	for _, p := range a.agg.Payments {
		if slices.Contains([]domain.PaymentStatus{domain.PaymentPending, domain.PaymentProcessing, domain.PaymentCompleted}, p.Status) {
			movable = append(movable, p)
		}
	}
	if len(movable) == 0 || rng.IntN(10) == 0 {
		movable = a.agg.Payments
	}
	p := pick(rng, movable)
	id := p.ID
	var cmd func(*domain.Account) ([]domain.NewEvent, error)
	switch p.Status {
	case domain.PaymentPending, domain.PaymentProcessing:
		switch r := rng.IntN(10); {
		case r < 4 && p.Status == domain.PaymentPending:
			cmd = func(agg *domain.Account) ([]domain.NewEvent, error) { return agg.ProcessPayment(id, w.now) }
		case r < 8:
			cmd = func(agg *domain.Account) ([]domain.NewEvent, error) { return agg.CompletePayment(id, w.now) }
		default:
			cmd = func(agg *domain.Account) ([]domain.NewEvent, error) {
				return agg.FailPayment(id, "insufficient funds", w.now)
			}
		}
	default:
		if rng.IntN(2) == 0 {
			cmd = func(agg *domain.Account) ([]domain.NewEvent, error) {
				return agg.RefundPayment(id, "customer request", w.now)
			}
		} else {
			cmd = func(agg *domain.Account) ([]domain.NewEvent, error) { return agg.ChargebackPayment(id, "fraud", w.now) }
		}
	}
	w.account(a, cmd)
}

func ptr[T any](v T) *T { return &v }
