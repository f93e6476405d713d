package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// StreamTypeDispute is the stream of one dispute.
const (
	StreamTypeDispute = "dispute"
	PrefixDispute     = "dsp"
)

// DisputeStatus is where a dispute is: open until resolved or withdrawn.
type DisputeStatus string

// Dispute statuses.
const (
	DisputeOpen      DisputeStatus = "open"
	DisputeResolved  DisputeStatus = "resolved"
	DisputeWithdrawn DisputeStatus = "withdrawn"
)

// DisputeReasons are the reasons a debtor disputes a debt.
var DisputeReasons = []string{"incorrect_amount", "already_paid", "not_mine", "quality", "not_received", "fraud", "duplicate", "other"}

// DisputeOutcomes say how a resolved dispute ended: upheld (the debtor was
// right) or rejected.
var DisputeOutcomes = []string{"upheld", "rejected"}

// Dispute event types.
const (
	EventDisputeOpened    = "dispute.opened"
	EventDisputeResolved  = "dispute.resolved"
	EventDisputeWithdrawn = "dispute.withdrawn"
)

// DisputeInput is a dispute as opened: on an account (all its claims) or
// on one claim (ClaimID, with AccountID its account).
type DisputeInput struct {
	AccountID   string          `json:"account_id"`
	ClaimID     string          `json:"claim_id,omitempty"`
	DebtorIDs   []string        `json:"debtor_ids,omitempty"` // the account's debtors when opened
	Reason      string          `json:"reason"`
	Description string          `json:"description,omitempty"`
	Reference   string          `json:"reference,omitempty"` // the creditor's
	Meta        json.RawMessage `json:"meta,omitempty"`
}

// DisputeOpened is the data of dispute.opened.
type DisputeOpened struct {
	Dispute DisputeInput `json:"dispute"`
	Sandbox bool         `json:"sandbox,omitempty"`
	At      time.Time    `json:"at"`
}

// DisputeClosed is the data of dispute.resolved and dispute.withdrawn.
type DisputeClosed struct {
	Outcome string    `json:"outcome,omitempty"` // resolved: upheld | rejected
	Note    string    `json:"note,omitempty"`
	At      time.Time `json:"at"`
}

// Dispute is a debtor's objection to an account or a claim; while open it
// pauses collection on the claim(s) it covers (no journey steps, no
// overdue marks).
type Dispute struct {
	ID, TenantID string
	Version      int64
	Created      bool
	Sandbox      bool
	DisputeInput
	Status    DisputeStatus
	Outcome   string
	Note      string
	OpenedAt  time.Time
	ClosedAt  *time.Time
	UpdatedAt time.Time
}

// NewDispute returns the empty state of dispute id before its first event.
func NewDispute(tenantID, id string) *Dispute { return &Dispute{ID: id, TenantID: tenantID} }

// AppliedEvents implements Aggregate.
func (d *Dispute) AppliedEvents() int64 { return d.Version }

// Open opens the dispute.
func (d *Dispute) Open(in DisputeInput, sandbox bool, at time.Time) ([]NewEvent, error) {
	if d.Created {
		return nil, &Error{Code: ECONFLICT, Reason: "dispute_exists", Message: fmt.Sprintf("dispute %s already exists (it is %s)", d.ID, d.Status)}
	}
	var fe []FieldError
	if in.AccountID == "" {
		fe = append(fe, FieldError{Field: "account_id", Error: "is required (or claim_id)"})
	}
	if !slices.Contains(DisputeReasons, in.Reason) {
		fe = append(fe, FieldError{Field: "reason", Error: "must be one of " + strings.Join(DisputeReasons, ", ")})
	}
	if len(in.Description) > 2000 {
		fe = append(fe, FieldError{Field: "description", Error: "must be at most 2000 characters"})
	}
	if len(in.Reference) > 200 {
		fe = append(fe, FieldError{Field: "reference", Error: "must be at most 200 characters"})
	}
	if e := ValidatePayload("meta", in.Meta); e != nil {
		fe = append(fe, *e)
	}
	if len(fe) > 0 {
		return nil, Invalid("invalid dispute", fe...)
	}
	var out []NewEvent
	return out, recordOn(d, &out, EventDisputeOpened, DisputeOpened{Dispute: in, Sandbox: sandbox, At: at})
}

func (d *Dispute) mustBeOpen(command string) error {
	if !d.Created {
		return Errorf(ENOTFOUND, "dispute %s not found", d.ID)
	}
	if d.Status != DisputeOpen {
		return &Error{Code: ECONFLICT, Reason: "invalid_transition",
			Message: fmt.Sprintf("dispute %s is %s; %s needs it open", d.ID, d.Status, command)}
	}
	return nil
}

// Resolve closes the open dispute with an outcome (upheld or rejected).
func (d *Dispute) Resolve(outcome, note string, at time.Time) ([]NewEvent, error) {
	if err := d.mustBeOpen("resolve"); err != nil {
		return nil, err
	}
	if !slices.Contains(DisputeOutcomes, outcome) {
		return nil, Invalid("invalid resolution", FieldError{Field: "outcome", Error: "must be one of " + strings.Join(DisputeOutcomes, ", ")})
	}
	if len(note) > 2000 {
		return nil, Invalid("invalid resolution", FieldError{Field: "note", Error: "must be at most 2000 characters"})
	}
	var out []NewEvent
	return out, recordOn(d, &out, EventDisputeResolved, DisputeClosed{Outcome: outcome, Note: note, At: at})
}

// Withdraw closes the open dispute at the debtor's request.
func (d *Dispute) Withdraw(note string, at time.Time) ([]NewEvent, error) {
	if err := d.mustBeOpen("withdraw"); err != nil {
		return nil, err
	}
	if len(note) > 2000 {
		return nil, Invalid("invalid withdrawal", FieldError{Field: "note", Error: "must be at most 2000 characters"})
	}
	var out []NewEvent
	return out, recordOn(d, &out, EventDisputeWithdrawn, DisputeClosed{Note: note, At: at})
}

// Apply folds one event into the dispute.
func (d *Dispute) Apply(typ string, data json.RawMessage) error {
	fail := func(err error) error { return fmt.Errorf("dispute %s: apply %s: %w", d.ID, typ, err) }
	switch typ {
	case EventDisputeOpened:
		var e DisputeOpened
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		d.Created, d.Sandbox, d.DisputeInput, d.Status, d.OpenedAt, d.UpdatedAt = true, e.Sandbox, e.Dispute, DisputeOpen, e.At, e.At
	case EventDisputeResolved, EventDisputeWithdrawn:
		var e DisputeClosed
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		at := e.At
		d.Outcome, d.Note, d.ClosedAt, d.UpdatedAt = e.Outcome, e.Note, &at, e.At
		if typ == EventDisputeResolved {
			d.Status = DisputeResolved
		} else {
			d.Status = DisputeWithdrawn
		}
	default:
		return fail(fmt.Errorf("unknown event type"))
	}
	d.Version++
	return nil
}
