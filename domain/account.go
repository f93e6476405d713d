package domain

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/shopspring/decimal"
)

// EntryKind is a ledger entry's kind.
type EntryKind string

// The seven ledger entry kinds. Debits (invoice, fee, positive adjustment)
// raise what is owed; credits (payment, discount, negative adjustment) lower
// it and are allocated to debits; a chargeback reverses a payment's
// allocations; reporting entries never move a balance.
const (
	KindInvoice    EntryKind = "invoice"
	KindFee        EntryKind = "fee"
	KindPayment    EntryKind = "payment"
	KindAdjustment EntryKind = "adjustment"
	KindChargeback EntryKind = "chargeback"
	KindDiscount   EntryKind = "discount"
	KindReporting  EntryKind = "reporting"
)

// EntryKinds lists every kind.
var EntryKinds = []EntryKind{KindInvoice, KindFee, KindPayment, KindAdjustment, KindChargeback, KindDiscount, KindReporting}

// EntryInput is a ledger entry as posted. Amount is in major units of the
// account's currency; signed for adjustments, positive otherwise.
type EntryInput struct {
	Reference        string          `json:"reference"`
	Kind             EntryKind       `json:"kind"`
	Amount           decimal.Decimal `json:"amount"`
	DueDate          Date            `json:"due_date,omitempty"`
	OriginalDueDate  Date            `json:"original_due_date,omitempty"`
	ProductReference string          `json:"product_reference,omitempty"`
	TargetReference  string          `json:"target_reference,omitempty"` // fee → its invoice; payment, discount, adjustment, chargeback → what they apply to
	FeeType          string          `json:"fee_type,omitempty"`
	Reason           string          `json:"reason,omitempty"`
	PaymentReference string          `json:"payment_reference,omitempty"`
	Provider         string          `json:"provider,omitempty"`
	Meta             json.RawMessage `json:"meta,omitempty"`
}

// sameContent reports whether two postings of one reference say the same.
func (e EntryInput) sameContent(o EntryInput) bool {
	return e.Reference == o.Reference && e.Kind == o.Kind && e.Amount.Equal(o.Amount) && e.DueDate == o.DueDate &&
		e.OriginalDueDate == o.OriginalDueDate && e.ProductReference == o.ProductReference && e.TargetReference == o.TargetReference &&
		e.FeeType == o.FeeType && e.Reason == o.Reason && e.PaymentReference == o.PaymentReference && e.Provider == o.Provider &&
		jsonEqual(e.Meta, o.Meta)
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b) || string(a) == "null" || string(b) == "null" || string(a) == "{}" || string(b) == "{}"
	}
	var x, y any
	if decodeNumbers(a, &x) != nil || decodeNumbers(b, &y) != nil {
		return string(a) == string(b)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// decodeNumbers decodes JSON keeping numbers exact and normalised, so 1 and
// 1.0 compare equal but two 20-digit integers that differ do not.
func decodeNumbers(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	*v = normalizeNumbers(*v)
	return nil
}

func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if d, err := decimal.NewFromString(string(t)); err == nil {
			return d.String()
		}
	case []any:
		for i := range t {
			t[i] = normalizeNumbers(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = normalizeNumbers(t[k])
		}
	}
	return v
}

// Allocation is part of a credit applied to a debit entry (by reference).
type Allocation struct {
	Reference string          `json:"reference"`
	Amount    decimal.Decimal `json:"amount"`
}

// Entry is a ledger entry in an account.
type Entry struct {
	EntryInput
	Original    EntryInput      // as first posted: re-posting it is a no-op
	Seq         int             // posting order
	PostedAt    time.Time       //
	Paid        decimal.Decimal // debits: credits allocated to it
	Allocations []Allocation    // credits: where they went; chargebacks: what they reversed
	// CreditAllocations: chargebacks: unallocated credit applied to the debits they re-opened
	CreditAllocations []Allocation
	ChargedBack       decimal.Decimal // payment entries: reversed by chargebacks so far
	SettledAt         *time.Time      // debits: when Paid reached Amount
	AmendmentCount    int
}

