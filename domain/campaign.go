package domain

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Campaign and enrollment streams and ids.
const (
	StreamTypeCampaign   = "campaign"
	StreamTypeEnrollment = "enrollment"
	PrefixCampaign       = "cmp"
	PrefixEnrollment     = "enr"
)

// CampaignStatus is where a campaign is: active ⇄ paused; active|paused →
// completed (for good).
type CampaignStatus string

// Campaign statuses.
const (
	CampaignActive    CampaignStatus = "active"
	CampaignPaused    CampaignStatus = "paused"
	CampaignCompleted CampaignStatus = "completed"
)

// CampaignTypes are the kinds of campaign (Agile's collection and
// statement-acknowledgement campaigns; reminders before the due date).
var CampaignTypes = []string{"collection", "reminder", "statement_acknowledgement"}

// TargetTypes are what can be enrolled in a campaign.
var TargetTypes = []string{"account", "claim", "statement"}

// Limits of a campaign's journey.
const (
	MaxCampaignSteps = 50
	MinStepOffset    = -365 // reminders up to a year before the due date
	MaxStepOffset    = 3650
	MaxEnrollBatch   = 500 // targets per enrollment call
)

// Campaign and journey event types.
const (
	EventCampaignCreated    = "campaign.created"
	EventCampaignPaused     = "campaign.paused"
	EventCampaignResumed    = "campaign.resumed"
	EventCampaignCompleted  = "campaign.completed"
	EventEnrollmentCreated  = "enrollment.created"
	EventEnrollmentEnded    = "enrollment.ended" // cancelled or completed
	EventJourneyStepDue     = "journey.step_due"
	EventEnrollmentReopened = "enrollment.reopened"
)

// CampaignStep is one step of a journey: Action (email, sms, call,
// letter, … or a creditor's own action name) DayOffset days after the
// target's due date (negative: before it).
type CampaignStep struct {
	DayOffset int    `json:"day_offset"`
	Action    string `json:"action"`
	Name      string `json:"name,omitempty"`
	Template  string `json:"template,omitempty"` // the sender's template id
}

// CampaignInput is a campaign as created.
type CampaignInput struct {
	Name        string          `json:"name"`
	Type        string          `json:"type"`
	Description string          `json:"description,omitempty"`
	Steps       []CampaignStep  `json:"steps"`
	Meta        json.RawMessage `json:"meta,omitempty"`
}

// CampaignCreated is the data of campaign.created.
type CampaignCreated struct {
	Campaign CampaignInput `json:"campaign"`
	Sandbox  bool          `json:"sandbox,omitempty"`
	At       time.Time     `json:"at"`
}

