package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// ClaimStatus is where a claim is in its life cycle.
type ClaimStatus string

// Claim statuses: open ⇄ paused; open|paused → resolved | stopped;
// resolved|stopped → open only by recreate.
const (
	ClaimOpen     ClaimStatus = "open"
	ClaimPaused   ClaimStatus = "paused"
	ClaimResolved ClaimStatus = "resolved"
	ClaimStopped  ClaimStatus = "stopped"
)

// ClaimResolution says why a claim was resolved.
type ClaimResolution string

// Claim resolutions (the Receeve ClaimResolutionReason values, lower case).
const (
	ResolutionPaid        ClaimResolution = "paid"
	ResolutionSold        ClaimResolution = "sold"
	ResolutionFraudulent  ClaimResolution = "fraudulent"
	ResolutionDiscarded   ClaimResolution = "discarded"
	ResolutionDischarged  ClaimResolution = "discharged"
	ResolutionInvalidated ClaimResolution = "invalidated"
)

// ClaimResolutions lists every resolution.
var ClaimResolutions = []ClaimResolution{ResolutionPaid, ResolutionSold, ResolutionFraudulent, ResolutionDiscarded, ResolutionDischarged, ResolutionInvalidated}

// OverdueThresholds are the days past due at which a claim records
// claim.overdue, once each.
var OverdueThresholds = []int{1, 30, 60, 90}

// Claim event types.
const (
	EventClaimCreated   = "claim.created"
	EventClaimUpdated   = "claim.updated"
	EventClaimCredited  = "claim.credited"
	EventClaimDebited   = "claim.debited"
	EventClaimPaid      = "claim.payment_allocated"
	EventClaimPaused    = "claim.paused"
	EventClaimResumed   = "claim.resumed"
	EventClaimResolved  = "claim.resolved"
	EventClaimStopped   = "claim.stopped"
	EventClaimRecreated = "claim.recreated"
	EventClaimOverdue   = "claim.overdue"
)

// EventClaimPaymentReversed: a payment allocated to a managed claim was
// refunded or charged back in the ledger (data ClaimAmountChanged): paid
// falls and the amount rises by its amount.
const EventClaimPaymentReversed = "claim.payment_reversed"

// ClaimInput is a claim as created (or recreated): its amount is in major
// units of its currency.
type ClaimInput struct {
	Reference          string          `json:"reference"` // the creditor's claim reference
	AccountID          string          `json:"account_id"`
	EntryReference     string          `json:"entry_reference,omitempty"` // managed: the invoice entry it follows
	Amount             decimal.Decimal `json:"amount"`
	Currency           string          `json:"currency"`
	TotalFees          decimal.Decimal `json:"total_fees"`
	OriginalDueDate    Date            `json:"original_due_date"`
	CurrentDueDate     Date            `json:"current_due_date,omitempty"`
	ProductReference   string          `json:"product_reference,omitempty"`
	PortfolioReference string          `json:"portfolio_reference,omitempty"`
	CreditorReference  string          `json:"creditor_reference,omitempty"`
	PrimaryDebtorID    string          `json:"primary_debtor_id,omitempty"`
	Scores             []Score         `json:"scores,omitempty"`
	Meta               json.RawMessage `json:"meta,omitempty"`
}

// ClaimFields are the attributes an update may change (nil: unchanged).
type ClaimFields struct {
	CurrentDueDate     *Date           `json:"current_due_date,omitempty"`
	TotalFees          *string         `json:"total_fees,omitempty"` // decimal string, validated against the currency
	ProductReference   *string         `json:"product_reference,omitempty"`
	PortfolioReference *string         `json:"portfolio_reference,omitempty"`
	CreditorReference  *string         `json:"creditor_reference,omitempty"`
	Scores             *[]Score        `json:"scores,omitempty"`
	Meta               json.RawMessage `json:"meta,omitempty"`
}

// ClaimCreated is the data of claim.created and claim.recreated.
type ClaimCreated struct {
	Claim   ClaimInput `json:"claim"`
	Sandbox bool       `json:"sandbox,omitempty"`
	At      time.Time  `json:"at"`
}

