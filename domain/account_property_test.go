package domain_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/arrears/arrears/domain"
)

// accountMachine drives one account with random commands. Commands that fail
// are discarded: the account is rebuilt from the events kept so far (a
// command records on the aggregate as it goes).
type accountMachine struct {
	currency string
	a        *domain.Account
	kept     []domain.NewEvent
	now      time.Time
	n        int // for fresh references and ids
	negAdj   bool
	toCredit bool           // some payment completed with part of it left as credit
	stats    map[string]int // outcomes by command, for -v

	// replica is a fresh account that only ever sees the kept events
	// through Apply; creditApplied sums the credit_applied they record.
	replica       *domain.Account
	creditApplied map[string]decimal.Decimal
}

// keepEvents keeps evs and folds them into the replica.
func (m *accountMachine) keepEvents(t *rapid.T, evs []domain.NewEvent) {
	for _, ev := range evs {
		if err := m.replica.Apply(ev.Type, ev.Data); err != nil {
			t.Fatalf("(e) replay %s: %v", ev.Type, err)
		}
		switch ev.Type {
		case domain.EventEntryPosted:
			var p domain.EntryPosted
			mustDecode(t, ev, &p)
			m.creditApplied[p.Entry.Reference] = m.creditApplied[p.Entry.Reference].Add(p.CreditApplied)
		case domain.EventEntryAmended:
			var p domain.EntryAmended
			mustDecode(t, ev, &p)
			m.creditApplied[p.Reference] = m.creditApplied[p.Reference].Add(p.CreditApplied)
		}
	}
	m.kept = append(m.kept, evs...)
}

var propProducts = []string{"", "P1", "P2"}
var propFeeTypes = []string{"", "reminder", "interest", "collection"}

func (m *accountMachine) tick(t *rapid.T) time.Time {
	m.now = m.now.Add(time.Duration(rapid.IntRange(0, 96).Draw(t, "hours")) * time.Hour)
	return m.now
}

func (m *accountMachine) amount(t *rapid.T, label string, minMinor, maxMinor int64) decimal.Decimal {
	x, err := domain.FromMinor(rapid.Int64Range(minMinor, maxMinor).Draw(t, label), m.currency)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// amountUpTo mostly draws an amount in (0, max] (when max is positive), else
// any amount in minor units up to fallbackMinor.
func (m *accountMachine) amountUpTo(t *rapid.T, label string, max decimal.Decimal, fallbackMinor int64) decimal.Decimal {
	if max.IsPositive() && rapid.IntRange(0, 4).Draw(t, label+"_bounded") > 0 {
		maxMinor, err := domain.ToMinor(max, m.currency)
		if err != nil {
			t.Fatal(err)
		}
		return m.amount(t, label, 1, maxMinor)
	}
	return m.amount(t, label, 1, fallbackMinor)
}

func (m *accountMachine) date(t *rapid.T, label string) domain.Date {
	return domain.DateOf(time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rapid.IntRange(0, 240).Draw(t, label)))
}

func (m *accountMachine) ref(prefix string) string {
	m.n++
	return fmt.Sprintf("%s-%d", prefix, m.n)
}

// target draws an existing entry reference of one of kinds (any kind if
// none), sometimes none or an unknown one.
func (m *accountMachine) target(t *rapid.T, kinds ...domain.EntryKind) string {
	var refs []string
	for _, e := range m.a.Entries {
		if len(kinds) == 0 || slices.Contains(kinds, e.Kind) {
			refs = append(refs, e.Reference)
		}
	}
	switch rapid.IntRange(0, 19).Draw(t, "target_kind") {
	case 0, 1:
		return ""
	case 2:
		return "nope"
	case 3, 4:
		if len(m.a.Entries) > 0 {
			return rapid.SampledFrom(m.entryRefs()).Draw(t, "any_target")
		}
	}
	if len(refs) == 0 {
		return ""
	}
	return rapid.SampledFrom(refs).Draw(t, "target")
}

func (m *accountMachine) entryRefs() []string {
	refs := make([]string, len(m.a.Entries))
	for i, e := range m.a.Entries {
		refs[i] = e.Reference
	}
	return refs
}

