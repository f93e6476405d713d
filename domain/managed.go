package domain

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// Managed claims follow an invoice ledger entry of their account: the
// claim sync (workers.ClaimSync) creates one per invoice and keeps its
// amount, payments, fees and due date in step with the ledger. The ledger
// entry is the truth, so the commands that would make a managed claim
// disagree with it (Credit, Debit, Recreate, and Update of current_due_date
// or total_fees) are refused with a 409 managed_claim: amend the ledger
// entry instead. Pause, resume, resolve, stop and the other fields stay the
// creditor's.

// Reasons the sync records on the amount changes it makes.
const (
	ManagedReasonAmended   = "ledger entry amended"
	ManagedReasonAllocated = "allocated in the ledger"
	ManagedReasonReversed  = "payment reversed in the ledger"
)

// ManagedClaimID is the id of the managed claim that follows invoice entry
// entryRef of account accountID: a valid clm_<ULID> computed, not drawn —
// its time is the account id's (0 if that is no ULID), its entropy the first
// 10 bytes of SHA-256(accountID "\x00" entryRef) — so every syncer, however
// many race, addresses the same stream.
func ManagedClaimID(accountID, entryRef string) string {
	return DerivedID(PrefixClaim, accountID, accountID, entryRef)
}

// Managed reports whether the claim follows a ledger entry.
func (c *Claim) Managed() bool { return c.EntryReference != "" }

// refuseManaged is the 409 for a command that would make a managed claim
// disagree with its ledger entry (field: the field it would change, if any).
func (c *Claim) refuseManaged(command string, fields ...string) error {
	if !c.Managed() {
		return nil
	}
	err := &Error{Code: ECONFLICT, Reason: "managed_claim",
		Message: fmt.Sprintf("claim %s follows ledger entry %s of account %s and cannot be changed by %s: amend the ledger entry instead",
			c.ID, c.EntryReference, c.AccountID, command)}
	for _, f := range fields {
		err.Fields = append(err.Fields, FieldError{Field: f, Error: "follows ledger entry " + c.EntryReference + ": amend the ledger entry instead"})
	}
	return err
}

// ClaimPaymentReversed is the data of claim.payment_reversed: a payment
// allocated to a managed claim was refunded or charged back in the ledger,
// so the claim's paid sum falls and its amount rises by Amount.
type ClaimPaymentReversed = ClaimAmountChanged

// ManagedRefs returns the ledger entry references an account event touches
// in ways a managed claim follows: entries posted (and a fee's invoice),
// amended, paid, or re-opened by a reversal. Which of them are invoices,
// and which invoice a fee belongs to, only the account knows: see
// (*ManagedLedger).InvoiceOf. Other events touch none.
func ManagedRefs(typ string, data json.RawMessage) ([]string, error) {
	var refs []string
	seen := map[string]bool{}
	add := func(rs ...string) {
		for _, r := range rs {
			if r != "" && !seen[r] {
				seen[r] = true
				refs = append(refs, r)
			}
		}
	}
	allocs := func(as ...[]Allocation) {
		for _, list := range as {
			for _, a := range list {
				add(a.Reference)
			}
		}
	}
	switch typ {
	case EventEntryPosted:
		var e EntryPosted
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		add(e.Entry.Reference)
		if e.Entry.Kind == KindFee {
			add(e.Entry.TargetReference)
		}
		allocs(e.Allocations, e.Reversals, e.CreditAllocations)
	case EventEntryAmended:
		var e EntryAmended
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		add(e.Reference)
	case EventPaymentCompleted:
		var e PaymentCompletion
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		allocs(e.Allocations)
	case EventPaymentRefunded, EventPaymentCharged:
		var e PaymentReversed
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		allocs(e.Reversals, e.CreditAllocations)
	}
	return refs, nil
}