// ClaimUpdated is the data of claim.updated: the fields it changes.
type ClaimUpdated struct {
	CurrentDueDate     *Date            `json:"current_due_date,omitempty"`
	TotalFees          *decimal.Decimal `json:"total_fees,omitempty"`
	ProductReference   *string          `json:"product_reference,omitempty"`
	PortfolioReference *string          `json:"portfolio_reference,omitempty"`
	CreditorReference  *string          `json:"creditor_reference,omitempty"`
	Scores             *[]Score         `json:"scores,omitempty"`
	Meta               json.RawMessage  `json:"meta,omitempty"`
	At                 time.Time        `json:"at"`
}

// ClaimAmountChanged is the data of claim.credited, claim.debited and
// claim.payment_allocated: a change of the amount (Amount is positive; the
// event type says its direction), with its reason or payment.
type ClaimAmountChanged struct {
	Amount    decimal.Decimal `json:"amount"`
	Reason    string          `json:"reason,omitempty"`
	PaymentID string          `json:"payment_id,omitempty"`
	At        time.Time       `json:"at"`
}

// ClaimStatusChanged is the data of claim.paused, claim.resumed,
// claim.resolved and claim.stopped.
type ClaimStatusChanged struct {
	Resolution ClaimResolution `json:"resolution,omitempty"` // claim.resolved
	Reason     string          `json:"reason,omitempty"`
	At         time.Time       `json:"at"`
}

// ClaimOverdue is the data of claim.overdue: the claim's days past due
// reached Threshold on Date.
type ClaimOverdue struct {
	Threshold   int       `json:"threshold"`
	DaysPastDue int       `json:"days_past_due"`
	Date        Date      `json:"date"`
	At          time.Time `json:"at"`
}

// Claim is an amount a debtor owes, followed through collection. A managed
// claim follows an invoice ledger entry of its account; a direct claim is
// created on its own. State changes only through Apply.
type Claim struct {
	ID, TenantID string
	Version      int64
	Created      bool
	Sandbox      bool
	ClaimInput
	OriginalAmount decimal.Decimal // as (re)created
	Credits        decimal.Decimal // claim.credited so far
	Debits         decimal.Decimal // claim.debited so far
	Paid           decimal.Decimal // claim.payment_allocated so far
	Status         ClaimStatus
	Resolution     ClaimResolution
	StatusReason   string
	Overdue        []int // thresholds already recorded since the last (re)creation
	Recreations    int
	Promises       []Promise // promises to pay, oldest first
	Triggers       int       // custom triggers recorded
	CreatedAt      time.Time
	UpdatedAt      time.Time
	ResolvedAt     *time.Time
}

// NewClaim returns the empty state of claim id before its first event.
func NewClaim(tenantID, id string) *Claim { return &Claim{ID: id, TenantID: tenantID} }

// AppliedEvents implements Aggregate.
func (c *Claim) AppliedEvents() int64 { return c.Version }

// DaysPastDue is how many days after the original due date on is (0 if
// not after it).
func (c *Claim) DaysPastDue(on Date) int {
	if c.OriginalDueDate == "" {
		return 0
	}
	return max(on.DaysAfter(c.OriginalDueDate), 0)
}

// wrongState is the 409 for a command the claim's status does not allow.
func (c *Claim) wrongState(command string, allowed ...ClaimStatus) error {
	want := make([]string, len(allowed))
	for i, s := range allowed {
		want[i] = string(s)
	}
	return &Error{Code: ECONFLICT, Reason: "invalid_transition",
		Message: fmt.Sprintf("claim %s is %s; %s needs it %s", c.ID, c.Status, command, strings.Join(want, " or "))}
}

func (c *Claim) mustBe(command string, allowed ...ClaimStatus) error {
	if !c.Created {
		return Errorf(ENOTFOUND, "claim %s not found", c.ID)
	}
	if !slices.Contains(allowed, c.Status) {
		return c.wrongState(command, allowed...)
	}
	return nil
}