// done keeps the events of a successful command or rebuilds the account.
func (m *accountMachine) done(t *rapid.T, what string, evs []domain.NewEvent, err error) bool {
	if err != nil {
		m.stats[what+":"+domain.ErrorCode(err)]++
		if c := domain.ErrorCode(err); c != domain.EINVALID && c != domain.ECONFLICT && c != domain.ENOTFOUND {
			t.Fatalf("%s: unexpected error %v", what, err)
		}
		r, ferr := foldEvents(m.kept)
		if ferr != nil {
			t.Fatalf("replay after failed %s: %v", what, ferr)
		}
		m.a = r
		return false
	}
	m.keepEvents(t, evs)
	m.stats[what+":ok"]++
	return true
}

func (m *accountMachine) post(t *rapid.T, what string, in domain.EntryInput) {
	evs, err := m.a.PostEntries([]domain.EntryInput{in}, m.tick(t), nil)
	if m.done(t, what, evs, err) && in.Kind == domain.KindAdjustment && in.Amount.IsNegative() {
		m.negAdj = true
	}
}

func (m *accountMachine) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"invoice": func(t *rapid.T) {
			in := domain.EntryInput{Reference: m.ref("inv"), Kind: domain.KindInvoice, Amount: m.amount(t, "amount", 1, 50000),
				DueDate: m.date(t, "due"), ProductReference: rapid.SampledFrom(propProducts).Draw(t, "product")}
			if rapid.Bool().Draw(t, "original_due") {
				in.OriginalDueDate = m.date(t, "original_due_date")
			}
			m.post(t, "invoice", in)
		},
		"fee": func(t *rapid.T) {
			in := domain.EntryInput{Reference: m.ref("fee"), Kind: domain.KindFee, Amount: m.amount(t, "amount", 1, 5000),
				TargetReference: m.target(t, domain.KindInvoice), FeeType: rapid.SampledFrom(propFeeTypes).Draw(t, "fee_type"),
				ProductReference: rapid.SampledFrom(propProducts).Draw(t, "product")}
			if rapid.Bool().Draw(t, "has_due") {
				in.DueDate = m.date(t, "due")
			}
			m.post(t, "fee", in)
		},
		"payment_entry": func(t *rapid.T) {
			amt := m.amountUpTo(t, "amount", m.a.Available(), 60000)
			if rapid.Bool().Draw(t, "all_available") && m.a.Available().IsPositive() {
				amt = m.a.Available()
			}
			m.post(t, "payment_entry", domain.EntryInput{Reference: m.ref("pe"), Kind: domain.KindPayment, Amount: amt,
				TargetReference: m.target(t, domain.KindInvoice, domain.KindFee, domain.KindAdjustment), ProductReference: rapid.SampledFrom(propProducts).Draw(t, "product")})
		},
		"adjustment": func(t *rapid.T) {
			amt := m.amount(t, "amount", 1, 50000)
			if rapid.Bool().Draw(t, "negative") {
				amt = amt.Neg()
			}
			m.post(t, "adjustment", domain.EntryInput{Reference: m.ref("adj"), Kind: domain.KindAdjustment, Amount: amt,
				TargetReference: m.target(t, domain.KindInvoice, domain.KindFee, domain.KindAdjustment), ProductReference: rapid.SampledFrom(propProducts).Draw(t, "product")})
		},
		"discount": func(t *rapid.T) {
			target := m.target(t, domain.KindInvoice, domain.KindFee, domain.KindAdjustment)
			rem := decimal.Zero
			if e, ok := m.a.Entry(target); ok {
				rem = e.Remaining()
			}
			amt := m.amountUpTo(t, "amount", rem, 20000)
			if rem.IsPositive() && rapid.Bool().Draw(t, "exact") {
				amt = rem
			}
			m.post(t, "discount", domain.EntryInput{Reference: m.ref("disc"), Kind: domain.KindDiscount, Amount: amt, TargetReference: target})
		},
		"chargeback_entry": func(t *rapid.T) {
			target := m.target(t, domain.KindPayment)
			left := decimal.Zero
			if e, ok := m.a.Entry(target); ok && e.Kind == domain.KindPayment {
				left = e.Amount.Sub(e.ChargedBack)
			}
			amt := m.amountUpTo(t, "amount", left, 60000)
			if left.IsPositive() && rapid.Bool().Draw(t, "rest") {
				amt = left
			}
			m.post(t, "chargeback_entry", domain.EntryInput{Reference: m.ref("cb"), Kind: domain.KindChargeback, Amount: amt, TargetReference: target})
		},
		"reporting": func(t *rapid.T) {
			m.post(t, "reporting", domain.EntryInput{Reference: m.ref("rep"), Kind: domain.KindReporting, Amount: m.amount(t, "amount", 0, 100000),
				TargetReference: m.target(t)})
		},
		"repost": func(t *rapid.T) {
			if len(m.a.Entries) == 0 {
				t.Skip("no entries")
			}
			e, _ := m.a.Entry(rapid.SampledFrom(m.entryRefs()).Draw(t, "entry"))
			in := e.Original
			changed := rapid.Bool().Draw(t, "changed")
			if changed {
				in.Reason += "!"
			}
			evs, err := m.a.PostEntries([]domain.EntryInput{in}, m.tick(t), nil)
			if changed && domain.ErrorCode(err) != domain.ECONFLICT || !changed && (err != nil || len(evs) > 0) {
				t.Fatalf("re-posting %s (changed %v): events %v, error %v", e.Reference, changed, eventTypes(evs), err)
			}
			m.done(t, "repost", evs, err)
		},
		"amend": func(t *rapid.T) {
			ref := m.target(t, domain.KindInvoice, domain.KindFee)
			amt := m.amount(t, "amount", 1, 50000)
			if e, ok := m.a.Entry(ref); ok && e.IsDebit() {
				switch rapid.IntRange(0, 4).Draw(t, "amend_to") {
				case 0:
					amt = e.Paid
				case 1:
					amt = e.Amount
				case 2: // between what is paid and twice the amount
					amt = e.Paid.Add(m.amountUpTo(t, "amount_above_paid", e.Amount.Mul(decimal.NewFromInt(2)).Sub(e.Paid), 50000))
				}
			}
			reason := rapid.SampledFrom([]string{"", "correction", "correction", "correction"}).Draw(t, "reason")
			evs, err := m.a.Amend(ref, amt, reason, m.tick(t))
			m.done(t, "amend", evs, err)
		},
		"record_payment": func(t *rapid.T) {
			in := domain.PaymentInput{
				Amount:           m.amountUpTo(t, "amount", m.a.Available(), 60000),
				Status:           rapid.SampledFrom([]domain.PaymentStatus{"", domain.PaymentPending, domain.PaymentProcessing, domain.PaymentCompleted}).Draw(t, "status"),
				MatchStrategy:    rapid.SampledFrom(append([]domain.MatchStrategy{""}, domain.MatchStrategies...)).Draw(t, "strategy"),
				ProductReference: rapid.SampledFrom(propProducts).Draw(t, "product"),
				FeeOrder:         rapid.SliceOfDistinct(rapid.SampledFrom(propFeeTypes[1:]), rapid.ID[string]).Draw(t, "fee_order"),
			}
			if rapid.Bool().Draw(t, "all_available") && m.a.Available().IsPositive() {
				in.Amount = m.a.Available()
			}
			if rapid.Bool().Draw(t, "has_reference") {
				in.Reference = fmt.Sprintf("P-%d", rapid.IntRange(1, 8).Draw(t, "reference"))
			}
			avail := m.a.Available()
			prev, dup := m.a.PaymentByReference(in.Reference)
			id := m.ref("pay")
			p, evs, err := m.a.RecordPayment(id, in, m.tick(t))
			if !dup && err != nil && !in.Amount.GreaterThan(avail) {
				t.Fatalf("payment of %s refused with %s available: %v", in.Amount, avail, err)
			}
			if dup && err == nil && (p != prev || len(evs) > 0) {
				t.Fatalf("re-recorded reference %s: got a new payment or events", in.Reference)
			}
			if m.done(t, "record_payment", evs, err) && p.ToCredit.IsPositive() {
				m.toCredit = true
			}
		},
		"payment_transition": func(t *rapid.T) {
			if len(m.a.Payments) == 0 {
				t.Skip("no payments")
			}
			ids := make([]string, len(m.a.Payments))
			for i, p := range m.a.Payments {
				ids[i] = p.ID
			}
			p, _ := m.a.Payment(rapid.SampledFrom(ids).Draw(t, "payment"))
			at := m.tick(t)
			var evs []domain.NewEvent
			var err error
			cmds := []string{"process", "complete", "fail", "refund", "chargeback"}
			if rapid.IntRange(0, 3).Draw(t, "valid_command") > 0 { // mostly a command the status allows
				switch p.Status {
				case domain.PaymentPending:
					cmds = []string{"process", "complete", "fail"}
				case domain.PaymentProcessing:
					cmds = []string{"complete", "fail"}
				case domain.PaymentCompleted:
					cmds = []string{"refund", "chargeback"}
				}
			}
			cmd := rapid.SampledFrom(cmds).Draw(t, "command")
			if avoidKnownCreditBug && (cmd == "refund" || cmd == "chargeback") && p.Status == domain.PaymentCompleted && p.ToCredit.GreaterThan(m.a.Credit) {
				m.stats["known_bug_avoided"]++
				t.Skip("known bug: reversing a payment whose to_credit was consumed")
			}
			switch cmd {
			case "process":
				evs, err = m.a.ProcessPayment(p.ID, at)
			case "complete":
				evs, err = m.a.CompletePayment(p.ID, at)
			case "fail":
				evs, err = m.a.FailPayment(p.ID, "declined", at)
			case "refund":
				evs, err = m.a.RefundPayment(p.ID, "asked", at)
			case "chargeback":
				evs, err = m.a.ChargebackPayment(p.ID, "bank", at)
			}
			from := p.Status
			if m.done(t, cmd, evs, err) {
				if np, _ := m.a.Payment(p.ID); cmd == "complete" && np.ToCredit.IsPositive() {
					m.toCredit = true
				}
			} else if domain.ErrorCode(err) != domain.ECONFLICT {
				t.Fatalf("%s of a %s payment: %v", cmd, from, err)
			}
		},
	}
}

