package domain_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

var campaignT0 = time.Date(2026, 5, 4, 6, 0, 0, 0, time.UTC)

// campaignID is a campaign id made at campaignT0.
var campaignID = "cmp_" + ulid.MustNew(ulid.Timestamp(campaignT0), strings.NewReader(strings.Repeat("c", 16))).String()

func campaignInput() domain.CampaignInput {
	return domain.CampaignInput{Name: "Dunning", Type: "collection", Steps: []domain.CampaignStep{
		{DayOffset: -3, Action: "email", Name: "reminder", Template: "tpl_rem"},
		{DayOffset: 0, Action: "sms"},
		{DayOffset: 0, Action: "email", Name: "due today"},
		{DayOffset: 7, Action: "call"},
		{DayOffset: 14, Action: "letter", Name: "final notice"},
	}}
}

// campaignIn returns a campaign driven into status ("" : never created)
// and the events that did it.
func campaignIn(t *testing.T, status domain.CampaignStatus) (*domain.Campaign, []domain.NewEvent) {
	t.Helper()
	c := domain.NewCampaign("ten_1", campaignID)
	if status == "" {
		return c, nil
	}
	evs, err := c.Create(campaignInput(), false, campaignT0)
	require.NoError(t, err)
	var more []domain.NewEvent
	switch status {
	case domain.CampaignPaused:
		more, err = c.Pause("holidays", campaignT0)
	case domain.CampaignCompleted:
		more, err = c.Complete("replaced", campaignT0)
	}
	require.NoError(t, err)
	require.Equal(t, status, c.Status)
	return c, append(evs, more...)
}

// TestCampaignStateMachine covers every (state, command) pair of a
// campaign: active ⇄ paused, active|paused → completed; a forbidden
// command is a conflict naming the current state; a campaign never
// created is not found.
func TestCampaignStateMachine(t *testing.T) {
	at := campaignT0.Add(time.Hour)
	commands := map[string]func(c *domain.Campaign) ([]domain.NewEvent, error){
		"pause":    func(c *domain.Campaign) ([]domain.NewEvent, error) { return c.Pause("why not", at) },
		"resume":   func(c *domain.Campaign) ([]domain.NewEvent, error) { return c.Resume(at) },
		"complete": func(c *domain.Campaign) ([]domain.NewEvent, error) { return c.Complete("done", at) },
		"create":   func(c *domain.Campaign) ([]domain.NewEvent, error) { return c.Create(campaignInput(), false, at) },
	}
	type outcome struct {
		code   string
		events []string
		then   domain.CampaignStatus
	}
	ok := func(then domain.CampaignStatus, events ...string) outcome { return outcome{events: events, then: then} }
	conflict, notFound := outcome{code: domain.ECONFLICT}, outcome{code: domain.ENOTFOUND}
	const none, active, paused, completed = domain.CampaignStatus(""), domain.CampaignActive, domain.CampaignPaused, domain.CampaignCompleted
	table := map[domain.CampaignStatus]map[string]outcome{
		none: {"pause": notFound, "resume": notFound, "complete": notFound, "create": ok(active, domain.EventCampaignCreated)},
		active: {"pause": ok(paused, domain.EventCampaignPaused), "resume": conflict, "complete": ok(completed, domain.EventCampaignCompleted),
			"create": conflict},
		paused: {"pause": conflict, "resume": ok(active, domain.EventCampaignResumed), "complete": ok(completed, domain.EventCampaignCompleted),
			"create": conflict},
		completed: {"pause": conflict, "resume": conflict, "complete": conflict, "create": conflict},
	}
	for _, state := range []domain.CampaignStatus{none, active, paused, completed} {
		require.Len(t, table[state], len(commands), "state %q: every command has an outcome", state)
		for name, cmd := range commands {
			want := table[state][name]
			t.Run(string(state)+"/"+name, func(t *testing.T) {
				c, before := campaignIn(t, state)
				snapshot := foldJSON(t, c)
				evs, err := cmd(c)
				if want.code != "" {
					e := domErr(t, err)
					require.Equal(t, want.code, e.Code, "%v", err)
					if want.code == domain.ECONFLICT && name != "create" {
						require.Contains(t, e.Message, "is "+string(state), "the 409 names the state")
					}
					require.Empty(t, evs)
					require.Equal(t, snapshot, foldJSON(t, c), "a refused command changes nothing")
					return
				}
				require.NoError(t, err)
				require.Equal(t, want.events, eventTypes(evs))
				require.Equal(t, want.then, c.Status)
				again := domain.NewCampaign("ten_1", campaignID)
				for _, e := range append(before, evs...) {
					require.NoError(t, again.Apply(e.Type, e.Data))
				}
				require.Equal(t, foldJSON(t, c), foldJSON(t, again), "the events alone rebuild the state")
			})
		}
	}
}

