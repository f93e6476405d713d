package domain

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/shopspring/decimal"
)

// PromiseStatus is where a promise to pay is: active until the scheduler
// (or a payment) decides it kept or broken; cancelled when its claim is
// resolved or stopped for another reason first.
type PromiseStatus string

// Promise statuses.
const (
	PromiseActive    PromiseStatus = "active"
	PromiseKept      PromiseStatus = "kept"
	PromiseBroken    PromiseStatus = "broken"
	PromiseCancelled PromiseStatus = "cancelled"
)

// Promise and trigger event types (recorded on the claim's stream; a
// trigger against an account is recorded on the account's).
const (
	EventPromiseMade      = "claim.promise_made"
	EventPromiseKept      = "claim.promise_kept"
	EventPromiseBroken    = "claim.promise_broken"
	EventPromiseCancelled = "claim.promise_cancelled"
	EventClaimTriggered   = "claim.triggered"
	EventAccountTriggered = "account.triggered"
)

// PrefixPromise, PrefixTrigger name promises to pay and trigger calls.
const (
	PrefixPromise = "ptp"
	PrefixTrigger = "trg"
)

// MaxPromiseDays bounds how far ahead a promise's due date may be.
const MaxPromiseDays = 366

// Promise is a debtor's promise to pay Amount of a claim by DueDate.
// Progress counts what lowered the claim (payments allocated and credits)
// since the promise was made.
type Promise struct {
	ID         string          `json:"id"`
	Amount     decimal.Decimal `json:"amount"`
	DueDate    Date            `json:"due_date"`
	Status     PromiseStatus   `json:"status"`
	Reason     string          `json:"reason,omitempty"` // why broken or cancelled
	ReducedAt0 decimal.Decimal `json:"reduced_at_start"` // the claim's payments + credits when made
	Progress   decimal.Decimal `json:"progress"`
	MadeAt     time.Time       `json:"made_at"`
	DecidedAt  *time.Time      `json:"decided_at,omitempty"`
}

// PromiseMade is the data of claim.promise_made.
type PromiseMade struct {
	PromiseID      string          `json:"promise_id"`
	Amount         decimal.Decimal `json:"amount"`
	DueDate        Date            `json:"due_date"`
	ReducedAtStart decimal.Decimal `json:"reduced_at_start"`
	At             time.Time       `json:"at"`
}

// PromiseDecided is the data of claim.promise_kept, claim.promise_broken
// and claim.promise_cancelled.
type PromiseDecided struct {
	PromiseID string          `json:"promise_id"`
	Progress  decimal.Decimal `json:"progress"` // paid towards it by then
	Reason    string          `json:"reason,omitempty"`
	Date      Date            `json:"date,omitempty"` // the scheduler's day (broken)
	At        time.Time       `json:"at"`
}