// check asserts the invariants on the live account.
func (m *accountMachine) check(t *rapid.T) {
	a := m.a
	dates := []domain.Date{"2025-09-01", domain.DateOf(m.now), "2026-12-31"}

	// (a) the balance formula equals open remainders less credit
	sumRem := decimal.Zero
	for _, e := range a.Entries {
		sumRem = sumRem.Add(e.Remaining())
	}
	if !a.Outstanding().Equal(sumRem.Sub(a.Credit)) {
		t.Fatalf("(a) Outstanding() %s != Σ remainders %s − credit %s", a.Outstanding(), sumRem, a.Credit)
	}
	for _, asOf := range dates {
		b := a.Balance(asOf)
		if !b.Outstanding.Equal(a.Outstanding()) {
			t.Fatalf("(a) Balance(%s).Outstanding %s != Outstanding() %s (Σ remainders %s, credit %s)\n%s",
				asOf, b.Outstanding, a.Outstanding(), sumRem, a.Credit, m.dump())
		}
		if !b.Credit.Equal(a.Credit) {
			t.Fatalf("(a) Balance credit %s != %s", b.Credit, a.Credit)
		}
		// (d) aging covers exactly the open remainders
		g := b.Aging
		aging := g.Current.Add(g.Days1to30).Add(g.Days31to60).Add(g.Days61to90).Add(g.Over90)
		if !aging.Equal(sumRem) {
			t.Fatalf("(d) aging %s != Σ open remainders %s", aging, sumRem)
		}
		if b.Overdue.GreaterThan(aging) || b.Overdue.IsNegative() {
			t.Fatalf("(d) overdue %s outside [0, %s]", b.Overdue, aging)
		}
	}

	// (b) debits: 0 ≤ paid ≤ amount, settled iff fully paid; others unpaid
	for _, e := range a.Entries {
		if !e.IsDebit() {
			if !e.Paid.IsZero() || e.SettledAt != nil {
				t.Fatalf("(b) %s %s has paid %s / settled %v", e.Kind, e.Reference, e.Paid, e.SettledAt)
			}
			continue
		}
		if e.Paid.IsNegative() || e.Paid.GreaterThan(e.Amount) {
			t.Fatalf("(b) %s paid %s outside [0, %s]\n%s", e.Reference, e.Paid, e.Amount, m.dump())
		}
		if (e.SettledAt != nil) != e.Paid.Equal(e.Amount) {
			t.Fatalf("(b) %s paid %s of %s but settled %v", e.Reference, e.Paid, e.Amount, e.SettledAt)
		}
	}

	// (c) only negative adjustments take the account below zero, and
	// payments completed after the account came to owe less than they are
	// (see TestPaymentCompletedIntoCredit)
	if a.Outstanding().IsNegative() && !m.negAdj && !m.toCredit {
		t.Fatalf("(c) outstanding %s with no negative adjustment\n%s", a.Outstanding(), m.dump())
	}
	// (g) unallocated credit is never negative
	if a.Credit.IsNegative() {
		t.Fatalf("(g) negative unallocated credit %s\n%s", a.Credit, m.dump())
	}

	// (f) no credit allocates more than it is; chargebacks reverse what they say
	for _, e := range a.Entries {
		s := sumAllocs(e.Allocations)
		switch {
		case e.Kind == domain.KindPayment, e.Kind == domain.KindDiscount, e.Kind == domain.KindChargeback:
			if !s.Equal(e.Amount) {
				t.Fatalf("(f) %s %s allocates %s of %s", e.Kind, e.Reference, s, e.Amount)
			}
		case e.Kind == domain.KindAdjustment && e.Amount.IsNegative():
			if s.GreaterThan(e.Amount.Neg()) {
				t.Fatalf("(f) adjustment %s allocates %s of %s", e.Reference, s, e.Amount)
			}
		default:
			if len(e.Allocations) > 0 {
				t.Fatalf("(f) %s %s has allocations", e.Kind, e.Reference)
			}
		}
		if e.Kind == domain.KindPayment && (e.ChargedBack.IsNegative() || e.ChargedBack.GreaterThan(e.Amount)) {
			t.Fatalf("(f) payment entry %s charged back %s of %s", e.Reference, e.ChargedBack, e.Amount)
		}
	}
	for _, p := range a.Payments {
		s := sumAllocs(p.Allocations)
		switch p.Status {
		case domain.PaymentCompleted, domain.PaymentRefunded, domain.PaymentChargedBack:
			if !s.Add(p.ToCredit).Equal(p.Amount) || p.ToCredit.IsNegative() {
				t.Fatalf("(f) payment %s allocates %s + credit %s of %s", p.ID, s, p.ToCredit, p.Amount)
			}
		default:
			if len(p.Allocations) > 0 {
				t.Fatalf("(f) %s payment %s has allocations", p.Status, p.ID)
			}
		}
	}

	// every debit's paid is the sum of what flowed to it (credit applied,
	// credits' allocations, completed payments, less chargeback reversals)
	flows := maps.Clone(m.creditApplied)
	for _, e := range a.Entries {
		sign := decimal.NewFromInt(1)
		switch {
		case e.Kind == domain.KindChargeback:
			sign = sign.Neg()
		case e.IsDebit(), e.Kind == domain.KindReporting:
			continue
		}
		for _, al := range e.Allocations {
			flows[al.Reference] = flows[al.Reference].Add(al.Amount.Mul(sign))
		}
		for _, al := range e.CreditAllocations { // credit applied to what a chargeback re-opened
			flows[al.Reference] = flows[al.Reference].Add(al.Amount)
		}
	}
	for _, p := range a.Payments {
		if p.Status == domain.PaymentCompleted {
			for _, al := range p.Allocations {
				flows[al.Reference] = flows[al.Reference].Add(al.Amount)
			}
		}
		for _, al := range p.CreditAllocations { // credit applied to what a reversal re-opened
			flows[al.Reference] = flows[al.Reference].Add(al.Amount)
		}
	}
	for _, e := range a.Entries {
		if e.IsDebit() && !flows[e.Reference].Equal(e.Paid) {
			t.Fatalf("%s paid %s but %s flowed to it\n%s", e.Reference, e.Paid, flows[e.Reference], m.dump())
		}
	}

	// available is outstanding less pending and processing payments
	reserved := decimal.Zero
	for _, p := range a.Payments {
		if p.Status == domain.PaymentPending || p.Status == domain.PaymentProcessing {
			reserved = reserved.Add(p.Amount)
		}
	}
	if !a.Available().Equal(a.Outstanding().Sub(reserved)) {
		t.Fatalf("available %s != outstanding %s − reserved %s", a.Available(), a.Outstanding(), reserved)
	}

	// (e) replay equals live
	sameAsReplay(t, a, m.replica, dates)
}

