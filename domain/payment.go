package domain

import (
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/shopspring/decimal"
)

// PaymentStatus is where a payment is in its life:
// pending → processing → completed | failed; completed → refunded |
// charged_back. Only completed payments move the balance.
type PaymentStatus string

// Payment statuses.
const (
	PaymentPending     PaymentStatus = "pending"
	PaymentProcessing  PaymentStatus = "processing"
	PaymentCompleted   PaymentStatus = "completed"
	PaymentFailed      PaymentStatus = "failed"
	PaymentRefunded    PaymentStatus = "refunded"
	PaymentChargedBack PaymentStatus = "charged_back"
)

// MatchStrategy orders the open debits a payment is allocated to.
type MatchStrategy string

// Match strategies (Receeve's names). The default is oldest first.
const (
	MatchOrderedEntries              MatchStrategy = "ORDERED_LEDGER_ENTRIES"
	MatchInvoicesWithFeesThenAccount MatchStrategy = "ORDERED_INVOICES_WITH_FEES_THEN_ACCOUNT_ENTRIES"
	MatchAccountThenInvoicesWithFees MatchStrategy = "ACCOUNT_ENTRIES_THEN_ORDERED_INVOICES_WITH_FEES"
	MatchCustomOrderedFees           MatchStrategy = "CUSTOM_ORDERED_FEES"
	defaultMatchStrategy                           = MatchOrderedEntries
)

// MatchStrategies lists every strategy.
var MatchStrategies = []MatchStrategy{MatchOrderedEntries, MatchInvoicesWithFeesThenAccount, MatchAccountThenInvoicesWithFees, MatchCustomOrderedFees}

// PaymentInput is a payment as recorded.
type PaymentInput struct {
	Reference        string          `json:"reference,omitempty"` // the creditor's; unique per account
	Amount           decimal.Decimal `json:"amount"`
	Method           string          `json:"method,omitempty"` // card, bank_transfer, direct_debit, cash …
	Provider         string          `json:"provider,omitempty"`
	TrackingID       string          `json:"tracking_id,omitempty"`
	MatchStrategy    MatchStrategy   `json:"match_strategy,omitempty"`
	ProductReference string          `json:"product_reference,omitempty"` // allocate to this product's entries first
	FeeOrder         []string        `json:"fee_order,omitempty"`         // fee types, for CUSTOM_ORDERED_FEES
	Status           PaymentStatus   `json:"status"`                      // initial: pending, processing or completed
	Meta             json.RawMessage `json:"meta,omitempty"`
}

func (p PaymentInput) sameContent(o PaymentInput) bool {
	return p.Reference == o.Reference && p.Amount.Equal(o.Amount) && p.Method == o.Method && p.Provider == o.Provider &&
		p.TrackingID == o.TrackingID && p.MatchStrategy == o.MatchStrategy && p.ProductReference == o.ProductReference &&
		slices.Equal(p.FeeOrder, o.FeeOrder) && jsonEqual(p.Meta, o.Meta)
}

// Payment is a payment on an account.
type Payment struct {
	PaymentInput
	ID             string
	Status         PaymentStatus
	Allocations    []Allocation
	ToCredit       decimal.Decimal // part no open debit could take at completion
	RecordedAt     time.Time
	CompletedAt    *time.Time
	FailedAt       *time.Time
	FailureReason  string
	ReversedAt     *time.Time
	ReversalReason string
	// CreditAllocations: on reversal, unallocated credit applied to the
	// debits it re-opened.
	CreditAllocations []Allocation
}

// effectiveDue is the date a debit is due from (posting date if none).
func (e *Entry) effectiveDue() Date {
	if e.DueDate != "" {
		return e.DueDate
	}
	return DateOf(e.PostedAt)
}

// oldestFirst orders debits by due date, then posting order.
func oldestFirst(es []*Entry) {
	sort.SliceStable(es, func(i, j int) bool {
		di, dj := es[i].effectiveDue(), es[j].effectiveDue()
		if di != dj {
			return di < dj
		}
		return es[i].Seq < es[j].Seq
	})
}