// ManagedLedger is an account as its managed claims see it: its invoices
// and the fees charged on each, indexed once. Build it for one state of
// the account and sync any number of its claims with it; it must not
// outlive that state.
type ManagedLedger struct {
	acct *Account
	fees map[string]decimal.Decimal // invoice reference → sum of its fees' amounts
}

// NewManagedLedger indexes acct.
func NewManagedLedger(acct *Account) *ManagedLedger {
	l := &ManagedLedger{acct: acct, fees: map[string]decimal.Decimal{}}
	for _, e := range acct.Entries {
		if e.Kind == KindFee && e.TargetReference != "" {
			l.fees[e.TargetReference] = l.fees[e.TargetReference].Add(e.Amount)
		}
	}
	return l
}

// InvoiceOf returns the invoice whose managed claim follows entry ref: the
// entry itself if it is an invoice, the invoice a fee belongs to; ok is
// false for any other entry (and an unknown one).
func (l *ManagedLedger) InvoiceOf(ref string) (invoice string, ok bool) {
	e, found := l.acct.Entry(ref)
	if !found {
		return "", false
	}
	switch e.Kind {
	case KindInvoice:
		return e.Reference, true
	case KindFee:
		if t, found := l.acct.Entry(e.TargetReference); found && t.Kind == KindInvoice {
			return t.Reference, true
		}
	}
	return "", false
}

// input is the managed claim of invoice e as created.
func (l *ManagedLedger) input(e *Entry) ClaimInput {
	a := l.acct
	in := ClaimInput{Reference: e.Reference, AccountID: a.ID, EntryReference: e.Reference, Amount: e.Amount, Currency: a.Currency,
		TotalFees: l.fees[e.Reference], OriginalDueDate: e.OriginalDueDate, CurrentDueDate: e.DueDate, ProductReference: e.ProductReference}
	if in.OriginalDueDate == "" {
		in.OriginalDueDate = e.DueDate
	}
	if in.OriginalDueDate == "" {
		in.OriginalDueDate = DateOf(e.PostedAt)
	}
	if len(a.DebtorIDs) > 0 {
		in.PrimaryDebtorID = a.DebtorIDs[0]
	}
	return in
}

// SyncWithEntry brings c, the managed claim of invoice entryRef of acct,
// in line with the account (see (*ManagedLedger).Sync). To sync several
// claims of one account, build its ManagedLedger once.
func (c *Claim) SyncWithEntry(acct *Account, entryRef string, at time.Time) ([]NewEvent, error) {
	return NewManagedLedger(acct).Sync(c, entryRef, at)
}