// validate checks a claim as created or recreated.
func validateClaim(in ClaimInput) []FieldError {
	var fe []FieldError
	if in.Reference == "" || len(in.Reference) > 200 {
		fe = append(fe, FieldError{Field: "reference", Error: "is required, at most 200 characters"})
	}
	if in.AccountID == "" {
		fe = append(fe, FieldError{Field: "account_id", Error: "is required"})
	}
	if e := ValidateCurrency("currency", in.Currency); e != nil {
		fe = append(fe, *e)
	} else {
		units, _ := MinorUnits(in.Currency)
		if !in.Amount.IsPositive() || !in.Amount.Shift(units).IsInteger() {
			fe = append(fe, FieldError{Field: "amount", Error: fmt.Sprintf("must be positive with at most %d decimal places (%s)", units, in.Currency)})
		}
		if in.TotalFees.IsNegative() || !in.TotalFees.Shift(units).IsInteger() {
			fe = append(fe, FieldError{Field: "total_fees", Error: fmt.Sprintf("must be zero or positive with at most %d decimal places (%s)", units, in.Currency)})
		}
	}
	if in.OriginalDueDate == "" {
		fe = append(fe, FieldError{Field: "original_due_date", Error: "is required (YYYY-MM-DD): days past due count from it"})
	}
	fe = append(fe, requireUnique("scores", "type", in.Scores, func(s Score) string { return s.Type })...)
	if len(in.Meta) > 0 && (in.Meta[0] != '{' || !json.Valid(in.Meta)) {
		fe = append(fe, FieldError{Field: "meta", Error: "must be a JSON object"})
	}
	return fe
}

// Create creates the claim. Commands record their events on c (discard c
// if the events are not then appended) and return them.
func (c *Claim) Create(in ClaimInput, sandbox bool, at time.Time) ([]NewEvent, error) {
	if c.Created {
		return nil, &Error{Code: ECONFLICT, Reason: "claim_exists", Message: fmt.Sprintf("claim %s already exists", c.ID)}
	}
	if fe := validateClaim(in); len(fe) > 0 {
		return nil, Invalid("invalid claim", fe...)
	}
	var out []NewEvent
	return out, c.record(&out, EventClaimCreated, ClaimCreated{Claim: in, Sandbox: sandbox, At: at})
}

// Recreate restarts a resolved or stopped claim's life cycle with new
// content (its reference and account stay).
func (c *Claim) Recreate(in ClaimInput, at time.Time) ([]NewEvent, error) {
	if err := c.refuseManaged("a recreate"); err != nil {
		return nil, err
	}
	return c.recreate(in, at)
}

func (c *Claim) recreate(in ClaimInput, at time.Time) ([]NewEvent, error) {
	if err := c.mustBe("recreate", ClaimResolved, ClaimStopped); err != nil {
		return nil, err
	}
	var fe []FieldError
	if in.Reference != c.Reference {
		fe = append(fe, FieldError{Field: "reference", Error: "cannot change on recreate"})
	}
	if in.AccountID != c.AccountID {
		fe = append(fe, FieldError{Field: "account_id", Error: "cannot change on recreate"})
	}
	fe = append(fe, validateClaim(in)...)
	if len(fe) > 0 {
		return nil, Invalid("invalid claim", fe...)
	}
	var out []NewEvent
	return out, c.record(&out, EventClaimRecreated, ClaimCreated{Claim: in, Sandbox: c.Sandbox, At: at})
}

