package api_test

// Campaigns and journeys: create, list, filter, get, pause, resume,
// complete; enrollments of accounts, claims and statements with their
// anchor dates; re-enrollment, cancellation, the sandbox rule, tenant and
// mode isolation, scopes and Idempotency-Key replays.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type campaignStepJSON struct {
	DayOffset int    `json:"day_offset"`
	Action    string `json:"action"`
	Name      string `json:"name"`
	Template  string `json:"template"`
}

type campaignJSON struct {
	Object      string             `json:"object"`
	ID          string             `json:"id"`
	Name        string             `json:"name"`
	Type        string             `json:"type"`
	Description string             `json:"description"`
	Steps       []campaignStepJSON `json:"steps"`
	Meta        map[string]any     `json:"meta"`
	Status      string             `json:"status"`
	Reason      string             `json:"reason"`
	Enrollments struct {
		Active    int `json:"active"`
		Completed int `json:"completed"`
		Cancelled int `json:"cancelled"`
	} `json:"enrollments"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	Version   int64  `json:"version"`
	Position  int64  `json:"-"`
}

type enrollmentJSON struct {
	Object     string `json:"object"`
	ID         string `json:"id"`
	CampaignID string `json:"campaign_id"`
	Target     struct {
		Type        string   `json:"type"`
		ID          string   `json:"id"`
		AccountID   string   `json:"account_id"`
		ClaimID     string   `json:"claim_id"`
		StatementID string   `json:"statement_id"`
		DebtorIDs   []string `json:"debtor_ids"`
		Currency    string   `json:"currency"`
	} `json:"target"`
	AnchorDate  string  `json:"anchor_date"`
	StartDate   string  `json:"start_date"`
	NextStep    int     `json:"next_step"`
	NextDueDate *string `json:"next_due_date"`
	StepsFired  int     `json:"steps_fired"`
	Status      string  `json:"status"`
	Reason      string  `json:"reason"`
	Runs        int     `json:"runs"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
	Version     int64   `json:"version"`
}

type enrollmentBatchJSON struct {
	Object    string `json:"object"`
	Enrolled  int    `json:"enrolled"`
	Reopened  int    `json:"reopened"`
	Unchanged int    `json:"unchanged"`
	Data      []struct {
		Index      int            `json:"index"`
		Field      string         `json:"field"`
		Outcome    string         `json:"outcome"`
		Enrollment enrollmentJSON `json:"enrollment"`
	} `json:"data"`
}

func (e *env) createCampaign(t *testing.T, secret string, body map[string]any) campaignJSON {
	t.Helper()
	r := e.post(t, secret, "/v1/campaigns", body)
	require.Equal(t, http.StatusCreated, r.Status, "create campaign: %s", r.Body)
	var c campaignJSON
	r.decode(t, &c)
	c.Position = r.position(t)
	require.Equal(t, "/v1/campaigns/"+c.ID, r.Header.Get("Location"))
	return c
}

func (e *env) getCampaign(t *testing.T, secret, id string, pos int64) campaignJSON {
	t.Helper()
	r := e.get(t, secret, fmt.Sprintf("/v1/campaigns/%s?min_position=%d", id, pos))
	require.Equal(t, http.StatusOK, r.Status, "get campaign: %s", r.Body)
	var c campaignJSON
	r.decode(t, &c)
	return c
}

func (e *env) campaignAction(t *testing.T, secret, id, action string, body any, status int) (campaignJSON, *response) {
	t.Helper()
	r := e.post(t, secret, "/v1/campaigns/"+id+"/"+action, body)
	require.Equal(t, status, r.Status, "%s: %s", action, r.Body)
	var c campaignJSON
	if status == http.StatusOK {
		r.decode(t, &c)
		c.Position = r.position(t)
	}
	return c, r
}

// campaignIDs lists the campaigns a query finds, through every page.
func (e *env) campaignIDs(t *testing.T, secret, query string) []string {
	t.Helper()
	got, _ := walk(t, e, secret, "/v1/campaigns?"+query, func(c campaignJSON) string { return c.ID })
	if got == nil {
		got = []string{}
	}
	return got
}

// enroll posts an enrollment request and requires status.
func (e *env) enroll(t *testing.T, secret, campaignID string, body any, status int, header ...string) (enrollmentBatchJSON, *response) {
	t.Helper()
	r := e.post(t, secret, "/v1/campaigns/"+campaignID+"/enrollments", body, header...)
	require.Equal(t, status, r.Status, "enroll: %s", r.Body)
	var b enrollmentBatchJSON
	if status < 300 {
		r.decode(t, &b)
	}
	return b, r
}

func (e *env) getEnrollment(t *testing.T, secret, campaignID, id string, pos int64) enrollmentJSON {
	t.Helper()
	r := e.get(t, secret, fmt.Sprintf("/v1/campaigns/%s/enrollments/%s?min_position=%d", campaignID, id, pos))
	require.Equal(t, http.StatusOK, r.Status, "get enrollment: %s", r.Body)
	var v enrollmentJSON
	r.decode(t, &v)
	return v
}

// enrollmentIDs lists the enrollments of a campaign a query finds.
func (e *env) enrollmentIDs(t *testing.T, secret, campaignID, query string) []string {
	t.Helper()
	got, _ := walk(t, e, secret, "/v1/campaigns/"+campaignID+"/enrollments?"+query, func(v enrollmentJSON) string { return v.ID })
	if got == nil {
		got = []string{}
	}
	return got
}