// Triggered is the data of claim.triggered and account.triggered: a
// creditor's custom trigger, recorded for downstream consumers.
type Triggered struct {
	TriggerID string          `json:"trigger_id"`
	Name      string          `json:"name"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	At        time.Time       `json:"at"`
}

var triggerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// ValidateTriggerName checks a custom trigger's name: lower-case letters,
// digits, '_', '.', '-', at most 64 characters.
func ValidateTriggerName(name string) *FieldError {
	if !triggerName.MatchString(name) {
		return &FieldError{Field: "name", Error: "must be 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"}
	}
	return nil
}

// ValidatePayload checks an optional JSON object payload.
func ValidatePayload(field string, p json.RawMessage) *FieldError {
	if len(p) > 0 && string(p) != "null" && (p[0] != '{' || !json.Valid(p)) {
		return &FieldError{Field: field, Error: "must be a JSON object"}
	}
	if len(p) > 64<<10 {
		return &FieldError{Field: field, Error: "must be at most 64 KiB"}
	}
	return nil
}

// reduced is what the debtor has paid on the claim since its
// (re)creation: payments allocated and, on a direct claim, credits (a
// creditor reports a payment received as a credit). A managed claim's
// credits are amendments of its invoice, not payments.
func (c *Claim) reduced() decimal.Decimal {
	if c.EntryReference != "" {
		return c.Paid
	}
	return c.Paid.Add(c.Credits)
}

// ActivePromise returns the claim's active promise, if any.
func (c *Claim) ActivePromise() *Promise {
	for i := range c.Promises {
		if c.Promises[i].Status == PromiseActive {
			return &c.Promises[i]
		}
	}
	return nil
}

func (c *Claim) promise(id string) *Promise {
	for i := range c.Promises {
		if c.Promises[i].ID == id {
			return &c.Promises[i]
		}
	}
	return nil
}

// MakePromise records the debtor's promise to pay amount by due (on or
// after today, at most MaxPromiseDays ahead). A claim has at most one
// active promise; it must be open or paused.
func (c *Claim) MakePromise(id string, amount decimal.Decimal, due, today Date, at time.Time) ([]NewEvent, error) {
	if err := c.mustBe("make a promise", ClaimOpen, ClaimPaused); err != nil {
		return nil, err
	}
	if p := c.ActivePromise(); p != nil {
		return nil, &Error{Code: ECONFLICT, Reason: "promise_active",
			Message: fmt.Sprintf("claim %s already has an active promise to pay (%s, due %s)", c.ID, p.ID, p.DueDate)}
	}
	var fe []FieldError
	if err := c.amountOf(amount); err != nil {
		fe = append(fe, err.(*Error).Fields...)
	} else if amount.GreaterThan(c.Amount) {
		fe = append(fe, FieldError{Field: "amount", Error: fmt.Sprintf("exceeds the claim's amount (%s %s)", FormatAmount(c.Amount, c.Currency), c.Currency)})
	}
	switch {
	case due == "":
		fe = append(fe, FieldError{Field: "due_date", Error: "is required (YYYY-MM-DD)"})
	case due < today:
		fe = append(fe, FieldError{Field: "due_date", Error: fmt.Sprintf("must not be in the past (today is %s)", today)})
	case due.DaysAfter(today) > MaxPromiseDays:
		fe = append(fe, FieldError{Field: "due_date", Error: fmt.Sprintf("must be at most %d days ahead", MaxPromiseDays)})
	}
	if len(fe) > 0 {
		return nil, Invalid("invalid promise to pay", fe...)
	}
	var out []NewEvent
	return out, c.record(&out, EventPromiseMade, PromiseMade{PromiseID: id, Amount: amount, DueDate: due, ReducedAtStart: c.reduced(), At: at})
}

// keepPromise records claim.promise_kept when what lowered the claim since
// the active promise was made covers it, or the claim reached zero.
func (c *Claim) keepPromise(out *[]NewEvent, at time.Time) error {
	p := c.ActivePromise()
	if p == nil {
		return nil
	}
	progress := c.reduced().Sub(p.ReducedAt0)
	if progress.LessThan(p.Amount) && !c.Amount.IsZero() {
		return nil
	}
	return c.record(out, EventPromiseKept, PromiseDecided{PromiseID: p.ID, Progress: progress, At: at})
}

// cancelPromise records claim.promise_cancelled for an active promise of a
// claim that is being resolved or stopped (not by paying it).
func (c *Claim) cancelPromise(out *[]NewEvent, reason string, at time.Time) error {
	p := c.ActivePromise()
	if p == nil {
		return nil
	}
	return c.record(out, EventPromiseCancelled, PromiseDecided{PromiseID: p.ID, Progress: c.reduced().Sub(p.ReducedAt0), Reason: reason, At: at})
}

// SettlePromise is the scheduler's decision on the active promise on day
// today: kept if paid, broken once its due date has passed unpaid. Calling
// it again records nothing.
func (c *Claim) SettlePromise(today Date, at time.Time) ([]NewEvent, error) {
	if !c.Created {
		return nil, Errorf(ENOTFOUND, "claim %s not found", c.ID)
	}
	p := c.ActivePromise()
	if p == nil {
		return nil, nil
	}
	var out []NewEvent
	if err := c.keepPromise(&out, at); err != nil || len(out) > 0 {
		return out, err
	}
	if today > p.DueDate {
		progress := c.reduced().Sub(p.ReducedAt0)
		reason := fmt.Sprintf("%s of %s %s paid by %s", FormatAmount(progress, c.Currency), FormatAmount(p.Amount, c.Currency), c.Currency, p.DueDate)
		return out, c.record(&out, EventPromiseBroken, PromiseDecided{PromiseID: p.ID, Progress: progress, Reason: reason, Date: today, At: at})
	}
	return nil, nil
}

// Trigger records a creditor's custom trigger against the claim.
func (c *Claim) Trigger(id, name string, payload json.RawMessage, at time.Time) ([]NewEvent, error) {
	if !c.Created {
		return nil, Errorf(ENOTFOUND, "claim %s not found", c.ID)
	}
	if err := validateTrigger(name, payload); err != nil {
		return nil, err
	}
	var out []NewEvent
	return out, c.record(&out, EventClaimTriggered, Triggered{TriggerID: id, Name: name, Payload: payload, At: at})
}

// Trigger records a creditor's custom trigger against the account.
func (a *Account) Trigger(id, name string, payload json.RawMessage, at time.Time) ([]NewEvent, error) {
	if !a.Opened {
		return nil, Errorf(ENOTFOUND, "account %s not found", a.ID)
	}
	if err := validateTrigger(name, payload); err != nil {
		return nil, err
	}
	var out []NewEvent
	return out, a.record(&out, EventAccountTriggered, Triggered{TriggerID: id, Name: name, Payload: payload, At: at})
}

// validateTrigger checks a custom trigger's name and payload.
func validateTrigger(name string, payload json.RawMessage) error {
	var fe []FieldError
	if e := ValidateTriggerName(name); e != nil {
		fe = append(fe, *e)
	}
	if e := ValidatePayload("payload", payload); e != nil {
		fe = append(fe, *e)
	}
	if len(fe) > 0 {
		return Invalid("invalid trigger", fe...)
	}
	return nil
}

// applyCollection folds the claim's collection events (promises,
// triggers); handled is false for a type it does not know.
func (c *Claim) applyCollection(typ string, data json.RawMessage) (handled bool, err error) {
	switch typ {
	case EventPromiseMade:
		var e PromiseMade
		if err := json.Unmarshal(data, &e); err != nil {
			return true, err
		}
		c.Promises = append(c.Promises, Promise{ID: e.PromiseID, Amount: e.Amount, DueDate: e.DueDate, Status: PromiseActive,
			ReducedAt0: e.ReducedAtStart, Progress: decimal.Zero, MadeAt: e.At})
		c.UpdatedAt = e.At
	case EventPromiseKept, EventPromiseBroken, EventPromiseCancelled:
		var e PromiseDecided
		if err := json.Unmarshal(data, &e); err != nil {
			return true, err
		}
		p := c.promise(e.PromiseID)
		if p == nil {
			return true, fmt.Errorf("unknown promise %s", e.PromiseID)
		}
		at := e.At
		p.Progress, p.Reason, p.DecidedAt = e.Progress, e.Reason, &at
		switch typ {
		case EventPromiseKept:
			p.Status = PromiseKept
		case EventPromiseBroken:
			p.Status = PromiseBroken
		default:
			p.Status = PromiseCancelled
		}
		c.UpdatedAt = e.At
	case EventClaimTriggered:
		var e Triggered
		if err := json.Unmarshal(data, &e); err != nil {
			return true, err
		}
		c.Triggers++
	default:
		return false, nil
	}
	return true, nil
}
