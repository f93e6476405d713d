package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

// ---- helpers shared by allocation_test, entries_test, payment_test and
// account_property_test ----

// ledgerBook is an account plus the events kept so far (what an event store
// would hold), so tests can replay and compare.
type ledgerBook struct {
	t   testing.TB
	a   *domain.Account
	all []domain.NewEvent
}

func newLedgerBook(t testing.TB, currency string) *ledgerBook {
	t.Helper()
	b := &ledgerBook{t: t, a: domain.NewAccount("ten_1", "acct_1")}
	b.keep(b.a.Open(domain.OpenAccount{Reference: "A-1", Currency: currency}, t0))
	return b
}

// keep requires success and keeps the events.
func (b *ledgerBook) keep(evs []domain.NewEvent, err error) []domain.NewEvent {
	b.t.Helper()
	require.NoError(b.t, err)
	b.all = append(b.all, evs...)
	return evs
}

func (b *ledgerBook) post(at time.Time, ins ...domain.EntryInput) []domain.NewEvent {
	b.t.Helper()
	return b.keep(b.a.PostEntries(ins, at, nil))
}

func (b *ledgerBook) pay(id string, in domain.PaymentInput, at time.Time) (*domain.Payment, []domain.NewEvent) {
	b.t.Helper()
	p, evs, err := b.a.RecordPayment(id, in, at)
	b.keep(evs, err)
	return p, evs
}

func (b *ledgerBook) entry(ref string) *domain.Entry {
	b.t.Helper()
	e, ok := b.a.Entry(ref)
	require.True(b.t, ok, "entry %s", ref)
	return e
}

// rebuild replaces the live account by the fold of the kept events (what a
// caller does after a failed command).
func (b *ledgerBook) rebuild() {
	b.t.Helper()
	r, err := foldEvents(b.all)
	require.NoError(b.t, err)
	b.a = r
}

func foldEvents(evs []domain.NewEvent) (*domain.Account, error) {
	r := domain.NewAccount("ten_1", "acct_1")
	for _, e := range evs {
		if err := r.Apply(e.Type, e.Data); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// domErr returns err as a *domain.Error (failing if it is not one).
func domErr(t testing.TB, err error) *domain.Error {
	t.Helper()
	require.Error(t, err)
	var de *domain.Error
	require.True(t, errors.As(err, &de), "not a *domain.Error: %v", err)
	return de
}

func fieldNames(e *domain.Error) []string {
	out := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		out[i] = f.Field
	}
	return out
}

func decodeEvent[T any](t testing.TB, ev domain.NewEvent) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(ev.Data, &v), "decode %s", ev.Type)
	return v
}

// eventOf returns the only event of type typ in evs.
func eventOf(t testing.TB, evs []domain.NewEvent, typ string) domain.NewEvent {
	t.Helper()
	var found []domain.NewEvent
	for _, e := range evs {
		if e.Type == typ {
			found = append(found, e)
		}
	}
	require.Len(t, found, 1, "one %s event in %v", typ, eventTypes(evs))
	return found[0]
}

func eventTypes(evs []domain.NewEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// allocStrings renders allocations as "ref=amount" (2 decimals).
func allocStrings(as []domain.Allocation) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Reference + "=" + a.Amount.StringFixed(2)
	}
	return out
}

// balanceFigures are the Balance fields a posting moves.
func balanceFigures(b domain.Balance) map[string]decimal.Decimal {
	return map[string]decimal.Decimal{
		"Invoiced": b.Invoiced, "Fees": b.Fees, "Paid": b.Paid, "Adjustments": b.Adjustments, "Discounts": b.Discounts,
		"Chargebacks": b.Chargebacks, "Refunded": b.Refunded, "Outstanding": b.Outstanding, "Credit": b.Credit,
	}
}

// assertBalanceDelta checks that every figure moved by exactly want[name]
// (absent = unchanged).
func assertBalanceDelta(t testing.TB, before, after domain.Balance, want map[string]string) {
	t.Helper()
	fb, fa := balanceFigures(before), balanceFigures(after)
	for name := range want {
		_, ok := fb[name]
		require.True(t, ok, "unknown balance figure %s", name)
	}
	for name, vb := range fb {
		exp := decimal.Zero
		if s, ok := want[name]; ok {
			exp = d(s)
		}
		got := fa[name].Sub(vb)
		assert.True(t, got.Equal(exp), "%s moved by %s, want %s", name, got, exp)
	}
}

func inv(ref, amount, due string) domain.EntryInput {
	return domain.EntryInput{Reference: ref, Kind: domain.KindInvoice, Amount: d(amount), DueDate: domain.Date(due)}
}

// ---- entries ----