// sameAsReplay checks that the live account and the fold of its events agree.
func sameAsReplay(t *rapid.T, a, r *domain.Account, dates []domain.Date) {
	for _, asOf := range dates {
		if !reflect.DeepEqual(a.Balance(asOf), r.Balance(asOf)) {
			t.Fatalf("(e) balance differs after replay:\nlive   %+v\nreplay %+v", a.Balance(asOf), r.Balance(asOf))
		}
	}
	if !reflect.DeepEqual(a.Entries, r.Entries) || !reflect.DeepEqual(a.Payments, r.Payments) || !a.Credit.Equal(r.Credit) || a.Version != r.Version {
		t.Fatalf("(e) entries, payments, credit or version differ after replay")
	}
	for _, e := range a.Entries {
		if re, ok := r.Entry(e.Reference); !ok || !reflect.DeepEqual(e, re) {
			t.Fatalf("(e) entry %s differs after replay", e.Reference)
		}
	}
	for _, p := range a.Payments {
		if rp, ok := r.Payment(p.ID); !ok || !reflect.DeepEqual(p, rp) {
			t.Fatalf("(e) payment %s differs after replay", p.ID)
		}
	}
}

// avoidKnownCreditBug keeps the machine from refunding or charging back a
// completed payment whose to_credit is no longer all in Credit (later debits
// consumed it): that drives Credit negative (invariant (g)) and, after a
// later payment entry, breaks (a) and (f). See
// TestRefundOfPaymentWhoseCreditWasConsumed; set to false once fixed.
const avoidKnownCreditBug = false

