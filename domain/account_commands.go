package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// OpenAccount is the command that opens an account.
type OpenAccount struct {
	Reference string
	Currency  string
	DebtorIDs []string
	Products  []Product
	Scores    []Score
	Mandates  []Mandate
	Meta      json.RawMessage
	Sandbox   bool
}

// Open opens the account. Commands record their events on a (a must be
// discarded if the events are not then appended) and return them.
func (a *Account) Open(in OpenAccount, at time.Time) ([]NewEvent, error) {
	if a.Opened {
		return nil, &Error{Code: ECONFLICT, Reason: "account_exists", Message: fmt.Sprintf("account %s already exists", a.ID)}
	}
	var fe []FieldError
	if e := ValidateCurrency("currency", in.Currency); e != nil {
		fe = append(fe, *e)
	}
	fe = append(fe, validateAttributes(in.Products, in.Scores, in.Mandates, in.Meta)...)
	if len(in.Reference) > 200 {
		fe = append(fe, FieldError{Field: "reference", Error: "must be at most 200 characters"})
	}
	if len(fe) > 0 {
		return nil, Invalid("invalid account", fe...)
	}
	if in.DebtorIDs == nil {
		in.DebtorIDs = []string{}
	}
	var out []NewEvent
	err := a.record(&out, EventAccountOpened, AccountOpened{Reference: in.Reference, Currency: in.Currency, DebtorIDs: in.DebtorIDs,
		Products: in.Products, Scores: in.Scores, Mandates: in.Mandates, Meta: in.Meta, Sandbox: in.Sandbox, At: at})
	return out, err
}

func validateAttributes(products []Product, scores []Score, mandates []Mandate, meta json.RawMessage) []FieldError {
	var fe []FieldError
	fe = append(fe, ProductList.validate(products)...)
	fe = append(fe, ScoreList.validate(scores)...)
	fe = append(fe, MandateList.validate(mandates)...)
	if len(meta) > 0 && (meta[0] != '{' || !json.Valid(meta)) {
		fe = append(fe, FieldError{Field: "meta", Error: "must be a JSON object"})
	}
	return fe
}

// requireUnique checks that every item of list has a non-empty, distinct key
// (field "": the item itself is the key).
func requireUnique[T any](list, field string, items []T, key func(T) string) []FieldError {
	var fe []FieldError
	seen := map[string]bool{}
	for i, it := range items {
		k, f := key(it), fmt.Sprintf("%s[%d]", list, i)
		if field != "" {
			f += "." + field
		}
		switch {
		case k == "":
			fe = append(fe, FieldError{Field: f, Error: "is required"})
		case seen[k]:
			fe = append(fe, FieldError{Field: f, Error: "appears twice"})
		}
		seen[k] = true
	}
	return fe
}

// Update replaces the attributes set in u (nil fields unchanged; meta is
// replaced whole, like a debtor's). The event carries only the attributes
// that change; a change to nothing records nothing.
func (a *Account) Update(u AccountUpdated, at time.Time) ([]NewEvent, error) {
	if err := a.mustBeOpen(); err != nil {
		return nil, err
	}
	var products []Product
	var scores []Score
	var mandates []Mandate
	if u.Products != nil {
		products = *u.Products
	}
	if u.Scores != nil {
		scores = *u.Scores
	}
	if u.Mandates != nil {
		mandates = *u.Mandates
	}
	fe := validateAttributes(products, scores, mandates, u.Meta)
	if u.DebtorIDs != nil {
		fe = append(fe, requireUnique("debtor_ids", "", *u.DebtorIDs, func(id string) string { return id })...)
	}
	if len(fe) > 0 {
		return nil, Invalid("invalid account update", fe...)
	}
	ev := AccountUpdated{At: at}
	if u.Meta != nil && !jsonEqual(u.Meta, a.Meta) {
		ev.Meta = u.Meta
	}
	// An empty list is recorded as [], never null (which would read as
	// "unchanged").
	if u.DebtorIDs != nil && !slices.Equal(*u.DebtorIDs, a.DebtorIDs) {
		ev.DebtorIDs = nonNilList(*u.DebtorIDs)
	}
	if u.Products != nil && !slices.EqualFunc(products, a.Products, Product.same) {
		ev.Products = nonNilList(products)
	}
	if u.Scores != nil && !slices.EqualFunc(scores, a.Scores, Score.same) {
		ev.Scores = nonNilList(scores)
	}
	if u.Mandates != nil && !slices.EqualFunc(mandates, a.Mandates, Mandate.same) {
		ev.Mandates = nonNilList(mandates)
	}
	if ev.Meta == nil && ev.DebtorIDs == nil && ev.Products == nil && ev.Scores == nil && ev.Mandates == nil {
		return nil, nil
	}
	var out []NewEvent
	return out, a.record(&out, EventAccountUpdated, ev)
}