// TestCampaignValidation: each invalid input is refused naming its field.
func TestCampaignValidation(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(in *domain.CampaignInput)
		fields []string
	}{
		{"no name", func(in *domain.CampaignInput) { in.Name = "  " }, []string{"name"}},
		{"long name", func(in *domain.CampaignInput) { in.Name = strings.Repeat("n", 201) }, []string{"name"}},
		{"unknown type", func(in *domain.CampaignInput) { in.Type = "marketing" }, []string{"type"}},
		{"long description", func(in *domain.CampaignInput) { in.Description = strings.Repeat("d", 2001) }, []string{"description"}},
		{"no steps", func(in *domain.CampaignInput) { in.Steps = nil }, []string{"steps"}},
		{"too many steps", func(in *domain.CampaignInput) {
			in.Steps = make([]domain.CampaignStep, domain.MaxCampaignSteps+1)
			for i := range in.Steps {
				in.Steps[i] = domain.CampaignStep{DayOffset: i, Action: "email"}
			}
		}, []string{"steps"}},
		{"out of order", func(in *domain.CampaignInput) { in.Steps[3].DayOffset = -1 }, []string{"steps[3].day_offset"}},
		{"too early", func(in *domain.CampaignInput) { in.Steps[0].DayOffset = domain.MinStepOffset - 1 }, []string{"steps[0].day_offset"}},
		{"too late", func(in *domain.CampaignInput) { in.Steps[4].DayOffset = domain.MaxStepOffset + 1 }, []string{"steps[4].day_offset"}},
		{"no action", func(in *domain.CampaignInput) { in.Steps[1].Action = "" }, []string{"steps[1].action"}},
		{"upper-case action", func(in *domain.CampaignInput) { in.Steps[2].Action = "Email" }, []string{"steps[2].action"}},
		{"action with a space", func(in *domain.CampaignInput) { in.Steps[2].Action = "send email" }, []string{"steps[2].action"}},
		{"long action", func(in *domain.CampaignInput) { in.Steps[2].Action = strings.Repeat("a", 33) }, []string{"steps[2].action"}},
		{"long template", func(in *domain.CampaignInput) { in.Steps[1].Template = strings.Repeat("t", 201) }, []string{"steps[1]"}},
		{"meta not an object", func(in *domain.CampaignInput) { in.Meta = json.RawMessage(`"x"`) }, []string{"meta"}},
		{"several", func(in *domain.CampaignInput) {
			in.Type = ""
			in.Steps[1].Action = "SMS"
			in.Steps[4].DayOffset = 1
		}, []string{"type", "steps[1].action", "steps[4].day_offset"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := campaignInput()
			tc.edit(&in)
			c := domain.NewCampaign("ten_1", campaignID)
			evs, err := c.Create(in, false, campaignT0)
			e := domErr(t, err)
			require.Equal(t, domain.EINVALID, e.Code)
			require.Equal(t, tc.fields, fieldNames(e))
			require.Empty(t, evs)
			require.False(t, c.Created)
		})
	}
	// The valid edges.
	in := campaignInput()
	in.Steps = []domain.CampaignStep{{DayOffset: domain.MinStepOffset, Action: "a"}, {DayOffset: domain.MinStepOffset, Action: "custom_action_2"},
		{DayOffset: domain.MaxStepOffset, Action: strings.Repeat("a", 32)}}
	_, err := domain.NewCampaign("ten_1", campaignID).Create(in, false, campaignT0)
	require.NoError(t, err)
}