// IsDebit reports whether the entry raises what is owed.
func (e *Entry) IsDebit() bool {
	return e.Kind == KindInvoice || e.Kind == KindFee || (e.Kind == KindAdjustment && e.Amount.IsPositive())
}

// Remaining is what is still owed on a debit.
func (e *Entry) Remaining() decimal.Decimal {
	if !e.IsDebit() {
		return decimal.Zero
	}
	return e.Amount.Sub(e.Paid)
}

// Account is the consistency boundary for money: its ledger entries, its
// payments and their allocations. State changes only through Apply.
type Account struct {
	ID, TenantID, Reference, Currency string
	Version                           int64
	Opened                            bool
	Sandbox                           bool
	OpenedAt                          time.Time
	UpdatedAt                         time.Time // of the last event
	DebtorIDs                         []string
	Products                          []Product
	Scores                            []Score
	Mandates                          []Mandate
	Meta                              json.RawMessage

	Entries  []*Entry
	Payments []*Payment
	// Credit is credit not allocated to any debit (from negative adjustments
	// larger than what was owed); it is applied to the next debits.
	Credit decimal.Decimal
	// Triggers counts the custom triggers recorded against the account.
	Triggers int

	pending  decimal.Decimal // payments pending or processing: reserved()
	byRef    map[string]*Entry
	byPay    map[string]*Payment
	byPayRef map[string]*Payment
}

// Product, Score and Mandate are account attributes integrators keep on it.
type Product struct {
	Reference        string          `json:"reference"`
	Type             string          `json:"type,omitempty"`
	Name             string          `json:"name,omitempty"`
	Code             string          `json:"code,omitempty"`
	PaymentReference string          `json:"payment_reference,omitempty"`
	Meta             json.RawMessage `json:"meta,omitempty"`
}

// Score is a risk or collection score of an account.
type Score struct {
	Type     string          `json:"type"`
	Value    decimal.Decimal `json:"value"`
	Provider string          `json:"provider,omitempty"`
	Meta     json.RawMessage `json:"meta,omitempty"`
}

// Mandate is a payment mandate (e.g. SEPA direct debit) on an account.
type Mandate struct {
	ID        string          `json:"id"`
	Type      string          `json:"type,omitempty"`
	Reference string          `json:"reference,omitempty"`
	Meta      json.RawMessage `json:"meta,omitempty"`
}

// NewAccount returns the empty state of account id before its first event.
func NewAccount(tenantID, id string) *Account {
	return &Account{ID: id, TenantID: tenantID, byRef: map[string]*Entry{}, byPay: map[string]*Payment{}, byPayRef: map[string]*Payment{}}
}

// AppliedEvents implements Aggregate.
func (a *Account) AppliedEvents() int64 { return a.Version }

// Entry returns the entry with reference ref.
func (a *Account) Entry(ref string) (*Entry, bool) {
	e, ok := a.byRef[ref]
	return e, ok
}

// Payment returns the payment with id.
func (a *Account) Payment(id string) (*Payment, bool) {
	p, ok := a.byPay[id]
	return p, ok
}

// PaymentByReference returns the payment with the creditor's reference.
func (a *Account) PaymentByReference(ref string) (*Payment, bool) {
	p, ok := a.byPayRef[ref]
	return p, ok
}

// Outstanding is what the account owes now: open debit remainders minus
// unallocated credit.
func (a *Account) Outstanding() decimal.Decimal {
	sum := decimal.Zero
	for _, e := range a.Entries {
		sum = sum.Add(e.Remaining())
	}
	return sum.Sub(a.Credit)
}

// reserved is the sum of payments recorded but not yet completed or failed
// (kept by Apply: a payment decision does not scan the account's payments).
func (a *Account) reserved() decimal.Decimal { return a.pending }

// Available is what a new payment may be at most: outstanding less the
// payments still pending or processing.
func (a *Account) Available() decimal.Decimal { return a.Outstanding().Sub(a.reserved()) }