// kindFixture: inv-1 100 (due 2026-01-01, product P1), fee-1 10 on inv-1,
// pe-1 a payment entry of 30 (allocated to inv-1). Outstanding 80.
func kindFixture(t testing.TB) *ledgerBook {
	t.Helper()
	b := newLedgerBook(t, "EUR")
	i1 := inv("inv-1", "100.00", "2026-01-01")
	i1.ProductReference, i1.Meta = "P1", json.RawMessage(`{"a":1,"b":[1,2]}`)
	b.post(t0, i1,
		domain.EntryInput{Reference: "fee-1", Kind: domain.KindFee, Amount: d("10.00"), TargetReference: "inv-1", FeeType: "reminder"},
		domain.EntryInput{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("30.00")},
	)
	require.Equal(t, []string{"inv-1=30.00"}, allocStrings(b.entry("pe-1").Allocations))
	require.True(t, b.a.Outstanding().Equal(d("80")))
	return b
}

const asOf = domain.Date("2026-01-15")

func TestEntryKindEffects(t *testing.T) {
	t1 := t0.Add(time.Hour)
	cases := []struct {
		name  string
		in    domain.EntryInput
		delta map[string]string
		// for credits: allocations in the event; chargebacks: reversals
		allocs, reversals []string
		toCredit          string
	}{
		{name: "invoice", in: inv("inv-2", "50.00", "2026-02-01"), delta: map[string]string{"Invoiced": "50", "Outstanding": "50"}},
		{name: "fee on invoice", in: domain.EntryInput{Reference: "fee-2", Kind: domain.KindFee, Amount: d("5"), TargetReference: "inv-1"},
			delta: map[string]string{"Fees": "5", "Outstanding": "5"}},
		{name: "account-level fee", in: domain.EntryInput{Reference: "fee-2", Kind: domain.KindFee, Amount: d("5"), FeeType: "collection"},
			delta: map[string]string{"Fees": "5", "Outstanding": "5"}},
		{name: "payment partial", in: domain.EntryInput{Reference: "pe-2", Kind: domain.KindPayment, Amount: d("20")},
			delta: map[string]string{"Paid": "20", "Outstanding": "-20"}, allocs: []string{"inv-1=20.00"}},
		{name: "payment of everything", in: domain.EntryInput{Reference: "pe-2", Kind: domain.KindPayment, Amount: d("80")},
			delta: map[string]string{"Paid": "80", "Outstanding": "-80"}, allocs: []string{"inv-1=70.00", "fee-1=10.00"}},
		{name: "payment targeting the fee", in: domain.EntryInput{Reference: "pe-2", Kind: domain.KindPayment, Amount: d("12"), TargetReference: "fee-1"},
			delta: map[string]string{"Paid": "12", "Outstanding": "-12"}, allocs: []string{"fee-1=10.00", "inv-1=2.00"}},
		{name: "positive adjustment", in: domain.EntryInput{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("15")},
			delta: map[string]string{"Adjustments": "15", "Outstanding": "15"}},
		{name: "negative adjustment", in: domain.EntryInput{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("-15")},
			delta: map[string]string{"Adjustments": "-15", "Outstanding": "-15"}, allocs: []string{"inv-1=15.00"}},
		{name: "negative adjustment on a target", in: domain.EntryInput{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("-15"), TargetReference: "fee-1"},
			delta: map[string]string{"Adjustments": "-15", "Outstanding": "-15"}, allocs: []string{"fee-1=10.00", "inv-1=5.00"}},
		{name: "negative adjustment above owed", in: domain.EntryInput{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("-100")},
			delta:  map[string]string{"Adjustments": "-100", "Outstanding": "-100", "Credit": "20"},
			allocs: []string{"inv-1=70.00", "fee-1=10.00"}, toCredit: "20"},
		{name: "discount", in: domain.EntryInput{Reference: "disc-1", Kind: domain.KindDiscount, Amount: d("10"), TargetReference: "fee-1"},
			delta: map[string]string{"Discounts": "10", "Outstanding": "-10"}, allocs: []string{"fee-1=10.00"}},
		{name: "discount of the exact remainder", in: domain.EntryInput{Reference: "disc-1", Kind: domain.KindDiscount, Amount: d("70"), TargetReference: "inv-1"},
			delta: map[string]string{"Discounts": "70", "Outstanding": "-70"}, allocs: []string{"inv-1=70.00"}},
		{name: "chargeback", in: domain.EntryInput{Reference: "cb-1", Kind: domain.KindChargeback, Amount: d("30"), TargetReference: "pe-1"},
			delta: map[string]string{"Chargebacks": "30", "Outstanding": "30"}, reversals: []string{"inv-1=30.00"}},
		{name: "reporting", in: domain.EntryInput{Reference: "rep-1", Kind: domain.KindReporting, Amount: d("999.99")}, delta: nil},
		{name: "reporting zero", in: domain.EntryInput{Reference: "rep-1", Kind: domain.KindReporting, Amount: d("0"), TargetReference: "inv-1"}, delta: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := kindFixture(t)
			before := b.a.Balance(asOf)
			evs := b.post(t1, c.in)
			require.Equal(t, []string{domain.EventEntryPosted}, eventTypes(evs))
			after := b.a.Balance(asOf)
			assertBalanceDelta(t, before, after, c.delta)
			assert.True(t, after.Outstanding.Equal(b.a.Outstanding()), "balance formula %s == remainders−credit %s", after.Outstanding, b.a.Outstanding())

			ev := decodeEvent[domain.EntryPosted](t, evs[0])
			assert.Equal(t, nilIfEmpty(c.allocs), nilIfEmpty(allocStrings(ev.Allocations)), "allocations")
			assert.Equal(t, nilIfEmpty(c.reversals), nilIfEmpty(allocStrings(ev.Reversals)), "reversals")
			wantTo := decimal.Zero
			if c.toCredit != "" {
				wantTo = d(c.toCredit)
			}
			assert.True(t, ev.ToCredit.Equal(wantTo), "to_credit %s want %s", ev.ToCredit, wantTo)
			assert.True(t, ev.CreditApplied.IsZero())

			if c.in.Kind == domain.KindReporting {
				for _, ref := range []string{"inv-1", "fee-1"} {
					assert.False(t, b.entry(ref).SettledAt != nil, "reporting settles nothing")
				}
				assert.True(t, b.entry("inv-1").Paid.Equal(d("30")))
			}
			r := replay(t, b.all)
			assert.Equal(t, after, r.Balance(asOf))
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestEntrySettlement(t *testing.T) {
	b := kindFixture(t)
	b.post(t0.Add(time.Hour), domain.EntryInput{Reference: "pe-2", Kind: domain.KindPayment, Amount: d("69.99")})
	assert.Nil(t, b.entry("inv-1").SettledAt, "one cent short")
	b.post(t0.Add(2*time.Hour), domain.EntryInput{Reference: "pe-3", Kind: domain.KindPayment, Amount: d("0.01")})
	require.NotNil(t, b.entry("inv-1").SettledAt, "exactly paid settles")
	assert.Equal(t, t0.Add(2*time.Hour), *b.entry("inv-1").SettledAt)
	assert.Nil(t, b.entry("fee-1").SettledAt)

	// a chargeback of pe-3 re-opens inv-1
	b.post(t0.Add(3*time.Hour), domain.EntryInput{Reference: "cb-1", Kind: domain.KindChargeback, Amount: d("0.01"), TargetReference: "pe-3"})
	assert.Nil(t, b.entry("inv-1").SettledAt)
	assert.True(t, b.entry("inv-1").Paid.Equal(d("99.99")))
	assert.True(t, b.entry("pe-3").ChargedBack.Equal(d("0.01")))
}

func TestChargebackReversesLatestFirst(t *testing.T) {
	b := newLedgerBook(t, "EUR")
	b.post(t0, inv("inv-1", "100", "2026-01-01"), inv("inv-2", "50", "2026-01-10"), inv("inv-3", "40", "2026-01-20"))
	b.post(t0, domain.EntryInput{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("120")})
	require.Equal(t, []string{"inv-1=100.00", "inv-2=20.00"}, allocStrings(b.entry("pe-1").Allocations))

	evs := b.post(t0, domain.EntryInput{Reference: "cb-1", Kind: domain.KindChargeback, Amount: d("30"), TargetReference: "pe-1"})
	ev := decodeEvent[domain.EntryPosted](t, evs[0])
	assert.Equal(t, []string{"inv-2=20.00", "inv-1=10.00"}, allocStrings(ev.Reversals))
	assert.Equal(t, []string{"inv-2=20.00", "inv-1=10.00"}, allocStrings(b.entry("cb-1").Allocations))
	assert.Nil(t, b.entry("inv-1").SettledAt)
	assert.True(t, b.entry("inv-1").Paid.Equal(d("90")))
	assert.True(t, b.entry("inv-2").Paid.IsZero())

	// the second chargeback continues where the first stopped
	evs = b.post(t0, domain.EntryInput{Reference: "cb-2", Kind: domain.KindChargeback, Amount: d("89.99"), TargetReference: "pe-1"})
	assert.Equal(t, []string{"inv-1=89.99"}, allocStrings(decodeEvent[domain.EntryPosted](t, evs[0]).Reversals))
	assert.True(t, b.entry("inv-1").Paid.Equal(d("0.01")))

	// 0.01 left to charge back: 0.02 is refused, 0.01 is fine, then nothing
	_, err := b.a.PostEntries([]domain.EntryInput{{Reference: "cb-3", Kind: domain.KindChargeback, Amount: d("0.02"), TargetReference: "pe-1"}}, t0, nil)
	e := domErr(t, err)
	assert.Equal(t, domain.EINVALID, e.Code)
	assert.Equal(t, []string{"entries[0].amount"}, fieldNames(e))
	b.rebuild()
	b.post(t0, domain.EntryInput{Reference: "cb-3", Kind: domain.KindChargeback, Amount: d("0.01"), TargetReference: "pe-1"})
	assert.True(t, b.entry("inv-1").Paid.IsZero())
	assert.True(t, b.entry("pe-1").ChargedBack.Equal(d("120")))
	assert.True(t, b.a.Outstanding().Equal(d("190")))
	bal := b.a.Balance(asOf)
	assert.True(t, bal.Outstanding.Equal(d("190")))
	assert.True(t, bal.Chargebacks.Equal(d("120")))
}

func TestNegativeAdjustmentCreditConsumedByLaterDebits(t *testing.T) {
	b := kindFixture(t)
	b.post(t0, domain.EntryInput{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("-200"), Reason: "goodwill"})
	assert.True(t, b.a.Credit.Equal(d("120")))
	assert.True(t, b.a.Outstanding().Equal(d("-120")))
	assert.NotNil(t, b.entry("inv-1").SettledAt)
	assert.NotNil(t, b.entry("fee-1").SettledAt)

	// a payment now is an overpayment
	_, err := b.a.PostEntries([]domain.EntryInput{{Reference: "pe-2", Kind: domain.KindPayment, Amount: d("0.01")}}, t0, nil)
	assert.Equal(t, []string{"entries[0].amount"}, fieldNames(domErr(t, err)))
	_, _, err = b.a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("0.01")}, t0)
	assert.Equal(t, []string{"amount"}, fieldNames(domErr(t, err)))
	b.rebuild()

	// the next invoice consumes it in full
	evs := b.post(t0, inv("inv-2", "50", "2026-02-01"))
	ev := decodeEvent[domain.EntryPosted](t, evs[0])
	assert.True(t, ev.CreditApplied.Equal(d("50")), "credit applied %s", ev.CreditApplied)
	assert.NotNil(t, b.entry("inv-2").SettledAt)
	assert.True(t, b.a.Credit.Equal(d("70")))

	// a positive adjustment consumes part of the rest, a fee the remainder
	evs = b.post(t0, domain.EntryInput{Reference: "adj-2", Kind: domain.KindAdjustment, Amount: d("30")})
	assert.True(t, decodeEvent[domain.EntryPosted](t, evs[0]).CreditApplied.Equal(d("30")))
	evs = b.post(t0, domain.EntryInput{Reference: "fee-2", Kind: domain.KindFee, Amount: d("45"), FeeType: "collection"})
	assert.True(t, decodeEvent[domain.EntryPosted](t, evs[0]).CreditApplied.Equal(d("40")))
	fee2 := b.entry("fee-2")
	assert.True(t, fee2.Paid.Equal(d("40")))
	assert.Nil(t, fee2.SettledAt)
	assert.True(t, b.a.Credit.IsZero())
	assert.True(t, b.a.Outstanding().Equal(d("5")))

	// with no credit left nothing is applied
	evs = b.post(t0, inv("inv-3", "10", "2026-02-01"))
	assert.True(t, decodeEvent[domain.EntryPosted](t, evs[0]).CreditApplied.IsZero())

	bal := b.a.Balance(asOf)
	assert.True(t, bal.Outstanding.Equal(d("15")), "outstanding %s", bal.Outstanding)
	assert.True(t, bal.Credit.IsZero())
	assert.Equal(t, bal, replay(t, b.all).Balance(asOf))
}

func TestEntryTargetRules(t *testing.T) {
	cases := []struct {
		name  string
		in    domain.EntryInput
		field string
	}{
		{"fee on a payment entry", domain.EntryInput{Reference: "x", Kind: domain.KindFee, Amount: d("1"), TargetReference: "pe-1"}, "target_reference"},
		{"fee on a fee", domain.EntryInput{Reference: "x", Kind: domain.KindFee, Amount: d("1"), TargetReference: "fee-1"}, "target_reference"},
		{"discount without target", domain.EntryInput{Reference: "x", Kind: domain.KindDiscount, Amount: d("1")}, "target_reference"},
		{"discount on a payment entry", domain.EntryInput{Reference: "x", Kind: domain.KindDiscount, Amount: d("1"), TargetReference: "pe-1"}, "target_reference"},
		{"discount above remainder", domain.EntryInput{Reference: "x", Kind: domain.KindDiscount, Amount: d("70.01"), TargetReference: "inv-1"}, "amount"},
		{"discount on a settled fee", domain.EntryInput{Reference: "x", Kind: domain.KindDiscount, Amount: d("0.01"), TargetReference: "fee-0"}, "amount"},
		{"chargeback without target", domain.EntryInput{Reference: "x", Kind: domain.KindChargeback, Amount: d("1")}, "target_reference"},
		{"chargeback on an invoice", domain.EntryInput{Reference: "x", Kind: domain.KindChargeback, Amount: d("1"), TargetReference: "inv-1"}, "target_reference"},
		{"chargeback above the payment", domain.EntryInput{Reference: "x", Kind: domain.KindChargeback, Amount: d("30.01"), TargetReference: "pe-1"}, "amount"},
		{"payment on a payment entry", domain.EntryInput{Reference: "x", Kind: domain.KindPayment, Amount: d("1"), TargetReference: "pe-1"}, "target_reference"},
		{"payment above available", domain.EntryInput{Reference: "x", Kind: domain.KindPayment, Amount: d("80.01")}, "amount"},
		{"negative adjustment on a payment entry", domain.EntryInput{Reference: "x", Kind: domain.KindAdjustment, Amount: d("-1"), TargetReference: "pe-1"}, "target_reference"},
		{"unknown target", domain.EntryInput{Reference: "x", Kind: domain.KindPayment, Amount: d("1"), TargetReference: "nope"}, "target_reference"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := kindFixture(t)
			// fee-0: a settled fee
			b.post(t0, domain.EntryInput{Reference: "fee-0", Kind: domain.KindFee, Amount: d("3"), TargetReference: "inv-1"},
				domain.EntryInput{Reference: "disc-0", Kind: domain.KindDiscount, Amount: d("3"), TargetReference: "fee-0"})
			before := b.a.Balance(asOf)
			evs, err := b.a.PostEntries([]domain.EntryInput{c.in}, t0, nil)
			assert.Nil(t, evs)
			e := domErr(t, err)
			assert.Equal(t, domain.EINVALID, e.Code)
			assert.Equal(t, []string{"entries[0]." + c.field}, fieldNames(e), e.Error())
			assert.Equal(t, before, b.a.Balance(asOf), "a rejected entry records nothing")
		})
	}
}

