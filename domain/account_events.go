package domain

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// Account event types (published contract: fields are only ever added).
const (
	EventAccountOpened    = "account.opened"
	EventAccountUpdated   = "account.updated"
	EventEntryPosted      = "ledger_entry.posted"
	EventEntryAmended     = "ledger_entry.amended"
	EventPaymentRecorded  = "payment.recorded"
	EventPaymentProcessed = "payment.processing"
	EventPaymentCompleted = "payment.completed"
	EventPaymentFailed    = "payment.failed"
	EventPaymentRefunded  = "payment.refunded"
	EventPaymentCharged   = "payment.charged_back"
)

// AccountOpened opens an account.
type AccountOpened struct {
	Reference string          `json:"reference,omitempty"`
	Currency  string          `json:"currency"`
	DebtorIDs []string        `json:"debtor_ids"`
	Products  []Product       `json:"products,omitempty"`
	Scores    []Score         `json:"scores,omitempty"`
	Mandates  []Mandate       `json:"mandates,omitempty"`
	Meta      json.RawMessage `json:"meta,omitempty"`
	Sandbox   bool            `json:"sandbox,omitempty"`
	At        time.Time       `json:"at"`
}

// AccountUpdated replaces the attributes it carries (nil = unchanged).
type AccountUpdated struct {
	Meta      json.RawMessage `json:"meta,omitempty"`
	DebtorIDs *[]string       `json:"debtor_ids,omitempty"`
	Products  *[]Product      `json:"products,omitempty"`
	Scores    *[]Score        `json:"scores,omitempty"`
	Mandates  *[]Mandate      `json:"mandates,omitempty"`
	At        time.Time       `json:"at"`
}

// EntryPosted records a ledger entry and what the domain decided for it:
// for a credit, the debits it was allocated to; for a debit, how much
// unallocated credit it consumed; for a chargeback, the allocations of its
// payment it reversed; for a negative adjustment, what became unallocated
// credit.
type EntryPosted struct {
	Entry         EntryInput      `json:"entry"`
	Allocations   []Allocation    `json:"allocations,omitempty"`
	CreditApplied decimal.Decimal `json:"credit_applied"`
	Reversals     []Allocation    `json:"reversals,omitempty"`
	// CreditAllocations: unallocated credit applied to the debits a
	// chargeback re-opened.
	CreditAllocations []Allocation    `json:"credit_allocations,omitempty"`
	ToCredit          decimal.Decimal `json:"to_credit"`
	At                time.Time       `json:"at"`
}

// EntryAmended changes an invoice's or fee's amount, with a reason.
type EntryAmended struct {
	Reference      string          `json:"reference"`
	Amount         decimal.Decimal `json:"amount"`
	PreviousAmount decimal.Decimal `json:"previous_amount"`
	Reason         string          `json:"reason"`
	CreditApplied  decimal.Decimal `json:"credit_applied"`
	At             time.Time       `json:"at"`
}

// PaymentRecorded records a payment (status pending, processing or
// completed; a completed one is followed by PaymentCompleted).
type PaymentRecorded struct {
	Payment PaymentInput `json:"payment"`
	ID      string       `json:"id"`
	At      time.Time    `json:"at"`
}