func claimTarget(id string) domain.EnrollmentTarget {
	return domain.EnrollmentTarget{Type: "claim", ID: id, AccountID: "acct_1", ClaimID: id, DebtorIDs: []string{"dbt_1"}, Currency: "EUR"}
}

// enrollmentIn returns an enrollment (in an active campaign of
// campaignInput, anchored on 2026-05-10, enrolled that day) driven into
// status ("" : never created), with its campaign and events.
func enrollmentIn(t *testing.T, status domain.EnrollmentStatus) (*domain.Enrollment, *domain.Campaign, []domain.NewEvent) {
	t.Helper()
	c, _ := campaignIn(t, domain.CampaignActive)
	e := domain.NewEnrollment("ten_1", domain.EnrollmentID(c.ID, "clm_1"))
	if status == "" {
		return e, c, nil
	}
	evs, err := e.Enroll(c, claimTarget("clm_1"), "2026-05-10", "2026-05-10", false, campaignT0)
	require.NoError(t, err)
	var more []domain.NewEvent
	switch status {
	case domain.EnrollmentCompleted:
		more, err = e.Advance(c, domain.Gate{Done: true, Reason: "claim resolved: paid"}, "2026-05-10", campaignT0)
	case domain.EnrollmentCancelled:
		more, err = e.Cancel("opted out", campaignT0)
	}
	require.NoError(t, err)
	require.Equal(t, status, e.Status)
	return e, c, append(evs, more...)
}

// TestEnrollmentStateMachine covers every (state, command) pair of an
// enrollment: enrolling creates it, does nothing while it is active, and
// reopens an ended one; cancel needs it active (a conflict naming the
// state otherwise, not found before it exists); advancing fires the due
// step of an active one and does nothing otherwise.
func TestEnrollmentStateMachine(t *testing.T) {
	at := campaignT0.Add(time.Hour)
	commands := map[string]func(e *domain.Enrollment, c *domain.Campaign) ([]domain.NewEvent, error){
		"enroll": func(e *domain.Enrollment, c *domain.Campaign) ([]domain.NewEvent, error) {
			return e.Enroll(c, claimTarget("clm_1"), "2026-05-10", "2026-05-10", false, at)
		},
		"cancel": func(e *domain.Enrollment, _ *domain.Campaign) ([]domain.NewEvent, error) {
			return e.Cancel("asked", at)
		},
		"advance": func(e *domain.Enrollment, c *domain.Campaign) ([]domain.NewEvent, error) {
			return e.Advance(c, domain.Gate{}, "2026-05-10", at) // steps 1 and 2 fall on that day (step 0 was before)
		},
	}
	type outcome struct {
		code   string
		events []string
		then   domain.EnrollmentStatus
	}
	ok := func(then domain.EnrollmentStatus, events ...string) outcome {
		return outcome{events: append([]string{}, events...), then: then}
	}
	conflict, notFound := outcome{code: domain.ECONFLICT}, outcome{code: domain.ENOTFOUND}
	const none, active, completed, cancelled = domain.EnrollmentStatus(""), domain.EnrollmentActive, domain.EnrollmentCompleted, domain.EnrollmentCancelled
	table := map[domain.EnrollmentStatus]map[string]outcome{
		none:      {"enroll": ok(active, domain.EventEnrollmentCreated), "cancel": notFound, "advance": ok(none)},
		active:    {"enroll": ok(active), "cancel": ok(cancelled, domain.EventEnrollmentEnded), "advance": ok(active, domain.EventJourneyStepDue, domain.EventJourneyStepDue)},
		completed: {"enroll": ok(active, domain.EventEnrollmentReopened), "cancel": conflict, "advance": ok(completed)},
		cancelled: {"enroll": ok(active, domain.EventEnrollmentReopened), "cancel": conflict, "advance": ok(cancelled)},
	}
	for _, state := range []domain.EnrollmentStatus{none, active, completed, cancelled} {
		require.Len(t, table[state], len(commands), "state %q: every command has an outcome", state)
		for name, cmd := range commands {
			want := table[state][name]
			t.Run(string(state)+"/"+name, func(t *testing.T) {
				e, c, before := enrollmentIn(t, state)
				snapshot := foldJSON(t, e)
				evs, err := cmd(e, c)
				if want.code != "" {
					de := domErr(t, err)
					require.Equal(t, want.code, de.Code, "%v", err)
					if want.code == domain.ECONFLICT {
						require.Contains(t, de.Message, "is "+string(state), "the 409 names the state")
					}
					require.Empty(t, evs)
					require.Equal(t, snapshot, foldJSON(t, e), "a refused command changes nothing")
					return
				}
				require.NoError(t, err)
				require.Equal(t, want.events, append([]string{}, eventTypes(evs)...))
				require.Equal(t, want.then, e.Status)
				if len(evs) == 0 {
					require.Equal(t, snapshot, foldJSON(t, e), "nothing recorded, nothing changed")
				}
				again := domain.NewEnrollment("ten_1", e.ID)
				for _, ev := range append(before, evs...) {
					require.NoError(t, again.Apply(ev.Type, ev.Data))
				}
				require.Equal(t, foldJSON(t, e), foldJSON(t, again), "the events alone rebuild the state")
			})
		}
	}
}