func TestEntryValidation(t *testing.T) {
	long := strings.Repeat("r", 201)
	ok := inv("ok-0", "1.00", "2026-02-01")
	cases := []struct {
		name     string
		currency string
		in       domain.EntryInput
		field    string // "" = valid
	}{
		{"empty reference", "EUR", domain.EntryInput{Kind: domain.KindReporting}, "reference"},
		{"reference too long", "EUR", domain.EntryInput{Reference: long, Kind: domain.KindReporting}, "reference"},
		{"reference of 200", "EUR", domain.EntryInput{Reference: long[:200], Kind: domain.KindReporting}, ""},
		{"unknown kind", "EUR", domain.EntryInput{Reference: "x", Kind: "credit_note", Amount: d("1")}, "kind"},
		{"no kind", "EUR", domain.EntryInput{Reference: "x", Amount: d("1")}, "kind"},
		{"invoice zero", "EUR", inv("x", "0", "2026-01-01"), "amount"},
		{"invoice negative", "EUR", inv("x", "-1", "2026-01-01"), "amount"},
		{"fee zero", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindFee, Amount: d("0")}, "amount"},
		{"fee negative", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindFee, Amount: d("-5")}, "amount"},
		{"payment zero", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindPayment, Amount: d("0")}, "amount"},
		{"payment negative", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindPayment, Amount: d("-5")}, "amount"},
		{"discount zero", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindDiscount, Amount: d("0"), TargetReference: "inv-1"}, "amount"},
		{"discount negative", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindDiscount, Amount: d("-1"), TargetReference: "inv-1"}, "amount"},
		{"chargeback zero", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindChargeback, Amount: d("0"), TargetReference: "pe-1"}, "amount"},
		{"chargeback negative", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindChargeback, Amount: d("-1"), TargetReference: "pe-1"}, "amount"},
		{"adjustment zero", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindAdjustment, Amount: d("0")}, "amount"},
		{"reporting negative", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindReporting, Amount: d("-0.01")}, "amount"},
		{"reporting zero", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindReporting, Amount: d("0")}, ""},
		{"EUR 3 decimals", "EUR", inv("x", "1.001", "2026-01-01"), "amount"},
		{"EUR trailing zeros", "EUR", inv("x", "1.1000", "2026-01-01"), ""},
		{"EUR adjustment 3 decimals", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindAdjustment, Amount: d("-0.005")}, "amount"},
		{"EUR reporting 3 decimals", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindReporting, Amount: d("0.001")}, "amount"},
		{"JPY decimals", "JPY", inv("x", "100.5", "2026-01-01"), "amount"},
		{"JPY whole", "JPY", inv("x", "100", "2026-01-01"), ""},
		{"KWD 4 decimals", "KWD", inv("x", "1.0005", "2026-01-01"), "amount"},
		{"KWD 3 decimals", "KWD", inv("x", "1.005", "2026-01-01"), ""},
		{"invoice without due date", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindInvoice, Amount: d("1")}, "due_date"},
		{"due date 30 Feb", "EUR", inv("x", "1", "2026-02-30"), "due_date"},
		{"due date with slashes", "EUR", inv("x", "1", "2026/01/01"), "due_date"},
		{"due date unpadded", "EUR", inv("x", "1", "2026-1-1"), "due_date"},
		{"fee bad due date", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindFee, Amount: d("1"), DueDate: "soon"}, "due_date"},
		{"bad original due date", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindInvoice, Amount: d("1"), DueDate: "2026-01-01", OriginalDueDate: "yesterday"}, "original_due_date"},
		{"unknown target", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindFee, Amount: d("1"), TargetReference: "inv-404"}, "target_reference"},
		{"meta array", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindReporting, Meta: json.RawMessage(`[1]`)}, "meta"},
		{"meta string", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindReporting, Meta: json.RawMessage(`"m"`)}, "meta"},
		{"meta broken", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindReporting, Meta: json.RawMessage(`{"a":`)}, "meta"},
		{"meta object", "EUR", domain.EntryInput{Reference: "x", Kind: domain.KindReporting, Meta: json.RawMessage(`{"a":{"b":1}}`)}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newLedgerBook(t, c.currency)
			b.post(t0, inv("inv-1", "100", "2026-01-01"), domain.EntryInput{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("30")})
			kept := len(b.all)
			before := b.a.Balance(asOf)
			for _, prefix := range []func(int) string{nil, func(i int) string { return fmt.Sprintf("ledgerEntries[%d]", i) }} {
				evs, err := b.a.PostEntries([]domain.EntryInput{ok, c.in}, t0, prefix)
				if c.field == "" {
					require.NoError(t, err)
					assert.Len(t, evs, 2)
					return
				}
				assert.Nil(t, evs, "no events on error")
				e := domErr(t, err)
				assert.Equal(t, domain.EINVALID, e.Code)
				want := "entries[1]." + c.field
				if prefix != nil {
					want = "ledgerEntries[1]." + c.field
				}
				assert.Equal(t, []string{want}, fieldNames(e), e.Error())
				assert.NotEmpty(t, e.Fields[0].Error)
				// commands record as they go: the caller discards the
				// aggregate; the kept events still fold to the old state
				b.rebuild()
				assert.Len(t, b.all, kept)
				assert.Equal(t, before, b.a.Balance(asOf))
				_, posted := b.a.Entry("ok-0")
				assert.False(t, posted)
			}
		})
	}
}