// nonNilList is a pointer to a copy of list, [] for none.
func nonNilList[T any](list []T) *[]T {
	c := append(make([]T, 0, len(list)), list...)
	return &c
}

func (a *Account) mustBeOpen() error {
	if !a.Opened {
		return Errorf(ENOTFOUND, "account %s not found", a.ID)
	}
	return nil
}

// PostEntries posts ledger entries in order, each seeing the ones before it.
// Every entry is checked; if any is bad, no event is kept and the error
// names each bad entry as "<prefix(i)>.<field>" (prefix nil: "entries[i]").
// Re-posting a reference with the same content is a no-op; with different
// content it is a conflict.
func (a *Account) PostEntries(ins []EntryInput, at time.Time, prefix func(i int) string) ([]NewEvent, error) {
	if err := a.mustBeOpen(); err != nil {
		return nil, err
	}
	if prefix == nil {
		prefix = func(i int) string { return fmt.Sprintf("entries[%d]", i) }
	}
	var out []NewEvent
	var fe []FieldError
	conflict := false
	for i, in := range ins {
		evs, errs, isConflict := a.postEntry(in, at)
		for _, e := range errs {
			fe = append(fe, FieldError{Field: prefix(i) + "." + e.Field, Error: e.Error})
		}
		conflict = conflict || isConflict
		out = append(out, evs...)
	}
	if len(fe) > 0 {
		code, msg := EINVALID, "invalid ledger entries: nothing was posted"
		if conflict {
			code, msg = ECONFLICT, "ledger entries conflict with ones already posted: nothing was posted"
		}
		return nil, &Error{Code: code, Message: msg, Fields: fe}
	}
	return out, nil
}