func sumAllocs(as []domain.Allocation) decimal.Decimal {
	s := decimal.Zero
	for _, a := range as {
		s = s.Add(a.Amount)
	}
	return s
}

func mustDecode(t *rapid.T, ev domain.NewEvent, v any) {
	if err := json.Unmarshal(ev.Data, v); err != nil {
		t.Fatalf("decode %s: %v", ev.Type, err)
	}
}

// dump renders the account for failure messages.
func (m *accountMachine) dump() string {
	s := fmt.Sprintf("credit %s, outstanding %s, available %s\n", m.a.Credit, m.a.Outstanding(), m.a.Available())
	for _, e := range m.a.Entries {
		s += fmt.Sprintf("  %-8s %-10s amount %s paid %s due %s target %q allocs %v settled %v\n",
			e.Reference, e.Kind, e.Amount, e.Paid, e.DueDate, e.TargetReference, allocStrings(e.Allocations), e.SettledAt != nil)
	}
	for _, p := range m.a.Payments {
		s += fmt.Sprintf("  %-8s %-12s amount %s allocs %v to_credit %s\n", p.ID, p.Status, p.Amount, allocStrings(p.Allocations), p.ToCredit)
	}
	return s
}

func TestAccountProperties(t *testing.T) {
	stats := map[string]int{}
	rapid.Check(t, func(t *rapid.T) {
		m := &accountMachine{currency: rapid.SampledFrom([]string{"EUR", "EUR", "JPY", "KWD"}).Draw(t, "currency"), now: t0, stats: stats}
		m.a = domain.NewAccount("ten_1", "acct_1")
		evs, err := m.a.Open(domain.OpenAccount{Reference: "A-1", Currency: m.currency}, t0)
		if err != nil {
			t.Fatal(err)
		}
		m.replica, m.creditApplied = domain.NewAccount("ten_1", "acct_1"), map[string]decimal.Decimal{}
		m.keepEvents(t, evs)
		actions := m.actions()
		// weigh payments up: their life spans several steps
		actions["payment_transition_2"], actions["payment_transition_3"] = actions["payment_transition"], actions["payment_transition"]
		actions["record_payment_2"] = actions["record_payment"]
		actions[""] = m.check
		t.Repeat(actions)
		// and once from scratch
		r, err := foldEvents(m.kept)
		if err != nil {
			t.Fatalf("(e) replay: %v", err)
		}
		sameAsReplay(t, m.a, r, []domain.Date{domain.DateOf(m.now)})
	})
	if testing.Verbose() {
		t.Logf("command outcomes: %v", stats)
	}
}