// stepsFired decodes the journey.step_due events of evs as "step@date".
func stepsFired(t *testing.T, evs []domain.NewEvent) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		if ev.Type == domain.EventJourneyStepDue {
			s := decodeEvent[domain.StepDue](t, ev)
			out = append(out, fmt.Sprintf("%d@%s", s.Step, s.Date))
		}
	}
	return out
}

// TestEnrollmentAdvanceOverDays: run by the scheduler every day (twice), a
// journey fires each step exactly once, in order, on its day (two steps of
// one day in one command); nothing while the gate holds it or the campaign
// is paused — the held steps fire, once, on the first day it is free; it
// completes in the command of its last step; after that nothing.
func TestEnrollmentAdvanceOverDays(t *testing.T) {
	type span struct{ from, to domain.Date }
	tests := []struct {
		name        string
		heldBy      string // "gate" or "campaign"
		held        []span
		want        []string
		completedOn domain.Date
	}{
		{name: "free", want: []string{"0@2026-05-07", "1@2026-05-10", "2@2026-05-10", "3@2026-05-17", "4@2026-05-24"}, completedOn: "2026-05-24"},
		{name: "gate held over two steps", heldBy: "gate", held: []span{{"2026-05-09", "2026-05-18"}},
			want: []string{"0@2026-05-07", "1@2026-05-19", "2@2026-05-19", "3@2026-05-19", "4@2026-05-24"}, completedOn: "2026-05-24"},
		{name: "campaign paused over the last step", heldBy: "campaign", held: []span{{"2026-05-20", "2026-06-02"}},
			want: []string{"0@2026-05-07", "1@2026-05-10", "2@2026-05-10", "3@2026-05-17", "4@2026-06-03"}, completedOn: "2026-06-03"},
		{name: "held twice", heldBy: "gate", held: []span{{"2026-05-07", "2026-05-07"}, {"2026-05-17", "2026-05-30"}},
			want: []string{"0@2026-05-08", "1@2026-05-10", "2@2026-05-10", "3@2026-05-31", "4@2026-05-31"}, completedOn: "2026-05-31"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := campaignIn(t, domain.CampaignActive)
			e := domain.NewEnrollment("ten_1", domain.EnrollmentID(c.ID, "clm_1"))
			_, err := e.Enroll(c, claimTarget("clm_1"), "2026-05-10", "2026-05-01", false, campaignT0)
			require.NoError(t, err)
			require.Equal(t, 0, e.NextStep)
			var fired []string
			var completedOn domain.Date
			for day := domain.Date("2026-05-01"); day <= "2026-06-30"; day = day.AddDays(1) {
				held := false
				for _, s := range tc.held {
					held = held || (day >= s.from && day <= s.to)
				}
				gate := domain.Gate{}
				if held && tc.heldBy == "gate" {
					gate = domain.Gate{Held: true, Reason: "active promise to pay"}
				}
				if tc.heldBy == "campaign" {
					var err error
					switch {
					case held && c.Status == domain.CampaignActive:
						_, err = c.Pause("holidays", campaignT0)
					case !held && c.Status == domain.CampaignPaused:
						_, err = c.Resume(campaignT0)
					}
					require.NoError(t, err)
				}
				for pass := range 2 {
					evs, err := e.Advance(c, gate, day, campaignT0)
					require.NoError(t, err)
					if pass == 1 {
						require.Empty(t, evs, "%s: a second pass the same day records nothing", day)
					}
					if held {
						require.Empty(t, evs, "%s: held", day)
					}
					fired = append(fired, stepsFired(t, evs)...)
					for _, ev := range evs {
						if ev.Type == domain.EventEnrollmentEnded {
							require.Empty(t, completedOn, "completed twice")
							require.Equal(t, domain.EventEnrollmentEnded, evs[len(evs)-1].Type, "ended after the steps of its command")
							completedOn = day
							require.Equal(t, domain.EnrollmentCompleted, e.Status)
							require.Equal(t, "journey finished", decodeEvent[domain.EnrollmentEnded](t, ev).Reason)
						}
					}
				}
			}
			require.Equal(t, tc.want, fired, "each step once, in order")
			require.Equal(t, tc.completedOn, completedOn)
			require.Equal(t, 5, e.StepsFired)
		})
	}
}