func (a *Account) postEntry(in EntryInput, at time.Time) ([]NewEvent, []FieldError, bool) {
	bad := func(field, msg string) ([]NewEvent, []FieldError, bool) {
		return nil, []FieldError{{Field: field, Error: msg}}, false
	}
	if in.Reference == "" || len(in.Reference) > 200 {
		return bad("reference", "is required, at most 200 characters")
	}
	if !slices.Contains(EntryKinds, in.Kind) {
		return bad("kind", "must be one of invoice, fee, payment, adjustment, chargeback, discount, reporting")
	}
	if len(in.Meta) > 0 && (in.Meta[0] != '{' || !json.Valid(in.Meta)) {
		return bad("meta", "must be a JSON object")
	}
	if prev, ok := a.byRef[in.Reference]; ok {
		if prev.Original.sameContent(in) {
			return nil, nil, false // the same posting again: nothing to do
		}
		return nil, []FieldError{{Field: "reference", Error: fmt.Sprintf("%s was already posted with different content; amend it instead", in.Reference)}}, true
	}
	units, _ := MinorUnits(a.Currency)
	if !in.Amount.Shift(units).IsInteger() {
		return bad("amount", fmt.Sprintf("has more than %d decimal places, the minor unit of %s", units, a.Currency))
	}
	switch {
	case in.Kind == KindAdjustment && in.Amount.IsZero():
		return bad("amount", "must not be zero")
	case in.Kind == KindReporting && in.Amount.IsNegative():
		return bad("amount", "must not be negative")
	case in.Kind != KindAdjustment && in.Kind != KindReporting && !in.Amount.IsPositive():
		return bad("amount", "must be positive (only adjustments are signed)")
	}
	if in.Kind == KindInvoice && in.DueDate == "" {
		return bad("due_date", "is required for an invoice")
	}
	for _, fd := range []struct {
		field string
		date  Date
	}{{"due_date", in.DueDate}, {"original_due_date", in.OriginalDueDate}} { // in order: the error names the same field every time
		if fd.date != "" {
			if _, err := ParseDate(string(fd.date)); err != nil {
				return bad(fd.field, err.Error())
			}
		}
	}
	var target *Entry
	if in.TargetReference != "" {
		t, ok := a.byRef[in.TargetReference]
		if !ok {
			return bad("target_reference", fmt.Sprintf("no ledger entry %s in this account", in.TargetReference))
		}
		target = t
	}
	ev := EntryPosted{Entry: in, At: at, CreditApplied: decimal.Zero, ToCredit: decimal.Zero}
	switch in.Kind {
	case KindInvoice, KindFee:
		if in.Kind == KindFee && target != nil && target.Kind != KindInvoice {
			return bad("target_reference", "a fee can only belong to an invoice")
		}
		ev.CreditApplied = creditFor(a.Credit, in.Amount)
	case KindAdjustment:
		if in.Amount.IsPositive() {
			if target != nil && !target.IsDebit() {
				return bad("target_reference", "an adjustment can only refer to an invoice, fee or positive adjustment")
			}
			ev.CreditApplied = creditFor(a.Credit, in.Amount)
			break
		}
		if target != nil && !target.IsDebit() {
			return bad("target_reference", "a negative adjustment can only apply to an invoice, fee or positive adjustment")
		}
		if msg := a.reservationGuard(in.Amount.Neg()); msg != "" {
			return bad("amount", msg)
		}
		allocs, left := a.plan(in.Amount.Neg(), defaultMatchStrategy, nil, in.ProductReference, in.TargetReference)
		ev.Allocations, ev.ToCredit = allocs, left
	case KindPayment:
		if target != nil && !target.IsDebit() {
			return bad("target_reference", "a payment can only apply to an invoice, fee or positive adjustment")
		}
		if avail := a.Available(); in.Amount.GreaterThan(avail) {
			return bad("amount", fmt.Sprintf("exceeds what the account owes (%s %s available)", FormatAmount(decimal.Max(avail, decimal.Zero), a.Currency), a.Currency))
		}
		ev.Allocations, ev.ToCredit = a.plan(in.Amount, defaultMatchStrategy, nil, in.ProductReference, in.TargetReference)
	case KindDiscount:
		if target == nil || !target.IsDebit() {
			return bad("target_reference", "a discount needs the invoice or fee it discounts")
		}
		if in.Amount.GreaterThan(target.Remaining()) {
			return bad("amount", fmt.Sprintf("exceeds what is still owed on %s (%s)", target.Reference, FormatAmount(target.Remaining(), a.Currency)))
		}
		if msg := a.reservationGuard(in.Amount); msg != "" {
			return bad("amount", msg)
		}
		ev.Allocations = []Allocation{{Reference: target.Reference, Amount: in.Amount}}
	case KindChargeback:
		if target == nil || target.Kind != KindPayment {
			return bad("target_reference", "a chargeback needs the payment entry it reverses")
		}
		if left := target.Amount.Sub(target.ChargedBack); in.Amount.GreaterThan(left) {
			return bad("amount", fmt.Sprintf("exceeds what is left of payment %s to charge back (%s)", target.Reference, FormatAmount(left, a.Currency)))
		}
		already := map[string]decimal.Decimal{}
		for _, e := range a.Entries {
			if e.Kind == KindChargeback && e.TargetReference == target.Reference {
				for _, r := range e.Allocations {
					already[r.Reference] = already[r.Reference].Add(r.Amount)
				}
			}
		}
		ev.Reversals = reversePlan(target.Allocations, already, in.Amount)
		ev.CreditAllocations = a.creditPlan(ev.Reversals)
	}
	var out []NewEvent
	if err := a.record(&out, EventEntryPosted, ev); err != nil {
		return nil, []FieldError{{Field: "reference", Error: err.Error()}}, false
	}
	return out, nil, false
}

// reservationGuard refuses a reduction of what is owed that would leave less
// than the payments still pending or processing reserve: they must find
// debits to pay when they complete, so a payment never overflows into
// unallocated credit.
func (a *Account) reservationGuard(reduction decimal.Decimal) string {
	reserved := a.reserved()
	if !reserved.IsPositive() || !a.Outstanding().Sub(reduction).LessThan(reserved) {
		return ""
	}
	return fmt.Sprintf("would leave less owed than the %s %s of payments still pending; complete or fail them first", FormatAmount(reserved, a.Currency), a.Currency)
}

// creditPlan applies unallocated credit to the debits reversals re-open.
func (a *Account) creditPlan(reversals []Allocation) []Allocation {
	left := a.Credit
	var out []Allocation
	for _, r := range reversals {
		if !left.IsPositive() {
			break
		}
		x := decimal.Min(left, r.Amount)
		left = left.Sub(x)
		out = append(out, Allocation{Reference: r.Reference, Amount: x})
	}
	return out
}