// fields lists the fields a problem names.
func fields(p problem) []string {
	out := []string{}
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

var dunningSteps = []map[string]any{
	{"day_offset": -3, "action": "email", "name": "Reminder", "template": "tpl-remind"},
	{"day_offset": 0, "action": "sms"},
	{"day_offset": 7, "action": "call", "name": "Agent call"},
	{"day_offset": 14, "action": "letter", "template": "tpl-letter"},
}

var dunningOffsets = []int{-3, 0, 7, 14}

// journeyStart is where a journey with offsets anchored on anchor starts
// on day today: its first step not before today (as domain.Enrollment.Enroll
// decides), and that step's date (nil if none is left).
func journeyStart(anchor, today domain.Date, offsets []int) (int, *string) {
	for i, o := range offsets {
		if d := anchor.AddDays(o); d >= today {
			s := string(d)
			return i, &s
		}
	}
	return len(offsets), nil
}

func today() domain.Date { return domain.DateOf(time.Now()) }

func TestCampaignLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Campaigns")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})

	dunning := e.createCampaign(t, k.Secret, map[string]any{"name": "  Dunning EUR ", "type": "collection", "description": "Late payers",
		"steps": dunningSteps, "meta": map[string]any{"team": "north"}})
	require.Equal(t, "campaign", dunning.Object)
	require.True(t, strings.HasPrefix(dunning.ID, "cmp_"), dunning.ID)
	require.Equal(t, "Dunning EUR", dunning.Name, "trimmed")
	require.Equal(t, "collection", dunning.Type)
	require.Equal(t, "Late payers", dunning.Description)
	require.Equal(t, []campaignStepJSON{{-3, "email", "Reminder", "tpl-remind"}, {0, "sms", "", ""}, {7, "call", "Agent call", ""}, {14, "letter", "", "tpl-letter"}}, dunning.Steps)
	require.Equal(t, map[string]any{"team": "north"}, dunning.Meta)
	require.Equal(t, "active", dunning.Status)
	require.Empty(t, dunning.Reason)
	require.Zero(t, dunning.Enrollments.Active+dunning.Enrollments.Completed+dunning.Enrollments.Cancelled)
	require.Equal(t, int64(1), dunning.Version)
	require.Equal(t, dunning.CreatedAt, dunning.UpdatedAt)
	got := e.getCampaign(t, k.Secret, dunning.ID, dunning.Position)
	got.Position = dunning.Position
	require.Equal(t, dunning, got, "the read model shows what the write answered")

	reminders := e.createCampaign(t, k.Secret, map[string]any{"name": "Friendly reminders", "type": "reminder", "steps": []map[string]any{{"day_offset": -7, "action": "email"}}})
	require.Nil(t, reminders.Meta)
	require.Empty(t, reminders.Description)
	acks := e.createCampaign(t, k.Secret, map[string]any{"name": "Statement acks", "type": "statement_acknowledgement", "steps": []map[string]any{{"day_offset": 1, "action": "email"}}})

	// Validation names the field and records nothing.
	created := e.count(t, `SELECT count(*) FROM events WHERE type = 'campaign.created'`)
	valid := func(change map[string]any) map[string]any {
		m := map[string]any{"name": "X", "type": "collection", "steps": []map[string]any{{"day_offset": 0, "action": "email"}}}
		for k, v := range change {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	many := make([]map[string]any, domain.MaxCampaignSteps+1)
	for i := range many {
		many[i] = map[string]any{"day_offset": i, "action": "email"}
	}
	for _, c := range []struct {
		name  string
		body  any
		field string
	}{
		{"no name", valid(map[string]any{"name": nil}), "name"},
		{"blank name", valid(map[string]any{"name": "   "}), "name"},
		{"unknown type", valid(map[string]any{"type": "blast"}), "type"},
		{"no steps", valid(map[string]any{"steps": []any{}}), "steps"},
		{"too many steps", valid(map[string]any{"steps": many}), "steps"},
		{"steps out of order", valid(map[string]any{"steps": []map[string]any{{"day_offset": 5, "action": "email"}, {"day_offset": 2, "action": "sms"}}}), "steps[1].day_offset"},
		{"bad action", valid(map[string]any{"steps": []map[string]any{{"day_offset": 0, "action": "Email!"}}}), "steps[0].action"},
		{"no action", valid(map[string]any{"steps": []map[string]any{{"day_offset": 0}}}), "steps[0].action"},
		{"offset too far", valid(map[string]any{"steps": []map[string]any{{"day_offset": 4000, "action": "email"}}}), "steps[0].day_offset"},
		{"offset too early", valid(map[string]any{"steps": []map[string]any{{"day_offset": -400, "action": "email"}}}), "steps[0].day_offset"},
		{"meta not an object", valid(map[string]any{"meta": []int{1}}), "meta"},
		{"unknown field", valid(map[string]any{"colour": "red"}), "colour"},
		{"name not a string", valid(map[string]any{"name": 7}), "name"},
		{"no body", "", "body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			requireInvalid(t, e.post(t, k.Secret, "/v1/campaigns", c.body), c.field)
		})
	}
	require.Equal(t, created, e.count(t, `SELECT count(*) FROM events WHERE type = 'campaign.created'`), "no invalid campaign was created")

	// Lists and filters, from the read model.
	last := acks.Position
	wait := fmt.Sprintf("min_position=%d", last)
	all := []string{dunning.ID, reminders.ID, acks.ID}
	for q, want := range map[string][]string{
		"":                        all,
		"status=active":           all,
		"status=paused,completed": {},
		"type=reminder":           {reminders.ID},
		"type=collection,statement_acknowledgement": {dunning.ID, acks.ID},
		"search=dunning":               {dunning.ID},
		"search=REMIND":                {reminders.ID},
		"search=N":                     all,
		"search=nothing-like-it":       {},
		"type=reminder&search=dunning": {},
	} {
		t.Run("list "+q, func(t *testing.T) {
			require.Equal(t, want, e.campaignIDs(t, k.Secret, wait+"&"+q))
		})
	}
	ids, sizes := walk(t, e, k.Secret, "/v1/campaigns?limit=2&"+wait, func(c campaignJSON) string { return c.ID })
	require.Equal(t, all, ids)
	require.Equal(t, []int{2, 1}, sizes)
	requireInvalid(t, e.get(t, k.Secret, "/v1/campaigns?status=running"), "query:status")
	requireInvalid(t, e.get(t, k.Secret, "/v1/campaigns?type=blast"), "query:type")

	// Pause, resume, complete; forbidden transitions name the state.
	p, _ := e.campaignAction(t, k.Secret, dunning.ID, "pause", map[string]any{"reason": "holiday season"}, http.StatusOK)
	require.Equal(t, "paused", p.Status)
	require.Equal(t, "holiday season", p.Reason)
	require.Equal(t, int64(2), p.Version)
	got = e.getCampaign(t, k.Secret, dunning.ID, p.Position)
	got.Position = p.Position
	require.Equal(t, p, got)
	_, r := e.campaignAction(t, k.Secret, dunning.ID, "pause", nil, http.StatusConflict)
	require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition").Detail, "is paused")
	res, _ := e.campaignAction(t, k.Secret, dunning.ID, "resume", nil, http.StatusOK)
	require.Equal(t, "active", res.Status)
	require.Empty(t, res.Reason)
	_, r = e.campaignAction(t, k.Secret, dunning.ID, "resume", map[string]any{}, http.StatusConflict)
	require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition").Detail, "is active")
	requireInvalid(t, e.post(t, k.Secret, "/v1/campaigns/"+dunning.ID+"/pause", map[string]any{"reason": 1}), "reason")
	requireInvalid(t, e.post(t, k.Secret, "/v1/campaigns/"+dunning.ID+"/resume", map[string]any{"reason": "x"}), "reason")

	done, _ := e.campaignAction(t, k.Secret, reminders.ID, "complete", map[string]any{"reason": "season over"}, http.StatusOK)
	require.Equal(t, "completed", done.Status)
	require.Equal(t, "season over", done.Reason)
	for _, action := range []string{"pause", "resume", "complete"} {
		_, r := e.campaignAction(t, k.Secret, reminders.ID, action, nil, http.StatusConflict)
		require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition").Detail, "is completed", action)
	}
	paused, _ := e.campaignAction(t, k.Secret, acks.ID, "pause", nil, http.StatusOK)
	doneFromPaused, _ := e.campaignAction(t, k.Secret, acks.ID, "complete", nil, http.StatusOK)
	require.Equal(t, "completed", doneFromPaused.Status, "a paused campaign completes")
	require.Greater(t, doneFromPaused.Position, paused.Position)

	wait = fmt.Sprintf("min_position=%d", doneFromPaused.Position)
	require.Equal(t, []string{reminders.ID, acks.ID}, e.campaignIDs(t, k.Secret, wait+"&status=completed"))
	require.Equal(t, []string{dunning.ID}, e.campaignIDs(t, k.Secret, wait+"&status=active,paused"))

	// A missing campaign is 404 whatever the body.
	for _, action := range []string{"pause", "resume", "complete"} {
		requireProblem(t, e.post(t, k.Secret, "/v1/campaigns/"+e.freshID(dunning.ID)+"/"+action, "not json"), http.StatusNotFound, "not-found", "")
	}
	requireProblem(t, e.post(t, k.Secret, "/v1/campaigns/not-an-id/pause", nil), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, "/v1/campaigns/"+e.freshID(dunning.ID)), http.StatusNotFound, "not-found", "")
	require.Equal(t, 3, e.count(t, `SELECT count(*) FROM events WHERE type IN ('campaign.paused', 'campaign.resumed') AND tenant_id = $1`, ten.ID))
}