// TestEnrollmentEndsWhenDone: a gate that says the target is done, or a
// completed campaign, completes the enrollment with its reason, steps left
// or not, even on a day no step is due; a held gate does not.
func TestEnrollmentEndsWhenDone(t *testing.T) {
	tests := []struct {
		name     string
		gate     domain.Gate
		complete bool
		want     []string
		reason   string
	}{
		{name: "claim resolved", gate: domain.Gate{Done: true, Reason: "claim resolved: paid"}, want: []string{domain.EventEnrollmentEnded}, reason: "claim resolved: paid"},
		{name: "done wins over held", gate: domain.Gate{Done: true, Held: true, Reason: "claim stopped"}, want: []string{domain.EventEnrollmentEnded}, reason: "claim stopped"},
		{name: "campaign completed", complete: true, want: []string{domain.EventEnrollmentEnded}, reason: "campaign completed"},
		{name: "held", gate: domain.Gate{Held: true, Reason: "disputed"}, want: []string{}},
		{name: "free, no step due", want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, c, _ := enrollmentIn(t, domain.EnrollmentActive)
			evs, err := e.Advance(c, domain.Gate{}, "2026-05-10", campaignT0)
			require.NoError(t, err)
			require.Equal(t, []string{"1@2026-05-10", "2@2026-05-10"}, stepsFired(t, evs))
			if tc.complete {
				_, err := c.Complete("over", campaignT0)
				require.NoError(t, err)
			}
			evs, err = e.Advance(c, tc.gate, "2026-05-12", campaignT0) // no step falls due on that day
			require.NoError(t, err)
			require.Equal(t, tc.want, append([]string{}, eventTypes(evs)...))
			if tc.reason == "" {
				require.Equal(t, domain.EnrollmentActive, e.Status)
				return
			}
			ended := decodeEvent[domain.EnrollmentEnded](t, evs[0])
			require.Equal(t, domain.EnrollmentCompleted, ended.Status)
			require.Equal(t, tc.reason, ended.Reason)
			require.Equal(t, domain.EnrollmentCompleted, e.Status)
			require.Equal(t, 3, e.NextStep, "no step fired")
		})
	}
}