func creditFor(credit, amount decimal.Decimal) decimal.Decimal {
	if !credit.IsPositive() {
		return decimal.Zero
	}
	return decimal.Min(credit, amount)
}

// Amend changes an invoice's or fee's amount (never below what is already
// paid on it), with a reason. The same amount again is a no-op.
func (a *Account) Amend(ref string, amount decimal.Decimal, reason string, at time.Time) ([]NewEvent, error) {
	if err := a.mustBeOpen(); err != nil {
		return nil, err
	}
	e, ok := a.byRef[ref]
	if !ok {
		return nil, Errorf(ENOTFOUND, "ledger entry %s not found", ref)
	}
	var fe []FieldError
	if e.Kind != KindInvoice && e.Kind != KindFee {
		return nil, &Error{Code: ECONFLICT, Reason: "not_amendable", Message: fmt.Sprintf("%s is a %s entry: only invoices and fees are amended; post an adjustment instead", ref, e.Kind)}
	}
	units, _ := MinorUnits(a.Currency)
	if !amount.IsPositive() || !amount.Shift(units).IsInteger() {
		fe = append(fe, FieldError{Field: "amount", Error: fmt.Sprintf("must be positive with at most %d decimal places", units)})
	}
	if strings.TrimSpace(reason) == "" {
		fe = append(fe, FieldError{Field: "reason", Error: "is required: amounts change only with a reason"})
	}
	if len(fe) > 0 {
		return nil, Invalid("invalid amendment", fe...)
	}
	if amount.Equal(e.Amount) {
		return nil, nil
	}
	if amount.LessThan(e.Paid) {
		return nil, &Error{Code: ECONFLICT, Reason: "below_paid", Message: fmt.Sprintf("%s %s is already paid on %s; it cannot be amended below that", FormatAmount(e.Paid, a.Currency), a.Currency, ref)}
	}
	if amount.LessThan(e.Amount) {
		if msg := a.reservationGuard(e.Amount.Sub(amount)); msg != "" {
			return nil, &Error{Code: ECONFLICT, Reason: "payments_pending", Message: msg}
		}
	}
	ev := EntryAmended{Reference: ref, Amount: amount, PreviousAmount: e.Amount, Reason: reason, CreditApplied: decimal.Zero, At: at}
	if amount.GreaterThan(e.Amount) {
		ev.CreditApplied = creditFor(a.Credit, amount.Sub(e.Paid))
	}
	var out []NewEvent
	return out, a.record(&out, EventEntryAmended, ev)
}

// RecordPayment records a payment of the account's currency. It may not
// exceed what the account owes less the payments still pending. A payment
// recorded as completed is allocated at once. Re-recording a reference with
// the same content returns the existing payment and no event.
func (a *Account) RecordPayment(id string, in PaymentInput, at time.Time) (*Payment, []NewEvent, error) {
	if err := a.mustBeOpen(); err != nil {
		return nil, nil, err
	}
	if in.Status == "" {
		in.Status = PaymentCompleted
	}
	if in.Reference != "" {
		if p, ok := a.byPayRef[in.Reference]; ok {
			prev := p.PaymentInput
			prev.Status, in.Status = "", ""
			if prev.sameContent(in) {
				return p, nil, nil
			}
			return nil, nil, &Error{Code: ECONFLICT, Reason: "duplicate_reference", Message: fmt.Sprintf("payment reference %s was already recorded with different content", in.Reference),
				Fields: []FieldError{{Field: "reference", Error: "already used by payment " + p.ID}}}
		}
	}
	if _, ok := a.byPay[id]; ok {
		return nil, nil, &Error{Code: ECONFLICT, Reason: "payment_exists", Message: fmt.Sprintf("payment %s already exists", id)}
	}
	var fe []FieldError
	units, _ := MinorUnits(a.Currency)
	if !in.Amount.IsPositive() || !in.Amount.Shift(units).IsInteger() {
		fe = append(fe, FieldError{Field: "amount", Error: fmt.Sprintf("must be positive with at most %d decimal places (%s)", units, a.Currency)})
	} else if avail := a.Available(); in.Amount.GreaterThan(avail) {
		fe = append(fe, FieldError{Field: "amount", Error: fmt.Sprintf("exceeds what the account owes (%s %s available)", FormatAmount(decimal.Max(avail, decimal.Zero), a.Currency), a.Currency)})
	}
	if in.Status != PaymentPending && in.Status != PaymentProcessing && in.Status != PaymentCompleted {
		fe = append(fe, FieldError{Field: "status", Error: "must be pending, processing or completed"})
	}
	if in.MatchStrategy != "" && !slices.Contains(MatchStrategies, in.MatchStrategy) {
		fe = append(fe, FieldError{Field: "match_strategy", Error: "must be one of ORDERED_LEDGER_ENTRIES, ORDERED_INVOICES_WITH_FEES_THEN_ACCOUNT_ENTRIES, ACCOUNT_ENTRIES_THEN_ORDERED_INVOICES_WITH_FEES, CUSTOM_ORDERED_FEES"})
	}
	if len(in.Meta) > 0 && (in.Meta[0] != '{' || !json.Valid(in.Meta)) {
		fe = append(fe, FieldError{Field: "meta", Error: "must be a JSON object"})
	}
	if len(fe) > 0 {
		return nil, nil, Invalid("invalid payment", fe...)
	}
	var out []NewEvent
	if err := a.record(&out, EventPaymentRecorded, PaymentRecorded{Payment: in, ID: id, At: at}); err != nil {
		return nil, nil, err
	}
	if in.Status == PaymentCompleted {
		if err := a.complete(&out, a.byPay[id], at); err != nil {
			return nil, nil, err
		}
	}
	return a.byPay[id], out, nil
}