// Update changes the attributes set in f; a change to nothing records
// nothing. Resolved and stopped claims are not updated.
func (c *Claim) Update(f ClaimFields, at time.Time) ([]NewEvent, error) {
	if err := c.mustBe("update", ClaimOpen, ClaimPaused); err != nil {
		return nil, err
	}
	u := ClaimUpdated{At: at}
	var fe []FieldError
	changed := false
	if f.CurrentDueDate != nil && *f.CurrentDueDate != c.CurrentDueDate {
		u.CurrentDueDate, changed = f.CurrentDueDate, true
	}
	if f.TotalFees != nil {
		fees, bad := ParseAmount("total_fees", *f.TotalFees, c.Currency)
		switch {
		case bad != nil:
			fe = append(fe, *bad)
		case fees.IsNegative():
			fe = append(fe, FieldError{Field: "total_fees", Error: "must be zero or positive"})
		case !fees.Equal(c.TotalFees):
			u.TotalFees, changed = &fees, true
		}
	}
	for _, s := range []struct {
		in, cur *string
		out     **string
	}{
		{f.ProductReference, &c.ProductReference, &u.ProductReference},
		{f.PortfolioReference, &c.PortfolioReference, &u.PortfolioReference},
		{f.CreditorReference, &c.CreditorReference, &u.CreditorReference},
	} {
		if s.in != nil && *s.in != *s.cur {
			*s.out, changed = s.in, true
		}
	}
	if f.Scores != nil {
		fe = append(fe, requireUnique("scores", "type", *f.Scores, func(s Score) string { return s.Type })...)
		if !jsonEqual(mustJSON(*f.Scores), mustJSON(c.Scores)) {
			u.Scores, changed = f.Scores, true
		}
	}
	if len(f.Meta) > 0 {
		if f.Meta[0] != '{' || !json.Valid(f.Meta) {
			fe = append(fe, FieldError{Field: "meta", Error: "must be a JSON object"})
		} else if !jsonEqual(f.Meta, c.Meta) {
			u.Meta, changed = f.Meta, true
		}
	}
	if len(fe) > 0 {
		return nil, Invalid("invalid claim update", fe...)
	}
	if managed := managedFields(u); len(managed) > 0 {
		if err := c.refuseManaged("an update of "+strings.Join(managed, " and "), managed...); err != nil {
			return nil, err
		}
	}
	if !changed {
		return nil, nil
	}
	var out []NewEvent
	return out, c.record(&out, EventClaimUpdated, u)
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// amountOf checks a credit, debit or payment amount in the claim's currency.
func (c *Claim) amountOf(amount decimal.Decimal) error {
	units, _ := MinorUnits(c.Currency)
	if !amount.IsPositive() || !amount.Shift(units).IsInteger() {
		return Invalid("invalid amount", FieldError{Field: "amount", Error: fmt.Sprintf("must be positive with at most %d decimal places (%s)", units, c.Currency)})
	}
	return nil
}

// Credit lowers the claim's amount (never below zero); reaching zero
// resolves it as paid.
func (c *Claim) Credit(amount decimal.Decimal, reason string, at time.Time) ([]NewEvent, error) {
	if err := c.refuseManaged("a credit", "amount"); err != nil {
		return nil, err
	}
	return c.lower(EventClaimCredited, "credit", amount, reason, "", at)
}

// AllocatePayment lowers the claim's amount by a payment allocated to it;
// reaching zero resolves it as paid.
func (c *Claim) AllocatePayment(paymentID string, amount decimal.Decimal, at time.Time) ([]NewEvent, error) {
	return c.lower(EventClaimPaid, "allocate a payment", amount, "", paymentID, at)
}

func (c *Claim) lower(typ, command string, amount decimal.Decimal, reason, paymentID string, at time.Time) ([]NewEvent, error) {
	if err := c.mustBe(command, ClaimOpen, ClaimPaused); err != nil {
		return nil, err
	}
	if err := c.amountOf(amount); err != nil {
		return nil, err
	}
	if amount.GreaterThan(c.Amount) {
		return nil, Invalid("invalid amount", FieldError{Field: "amount", Error: fmt.Sprintf("exceeds the claim's amount (%s %s)", FormatAmount(c.Amount, c.Currency), c.Currency)})
	}
	var out []NewEvent
	if err := c.record(&out, typ, ClaimAmountChanged{Amount: amount, Reason: reason, PaymentID: paymentID, At: at}); err != nil {
		return nil, err
	}
	if err := c.keepPromise(&out, at); err != nil {
		return nil, err
	}
	if c.Amount.IsZero() {
		if err := c.record(&out, EventClaimResolved, ClaimStatusChanged{Resolution: ResolutionPaid, Reason: "amount reached zero", At: at}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Debit raises the claim's amount.
func (c *Claim) Debit(amount decimal.Decimal, reason string, at time.Time) ([]NewEvent, error) {
	if err := c.refuseManaged("a debit", "amount"); err != nil {
		return nil, err
	}
	return c.debit(amount, reason, at)
}

func (c *Claim) debit(amount decimal.Decimal, reason string, at time.Time) ([]NewEvent, error) {
	if err := c.mustBe("debit", ClaimOpen, ClaimPaused); err != nil {
		return nil, err
	}
	if err := c.amountOf(amount); err != nil {
		return nil, err
	}
	var out []NewEvent
	return out, c.record(&out, EventClaimDebited, ClaimAmountChanged{Amount: amount, Reason: reason, At: at})
}

// Pause pauses collection of an open claim.
func (c *Claim) Pause(reason string, at time.Time) ([]NewEvent, error) {
	if err := c.mustBe("pause", ClaimOpen); err != nil {
		return nil, err
	}
	var out []NewEvent
	return out, c.record(&out, EventClaimPaused, ClaimStatusChanged{Reason: reason, At: at})
}

// Resume resumes collection of a paused claim.
func (c *Claim) Resume(at time.Time) ([]NewEvent, error) {
	if err := c.mustBe("resume", ClaimPaused); err != nil {
		return nil, err
	}
	var out []NewEvent
	return out, c.record(&out, EventClaimResumed, ClaimStatusChanged{At: at})
}

// Resolve resolves an open or paused claim for one of ClaimResolutions;
// its amount stays as it is.
func (c *Claim) Resolve(resolution ClaimResolution, reason string, at time.Time) ([]NewEvent, error) {
	if err := c.mustBe("resolve", ClaimOpen, ClaimPaused); err != nil {
		return nil, err
	}
	if !slices.Contains(ClaimResolutions, resolution) {
		return nil, Invalid("invalid resolution", FieldError{Field: "resolution", Error: "must be one of paid, sold, fraudulent, discarded, discharged, invalidated"})
	}
	var out []NewEvent
	if p := c.ActivePromise(); p != nil && resolution == ResolutionPaid {
		// Resolved as paid: the debtor kept their word.
		if err := c.record(&out, EventPromiseKept, PromiseDecided{PromiseID: p.ID, Progress: c.reduced().Sub(p.ReducedAt0), Reason: "claim resolved as paid", At: at}); err != nil {
			return nil, err
		}
	} else if err := c.cancelPromise(&out, "claim resolved: "+string(resolution), at); err != nil {
		return nil, err
	}
	return out, c.record(&out, EventClaimResolved, ClaimStatusChanged{Resolution: resolution, Reason: reason, At: at})
}

// Stop stops collection of an open or paused claim for good (only
// recreate reopens it).
func (c *Claim) Stop(reason string, at time.Time) ([]NewEvent, error) {
	if err := c.mustBe("stop", ClaimOpen, ClaimPaused); err != nil {
		return nil, err
	}
	var out []NewEvent
	if err := c.cancelPromise(&out, "claim stopped", at); err != nil {
		return nil, err
	}
	return out, c.record(&out, EventClaimStopped, ClaimStatusChanged{Reason: reason, At: at})
}

// MarkOverdue records claim.overdue for every threshold of
// OverdueThresholds the open claim's days past due on today has reached
// and not yet recorded. Running it again records nothing: the scheduler
// may call it as often as it likes.
func (c *Claim) MarkOverdue(today Date, at time.Time) ([]NewEvent, error) {
	if !c.Created {
		return nil, Errorf(ENOTFOUND, "claim %s not found", c.ID)
	}
	if c.Status != ClaimOpen {
		return nil, nil
	}
	dpd := c.DaysPastDue(today)
	var out []NewEvent
	for _, th := range OverdueThresholds {
		if dpd >= th && !slices.Contains(c.Overdue, th) {
			if err := c.record(&out, EventClaimOverdue, ClaimOverdue{Threshold: th, DaysPastDue: dpd, Date: today, At: at}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (c *Claim) record(out *[]NewEvent, typ string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("claim %s: encode %s: %w", c.ID, typ, err)
	}
	if err := c.Apply(typ, data); err != nil {
		return err
	}
	*out = append(*out, NewEvent{Type: typ, Data: data})
	return nil
}

// Apply folds one event into the claim: the only way its state changes.
func (c *Claim) Apply(typ string, data json.RawMessage) error {
	fail := func(err error) error { return fmt.Errorf("claim %s: apply %s: %w", c.ID, typ, err) }
	switch typ {
	case EventClaimCreated, EventClaimRecreated:
		var e ClaimCreated
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		if typ == EventClaimCreated {
			c.Created, c.Sandbox, c.CreatedAt = true, e.Sandbox, e.At
		} else {
			c.Recreations++
		}
		c.ClaimInput = e.Claim
		if c.CurrentDueDate == "" {
			c.CurrentDueDate = c.OriginalDueDate
		}
		z := decimal.Zero
		c.OriginalAmount, c.Credits, c.Debits, c.Paid = e.Claim.Amount, z, z, z
		c.Status, c.Resolution, c.StatusReason, c.ResolvedAt, c.Overdue = ClaimOpen, "", "", nil, nil
		c.UpdatedAt = e.At
	case EventClaimUpdated:
		var e ClaimUpdated
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		if e.CurrentDueDate != nil {
			c.CurrentDueDate = *e.CurrentDueDate
		}
		if e.TotalFees != nil {
			c.TotalFees = *e.TotalFees
		}
		for _, s := range []struct{ in, dst *string }{
			{e.ProductReference, &c.ProductReference}, {e.PortfolioReference, &c.PortfolioReference}, {e.CreditorReference, &c.CreditorReference},
		} {
			if s.in != nil {
				*s.dst = *s.in
			}
		}
		if e.Scores != nil {
			c.Scores = *e.Scores
		}
		if len(e.Meta) > 0 {
			c.Meta = e.Meta
		}
		c.UpdatedAt = e.At
	case EventClaimCredited, EventClaimDebited, EventClaimPaid, EventClaimPaymentReversed:
		var e ClaimAmountChanged
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		switch typ {
		case EventClaimCredited:
			c.Credits, c.Amount = c.Credits.Add(e.Amount), c.Amount.Sub(e.Amount)
		case EventClaimDebited:
			c.Debits, c.Amount = c.Debits.Add(e.Amount), c.Amount.Add(e.Amount)
		case EventClaimPaymentReversed:
			c.Paid, c.Amount = c.Paid.Sub(e.Amount), c.Amount.Add(e.Amount)
		default:
			c.Paid, c.Amount = c.Paid.Add(e.Amount), c.Amount.Sub(e.Amount)
		}
		c.UpdatedAt = e.At
	case EventClaimPaused, EventClaimResumed, EventClaimResolved, EventClaimStopped:
		var e ClaimStatusChanged
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		c.StatusReason, c.UpdatedAt = e.Reason, e.At
		switch typ {
		case EventClaimPaused:
			c.Status = ClaimPaused
		case EventClaimResumed:
			c.Status = ClaimOpen
		case EventClaimResolved:
			at := e.At
			c.Status, c.Resolution, c.ResolvedAt = ClaimResolved, e.Resolution, &at
		default:
			c.Status = ClaimStopped
		}
	case EventClaimOverdue:
		var e ClaimOverdue
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		c.Overdue = append(c.Overdue, e.Threshold)
		c.UpdatedAt = e.At
	default:
		handled, err := c.applyCollection(typ, data)
		if err != nil {
			return fail(err)
		}
		if !handled {
			return fail(fmt.Errorf("unknown event type"))
		}
	}
	c.Version++
	return nil
}