// PaymentStatusChanged moves a payment to processing or failed.
type PaymentStatusChanged struct {
	PaymentID string    `json:"payment_id"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

// PaymentCompletion applies a payment to the ledger with its allocations.
type PaymentCompletion struct {
	PaymentID   string          `json:"payment_id"`
	Allocations []Allocation    `json:"allocations"`
	ToCredit    decimal.Decimal `json:"to_credit"` // what no open debit could take
	At          time.Time       `json:"at"`
}

// PaymentReversed refunds or charges back a completed payment, reversing
// its allocations.
type PaymentReversed struct {
	PaymentID string       `json:"payment_id"`
	Reversals []Allocation `json:"reversals"`
	// CreditAllocations: unallocated credit applied to the debits the
	// reversal re-opened.
	CreditAllocations []Allocation `json:"credit_allocations,omitempty"`
	Reason            string       `json:"reason,omitempty"`
	At                time.Time    `json:"at"`
}

// record applies a new event to a and returns it encoded, so commands build
// on the state their own earlier events produced.
func (a *Account) record(out *[]NewEvent, typ string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("account %s: encode %s: %w", a.ID, typ, err)
	}
	if err := a.Apply(typ, data); err != nil {
		return err
	}
	*out = append(*out, NewEvent{Type: typ, Data: data})
	return nil
}

// Apply folds one event into the account: the only way its state changes.
func (a *Account) Apply(typ string, data json.RawMessage) error {
	fail := func(err error) error { return fmt.Errorf("account %s: apply %s: %w", a.ID, typ, err) }
	switch typ {
	case EventAccountOpened:
		var e AccountOpened
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		a.UpdatedAt = e.At
		a.Opened, a.Reference, a.Currency, a.DebtorIDs, a.Sandbox, a.OpenedAt = true, e.Reference, e.Currency, e.DebtorIDs, e.Sandbox, e.At
		a.Products, a.Scores, a.Mandates, a.Meta = e.Products, e.Scores, e.Mandates, e.Meta
	case EventAccountTriggered:
		var e Triggered
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		a.Triggers++
	case EventAccountUpdated:
		var e AccountUpdated
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		a.UpdatedAt = e.At
		if e.Meta != nil {
			a.Meta = e.Meta
		}
		if e.DebtorIDs != nil {
			a.DebtorIDs = *e.DebtorIDs
		}
		if e.Products != nil {
			a.Products = *e.Products
		}
		if e.Scores != nil {
			a.Scores = *e.Scores
		}
		if e.Mandates != nil {
			a.Mandates = *e.Mandates
		}
	case EventEntryPosted:
		var e EntryPosted
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		a.UpdatedAt = e.At
		en := &Entry{EntryInput: e.Entry, Original: e.Entry, Seq: len(a.Entries) + 1, PostedAt: e.At, Paid: decimal.Zero, ChargedBack: decimal.Zero}
		if en.Kind == KindFee && en.DueDate == "" || en.Kind == KindAdjustment && en.DueDate == "" {
			en.DueDate = DateOf(e.At)
		}
		if en.Kind == KindInvoice && en.OriginalDueDate == "" {
			en.OriginalDueDate = en.DueDate
		}
		a.Entries = append(a.Entries, en)
		a.byRef[en.Reference] = en
		switch {
		case en.Kind == KindChargeback:
			en.Allocations, en.CreditAllocations = e.Reversals, e.CreditAllocations
			if t, ok := a.byRef[en.TargetReference]; ok {
				t.ChargedBack = t.ChargedBack.Add(en.Amount)
			}
			if err := a.unallocate(e.Reversals, e.At); err != nil {
				return fail(err)
			}
			if err := a.applyCredit(e.CreditAllocations, e.At); err != nil {
				return fail(err)
			}
		case en.IsDebit():
			a.Credit = a.Credit.Sub(e.CreditApplied)
			en.Paid = e.CreditApplied
			a.settle(en, e.At)
		case en.Kind != KindReporting:
			en.Allocations = e.Allocations
			a.Credit = a.Credit.Add(e.ToCredit)
			if err := a.allocateTo(e.Allocations, e.At); err != nil {
				return fail(err)
			}
		}
	case EventEntryAmended:
		var e EntryAmended
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		a.UpdatedAt = e.At
		en, ok := a.byRef[e.Reference]
		if !ok {
			return fail(fmt.Errorf("no entry %s", e.Reference))
		}
		en.Amount = e.Amount
		en.AmendmentCount++
		a.Credit = a.Credit.Sub(e.CreditApplied)
		en.Paid = en.Paid.Add(e.CreditApplied)
		if en.Paid.LessThan(en.Amount) {
			en.SettledAt = nil
		}
		a.settle(en, e.At)
	case EventPaymentRecorded:
		var e PaymentRecorded
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		a.UpdatedAt = e.At
		p := &Payment{PaymentInput: e.Payment, ID: e.ID, Status: e.Payment.Status, RecordedAt: e.At}
		if p.Status == PaymentCompleted {
			p.Status = PaymentPending // PaymentCompleted follows and completes it
		}
		a.Payments = append(a.Payments, p)
		a.pending = a.pending.Add(p.Amount) // pending or processing: reserved
		a.byPay[p.ID] = p
		if p.Reference != "" {
			a.byPayRef[p.Reference] = p
		}
	case EventPaymentProcessed, EventPaymentFailed:
		var e PaymentStatusChanged
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		a.UpdatedAt = e.At
		p, ok := a.byPay[e.PaymentID]
		if !ok {
			return fail(fmt.Errorf("no payment %s", e.PaymentID))
		}
		if typ == EventPaymentFailed {
			a.release(p)
			p.Status, p.FailureReason, p.FailedAt = PaymentFailed, e.Reason, &e.At
		} else {
			p.Status = PaymentProcessing
		}
	case EventPaymentCompleted:
		var e PaymentCompletion
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		a.UpdatedAt = e.At
		p, ok := a.byPay[e.PaymentID]
		if !ok {
			return fail(fmt.Errorf("no payment %s", e.PaymentID))
		}
		a.release(p)
		p.Status, p.Allocations, p.CompletedAt, p.ToCredit = PaymentCompleted, e.Allocations, &e.At, e.ToCredit
		a.Credit = a.Credit.Add(e.ToCredit)
		if err := a.allocateTo(e.Allocations, e.At); err != nil {
			return fail(err)
		}
	case EventPaymentRefunded, EventPaymentCharged:
		var e PaymentReversed
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		a.UpdatedAt = e.At
		p, ok := a.byPay[e.PaymentID]
		if !ok {
			return fail(fmt.Errorf("no payment %s", e.PaymentID))
		}
		p.Status, p.ReversedAt, p.ReversalReason, p.CreditAllocations = PaymentRefunded, &e.At, e.Reason, e.CreditAllocations
		if typ == EventPaymentCharged {
			p.Status = PaymentChargedBack
		}
		a.Credit = a.Credit.Sub(p.ToCredit)
		if err := a.unallocate(e.Reversals, e.At); err != nil {
			return fail(err)
		}
		if err := a.applyCredit(e.CreditAllocations, e.At); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("unknown event type"))
	}
	a.Version++
	return nil
}

func (a *Account) allocateTo(allocs []Allocation, at time.Time) error {
	for _, al := range allocs {
		d, ok := a.byRef[al.Reference]
		if !ok {
			return fmt.Errorf("allocation to unknown entry %s", al.Reference)
		}
		d.Paid = d.Paid.Add(al.Amount)
		a.settle(d, at)
	}
	return nil
}

// applyCredit moves unallocated credit onto debits.
func (a *Account) applyCredit(allocs []Allocation, at time.Time) error {
	for _, al := range allocs {
		a.Credit = a.Credit.Sub(al.Amount)
	}
	return a.allocateTo(allocs, at)
}

func (a *Account) unallocate(allocs []Allocation, at time.Time) error {
	for _, al := range allocs {
		d, ok := a.byRef[al.Reference]
		if !ok {
			return fmt.Errorf("reversal of unknown entry %s", al.Reference)
		}
		d.Paid = d.Paid.Sub(al.Amount)
		if d.Paid.LessThan(d.Amount) {
			d.SettledAt = nil
		}
	}
	return nil
}

// settle stamps a debit settled when what was paid reaches its amount.
func (a *Account) settle(d *Entry, at time.Time) {
	if d.IsDebit() && d.SettledAt == nil && !d.Paid.LessThan(d.Amount) {
		t := at
		d.SettledAt = &t
	}
}

// release drops p from the reserved sum if it was still reserving.
func (a *Account) release(p *Payment) {
	if p.Status == PaymentPending || p.Status == PaymentProcessing {
		a.pending = a.pending.Sub(p.Amount)
	}
}