func TestEntryValidationReportsEveryBadEntry(t *testing.T) {
	b := kindFixture(t)
	evs, err := b.a.PostEntries([]domain.EntryInput{
		inv("x-0", "0", "2026-01-01"),
		inv("x-1", "1", "2026-01-01"),
		{Reference: "x-2", Kind: "nope"},
		{Reference: "x-3", Kind: domain.KindDiscount, Amount: d("1")},
	}, t0, func(i int) string { return fmt.Sprintf("items[%d].entry", i) })
	assert.Nil(t, evs)
	e := domErr(t, err)
	assert.Equal(t, domain.EINVALID, e.Code)
	assert.Equal(t, []string{"items[0].entry.amount", "items[2].entry.kind", "items[3].entry.target_reference"}, fieldNames(e))
}

func TestEntriesSeeEarlierOnesInTheBatch(t *testing.T) {
	b := newLedgerBook(t, "EUR")
	evs := b.post(t0,
		inv("inv-1", "100", "2026-01-01"),
		domain.EntryInput{Reference: "fee-1", Kind: domain.KindFee, Amount: d("5"), TargetReference: "inv-1"},
		domain.EntryInput{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("105")},
		domain.EntryInput{Reference: "cb-1", Kind: domain.KindChargeback, Amount: d("5"), TargetReference: "pe-1"},
	)
	assert.Len(t, evs, 4)
	assert.True(t, b.a.Outstanding().Equal(d("5")))
	// the entry before the payment entry makes it valid; without it it is not
	b2 := newLedgerBook(t, "EUR")
	_, err := b2.a.PostEntries([]domain.EntryInput{{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("1")}, inv("inv-1", "100", "2026-01-01")}, t0, nil)
	assert.Equal(t, []string{"entries[0].amount"}, fieldNames(domErr(t, err)))
}