// TestEnrollmentStartStep: the journey starts at the first step dated on
// or after the enrollment day; earlier steps never fire. When every step is
// dated before it, the enrollment completes in the command that creates
// it. Reopening starts again from the reopening day.
func TestEnrollmentStartStep(t *testing.T) {
	for _, tc := range []struct {
		today     domain.Date
		startStep int
		completed bool
	}{
		{"2026-05-01", 0, false}, // before everything
		{"2026-05-07", 0, false}, // on step 0's day
		{"2026-05-08", 1, false},
		{"2026-05-10", 1, false}, // steps 1 and 2 on that day
		{"2026-05-11", 3, false},
		{"2026-05-24", 4, false}, // the last step's day
		{"2026-05-25", 5, true},  // after every step
	} {
		t.Run(string(tc.today), func(t *testing.T) {
			c, _ := campaignIn(t, domain.CampaignActive)
			e := domain.NewEnrollment("ten_1", domain.EnrollmentID(c.ID, "clm_1"))
			evs, err := e.Enroll(c, claimTarget("clm_1"), "2026-05-10", tc.today, false, campaignT0)
			require.NoError(t, err)
			created := decodeEvent[domain.EnrollmentCreated](t, evs[0])
			require.Equal(t, tc.startStep, created.StartStep)
			require.Equal(t, tc.today, created.StartDate)
			require.Equal(t, domain.Date("2026-05-10"), created.AnchorDate)
			if tc.completed {
				require.Equal(t, []string{domain.EventEnrollmentCreated, domain.EventEnrollmentEnded}, eventTypes(evs))
				require.Equal(t, domain.EnrollmentCompleted, e.Status)
				return
			}
			require.Equal(t, []string{domain.EventEnrollmentCreated}, eventTypes(evs))
			var fired []string
			for day := tc.today; day <= "2026-06-30"; day = day.AddDays(1) {
				evs, err := e.Advance(c, domain.Gate{}, day, campaignT0)
				require.NoError(t, err)
				fired = append(fired, stepsFired(t, evs)...)
			}
			require.Len(t, fired, 5-tc.startStep, "%v", fired)
			require.True(t, strings.HasPrefix(fired[0], fmt.Sprint(tc.startStep)+"@"), "%v", fired)
			require.Equal(t, domain.EnrollmentCompleted, e.Status)
		})
	}

	// Reopened: from the reopening day, with the new anchor.
	e, c, _ := enrollmentIn(t, domain.EnrollmentCancelled)
	evs, err := e.Enroll(c, claimTarget("clm_1"), "2026-06-01", "2026-06-02", false, campaignT0)
	require.NoError(t, err)
	require.Equal(t, []string{domain.EventEnrollmentReopened}, eventTypes(evs))
	require.Equal(t, 3, e.NextStep, "2026-06-01 +0 days is before the reopening day")
	require.Equal(t, 2, e.Runs)
	require.Equal(t, domain.Date("2026-06-01"), e.AnchorDate)
}

// TestEnrollRefusals: what Enroll refuses, with its code and field.
func TestEnrollRefusals(t *testing.T) {
	active, _ := campaignIn(t, domain.CampaignActive)
	paused, _ := campaignIn(t, domain.CampaignPaused)
	completed, _ := campaignIn(t, domain.CampaignCompleted)
	missing, _ := campaignIn(t, "")
	statements, _ := campaignIn(t, "")
	in := campaignInput()
	in.Type = "statement_acknowledgement"
	_, err := statements.Create(in, false, campaignT0)
	require.NoError(t, err)
	statement := domain.EnrollmentTarget{Type: "statement", ID: "stm_1-2026-05-EUR", StatementID: "stm_1-2026-05-EUR"}
	tests := []struct {
		name          string
		c             *domain.Campaign
		target        domain.EnrollmentTarget
		anchor, today domain.Date
		sandbox       bool
		code, field   string
	}{
		{"campaign not found", missing, claimTarget("clm_1"), "2026-05-10", "2026-05-10", false, domain.ENOTFOUND, ""},
		{"campaign completed", completed, claimTarget("clm_1"), "2026-05-10", "2026-05-10", false, domain.ECONFLICT, ""},
		{"sandbox target", active, claimTarget("clm_1"), "2026-05-10", "2026-05-10", true, domain.EINVALID, "target"},
		{"claim in a statement campaign", statements, claimTarget("clm_1"), "2026-05-10", "2026-05-10", false, domain.EINVALID, "target"},
		{"no anchor (nothing owed)", active, claimTarget("clm_1"), "", "2026-05-10", false, domain.EINVALID, "target"},
		{"bad anchor", active, claimTarget("clm_1"), "2026-13-01", "2026-05-10", false, domain.EINVALID, "target"},
		{"no target id", active, domain.EnrollmentTarget{Type: "claim"}, "2026-05-10", "2026-05-10", false, domain.EINVALID, "target"},
		{"unknown target type", active, domain.EnrollmentTarget{Type: "debtor", ID: "dbt_1"}, "2026-05-10", "2026-05-10", false, domain.EINVALID, "target"},
		{"no today", active, claimTarget("clm_1"), "2026-05-10", "", false, domain.EINVALID, "today"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := domain.NewEnrollment("ten_1", domain.EnrollmentID(campaignID, tc.target.ID))
			evs, err := e.Enroll(tc.c, tc.target, tc.anchor, tc.today, tc.sandbox, campaignT0)
			de := domErr(t, err)
			require.Equal(t, tc.code, de.Code, "%v", err)
			if tc.field != "" {
				require.Contains(t, fieldNames(de), tc.field)
			}
			require.Empty(t, evs)
			require.False(t, e.Created)
		})
	}
	// Allowed: a paused campaign (its steps wait), a statement in a
	// statement campaign.
	for _, c := range []*domain.Campaign{paused, statements} {
		target := claimTarget("clm_1")
		if c == statements {
			target = statement
		}
		e := domain.NewEnrollment("ten_1", domain.EnrollmentID(c.ID, target.ID))
		evs, err := e.Enroll(c, target, "2026-05-10", "2026-05-10", false, campaignT0)
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventEnrollmentCreated}, eventTypes(evs))
	}
}