// Sync is the decision that brings c, the managed claim of invoice entryRef
// (its stream is ManagedClaimID(account, entryRef)), in line with the
// account:
//
//   - not created yet: claim.created from the invoice (amount, currency,
//     fees, due dates, product, the account's first debtor, its mode), then
//     claim.payment_allocated of what is already paid — resolving it as paid
//     if that is everything;
//   - open or paused: the fields the ledger owns first (claim.updated of
//     current_due_date, total_fees), then the amount: claim.debited or
//     claim.credited by the difference between the entry's amount and the
//     claim's (original + debits − credits), claim.payment_reversed of what
//     a refund or chargeback took back from what the claim has as paid,
//     claim.payment_allocated of what was paid since — increases before
//     decreases, so the amount never dips below zero on the way, and it
//     resolves as paid only if nothing is left;
//   - resolved as paid by reaching zero while the entry has something
//     remaining again (a reversal, an amendment up): claim.recreated with
//     the entry's amount (the creditor's portfolio, creditor and product
//     references, scores and meta kept), then claim.payment_allocated of
//     what is paid;
//   - resolved for another reason (or resolved as paid by the creditor with
//     an amount left), or stopped: left alone — a creditor's decision.
//
// A claim in line records nothing: syncing twice records nothing the
// second time.
func (l *ManagedLedger) Sync(c *Claim, entryRef string, at time.Time) ([]NewEvent, error) {
	a := l.acct
	if !a.Opened {
		return nil, Errorf(ENOTFOUND, "account %s not found", a.ID)
	}
	e, ok := a.Entry(entryRef)
	if !ok {
		return nil, Errorf(ENOTFOUND, "ledger entry %s not found in account %s", entryRef, a.ID)
	}
	if e.Kind != KindInvoice {
		return nil, &Error{Code: ECONFLICT, Reason: "not_an_invoice", Message: fmt.Sprintf("ledger entry %s is a %s: only invoices have managed claims", entryRef, e.Kind)}
	}
	if c.Created && (c.AccountID != a.ID || c.EntryReference != entryRef) {
		return nil, &Error{Code: ECONFLICT, Reason: "claim_exists",
			Message: fmt.Sprintf("claim %s exists and does not follow ledger entry %s of account %s", c.ID, entryRef, a.ID)}
	}
	paid := decimal.Min(e.Paid, e.Amount) // never more than the amount (Amend refuses amending below paid)
	var out []NewEvent
	keep := func(evs []NewEvent, err error) error {
		out = append(out, evs...)
		return err
	}
	allocate := func(amount decimal.Decimal) error {
		if !amount.IsPositive() {
			return nil
		}
		return keep(c.lower(EventClaimPaid, "allocate a payment", amount, ManagedReasonAllocated, "", at))
	}
	switch {
	case !c.Created:
		if err := keep(c.Create(l.input(e), a.Sandbox, at)); err != nil {
			return nil, err
		}
		if err := allocate(paid); err != nil {
			return nil, err
		}
	case c.Status == ClaimOpen || c.Status == ClaimPaused:
		u := ClaimUpdated{At: at}
		if e.DueDate != "" && e.DueDate != c.CurrentDueDate {
			d := e.DueDate
			u.CurrentDueDate = &d
		}
		if fees := l.fees[entryRef]; !fees.Equal(c.TotalFees) {
			u.TotalFees = &fees
		}
		if u.CurrentDueDate != nil || u.TotalFees != nil {
			if err := c.record(&out, EventClaimUpdated, u); err != nil {
				return nil, err
			}
		}
		diff := e.Amount.Sub(c.OriginalAmount.Add(c.Debits).Sub(c.Credits)) // + the entry grew, − it shrank
		paidDiff := paid.Sub(c.Paid)                                        // + paid since, − reversed since
		if diff.IsPositive() {
			if err := keep(c.debit(diff, ManagedReasonAmended, at)); err != nil {
				return nil, err
			}
		}
		if paidDiff.IsNegative() {
			if err := c.record(&out, EventClaimPaymentReversed, ClaimPaymentReversed{Amount: paidDiff.Neg(), Reason: ManagedReasonReversed, At: at}); err != nil {
				return nil, err
			}
		}
		if diff.IsNegative() {
			if err := keep(c.lower(EventClaimCredited, "credit", diff.Neg(), ManagedReasonAmended, "", at)); err != nil {
				return nil, err
			}
		}
		if err := allocate(paidDiff); err != nil {
			return nil, err
		}
	case c.Status == ClaimResolved && c.Resolution == ResolutionPaid && c.Amount.IsZero() && e.Amount.GreaterThan(paid):
		in := l.input(e)
		in.ProductReference, in.PortfolioReference, in.CreditorReference = c.ProductReference, c.PortfolioReference, c.CreditorReference
		in.Scores, in.Meta = c.Scores, c.Meta
		if err := keep(c.recreate(in, at)); err != nil {
			return nil, err
		}
		if err := allocate(paid); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// managedFields names the fields u changes that a managed claim's ledger
// entry owns.
func managedFields(u ClaimUpdated) []string {
	var fields []string
	if u.CurrentDueDate != nil {
		fields = append(fields, "current_due_date")
	}
	if u.TotalFees != nil {
		fields = append(fields, "total_fees")
	}
	return fields
}