func TestPostEntriesNeedsAnOpenAccount(t *testing.T) {
	a := domain.NewAccount("ten_1", "acct_x")
	_, err := a.PostEntries([]domain.EntryInput{inv("inv-1", "1", "2026-01-01")}, t0, nil)
	assert.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err))
}

func TestEntryRepost(t *testing.T) {
	same := func() []domain.EntryInput {
		i1 := inv("inv-1", "100.00", "2026-01-01")
		// same meta, keys in another order and other spacing
		i1.ProductReference, i1.Meta = "P1", json.RawMessage(`{ "b":[1, 2], "a":1.0 }`)
		return []domain.EntryInput{i1,
			// the stored fee got a due date by default: the posted one has none
			{Reference: "fee-1", Kind: domain.KindFee, Amount: d("10"), TargetReference: "inv-1", FeeType: "reminder"},
			{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("30.000")},
		}
	}
	t.Run("same content is a no-op", func(t *testing.T) {
		b := kindFixture(t)
		v, before := b.a.Version, b.a.Balance(asOf)
		evs, err := b.a.PostEntries(same(), t0.Add(time.Hour), nil)
		require.NoError(t, err)
		assert.Empty(t, evs)
		assert.Equal(t, v, b.a.Version)
		assert.Equal(t, before, b.a.Balance(asOf))
	})
	t.Run("same content twice in one batch", func(t *testing.T) {
		b := newLedgerBook(t, "EUR")
		evs := b.post(t0, inv("inv-1", "5", "2026-01-01"), inv("inv-1", "5.00", "2026-01-01"))
		assert.Len(t, evs, 1)
	})
	conflicts := []struct {
		name   string
		change func(*domain.EntryInput)
	}{
		{"amount", func(e *domain.EntryInput) { e.Amount = d("100.01") }},
		{"due date", func(e *domain.EntryInput) { e.DueDate = "2026-01-02" }},
		{"product", func(e *domain.EntryInput) { e.ProductReference = "P2" }},
		{"meta", func(e *domain.EntryInput) { e.Meta = json.RawMessage(`{"a":2,"b":[1,2]}`) }},
		{"no meta", func(e *domain.EntryInput) { e.Meta = nil }},
		{"kind", func(e *domain.EntryInput) { e.Kind = domain.KindFee }},
		{"reason", func(e *domain.EntryInput) { e.Reason = "typo" }},
	}
	for _, c := range conflicts {
		t.Run("different "+c.name+" is a conflict", func(t *testing.T) {
			b := kindFixture(t)
			ins := same()
			c.change(&ins[0])
			ins = append([]domain.EntryInput{inv("inv-new", "1", "2026-01-01")}, ins...)
			evs, err := b.a.PostEntries(ins, t0, nil)
			assert.Nil(t, evs)
			e := domErr(t, err)
			assert.Equal(t, domain.ECONFLICT, e.Code)
			assert.Equal(t, []string{"entries[1].reference"}, fieldNames(e))
		})
	}
	t.Run("conflict wins over invalid", func(t *testing.T) {
		b := kindFixture(t)
		evs, err := b.a.PostEntries([]domain.EntryInput{inv("x", "0", "2026-01-01"), inv("inv-1", "1", "2026-01-01")}, t0, nil)
		assert.Nil(t, evs)
		e := domErr(t, err)
		assert.Equal(t, domain.ECONFLICT, e.Code)
		assert.Equal(t, []string{"entries[0].amount", "entries[1].reference"}, fieldNames(e))
	})
	t.Run("different content in one batch", func(t *testing.T) {
		b := newLedgerBook(t, "EUR")
		_, err := b.a.PostEntries([]domain.EntryInput{inv("inv-1", "5", "2026-01-01"), inv("inv-1", "6", "2026-01-01")}, t0, nil)
		e := domErr(t, err)
		assert.Equal(t, domain.ECONFLICT, e.Code)
		assert.Equal(t, []string{"entries[1].reference"}, fieldNames(e))
	})
	t.Run("amended entry re-posted as first posted is a no-op", func(t *testing.T) {
		b := kindFixture(t)
		b.keep(b.a.Amend("inv-1", d("120"), "late interest", t0))
		evs, err := b.a.PostEntries(same()[:1], t0, nil)
		require.NoError(t, err)
		assert.Empty(t, evs)
		assert.True(t, b.entry("inv-1").Amount.Equal(d("120")))
	})
}