// TestDerivedID: the same parts always give the same id, a valid ULID
// with the prefix, carrying the time of the id it derives from; other
// parts give another id.
func TestDerivedID(t *testing.T) {
	a := domain.EnrollmentID(campaignID, "clm_1")
	require.Equal(t, a, domain.EnrollmentID(campaignID, "clm_1"), "deterministic")
	require.Equal(t, a, domain.DerivedID(domain.PrefixEnrollment, campaignID, campaignID, "clm_1"))
	rest, ok := strings.CutPrefix(a, "enr_")
	require.True(t, ok, a)
	u, err := ulid.ParseStrict(rest)
	require.NoError(t, err, "a valid ULID: %s", a)
	require.Equal(t, ulid.Timestamp(campaignT0), u.Time(), "the campaign's time")
	others := map[string]bool{a: true}
	for _, id := range []string{
		domain.EnrollmentID(campaignID, "clm_2"),
		domain.EnrollmentID("cmp_"+ulid.MustNew(ulid.Timestamp(campaignT0), strings.NewReader(strings.Repeat("d", 16))).String(), "clm_1"),
		domain.DerivedID(domain.PrefixEnrollment, campaignID, campaignID+"clm_1"),
	} {
		require.False(t, others[id], "%s collides", id)
		others[id] = true
	}
	// Not derived from an id: time zero, still a valid ULID.
	z := domain.DerivedID("x", "not-an-id", "p")
	u, err = ulid.ParseStrict(strings.TrimPrefix(z, "x_"))
	require.NoError(t, err)
	require.Zero(t, u.Time())
}

// TestClaimGate: how a claim's state gates its journey.
func TestClaimGate(t *testing.T) {
	withPromise, _ := claimIn(t, domain.ClaimOpen)
	_, err := withPromise.MakePromise("ptp_1", d("10"), "2026-03-10", "2026-03-01", claimT0)
	require.NoError(t, err)
	paused, _ := claimIn(t, domain.ClaimPaused)
	open, _ := claimIn(t, domain.ClaimOpen)
	resolved, _ := claimIn(t, domain.ClaimResolved)
	stopped, _ := claimIn(t, domain.ClaimStopped)
	for _, tc := range []struct {
		name     string
		c        *domain.Claim
		disputed bool
		want     domain.Gate
	}{
		{"missing", domain.NewClaim("ten_1", "clm_x"), false, domain.Gate{Done: true, Reason: "claim not found"}},
		{"open", open, false, domain.Gate{}},
		{"disputed", open, true, domain.Gate{Held: true, Reason: "disputed"}},
		{"active promise", withPromise, false, domain.Gate{Held: true, Reason: "active promise to pay"}},
		{"paused", paused, true, domain.Gate{Held: true, Reason: "claim paused"}},
		{"resolved", resolved, true, domain.Gate{Done: true, Reason: "claim resolved: sold"}},
		{"stopped", stopped, false, domain.Gate{Done: true, Reason: "claim stopped"}},
	} {
		require.Equal(t, tc.want, domain.ClaimGate(tc.c, tc.disputed), tc.name)
	}
}