// CampaignStatusChanged is the data of campaign.paused, campaign.resumed
// and campaign.completed.
type CampaignStatusChanged struct {
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

var actionName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Campaign is a named journey accounts, claims or statements are enrolled
// in.
type Campaign struct {
	ID, TenantID string
	Version      int64
	Created      bool
	Sandbox      bool
	CampaignInput
	Status    CampaignStatus
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NewCampaign returns the empty state of campaign id.
func NewCampaign(tenantID, id string) *Campaign { return &Campaign{ID: id, TenantID: tenantID} }

// AppliedEvents implements Aggregate.
func (c *Campaign) AppliedEvents() int64 { return c.Version }

// Create creates the campaign. Steps must be ordered by day offset.
func (c *Campaign) Create(in CampaignInput, sandbox bool, at time.Time) ([]NewEvent, error) {
	if c.Created {
		return nil, &Error{Code: ECONFLICT, Reason: "campaign_exists", Message: fmt.Sprintf("campaign %s already exists", c.ID)}
	}
	var fe []FieldError
	if n := len(strings.TrimSpace(in.Name)); n == 0 || n > 200 {
		fe = append(fe, FieldError{Field: "name", Error: "is required, at most 200 characters"})
	}
	if !slices.Contains(CampaignTypes, in.Type) {
		fe = append(fe, FieldError{Field: "type", Error: "must be one of " + strings.Join(CampaignTypes, ", ")})
	}
	if len(in.Description) > 2000 {
		fe = append(fe, FieldError{Field: "description", Error: "must be at most 2000 characters"})
	}
	if len(in.Steps) == 0 || len(in.Steps) > MaxCampaignSteps {
		fe = append(fe, FieldError{Field: "steps", Error: fmt.Sprintf("must have 1 to %d steps", MaxCampaignSteps)})
	}
	for i, s := range in.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		if s.DayOffset < MinStepOffset || s.DayOffset > MaxStepOffset {
			fe = append(fe, FieldError{Field: f + ".day_offset", Error: fmt.Sprintf("must be between %d and %d", MinStepOffset, MaxStepOffset)})
		}
		if i > 0 && s.DayOffset < in.Steps[i-1].DayOffset {
			fe = append(fe, FieldError{Field: f + ".day_offset", Error: "steps must be ordered by day_offset"})
		}
		if !actionName.MatchString(s.Action) {
			fe = append(fe, FieldError{Field: f + ".action", Error: "is required: a lower-case name such as email, sms, call or letter (a-z, 0-9, '_', at most 32)"})
		}
		if len(s.Name) > 200 || len(s.Template) > 200 {
			fe = append(fe, FieldError{Field: f, Error: "name and template must be at most 200 characters"})
		}
	}
	if e := ValidatePayload("meta", in.Meta); e != nil {
		fe = append(fe, *e)
	}
	if len(fe) > 0 {
		return nil, Invalid("invalid campaign", fe...)
	}
	var out []NewEvent
	return out, recordOn(c, &out, EventCampaignCreated, CampaignCreated{Campaign: in, Sandbox: sandbox, At: at})
}

func (c *Campaign) transition(command, typ string, reason string, at time.Time, allowed ...CampaignStatus) ([]NewEvent, error) {
	if !c.Created {
		return nil, Errorf(ENOTFOUND, "campaign %s not found", c.ID)
	}
	if !slices.Contains(allowed, c.Status) {
		want := make([]string, len(allowed))
		for i, s := range allowed {
			want[i] = string(s)
		}
		return nil, &Error{Code: ECONFLICT, Reason: "invalid_transition",
			Message: fmt.Sprintf("campaign %s is %s; %s needs it %s", c.ID, c.Status, command, strings.Join(want, " or "))}
	}
	var out []NewEvent
	return out, recordOn(c, &out, typ, CampaignStatusChanged{Reason: reason, At: at})
}

// Pause holds every journey of the campaign: no step is due while paused.
func (c *Campaign) Pause(reason string, at time.Time) ([]NewEvent, error) {
	return c.transition("pause", EventCampaignPaused, reason, at, CampaignActive)
}

// Resume resumes a paused campaign; steps that came due meanwhile fire.
func (c *Campaign) Resume(at time.Time) ([]NewEvent, error) {
	return c.transition("resume", EventCampaignResumed, "", at, CampaignPaused)
}

// Complete ends the campaign for good: no more enrollments or steps.
func (c *Campaign) Complete(reason string, at time.Time) ([]NewEvent, error) {
	return c.transition("complete", EventCampaignCompleted, reason, at, CampaignActive, CampaignPaused)
}

// Apply folds one event into the campaign.
func (c *Campaign) Apply(typ string, data json.RawMessage) error {
	fail := func(err error) error { return fmt.Errorf("campaign %s: apply %s: %w", c.ID, typ, err) }
	switch typ {
	case EventCampaignCreated:
		var e CampaignCreated
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		c.Created, c.Sandbox, c.CampaignInput, c.Status, c.CreatedAt, c.UpdatedAt = true, e.Sandbox, e.Campaign, CampaignActive, e.At, e.At
	case EventCampaignPaused, EventCampaignResumed, EventCampaignCompleted:
		var e CampaignStatusChanged
		if err := json.Unmarshal(data, &e); err != nil {
			return fail(err)
		}
		c.Reason, c.UpdatedAt = e.Reason, e.At
		switch typ {
		case EventCampaignPaused:
			c.Status = CampaignPaused
		case EventCampaignResumed:
			c.Status = CampaignActive
		default:
			c.Status = CampaignCompleted
		}
	default:
		return fail(fmt.Errorf("unknown event type"))
	}
	c.Version++
	return nil
}

// EnrollmentStatus is where an enrollment is: active until every step
// fired (completed), its target was settled or closed (completed), or it
// was cancelled.
type EnrollmentStatus string

// Enrollment statuses.
const (
	EnrollmentActive    EnrollmentStatus = "active"
	EnrollmentCompleted EnrollmentStatus = "completed"
	EnrollmentCancelled EnrollmentStatus = "cancelled"
)

// EnrollmentTarget is what is enrolled, with what its journey's events
// must tell downstream senders.
type EnrollmentTarget struct {
	Type        string   `json:"type"` // account | claim | statement
	ID          string   `json:"id"`
	AccountID   string   `json:"account_id,omitempty"`
	ClaimID     string   `json:"claim_id,omitempty"`
	StatementID string   `json:"statement_id,omitempty"`
	DebtorIDs   []string `json:"debtor_ids,omitempty"`
	Currency    string   `json:"currency,omitempty"`
}

// EnrollmentCreated is the data of enrollment.created and
// enrollment.reopened: the journey runs from AnchorDate (the target's due
// date); steps dated before StartDate (the enrollment's day) are not due.
type EnrollmentCreated struct {
	CampaignID string           `json:"campaign_id"`
	Target     EnrollmentTarget `json:"target"`
	AnchorDate Date             `json:"anchor_date"`
	StartDate  Date             `json:"start_date"`
	StartStep  int              `json:"start_step"`
	Sandbox    bool             `json:"sandbox,omitempty"`
	At         time.Time        `json:"at"`
}

// EnrollmentEnded is the data of enrollment.ended.
type EnrollmentEnded struct {
	Status EnrollmentStatus `json:"status"` // completed | cancelled
	Reason string           `json:"reason,omitempty"`
	At     time.Time        `json:"at"`
}

// StepDue is the data of journey.step_due: what a downstream sender needs
// to act.
type StepDue struct {
	CampaignID    string           `json:"campaign_id"`
	CampaignName  string           `json:"campaign_name"`
	EnrollmentID  string           `json:"enrollment_id"`
	Step          int              `json:"step"` // index in the campaign's steps
	DayOffset     int              `json:"day_offset"`
	Action        string           `json:"action"`
	Name          string           `json:"name,omitempty"`
	Template      string           `json:"template,omitempty"`
	ScheduledDate Date             `json:"scheduled_date"` // anchor + offset
	Date          Date             `json:"date"`           // the scheduler's day it fired (later if held)
	Target        EnrollmentTarget `json:"target"`
	At            time.Time        `json:"at"`
}

// Enrollment is one target's run through a campaign's journey.
type Enrollment struct {
	ID, TenantID string
	Version      int64
	Created      bool
	Sandbox      bool
	CampaignID   string
	Target       EnrollmentTarget
	AnchorDate   Date
	StartDate    Date
	NextStep     int // the next step to fire
	StepsFired   int
	Status       EnrollmentStatus
	Reason       string
	Runs         int // times (re)opened
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// NewEnrollment returns the empty state of enrollment id.
func NewEnrollment(tenantID, id string) *Enrollment { return &Enrollment{ID: id, TenantID: tenantID} }

// AppliedEvents implements Aggregate.
func (e *Enrollment) AppliedEvents() int64 { return e.Version }

// EnrollmentID is the enrollment of target in campaign: one per pair, so
// enrolling twice finds the same stream.
func EnrollmentID(campaignID, targetID string) string {
	return DerivedID(PrefixEnrollment, campaignID, campaignID, targetID)
}

// DerivedID is a deterministic prefixed ULID: its time is the ULID time of
// timeFrom (an id), its entropy the SHA-256 of parts, so the same parts
// always name the same stream.
func DerivedID(prefix, timeFrom string, parts ...string) string {
	var ms uint64
	if _, rest, ok := strings.Cut(timeFrom, "_"); ok {
		if u, err := ulid.ParseStrict(rest); err == nil {
			ms = u.Time()
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	var id ulid.ULID
	_ = id.SetTime(ms)
	_ = id.SetEntropy(sum[:10])
	return prefix + "_" + id.String()
}

// StepDate is the date step i falls on.
func (e *Enrollment) StepDate(c *Campaign, i int) Date {
	return e.AnchorDate.AddDays(c.Steps[i].DayOffset)
}

// Enroll starts target's journey in campaign c on day today (anchor: the
// target's due date). Enrolling an actively enrolled target records
// nothing; a cancelled or completed enrollment is reopened. Steps dated
// before today are skipped; when that is every step, the enrollment
// completes at once (enrollment.ended in the same command).
func (e *Enrollment) Enroll(c *Campaign, target EnrollmentTarget, anchor, today Date, sandbox bool, at time.Time) ([]NewEvent, error) {
	if !c.Created {
		return nil, Errorf(ENOTFOUND, "campaign %s not found", c.ID)
	}
	if c.Status == CampaignCompleted {
		return nil, &Error{Code: ECONFLICT, Reason: "campaign_completed", Message: fmt.Sprintf("campaign %s is completed: nothing more can be enrolled", c.ID)}
	}
	if sandbox {
		return nil, Invalid("sandbox targets cannot be enrolled", FieldError{Field: "target", Error: "sandbox accounts cannot be enrolled in campaigns"})
	}
	if c.Type == "statement_acknowledgement" && target.Type != "statement" {
		return nil, Invalid("invalid enrollment", FieldError{Field: "target", Error: "a statement_acknowledgement campaign enrolls statements only"})
	}
	var fe []FieldError
	if !slices.Contains(TargetTypes, target.Type) || target.ID == "" {
		fe = append(fe, FieldError{Field: "target", Error: "needs an id and a type: one of " + strings.Join(TargetTypes, ", ")})
	}
	if _, err := ParseDate(string(anchor)); err != nil {
		// An account with nothing owed has no due date: its journey has
		// nothing to run from.
		fe = append(fe, FieldError{Field: "target", Error: "has no due date to run the journey from (nothing owed?)"})
	}
	if _, err := ParseDate(string(today)); err != nil {
		fe = append(fe, FieldError{Field: "today", Error: "must be a date YYYY-MM-DD"})
	}
	if len(fe) > 0 {
		return nil, Invalid("invalid enrollment", fe...)
	}
	if e.Created && e.Status == EnrollmentActive {
		return nil, nil
	}
	start := 0
	for start < len(c.Steps) && anchor.AddDays(c.Steps[start].DayOffset) < today {
		start++
	}
	typ := EventEnrollmentCreated
	if e.Created {
		typ = EventEnrollmentReopened
	}
	var out []NewEvent
	if err := recordOn(e, &out, typ, EnrollmentCreated{CampaignID: c.ID, Target: target, AnchorDate: anchor, StartDate: today, StartStep: start, Sandbox: sandbox, At: at}); err != nil {
		return nil, err
	}
	if start == len(c.Steps) {
		// Every step was dated before today: nothing will ever come due
		// (the scheduler looks only at enrollments with a next step), so
		// the journey is over as soon as it starts.
		return out, recordOn(e, &out, EventEnrollmentEnded, EnrollmentEnded{Status: EnrollmentCompleted, Reason: "no step dated on or after " + string(today), At: at})
	}
	return out, nil
}

// Cancel ends an active enrollment: no more steps.
func (e *Enrollment) Cancel(reason string, at time.Time) ([]NewEvent, error) {
	if !e.Created {
		return nil, Errorf(ENOTFOUND, "enrollment %s not found", e.ID)
	}
	if e.Status != EnrollmentActive {
		return nil, &Error{Code: ECONFLICT, Reason: "invalid_transition", Message: fmt.Sprintf("enrollment %s is %s; cancel needs it active", e.ID, e.Status)}
	}
	var out []NewEvent
	return out, recordOn(e, &out, EventEnrollmentEnded, EnrollmentEnded{Status: EnrollmentCancelled, Reason: reason, At: at})
}

// Gate is the state of collection on an enrollment's target, as the
// scheduler found it: Done when there is nothing left to collect (claim
// resolved or stopped, account or statement settled), Held while
// collection is paused (claim paused, disputed, an active promise to pay).
type Gate struct {
	Done, Held bool
	Reason     string
}

// ClaimGate is the gate of claim c; disputed says whether an open dispute
// covers it (its own or its account's).
func ClaimGate(c *Claim, disputed bool) Gate {
	switch {
	case !c.Created:
		return Gate{Done: true, Reason: "claim not found"}
	case c.Status == ClaimResolved:
		return Gate{Done: true, Reason: "claim resolved: " + string(c.Resolution)}
	case c.Status == ClaimStopped:
		return Gate{Done: true, Reason: "claim stopped"}
	case c.Status == ClaimPaused:
		return Gate{Held: true, Reason: "claim paused"}
	case disputed:
		return Gate{Held: true, Reason: "disputed"}
	case c.ActivePromise() != nil:
		return Gate{Held: true, Reason: "active promise to pay"}
	}
	return Gate{}
}

// Advance is the scheduler's decision on day today: every step whose date
// has come fires once, in order, unless the campaign or the gate holds
// it; the enrollment completes after its last step or when the gate says
// the target is done. Calling it again the same day records nothing.
func (e *Enrollment) Advance(c *Campaign, gate Gate, today Date, at time.Time) ([]NewEvent, error) {
	if !e.Created || e.Status != EnrollmentActive {
		return nil, nil
	}
	var out []NewEvent
	end := func(reason string) ([]NewEvent, error) {
		return out, recordOn(e, &out, EventEnrollmentEnded, EnrollmentEnded{Status: EnrollmentCompleted, Reason: reason, At: at})
	}
	switch {
	case c.Status == CampaignCompleted:
		return end("campaign completed")
	case gate.Done:
		return end(gate.Reason)
	case c.Status == CampaignPaused || gate.Held:
		return nil, nil
	}
	for e.NextStep < len(c.Steps) && e.StepDate(c, e.NextStep) <= today {
		i := e.NextStep
		s := c.Steps[i]
		if err := recordOn(e, &out, EventJourneyStepDue, StepDue{CampaignID: c.ID, CampaignName: c.Name, EnrollmentID: e.ID, Step: i,
			DayOffset: s.DayOffset, Action: s.Action, Name: s.Name, Template: s.Template, ScheduledDate: e.StepDate(c, i), Date: today,
			Target: e.Target, At: at}); err != nil {
			return nil, err
		}
	}
	if e.NextStep >= len(c.Steps) {
		return end("journey finished")
	}
	return out, nil
}

// Apply folds one event into the enrollment.
func (e *Enrollment) Apply(typ string, data json.RawMessage) error {
	fail := func(err error) error { return fmt.Errorf("enrollment %s: apply %s: %w", e.ID, typ, err) }
	switch typ {
	case EventEnrollmentCreated, EventEnrollmentReopened:
		var d EnrollmentCreated
		if err := json.Unmarshal(data, &d); err != nil {
			return fail(err)
		}
		if typ == EventEnrollmentCreated {
			e.Created, e.Sandbox, e.CreatedAt = true, d.Sandbox, d.At
		}
		e.CampaignID, e.Target, e.AnchorDate, e.StartDate, e.NextStep = d.CampaignID, d.Target, d.AnchorDate, d.StartDate, d.StartStep
		e.Status, e.Reason, e.UpdatedAt = EnrollmentActive, "", d.At
		e.Runs++
	case EventJourneyStepDue:
		var d StepDue
		if err := json.Unmarshal(data, &d); err != nil {
			return fail(err)
		}
		if d.Step != e.NextStep {
			return fail(fmt.Errorf("step %d fired, step %d was next", d.Step, e.NextStep))
		}
		e.NextStep++
		e.StepsFired++
		e.UpdatedAt = d.At
	case EventEnrollmentEnded:
		var d EnrollmentEnded
		if err := json.Unmarshal(data, &d); err != nil {
			return fail(err)
		}
		e.Status, e.Reason, e.UpdatedAt = d.Status, d.Reason, d.At
	default:
		return fail(fmt.Errorf("unknown event type"))
	}
	e.Version++
	return nil
}

// applier is an aggregate that folds its own events.
type applier interface {
	Apply(typ string, data json.RawMessage) error
}

// recordOn encodes v, applies it to agg and appends it to out, so a
// command builds on the state its own earlier events produced.
func recordOn(agg applier, out *[]NewEvent, typ string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	if err := agg.Apply(typ, data); err != nil {
		return err
	}
	*out = append(*out, NewEvent{Type: typ, Data: data})
	return nil
}

// OldestDueDate is the due date of the account's oldest open debit (""
// when nothing is owed): an account's journey runs from it.
func (a *Account) OldestDueDate() Date {
	var oldest Date
	for _, e := range a.Entries {
		if e.IsDebit() && e.Remaining().IsPositive() && (oldest == "" || e.effectiveDue() < oldest) {
			oldest = e.effectiveDue()
		}
	}
	return oldest
}

// AccountGate is the gate of account a; disputed says whether an open
// dispute covers the account.
func AccountGate(a *Account, disputed bool) Gate {
	switch {
	case !a.Opened:
		return Gate{Done: true, Reason: "account not found"}
	case !a.Outstanding().IsPositive():
		return Gate{Done: true, Reason: "account settled"}
	case disputed:
		return Gate{Held: true, Reason: "disputed"}
	}
	return Gate{}
}

// StatementAnchor is the date a statement's journey runs from: the last
// day of its month (YYYY-MM).
func StatementAnchor(month string) Date {
	first := Date(month + "-01")
	return DateOf(first.Time().AddDate(0, 1, -1))
}