// order returns the open debits in the order strategy pays them.
func (a *Account) order(strategy MatchStrategy, feeOrder []string) []*Entry {
	var open []*Entry
	for _, e := range a.Entries {
		if e.IsDebit() && e.Remaining().IsPositive() {
			open = append(open, e)
		}
	}
	oldestFirst(open)
	if strategy == "" {
		strategy = defaultMatchStrategy
	}
	invoiceGroups := func(es []*Entry) (groups, rest []*Entry) {
		fees := map[string][]*Entry{}
		for _, e := range es {
			if e.Kind == KindFee && e.TargetReference != "" {
				if t, ok := a.byRef[e.TargetReference]; ok && t.Kind == KindInvoice {
					fees[e.TargetReference] = append(fees[e.TargetReference], e)
				}
			}
		}
		inGroup := map[*Entry]bool{}
		var invoices []*Entry // every invoice, open or not: its open fees follow it
		for _, e := range a.Entries {
			if e.Kind == KindInvoice {
				invoices = append(invoices, e)
			}
		}
		oldestFirst(invoices)
		for _, inv := range invoices {
			if inv.Remaining().IsPositive() {
				groups = append(groups, inv)
				inGroup[inv] = true
			}
			for _, f := range fees[inv.Reference] {
				groups = append(groups, f)
				inGroup[f] = true
			}
		}
		for _, e := range es {
			if !inGroup[e] {
				rest = append(rest, e)
			}
		}
		return groups, rest
	}
	switch strategy {
	case MatchInvoicesWithFeesThenAccount:
		g, rest := invoiceGroups(open)
		return append(g, rest...)
	case MatchAccountThenInvoicesWithFees:
		g, rest := invoiceGroups(open)
		return append(rest, g...)
	case MatchCustomOrderedFees:
		rank := func(e *Entry) int {
			if e.Kind != KindFee {
				return len(feeOrder) + 1
			}
			if i := slices.Index(feeOrder, e.FeeType); i >= 0 {
				return i
			}
			return len(feeOrder)
		}
		sort.SliceStable(open, func(i, j int) bool { return rank(open[i]) < rank(open[j]) })
		return open
	}
	return open
}

// plan allocates amount over the open debits: first target (if any), then
// the entries of product (if any), then the rest, each in strategy order.
// It returns the allocations and what could not be allocated.
func (a *Account) plan(amount decimal.Decimal, strategy MatchStrategy, feeOrder []string, product, target string) ([]Allocation, decimal.Decimal) {
	left := amount
	var out []Allocation
	taken := map[string]decimal.Decimal{}
	take := func(e *Entry) {
		if !left.IsPositive() {
			return
		}
		avail := e.Remaining().Sub(taken[e.Reference])
		if !avail.IsPositive() {
			return
		}
		x := decimal.Min(avail, left)
		taken[e.Reference] = taken[e.Reference].Add(x)
		left = left.Sub(x)
		for i := range out {
			if out[i].Reference == e.Reference {
				out[i].Amount = out[i].Amount.Add(x)
				return
			}
		}
		out = append(out, Allocation{Reference: e.Reference, Amount: x})
	}
	if t, ok := a.byRef[target]; ok && t.IsDebit() {
		take(t)
	}
	ordered := a.order(strategy, feeOrder)
	if product != "" {
		for _, e := range ordered {
			if e.ProductReference == product {
				take(e)
			}
		}
	}
	for _, e := range ordered {
		take(e)
	}
	return out, left
}

// reversePlan picks allocations to reverse, latest first, up to amount.
func reversePlan(allocs []Allocation, already map[string]decimal.Decimal, amount decimal.Decimal) []Allocation {
	left := amount
	var out []Allocation
	for i := len(allocs) - 1; i >= 0 && left.IsPositive(); i-- {
		al := allocs[i]
		avail := al.Amount.Sub(already[al.Reference])
		if !avail.IsPositive() {
			continue
		}
		x := decimal.Min(avail, left)
		left = left.Sub(x)
		already[al.Reference] = already[al.Reference].Add(x)
		out = append(out, Allocation{Reference: al.Reference, Amount: x})
	}
	return out
}