func (a *Account) complete(out *[]NewEvent, p *Payment, at time.Time) error {
	allocs, left := a.plan(p.Amount, p.MatchStrategy, p.FeeOrder, p.ProductReference, "")
	if allocs == nil {
		allocs = []Allocation{}
	}
	return a.record(out, EventPaymentCompleted, PaymentCompletion{PaymentID: p.ID, Allocations: allocs, ToCredit: left, At: at})
}

// transition moves payment id from one of from to the state ev records.
func (a *Account) payment(id string, from ...PaymentStatus) (*Payment, error) {
	if err := a.mustBeOpen(); err != nil {
		return nil, err
	}
	p, ok := a.byPay[id]
	if !ok {
		return nil, Errorf(ENOTFOUND, "payment %s not found", id)
	}
	if !slices.Contains(from, p.Status) {
		want := make([]string, len(from))
		for i, s := range from {
			want[i] = string(s)
		}
		return nil, &Error{Code: ECONFLICT, Reason: "invalid_transition", Message: fmt.Sprintf("payment %s is %s; this needs it %s", id, p.Status, strings.Join(want, " or "))}
	}
	return p, nil
}

// ProcessPayment moves a pending payment to processing.
func (a *Account) ProcessPayment(id string, at time.Time) ([]NewEvent, error) {
	if _, err := a.payment(id, PaymentPending); err != nil {
		return nil, err
	}
	var out []NewEvent
	return out, a.record(&out, EventPaymentProcessed, PaymentStatusChanged{PaymentID: id, At: at})
}

// CompletePayment completes a pending or processing payment and allocates it.
func (a *Account) CompletePayment(id string, at time.Time) ([]NewEvent, error) {
	p, err := a.payment(id, PaymentPending, PaymentProcessing)
	if err != nil {
		return nil, err
	}
	var out []NewEvent
	return out, a.complete(&out, p, at)
}

// FailPayment marks a pending or processing payment failed.
func (a *Account) FailPayment(id, reason string, at time.Time) ([]NewEvent, error) {
	if _, err := a.payment(id, PaymentPending, PaymentProcessing); err != nil {
		return nil, err
	}
	var out []NewEvent
	return out, a.record(&out, EventPaymentFailed, PaymentStatusChanged{PaymentID: id, Reason: reason, At: at})
}

// RefundPayment refunds a completed payment in full: its allocations are
// reversed and what it paid is owed again.
func (a *Account) RefundPayment(id, reason string, at time.Time) ([]NewEvent, error) {
	return a.reverse(id, EventPaymentRefunded, reason, at)
}

// ChargebackPayment reverses a completed payment the payer's bank took back.
func (a *Account) ChargebackPayment(id, reason string, at time.Time) ([]NewEvent, error) {
	return a.reverse(id, EventPaymentCharged, reason, at)
}

func (a *Account) reverse(id, typ, reason string, at time.Time) ([]NewEvent, error) {
	p, err := a.payment(id, PaymentCompleted)
	if err != nil {
		return nil, err
	}
	rev := reversePlan(p.Allocations, map[string]decimal.Decimal{}, p.Amount)
	var out []NewEvent
	return out, a.record(&out, typ, PaymentReversed{PaymentID: id, Reversals: rev, CreditAllocations: a.creditPlan(rev), Reason: reason, At: at})
}