func TestCampaignEnrollments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Enrollments")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	dbt := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Jo", "last_name": "Journey"})
	day0 := today()

	// An account whose oldest open debit fell due 5 days ago (the fee posted
	// without a due date falls due on its posting day, today).
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "debtor_ids": []string{dbt.ID}}, fmt.Sprintf("min_position=%d", dbt.Position))
	posted := e.postEntries(t, k.Secret,
		map[string]any{"account_id": acct.ID, "reference": "INV-NEW", "kind": "invoice", "amount": "100.00", "due_date": string(day0.AddDays(20))},
		map[string]any{"account_id": acct.ID, "reference": "INV-OLD", "kind": "invoice", "amount": "50.00", "due_date": string(day0.AddDays(-5))},
		map[string]any{"account_id": acct.ID, "reference": "FEE-1", "kind": "fee", "amount": "5.00"})
	empty := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	// A claim whose current due date moved past its original one.
	clm := e.createClaim(t, k.Secret, map[string]any{"reference": "CLM-J", "amount": "80.00", "currency": "EUR", "primary_debtor_id": dbt.ID,
		"original_due_date": string(day0.AddDays(-30)), "current_due_date": string(day0.AddDays(20))})
	resolved := e.createClaim(t, k.Secret, map[string]any{"reference": "CLM-R", "amount": "10.00", "currency": "EUR", "original_due_date": "2026-01-01"})
	e.claimAction(t, k.Secret, resolved.ID, "resolve", map[string]any{"resolution": "paid"}, http.StatusOK)
	// The debtor's statement of this month (or, if the month turned since
	// the entries were posted, last month).
	stmtID := domain.StatementID(dbt.ID, time.Now().UTC().Format("2006-01"), "EUR")
	r := e.get(t, k.Secret, fmt.Sprintf("/v1/statements/%s?min_position=%d", stmtID, *posted.Position))
	if r.Status == http.StatusNotFound {
		stmtID = domain.StatementID(dbt.ID, time.Now().UTC().AddDate(0, -1, 0).Format("2006-01"), "EUR")
		r = e.get(t, k.Secret, "/v1/statements/"+stmtID)
	}
	require.Equal(t, http.StatusOK, r.Status, "statement: %s", r.Body)
	var stmt statement
	r.decode(t, &stmt)
	require.Equal(t, "155.00", stmt.Due)

	cmp := e.createCampaign(t, k.Secret, map[string]any{"name": "Dunning", "type": "collection", "steps": dunningSteps})
	other := e.createCampaign(t, k.Secret, map[string]any{"name": "Other", "type": "collection", "steps": dunningSteps})
	acks := e.createCampaign(t, k.Secret, map[string]any{"name": "Acks", "type": "statement_acknowledgement", "steps": []map[string]any{{"day_offset": 2, "action": "email"}}})

	// One call, all three kinds.
	before := today()
	batch, r := e.enroll(t, k.Secret, cmp.ID, map[string]any{
		"targets":       []map[string]any{{"type": "account", "id": acct.ID}, {"type": "claim", "id": clm.ID}},
		"statement_ids": []string{stmtID}}, http.StatusCreated)
	pos := r.position(t)
	require.Equal(t, "enrollment_batch", batch.Object)
	require.Equal(t, 3, batch.Enrolled)
	require.Zero(t, batch.Reopened+batch.Unchanged)
	require.Len(t, batch.Data, 3)
	start := domain.Date(batch.Data[0].Enrollment.StartDate)
	require.Contains(t, []domain.Date{before, today()}, start, "enrolled today (UTC)")
	type want struct {
		field, typ, id, account, claim, statement string
		debtors                                   []string
		anchor                                    domain.Date
	}
	wants := []want{
		{"targets[0]", "account", acct.ID, acct.ID, "", "", []string{dbt.ID}, day0.AddDays(-5)},
		{"targets[1]", "claim", clm.ID, clm.AccountID, clm.ID, "", []string{dbt.ID}, day0.AddDays(20)},
		{"statement_ids[0]", "statement", stmtID, "", "", stmtID, []string{dbt.ID}, domain.StatementAnchor(stmt.Month)},
	}
	enrollments := map[string]enrollmentJSON{}
	for i, w := range wants {
		d := batch.Data[i]
		require.Equal(t, i, d.Index)
		require.Equal(t, w.field, d.Field)
		require.Equal(t, "enrolled", d.Outcome)
		v := d.Enrollment
		require.Equal(t, "enrollment", v.Object)
		require.Equal(t, domain.EnrollmentID(cmp.ID, w.id), v.ID, "one enrollment per campaign and target")
		require.Equal(t, cmp.ID, v.CampaignID)
		require.Equal(t, w.typ, v.Target.Type)
		require.Equal(t, w.id, v.Target.ID)
		require.Equal(t, w.account, v.Target.AccountID)
		require.Equal(t, w.claim, v.Target.ClaimID)
		require.Equal(t, w.statement, v.Target.StatementID)
		require.Equal(t, w.debtors, v.Target.DebtorIDs)
		require.Equal(t, "EUR", v.Target.Currency)
		require.Equal(t, string(w.anchor), v.AnchorDate, w.typ)
		require.Equal(t, string(start), v.StartDate)
		next, due := journeyStart(w.anchor, start, dunningOffsets)
		require.Equal(t, next, v.NextStep, w.typ)
		require.Equal(t, due, v.NextDueDate, w.typ)
		require.Zero(t, v.StepsFired)
		require.Equal(t, "active", v.Status)
		require.Empty(t, v.Reason)
		require.Equal(t, 1, v.Runs)
		require.Equal(t, int64(1), v.Version)
		require.Equal(t, v, e.getEnrollment(t, k.Secret, cmp.ID, v.ID, pos), "the read model shows what the write answered")
		enrollments[w.typ] = v
	}
	// The account's journey skipped the steps already past: -3 and 0 days
	// after a due date 5 days ago; the next is 7 days after it.
	require.Equal(t, 2, enrollments["account"].NextStep)
	require.Equal(t, 1, e.count(t, `SELECT count(DISTINCT tx_id) FROM events WHERE type = 'enrollment.created' AND tenant_id = $1`, ten.ID), "one transaction")

	wait := fmt.Sprintf("min_position=%d", pos)
	all := []string{enrollments["account"].ID, enrollments["claim"].ID, enrollments["statement"].ID}
	all = sortedCopy(all)
	for q, want := range map[string][]string{
		"":                              all,
		"status=active":                 all,
		"status=completed,cancelled":    {},
		"target_type=claim":             {enrollments["claim"].ID},
		"target_type=account,statement": sortedCopy([]string{enrollments["account"].ID, enrollments["statement"].ID}),
		"target_id=" + acct.ID:          {enrollments["account"].ID},
		"target_id=" + empty.ID:         {},
	} {
		t.Run("list "+q, func(t *testing.T) {
			require.Equal(t, want, e.enrollmentIDs(t, k.Secret, cmp.ID, wait+"&"+q))
		})
	}
	ids, sizes := walk(t, e, k.Secret, "/v1/campaigns/"+cmp.ID+"/enrollments?limit=2&"+wait, func(v enrollmentJSON) string { return v.ID })
	require.Equal(t, all, ids)
	require.Equal(t, []int{2, 1}, sizes)
	require.Equal(t, []string{}, e.enrollmentIDs(t, k.Secret, other.ID, wait), "another campaign's enrollments are not listed")
	requireInvalid(t, e.get(t, k.Secret, "/v1/campaigns/"+cmp.ID+"/enrollments?status=paused"), "query:status")
	c := e.getCampaign(t, k.Secret, cmp.ID, pos)
	require.Equal(t, 3, c.Enrollments.Active)

	// Enrolling an actively enrolled target again records nothing and
	// answers the enrollment as it is (200).
	events := e.count(t, `SELECT count(*) FROM events`)
	again, r := e.enroll(t, k.Secret, cmp.ID, map[string]any{"account_ids": []string{acct.ID}}, http.StatusOK)
	require.Empty(t, r.Header.Get("Arrears-Position"))
	require.Equal(t, 1, again.Unchanged)
	require.Equal(t, "unchanged", again.Data[0].Outcome)
	require.Equal(t, "account_ids[0]", again.Data[0].Field)
	require.Equal(t, enrollments["account"], again.Data[0].Enrollment)
	require.Equal(t, events, e.count(t, `SELECT count(*) FROM events`))

	// All or nothing: every problem is named, nothing is recorded.
	fresh := e.freshID(acct.ID)
	_, r = e.enroll(t, k.Secret, other.ID, map[string]any{"targets": []map[string]any{
		{"type": "account", "id": acct.ID}, {"type": "account", "id": empty.ID}, {"type": "account", "id": fresh}, {"type": "account", "id": clm.ID},
		{"type": "claim", "id": e.freshID(clm.ID)}}, "statement_ids": []string{e.freshID(stmtID)}}, http.StatusUnprocessableEntity)
	pr := requireInvalid(t, r, "targets[1]")
	require.ElementsMatch(t, []string{"targets[1]", "targets[2].id", "targets[3].id", "targets[4].id", "statement_ids[0]"}, fields(pr))
	for _, fe := range pr.Errors {
		if fe.Field == "targets[1]" {
			require.Contains(t, fe.Error, "nothing to collect")
		}
		if fe.Field == "targets[2].id" {
			require.Equal(t, "no account "+fresh, fe.Error)
		}
	}
	require.Equal(t, events, e.count(t, `SELECT count(*) FROM events`), "nothing recorded, not even the valid target's enrollment")

	for _, c := range []struct {
		name  string
		body  any
		field string
	}{
		{"no targets", map[string]any{}, "targets"},
		{"empty targets", map[string]any{"targets": []any{}}, "targets"},
		{"unknown type", map[string]any{"targets": []map[string]any{{"type": "invoice", "id": acct.ID}}}, "targets[0].type"},
		{"no id", map[string]any{"targets": []map[string]any{{"type": "account"}}}, "targets[0].id"},
		{"twice", map[string]any{"targets": []map[string]any{{"type": "account", "id": acct.ID}}, "account_ids": []string{acct.ID}}, "account_ids[0]"},
		{"unknown field", map[string]any{"debtor_ids": []string{dbt.ID}}, "debtor_ids"},
		{"ids not strings", map[string]any{"claim_ids": []int{1}}, "claim_ids"},
		{"no body", "", "body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			requireInvalid(t, e.post(t, k.Secret, "/v1/campaigns/"+other.ID+"/enrollments", c.body), c.field)
		})
	}
	tooMany := make([]map[string]any, domain.MaxEnrollBatch+1)
	manyIDs := make([]string, domain.MaxEnrollBatch+1)
	for i := range tooMany {
		manyIDs[i] = e.freshID(acct.ID)
		tooMany[i] = map[string]any{"type": "account", "id": manyIDs[i]}
	}
	pr = requireInvalid(t, e.post(t, k.Secret, "/v1/campaigns/"+other.ID+"/enrollments", map[string]any{"targets": tooMany}), "targets")
	require.Equal(t, []string{"targets"}, fields(pr))
	requireInvalid(t, e.post(t, k.Secret, "/v1/campaigns/"+other.ID+"/enrollments", map[string]any{"account_ids": manyIDs}), "targets")
	requireInvalid(t, e.post(t, k.Secret, "/v1/campaigns/"+other.ID+"/enrollments",
		map[string]any{"targets": tooMany[:domain.MaxEnrollBatch], "claim_ids": []string{clm.ID}}), "targets")

	// A resolved claim has nothing to collect: 409 naming it.
	_, r = e.enroll(t, k.Secret, other.ID, map[string]any{"claim_ids": []string{resolved.ID}}, http.StatusConflict)
	pr = requireProblem(t, r, http.StatusConflict, "conflict", "claim_closed")
	require.Equal(t, []string{"claim_ids[0]"}, fields(pr))
	require.Contains(t, pr.Detail, "is resolved")

	// A statement_acknowledgement campaign enrolls statements only.
	_, r = e.enroll(t, k.Secret, acks.ID, map[string]any{"claim_ids": []string{clm.ID}, "statement_ids": []string{stmtID}}, http.StatusUnprocessableEntity)
	require.Equal(t, []string{"claim_ids[0]"}, fields(requireInvalid(t, r, "claim_ids[0]")))
	ack, _ := e.enroll(t, k.Secret, acks.ID, map[string]any{"statement_ids": []string{stmtID}}, http.StatusCreated)
	require.Equal(t, string(domain.StatementAnchor(stmt.Month)), ack.Data[0].Enrollment.AnchorDate)
	require.NotEqual(t, enrollments["statement"].ID, ack.Data[0].Enrollment.ID, "one enrollment per campaign")

	// Cancel with DELETE; cancelling again is a conflict naming the status.
	enrPath := "/v1/campaigns/" + cmp.ID + "/enrollments/" + enrollments["account"].ID
	r = e.send(t, req{Method: http.MethodDelete, Path: enrPath, Auth: k.Secret, Body: map[string]any{"reason": "paid elsewhere"}})
	require.Equal(t, http.StatusOK, r.Status, "cancel: %s", r.Body)
	var cancelled enrollmentJSON
	r.decode(t, &cancelled)
	require.Equal(t, "cancelled", cancelled.Status)
	require.Equal(t, "paid elsewhere", cancelled.Reason)
	require.Nil(t, cancelled.NextDueDate, "a cancelled journey has no next step")
	require.Equal(t, int64(2), cancelled.Version)
	require.Equal(t, cancelled, e.getEnrollment(t, k.Secret, cmp.ID, cancelled.ID, r.position(t)))
	require.Contains(t, requireProblem(t, e.delete(t, k.Secret, enrPath), http.StatusConflict, "conflict", "invalid_transition").Detail, "is cancelled")
	requireProblem(t, e.delete(t, k.Secret, "/v1/campaigns/"+cmp.ID+"/enrollments/"+e.freshID(cancelled.ID)), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.delete(t, k.Secret, "/v1/campaigns/"+other.ID+"/enrollments/"+enrollments["claim"].ID), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, "/v1/campaigns/"+other.ID+"/enrollments/"+enrollments["claim"].ID), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, "/v1/campaigns/"+cmp.ID+"/enrollments/nope"), http.StatusNotFound, "not-found", "")
	cpos := r.position(t)
	require.Equal(t, []string{cancelled.ID}, e.enrollmentIDs(t, k.Secret, cmp.ID, fmt.Sprintf("min_position=%d&status=cancelled", cpos)))
	c = e.getCampaign(t, k.Secret, cmp.ID, cpos)
	require.Equal(t, 2, c.Enrollments.Active)
	require.Equal(t, 1, c.Enrollments.Cancelled)

	// Enrolling it again reopens the same enrollment.
	re, r := e.enroll(t, k.Secret, cmp.ID, map[string]any{"account_ids": []string{acct.ID}}, http.StatusCreated)
	require.Equal(t, 1, re.Reopened)
	v := re.Data[0].Enrollment
	require.Equal(t, "reopened", re.Data[0].Outcome)
	require.Equal(t, cancelled.ID, v.ID)
	require.Equal(t, "active", v.Status)
	require.Empty(t, v.Reason)
	require.Equal(t, 2, v.Runs)
	require.Equal(t, cancelled.CreatedAt, v.CreatedAt)
	require.NotNil(t, v.NextDueDate)
	require.Equal(t, v, e.getEnrollment(t, k.Secret, cmp.ID, v.ID, r.position(t)))

	// A target whose every step is already past: its journey completes as
	// it starts.
	old := e.createClaim(t, k.Secret, map[string]any{"reference": "CLM-OLD", "amount": "10.00", "currency": "EUR", "original_due_date": string(day0.AddDays(-400))})
	past, r := e.enroll(t, k.Secret, cmp.ID, map[string]any{"claim_ids": []string{old.ID}}, http.StatusCreated)
	v = past.Data[0].Enrollment
	require.Equal(t, "enrolled", past.Data[0].Outcome)
	require.Equal(t, "completed", v.Status)
	require.Equal(t, len(dunningOffsets), v.NextStep)
	require.Nil(t, v.NextDueDate)
	require.NotEmpty(t, v.Reason)
	require.Equal(t, v, e.getEnrollment(t, k.Secret, cmp.ID, v.ID, r.position(t)))

	// A paused campaign still enrolls; a completed one does not.
	e.campaignAction(t, k.Secret, other.ID, "pause", nil, http.StatusOK)
	e.enroll(t, k.Secret, other.ID, map[string]any{"claim_ids": []string{clm.ID}}, http.StatusCreated)
	e.campaignAction(t, k.Secret, other.ID, "complete", nil, http.StatusOK)
	_, r = e.enroll(t, k.Secret, other.ID, map[string]any{"account_ids": []string{acct.ID}}, http.StatusConflict)
	require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "campaign_completed").Detail, "completed")
	_, r = e.enroll(t, k.Secret, other.ID, map[string]any{"claim_ids": []string{clm.ID}}, http.StatusConflict)
	requireProblem(t, r, http.StatusConflict, "conflict", "campaign_completed")

	// A missing campaign is 404 whatever the body.
	_, r = e.enroll(t, k.Secret, e.freshID(cmp.ID), "not json", http.StatusNotFound)
	requireProblem(t, r, http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, "/v1/campaigns/"+e.freshID(cmp.ID)+"/enrollments"), http.StatusNotFound, "not-found", "")
}

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestCampaignIsolation: another tenant's or mode's campaign answers 404
// and is not listed; targets of another tenant or mode are unknown; and
// sandbox targets — all a test key sees — cannot be enrolled.
func TestCampaignIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten, otherTen := e.tenant(t, "Isolated"), e.tenant(t, "Neighbour")
	live := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	neighbour := e.key(t, otherTen.ID, eventstore.NewKey{Name: "neighbour"})
	body := map[string]any{"name": "Journey", "type": "collection", "steps": dunningSteps}
	liveCmp := e.createCampaign(t, live.Secret, body)
	testCmp := e.createCampaign(t, test.Secret, body)
	theirCmp := e.createCampaign(t, neighbour.Secret, body)
	owed := func(secret string) (account, claimJSON) {
		a := e.createAccount(t, secret, map[string]any{"currency": "EUR"})
		e.postEntries(t, secret, map[string]any{"account_id": a.ID, "reference": "INV-1", "kind": "invoice", "amount": "10.00", "due_date": "2030-01-01"})
		c := e.createClaim(t, secret, map[string]any{"reference": "CLM-1", "amount": "10.00", "currency": "EUR", "original_due_date": "2030-01-01"})
		return a, c
	}
	liveAcct, liveClaim := owed(live.Secret)
	testAcct, testClaim := owed(test.Secret)
	theirAcct, _ := owed(neighbour.Secret)
	last := max(liveCmp.Position, testCmp.Position, theirCmp.Position)
	wait := fmt.Sprintf("min_position=%d", last)

	require.Equal(t, []string{liveCmp.ID}, e.campaignIDs(t, live.Secret, wait))
	require.Equal(t, []string{testCmp.ID}, e.campaignIDs(t, test.Secret, wait))
	require.Equal(t, []string{theirCmp.ID}, e.campaignIDs(t, neighbour.Secret, wait))
	for _, c := range []struct {
		secret, id string
	}{{live.Secret, testCmp.ID}, {live.Secret, theirCmp.ID}, {test.Secret, liveCmp.ID}, {neighbour.Secret, liveCmp.ID}} {
		e.requireSameAsMissing(t, c.secret, http.MethodGet, "/v1/campaigns/{id}?"+wait, c.id)
		e.requireSameAsMissing(t, c.secret, http.MethodGet, "/v1/campaigns/{id}/enrollments?"+wait, c.id)
		e.requireSameAsMissing(t, c.secret, http.MethodPost, "/v1/campaigns/{id}/pause", c.id)
		_, r := e.enroll(t, c.secret, c.id, map[string]any{"account_ids": []string{liveAcct.ID}}, http.StatusNotFound)
		requireProblem(t, r, http.StatusNotFound, "not-found", "")
	}

	// Targets of another tenant or mode are unknown.
	for _, c := range []struct {
		name, secret, campaign string
		body                   map[string]any
		field                  string
	}{
		{"live key, sandbox account", live.Secret, liveCmp.ID, map[string]any{"account_ids": []string{testAcct.ID}}, "account_ids[0]"},
		{"live key, sandbox claim", live.Secret, liveCmp.ID, map[string]any{"targets": []map[string]any{{"type": "claim", "id": testClaim.ID}}}, "targets[0].id"},
		{"live key, another tenant's account", live.Secret, liveCmp.ID, map[string]any{"account_ids": []string{theirAcct.ID}}, "account_ids[0]"},
		{"test key, live account", test.Secret, testCmp.ID, map[string]any{"account_ids": []string{liveAcct.ID}}, "account_ids[0]"},
		{"test key, live claim", test.Secret, testCmp.ID, map[string]any{"claim_ids": []string{liveClaim.ID}}, "claim_ids[0]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, r := e.enroll(t, c.secret, c.campaign, c.body, http.StatusUnprocessableEntity)
			p := requireInvalid(t, r, c.field)
			require.Contains(t, p.Errors[0].Error, "no ")
		})
	}

	// Sandbox targets are refused, naming each.
	_, r := e.enroll(t, test.Secret, testCmp.ID, map[string]any{"targets": []map[string]any{{"type": "account", "id": testAcct.ID}, {"type": "claim", "id": testClaim.ID}}},
		http.StatusUnprocessableEntity)
	p := requireInvalid(t, r, "targets[0]")
	require.Equal(t, []string{"targets[0]", "targets[1]"}, fields(p))
	for _, fe := range p.Errors {
		require.Equal(t, "sandbox accounts cannot be enrolled in campaigns", fe.Error)
	}
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE type = 'enrollment.created'`))

	// The live side works, and its enrollment is invisible to the others.
	b, r := e.enroll(t, live.Secret, liveCmp.ID, map[string]any{"account_ids": []string{liveAcct.ID}}, http.StatusCreated)
	enr := b.Data[0].Enrollment
	pos := r.position(t)
	require.Equal(t, enr, e.getEnrollment(t, live.Secret, liveCmp.ID, enr.ID, pos))
	require.Equal(t, []string{enr.ID}, e.enrollmentIDs(t, live.Secret, liveCmp.ID, fmt.Sprintf("min_position=%d", pos)))
	for _, secret := range []string{test.Secret, neighbour.Secret} {
		requireProblem(t, e.get(t, secret, fmt.Sprintf("/v1/campaigns/%s/enrollments/%s?min_position=%d", liveCmp.ID, enr.ID, pos)), http.StatusNotFound, "not-found", "")
		requireProblem(t, e.delete(t, secret, "/v1/campaigns/"+liveCmp.ID+"/enrollments/"+enr.ID), http.StatusNotFound, "not-found", "")
	}
	require.Equal(t, enr.Status, e.getEnrollment(t, live.Secret, liveCmp.ID, enr.ID, pos).Status, "still active")
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE type IN ('enrollment.ended', 'campaign.paused')`))
}