func TestAmend(t *testing.T) {
	t1 := t0.Add(time.Hour)
	t.Run("happy path", func(t *testing.T) {
		b := kindFixture(t)
		before := b.a.Balance(asOf)
		evs := b.keep(b.a.Amend("inv-1", d("120.50"), "late interest", t1))
		require.Equal(t, []string{domain.EventEntryAmended}, eventTypes(evs))
		ev := decodeEvent[domain.EntryAmended](t, evs[0])
		assert.Equal(t, "inv-1", ev.Reference)
		assert.True(t, ev.Amount.Equal(d("120.50")))
		assert.True(t, ev.PreviousAmount.Equal(d("100")))
		assert.Equal(t, "late interest", ev.Reason)
		assert.True(t, ev.CreditApplied.IsZero())
		e := b.entry("inv-1")
		assert.Equal(t, 1, e.AmendmentCount)
		assert.True(t, e.Original.Amount.Equal(d("100")))
		assertBalanceDelta(t, before, b.a.Balance(asOf), map[string]string{"Invoiced": "20.50", "Outstanding": "20.50"})
		assert.Equal(t, b.a.Balance(asOf), replay(t, b.all).Balance(asOf))
	})
	t.Run("fee down", func(t *testing.T) {
		b := kindFixture(t)
		before := b.a.Balance(asOf)
		b.keep(b.a.Amend("fee-1", d("2.5"), "waived in part", t1))
		assertBalanceDelta(t, before, b.a.Balance(asOf), map[string]string{"Fees": "-7.5", "Outstanding": "-7.5"})
	})
	t.Run("same amount is a no-op", func(t *testing.T) {
		b := kindFixture(t)
		evs, err := b.a.Amend("inv-1", d("100.00"), "nothing", t1)
		require.NoError(t, err)
		assert.Empty(t, evs)
		assert.Equal(t, 0, b.entry("inv-1").AmendmentCount)
	})
	errs := []struct {
		name, ref, amount, reason, code string
		fields                          []string
	}{
		{"below paid", "inv-1", "29.99", "r", domain.ECONFLICT, nil},
		{"payment entry", "pe-1", "31", "r", domain.ECONFLICT, nil},
		{"adjustment", "adj-1", "6", "r", domain.ECONFLICT, nil},
		{"reporting", "rep-1", "6", "r", domain.ECONFLICT, nil},
		{"missing reason", "inv-1", "120", "", domain.EINVALID, []string{"reason"}},
		{"blank reason", "inv-1", "120", " \t", domain.EINVALID, []string{"reason"}},
		{"zero", "inv-1", "0", "r", domain.EINVALID, []string{"amount"}},
		{"negative", "fee-1", "-1", "r", domain.EINVALID, []string{"amount"}},
		{"3 decimals", "inv-1", "100.001", "r", domain.EINVALID, []string{"amount"}},
		{"zero and no reason", "inv-1", "0", "", domain.EINVALID, []string{"amount", "reason"}},
		{"unknown", "inv-404", "1", "r", domain.ENOTFOUND, nil},
	}
	for _, c := range errs {
		t.Run(c.name, func(t *testing.T) {
			b := kindFixture(t)
			b.post(t0, domain.EntryInput{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("5")},
				domain.EntryInput{Reference: "rep-1", Kind: domain.KindReporting, Amount: d("5")})
			v := b.a.Version
			evs, err := b.a.Amend(c.ref, d(c.amount), c.reason, t1)
			assert.Nil(t, evs)
			e := domErr(t, err)
			assert.Equal(t, c.code, e.Code, e.Error())
			assert.Equal(t, c.fields, nilIfEmpty(fieldNames(e)))
			assert.Equal(t, v, b.a.Version)
		})
	}
	t.Run("settle and unsettle", func(t *testing.T) {
		b := kindFixture(t) // inv-1: 100, paid 30
		b.keep(b.a.Amend("inv-1", d("30"), "settlement agreed", t1))
		e := b.entry("inv-1")
		require.NotNil(t, e.SettledAt, "amended down to what is paid: settled")
		assert.Equal(t, t1, *e.SettledAt)
		assert.True(t, b.a.Outstanding().Equal(d("10")))
		b.keep(b.a.Amend("inv-1", d("30.01"), "agreement broken", t1.Add(time.Hour)))
		assert.Nil(t, e.SettledAt, "amended above what is paid: open again")
		assert.True(t, e.Remaining().Equal(d("0.01")))
		assert.True(t, b.a.Outstanding().Equal(d("10.01")))
		assert.True(t, b.a.Balance(asOf).Outstanding.Equal(d("10.01")))
		r := replay(t, b.all)
		re, _ := r.Entry("inv-1")
		assert.Equal(t, e, re)
	})
	t.Run("amending up consumes credit", func(t *testing.T) {
		b := kindFixture(t)
		b.post(t0, domain.EntryInput{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("-90")}) // owed 80: credit 10
		require.True(t, b.a.Credit.Equal(d("10")))
		evs := b.keep(b.a.Amend("inv-1", d("104"), "interest", t1))
		assert.True(t, decodeEvent[domain.EntryAmended](t, evs[0]).CreditApplied.Equal(d("4")))
		e := b.entry("inv-1")
		assert.NotNil(t, e.SettledAt)
		assert.True(t, b.a.Credit.Equal(d("6")))
		assert.True(t, b.a.Outstanding().Equal(d("-6")))
		assert.True(t, b.a.Balance(asOf).Outstanding.Equal(d("-6")))
	})
}

// Both dates bad: the error names due_date every time (the check used to
// range over a map, so the field named varied from run to run).
func TestEntryValidationIsDeterministic(t *testing.T) {
	b := newLedgerBook(t, "EUR")
	for range 50 {
		_, err := b.a.PostEntries([]domain.EntryInput{{Reference: "x", Kind: domain.KindInvoice, Amount: d("1"), DueDate: "bad", OriginalDueDate: "worse"}}, t0, nil)
		require.Equal(t, []string{"entries[0].due_date"}, fieldNames(domErr(t, err)))
	}
}