// TestCampaignScopes: reads need campaigns:read, writes campaigns:write
// (which implies read); other scopes get 403 missing_scope.
func TestCampaignScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Campaign scopes")
	full := e.key(t, ten.ID, eventstore.NewKey{Name: "full"})
	keys := map[string]apiKey{}
	for _, sc := range []string{"campaigns:read", "campaigns:write", "claims:write"} {
		keys[sc] = e.key(t, ten.ID, eventstore.NewKey{Name: sc, Scopes: []string{sc}})
	}
	cmp := e.createCampaign(t, full.Secret, map[string]any{"name": "Scoped", "type": "collection", "steps": dunningSteps})
	acct := e.createAccount(t, full.Secret, map[string]any{"currency": "EUR"})
	e.postEntries(t, full.Secret, map[string]any{"account_id": acct.ID, "reference": "INV-1", "kind": "invoice", "amount": "10.00", "due_date": "2030-01-01"})
	b, r := e.enroll(t, full.Secret, cmp.ID, map[string]any{"account_ids": []string{acct.ID}}, http.StatusCreated)
	enr := "/v1/campaigns/" + cmp.ID + "/enrollments/" + b.Data[0].Enrollment.ID
	wait := fmt.Sprintf("?min_position=%d", r.position(t))
	type call struct {
		method, path string
		body         any
		ok           int
	}
	reads := []call{
		{http.MethodGet, "/v1/campaigns" + wait, nil, http.StatusOK},
		{http.MethodGet, "/v1/campaigns/" + cmp.ID + wait, nil, http.StatusOK},
		{http.MethodGet, "/v1/campaigns/" + cmp.ID + "/enrollments" + wait, nil, http.StatusOK},
	}
	// Writes in an order that lets each succeed once.
	writes := []call{
		{http.MethodPost, "/v1/campaigns", map[string]any{"name": "By scope", "type": "reminder", "steps": dunningSteps}, http.StatusCreated},
		{http.MethodPost, "/v1/campaigns/" + cmp.ID + "/enrollments", map[string]any{"account_ids": []string{acct.ID}}, http.StatusOK},
		{http.MethodDelete, enr, nil, http.StatusOK},
		{http.MethodPost, "/v1/campaigns/" + cmp.ID + "/pause", nil, http.StatusOK},
		{http.MethodPost, "/v1/campaigns/" + cmp.ID + "/resume", nil, http.StatusOK},
		{http.MethodPost, "/v1/campaigns/" + cmp.ID + "/complete", nil, http.StatusOK},
	}
	check := func(t *testing.T, k apiKey, c call, allowed bool) {
		r := e.send(t, req{Method: c.method, Path: c.path, Auth: k.Secret, Body: c.body})
		if !allowed {
			require.Contains(t, requireProblem(t, r, http.StatusForbidden, "forbidden", "missing_scope").Detail, "campaigns")
			return
		}
		require.Equal(t, c.ok, r.Status, "%s %s: %s", c.method, c.path, r.Body)
	}
	t.Run("claims:write", func(t *testing.T) {
		for _, c := range append(append([]call{}, reads...), writes...) {
			check(t, keys["claims:write"], c, false)
		}
	})
	t.Run("campaigns:read", func(t *testing.T) {
		for _, c := range reads {
			check(t, keys["campaigns:read"], c, true)
		}
		check(t, keys["campaigns:read"], call{http.MethodGet, enr + wait, nil, http.StatusOK}, true)
		for _, c := range writes {
			check(t, keys["campaigns:read"], c, false)
		}
	})
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE type IN ('campaign.paused', 'enrollment.ended') OR data->'campaign'->>'name' = 'By scope'`))
	t.Run("campaigns:write", func(t *testing.T) {
		for _, c := range writes {
			check(t, keys["campaigns:write"], c, true)
		}
		for _, c := range reads {
			check(t, keys["campaigns:write"], c, true) // write implies read
		}
	})
}

// TestCampaignIdempotency: campaign creation and enrollment replay with
// the same Idempotency-Key, and refuse the key for another request.
func TestCampaignIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Campaign replays")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	body := map[string]any{"name": "Once", "type": "collection", "steps": dunningSteps}
	first := e.post(t, k.Secret, "/v1/campaigns", body, "Idempotency-Key", "cmp-1")
	require.Equal(t, http.StatusCreated, first.Status, "%s", first.Body)
	again := e.post(t, k.Secret, "/v1/campaigns", body, "Idempotency-Key", "cmp-1")
	require.Equal(t, http.StatusCreated, again.Status)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, first.Body, again.Body)
	require.Equal(t, first.Header.Get("Location"), again.Header.Get("Location"))
	require.Equal(t, first.Header.Get("Arrears-Position"), again.Header.Get("Arrears-Position"))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type = 'campaign.created'`))
	requireProblem(t, e.post(t, k.Secret, "/v1/campaigns", map[string]any{"name": "Twice", "type": "collection", "steps": dunningSteps}, "Idempotency-Key", "cmp-1"),
		http.StatusUnprocessableEntity, "invalid", "idempotency_key_reused")
	id := first.object(t)["id"].(string)

	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	e.postEntries(t, k.Secret, map[string]any{"account_id": acct.ID, "reference": "INV-1", "kind": "invoice", "amount": "10.00", "due_date": "2030-01-01"})
	enrollBody := map[string]any{"account_ids": []string{acct.ID}}
	_, first = e.enroll(t, k.Secret, id, enrollBody, http.StatusCreated, "Idempotency-Key", "enr-1")
	_, again = e.enroll(t, k.Secret, id, enrollBody, http.StatusCreated, "Idempotency-Key", "enr-1")
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, first.Body, again.Body, "the replay is the first answer (created), not the unchanged re-enrollment")
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type = 'enrollment.created'`))
	// Without the key, the same request is a re-enrollment that changes nothing.
	b, _ := e.enroll(t, k.Secret, id, enrollBody, http.StatusOK)
	require.Equal(t, 1, b.Unchanged)

	path := "/v1/campaigns/" + id + "/enrollments/" + b.Data[0].Enrollment.ID
	cancel := e.delete(t, k.Secret, path, "Idempotency-Key", "cancel-1")
	require.Equal(t, http.StatusOK, cancel.Status, "%s", cancel.Body)
	replayed := e.delete(t, k.Secret, path, "Idempotency-Key", "cancel-1")
	require.Equal(t, http.StatusOK, replayed.Status, "a replay, not the 409 of cancelling twice: %s", replayed.Body)
	require.Equal(t, cancel.Body, replayed.Body)
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type = 'enrollment.ended'`))
	pause := e.post(t, k.Secret, "/v1/campaigns/"+id+"/pause", nil, "Idempotency-Key", "pause-1")
	require.Equal(t, http.StatusOK, pause.Status)
	pauseAgain := e.post(t, k.Secret, "/v1/campaigns/"+id+"/pause", nil, "Idempotency-Key", "pause-1")
	require.Equal(t, http.StatusOK, pauseAgain.Status)
	require.Equal(t, "true", pauseAgain.Header.Get("Idempotent-Replayed"))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type = 'campaign.paused'`))
}
