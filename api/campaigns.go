package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// Campaigns and their journeys: a campaign is a named sequence of steps
// with day offsets from a target's due date; accounts, claims and
// statements are enrolled in it, and the scheduler emits journey.step_due
// for each step as its day comes. Writes go through the campaign and
// enrollment aggregates; reads come from the "campaigns" projection (tables
// campaigns and enrollments).

// campaignStepView is one step of a campaign's journey.
type campaignStepView struct {
	DayOffset int    `json:"day_offset"`
	Action    string `json:"action"`
	Name      string `json:"name"`
	Template  string `json:"template"`
}

// enrollmentCounts counts a campaign's enrollments by status.
type enrollmentCounts struct {
	Active    int `json:"active"`
	Completed int `json:"completed"`
	Cancelled int `json:"cancelled"`
}

// campaignView is a campaign as the API shows it.
type campaignView struct {
	Object      string             `json:"object"`
	ID          string             `json:"id"`
	Name        string             `json:"name"`
	Type        string             `json:"type"`
	Description string             `json:"description"`
	Steps       []campaignStepView `json:"steps"`
	Meta        json.RawMessage    `json:"meta"`
	Status      string             `json:"status"`
	Reason      string             `json:"reason"`
	Enrollments enrollmentCounts   `json:"enrollments"`
	CreatedAt   time.Time          `json:"created_at"`
	UpdatedAt   time.Time          `json:"updated_at"`
	Version     int64              `json:"version"`
}

func stepViews(steps []domain.CampaignStep) []campaignStepView {
	out := make([]campaignStepView, len(steps))
	for i, s := range steps {
		out[i] = campaignStepView{DayOffset: s.DayOffset, Action: s.Action, Name: s.Name, Template: s.Template}
	}
	return out
}

// viewCampaign shows the command side's state of c with counts (as the
// read model has them).
func viewCampaign(c *domain.Campaign, counts enrollmentCounts) campaignView {
	return campaignView{Object: "campaign", ID: c.ID, Name: c.Name, Type: c.Type, Description: c.Description, Steps: stepViews(c.Steps),
		Meta: compactJSON(c.Meta), Status: string(c.Status), Reason: c.Reason, Enrollments: counts,
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), Version: c.Version}
}

// campaignColumns are read FROM campaigns c: the counts come from the
// enrollments table.
const campaignColumns = `c.id, c.name, c.type, c.description, c.steps, c.meta, c.status, c.reason, c.version, c.created_at, c.updated_at,
	(SELECT count(*) FILTER (WHERE e.status = 'active') FROM enrollments e WHERE e.tenant_id = c.tenant_id AND e.campaign_id = c.id),
	(SELECT count(*) FILTER (WHERE e.status = 'completed') FROM enrollments e WHERE e.tenant_id = c.tenant_id AND e.campaign_id = c.id),
	(SELECT count(*) FILTER (WHERE e.status = 'cancelled') FROM enrollments e WHERE e.tenant_id = c.tenant_id AND e.campaign_id = c.id)`

func scanCampaign(row rowScanner) (campaignView, error) {
	v := campaignView{Object: "campaign"}
	var steps, meta []byte
	if err := row.Scan(&v.ID, &v.Name, &v.Type, &v.Description, &steps, &meta, &v.Status, &v.Reason, &v.Version, &v.CreatedAt, &v.UpdatedAt,
		&v.Enrollments.Active, &v.Enrollments.Completed, &v.Enrollments.Cancelled); err != nil {
		return v, err
	}
	var st []domain.CampaignStep
	if err := json.Unmarshal(steps, &st); err != nil {
		return v, fmt.Errorf("campaign %s: steps: %w", v.ID, err)
	}
	v.Steps, v.Meta = stepViews(st), compactJSON(meta)
	v.CreatedAt, v.UpdatedAt = v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	return v, nil
}

// enrollmentCountsOf reads the counts of campaign id's enrollments from the
// read model.
func (s *Server) enrollmentCountsOf(ctx context.Context, p domain.Principal, id string) (enrollmentCounts, error) {
	var n enrollmentCounts
	err := s.store.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'active'), count(*) FILTER (WHERE status = 'completed'),
		count(*) FILTER (WHERE status = 'cancelled') FROM enrollments WHERE tenant_id = $1 AND sandbox = $2 AND campaign_id = $3`,
		p.TenantID, p.Sandbox(), id).Scan(&n.Active, &n.Completed, &n.Cancelled)
	return n, err
}

// campaignRequest is a campaign as created.
type campaignRequest struct {
	Name        string                `json:"name"`
	Type        string                `json:"type"`
	Description string                `json:"description"`
	Steps       []domain.CampaignStep `json:"steps"`
	Meta        json.RawMessage       `json:"meta"`
}

// createCampaign: POST /v1/campaigns creates a campaign (campaign.created),
// active, in the caller's mode.
func (s *Server) createCampaign(w http.ResponseWriter, r *http.Request) {
	var in campaignRequest
	if err := decode(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	at := debtorNow()
	id := s.ids.New(domain.PrefixCampaign, at)
	steps := make([]domain.CampaignStep, len(in.Steps))
	for i, st := range in.Steps {
		steps[i] = domain.CampaignStep{DayOffset: st.DayOffset, Action: strings.TrimSpace(st.Action), Name: strings.TrimSpace(st.Name), Template: strings.TrimSpace(st.Template)}
	}
	input := domain.CampaignInput{Name: strings.TrimSpace(in.Name), Type: strings.TrimSpace(in.Type), Description: strings.TrimSpace(in.Description),
		Steps: steps, Meta: compactJSON(in.Meta)}
	var c *domain.Campaign
	cmd := campaignCommand(p.TenantID, id, func(agg *domain.Campaign) ([]domain.NewEvent, error) {
		c = agg
		return c.Create(input, p.Sandbox(), at)
	})
	s.execute(w, r, []eventstore.Command{cmd}, func([]domain.Event) (result, error) {
		return result{Status: http.StatusCreated, Body: viewCampaign(c, enrollmentCounts{}), Location: "/v1/campaigns/" + id}, nil
	})
}

// campaignMissing is the 404 of campaign id: the same for a missing one and
// another tenant's or mode's.
func campaignMissing(id string) error {
	return domain.Errorf(domain.ENOTFOUND, "campaign %s not found", id)
}

// campaignAction runs a command on campaign {id} of the caller's tenant and
// mode and answers the campaign. A missing campaign — or another tenant's
// or mode's — is 404 whatever the body (bodyErr is answered only for an
// existing one).
func (s *Server) campaignAction(w http.ResponseWriter, r *http.Request, bodyErr error, decide func(c *domain.Campaign, at time.Time) ([]domain.NewEvent, error)) {
	p := principal(r)
	id := chi.URLParam(r, "id")
	if !domain.HasPrefix(id, domain.PrefixCampaign) {
		writeError(w, r, campaignMissing(id))
		return
	}
	counts, err := s.enrollmentCountsOf(r.Context(), p, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ownedWrite(s, w, r, domain.PrefixCampaign, "campaign", campaignCommand, func(c *domain.Campaign) (bool, bool) { return c.Created, c.Sandbox },
		bodyErr, decide, func(_ pgx.Tx, c *domain.Campaign) (result, error) {
			return result{Status: http.StatusOK, Body: viewCampaign(c, counts)}, nil
		})
}

// pauseCampaign: POST /v1/campaigns/{id}/pause {reason} (body optional)
// holds every journey of an active campaign.
func (s *Server) pauseCampaign(w http.ResponseWriter, r *http.Request) {
	reason, bodyErr := optionalReason(r)
	s.campaignAction(w, r, bodyErr, func(c *domain.Campaign, at time.Time) ([]domain.NewEvent, error) {
		return c.Pause(reason, at)
	})
}

// resumeCampaign: POST /v1/campaigns/{id}/resume (body optional, {})
// resumes a paused campaign.
func (s *Server) resumeCampaign(w http.ResponseWriter, r *http.Request) {
	var in struct{}
	bodyErr := decodeOptional(r, &in)
	s.campaignAction(w, r, bodyErr, func(c *domain.Campaign, at time.Time) ([]domain.NewEvent, error) { return c.Resume(at) })
}

// completeCampaign: POST /v1/campaigns/{id}/complete {reason} (body
// optional) ends an active or paused campaign for good.
func (s *Server) completeCampaign(w http.ResponseWriter, r *http.Request) {
	reason, bodyErr := optionalReason(r)
	s.campaignAction(w, r, bodyErr, func(c *domain.Campaign, at time.Time) ([]domain.NewEvent, error) {
		return c.Complete(reason, at)
	})
}

// getCampaign: GET /v1/campaigns/{id}, from the campaigns projection.
func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request) {
	readOne(s, w, r, "campaigns", "campaign", campaignColumns, "campaigns c", scanCampaign)
}

var campaignStatuses = []string{string(domain.CampaignActive), string(domain.CampaignPaused), string(domain.CampaignCompleted)}

// listCampaigns: GET /v1/campaigns — the tenant's campaigns of the caller's
// mode by id, filtered by ?status= and ?type= (comma lists) and ?search=
// (case-insensitive, in the name).
func (s *Server) listCampaigns(w http.ResponseWriter, r *http.Request) {
	f := &queryFilters{r: r}
	statuses, types, search := f.oneOf("status", campaignStatuses), f.oneOf("type", domain.CampaignTypes), f.text("search")
	pg, ok := s.startList(w, r, func() error { return f.err("campaign") }, "campaigns")
	if !ok {
		return
	}
	p := principal(r)
	rows, err := s.store.Pool().Query(r.Context(), `SELECT `+campaignColumns+` FROM campaigns c
		WHERE c.tenant_id = $1 AND c.sandbox = $2 AND c.id > $3
		  AND ($4::text[] IS NULL OR c.status = ANY($4))
		  AND ($5::text[] IS NULL OR c.type = ANY($5))
		  AND ($6 = '' OR strpos(lower(c.name), lower($6)) > 0)
		ORDER BY c.id LIMIT $7`, p.TenantID, p.Sandbox(), pg.After, statuses, types, search, pg.Limit+1)
	views, err := collect(rows, err, scanCampaign)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v campaignView) string { return v.ID }))
}

// ---- enrollments ----

// enrollmentTargetView is what an enrollment runs for.
type enrollmentTargetView struct {
	Type        string   `json:"type"`
	ID          string   `json:"id"`
	AccountID   string   `json:"account_id"`
	ClaimID     string   `json:"claim_id"`
	StatementID string   `json:"statement_id"`
	DebtorIDs   []string `json:"debtor_ids"`
	Currency    string   `json:"currency"`
}

// enrollmentView is an enrollment as the API shows it. NextDueDate is the
// date of the next step while the enrollment is active and a step is left,
// else null.
type enrollmentView struct {
	Object      string               `json:"object"`
	ID          string               `json:"id"`
	CampaignID  string               `json:"campaign_id"`
	Target      enrollmentTargetView `json:"target"`
	AnchorDate  domain.Date          `json:"anchor_date"`
	StartDate   domain.Date          `json:"start_date"`
	NextStep    int                  `json:"next_step"`
	NextDueDate *domain.Date         `json:"next_due_date"`
	StepsFired  int                  `json:"steps_fired"`
	Status      string               `json:"status"`
	Reason      string               `json:"reason"`
	Runs        int                  `json:"runs"`
	CreatedAt   time.Time            `json:"created_at"`
	UpdatedAt   time.Time            `json:"updated_at"`
	Version     int64                `json:"version"`
}

func viewTarget(t domain.EnrollmentTarget) enrollmentTargetView {
	v := enrollmentTargetView{Type: t.Type, ID: t.ID, AccountID: t.AccountID, ClaimID: t.ClaimID, StatementID: t.StatementID,
		DebtorIDs: t.DebtorIDs, Currency: t.Currency}
	if v.DebtorIDs == nil {
		v.DebtorIDs = []string{}
	}
	return v
}

// viewEnrollment shows the command side's state of e, an enrollment in c.
func viewEnrollment(e *domain.Enrollment, c *domain.Campaign) enrollmentView {
	v := enrollmentView{Object: "enrollment", ID: e.ID, CampaignID: e.CampaignID, Target: viewTarget(e.Target), AnchorDate: e.AnchorDate,
		StartDate: e.StartDate, NextStep: e.NextStep, StepsFired: e.StepsFired, Status: string(e.Status), Reason: e.Reason, Runs: e.Runs,
		CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC(), Version: e.Version}
	if e.Status == domain.EnrollmentActive && e.NextStep < len(c.Steps) {
		d := e.StepDate(c, e.NextStep)
		v.NextDueDate = &d
	}
	return v
}

const enrollmentColumns = `id, campaign_id, target_type, target_id, account_id, claim_id, statement_id, debtor_ids, currency,
	anchor_date::text, start_date::text, next_step, CASE WHEN status = 'active' THEN next_due_date::text END, steps_fired,
	status, reason, runs, version, created_at, updated_at`

func scanEnrollment(row rowScanner) (enrollmentView, error) {
	v := enrollmentView{Object: "enrollment"}
	t := &v.Target
	var next *string
	if err := row.Scan(&v.ID, &v.CampaignID, &t.Type, &t.ID, &t.AccountID, &t.ClaimID, &t.StatementID, &t.DebtorIDs, &t.Currency,
		&v.AnchorDate, &v.StartDate, &v.NextStep, &next, &v.StepsFired, &v.Status, &v.Reason, &v.Runs, &v.Version, &v.CreatedAt, &v.UpdatedAt); err != nil {
		return v, err
	}
	if t.DebtorIDs == nil {
		t.DebtorIDs = []string{}
	}
	if next != nil {
		d := domain.Date(*next)
		v.NextDueDate = &d
	}
	v.CreatedAt, v.UpdatedAt = v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	return v, nil
}

// enrollmentTarget is one target of an enrollment request.
type enrollmentTarget struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// enrollRequest is POST /v1/campaigns/{id}/enrollments's body: targets,
// and for convenience lists of ids of one type each.
type enrollRequest struct {
	Targets      []enrollmentTarget `json:"targets"`
	AccountIDs   []string           `json:"account_ids"`
	ClaimIDs     []string           `json:"claim_ids"`
	StatementIDs []string           `json:"statement_ids"`
}

// enrollPlan is one target of an enrollment request, turned into commands.
type enrollPlan struct {
	field   string // how problems name it: "targets[3]" or "account_ids[0]"
	idField string // how "no such target" names it
	typ, id string
	// Decided by the target's own command (or, for a statement, from the
	// statements table): the enrollment's target, anchor and mode.
	target   domain.EnrollmentTarget
	anchor   domain.Date
	sandbox  bool
	resolved bool
	err      error // a problem found before Execute (an unknown statement)

	enrollment *domain.Enrollment
	outcome    string // enrolled, reopened, unchanged
}

// targetError names the fields of a domain error about pl's target with
// its field: "target" becomes it, any other field is prefixed with it; an
// error without fields gets one naming it.
func (pl *enrollPlan) targetError(err error) error {
	var de *domain.Error
	if err == nil || !errors.As(err, &de) {
		return err
	}
	out := *de
	out.Fields = make([]domain.FieldError, 0, len(de.Fields)+1)
	for _, f := range de.Fields {
		if f.Field == "target" {
			f.Field = pl.field
		} else {
			f.Field = pl.field + "." + f.Field
		}
		out.Fields = append(out.Fields, f)
	}
	if len(out.Fields) == 0 {
		out.Fields = append(out.Fields, domain.FieldError{Field: pl.field, Error: de.Message})
	}
	return &out
}

func (pl *enrollPlan) missing() error {
	return domain.Invalid("invalid enrollment: nothing was changed", domain.FieldError{Field: pl.idField, Error: fmt.Sprintf("no %s %s", pl.typ, pl.id)})
}

func (pl *enrollPlan) nothingToCollect(why string) error {
	return domain.Invalid("invalid enrollment: nothing was changed", domain.FieldError{Field: pl.field, Error: "nothing to collect: " + why})
}

// planEnrollments checks the shape of an enrollment request: 1 to 500
// targets of known types with well-formed ids, none twice.
func planEnrollments(in enrollRequest) ([]*enrollPlan, error) {
	var plans []*enrollPlan
	var fe []domain.FieldError
	seen := map[string]string{}
	add := func(field, idField, typ, id string) {
		pl := &enrollPlan{field: field, idField: idField, typ: typ, id: strings.TrimSpace(id)}
		plans = append(plans, pl)
		if typ == "" {
			return
		}
		ok := false
		switch typ {
		case "account":
			ok = domain.HasPrefix(pl.id, domain.PrefixAccount)
		case "claim":
			ok = domain.HasPrefix(pl.id, domain.PrefixClaim)
		case "statement":
			_, _, _, ok = domain.ParseStatementID(pl.id)
		}
		switch {
		case pl.id == "":
			fe = append(fe, domain.FieldError{Field: idField, Error: "is required"})
		case !ok:
			pl.err = pl.missing()
		default:
			if prev, dup := seen[pl.id]; dup {
				fe = append(fe, domain.FieldError{Field: field, Error: fmt.Sprintf("%s %s appears twice (also %s)", typ, pl.id, prev)})
			} else {
				seen[pl.id] = field
			}
		}
	}
	for i, t := range in.Targets {
		field := fmt.Sprintf("targets[%d]", i)
		typ := strings.TrimSpace(t.Type)
		if !slices.Contains(domain.TargetTypes, typ) {
			fe = append(fe, domain.FieldError{Field: field + ".type", Error: "must be one of " + strings.Join(domain.TargetTypes, ", ")})
			typ = ""
		}
		add(field, field+".id", typ, t.ID)
	}
	for _, l := range []struct {
		name, typ string
		ids       []string
	}{{"account_ids", "account", in.AccountIDs}, {"claim_ids", "claim", in.ClaimIDs}, {"statement_ids", "statement", in.StatementIDs}} {
		for i, id := range l.ids {
			field := fmt.Sprintf("%s[%d]", l.name, i)
			add(field, field, l.typ, id)
		}
	}
	switch n := len(plans); {
	case n == 0:
		fe = append(fe, domain.FieldError{Field: "targets", Error: "must have at least one target"})
	case n > domain.MaxEnrollBatch:
		fe = []domain.FieldError{{Field: "targets", Error: fmt.Sprintf("must have at most %d targets (targets, account_ids, claim_ids and statement_ids together); got %d", domain.MaxEnrollBatch, n)}}
	}
	if len(fe) > 0 {
		return nil, domain.Invalid("invalid enrollment: nothing was changed", fe...)
	}
	return plans, nil
}

// resolveStatements sets, for every statement target, its enrollment
// target, anchor (domain.StatementAnchor of its month) and mode from the
// statements read model; a statement it has not (or of another mode) is
// unknown, and one with nothing due has nothing to collect.
func (s *Server) resolveStatements(ctx context.Context, p domain.Principal, plans []*enrollPlan) error {
	var ids []string
	for _, pl := range plans {
		if pl.typ == "statement" && pl.err == nil {
			ids = append(ids, pl.id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	type stmt struct {
		debtor, currency, month string
		due                     decimal.Decimal
	}
	found := map[string]stmt{}
	rows, err := s.store.Pool().Query(ctx, `SELECT id, debtor_id, currency, month, due::text FROM statements
		WHERE tenant_id = $1 AND sandbox = $2 AND id = ANY($3)`, p.TenantID, p.Sandbox(), ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, due string
		var st stmt
		if err := rows.Scan(&id, &st.debtor, &st.currency, &st.month, &due); err != nil {
			return err
		}
		if st.due, err = decimal.NewFromString(due); err != nil {
			return err
		}
		found[id] = st
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, pl := range plans {
		if pl.typ != "statement" || pl.err != nil {
			continue
		}
		st, ok := found[pl.id]
		switch {
		case !ok:
			pl.err = pl.missing()
		case !p.Sandbox() && !st.due.IsPositive():
			pl.err = pl.nothingToCollect("statement " + pl.id + " has nothing due")
		default:
			pl.target = domain.EnrollmentTarget{Type: "statement", ID: pl.id, StatementID: pl.id, DebtorIDs: []string{st.debtor}, Currency: st.currency}
			pl.anchor, pl.sandbox, pl.resolved = domain.StatementAnchor(st.month), p.Sandbox(), true
		}
	}
	return nil
}

// enrollmentBatchItem is what one enrollment request did to one target.
type enrollmentBatchItem struct {
	Index      int            `json:"index"`
	Field      string         `json:"field"`
	Outcome    string         `json:"outcome"`
	Enrollment enrollmentView `json:"enrollment"`
}

// enrollmentBatch is POST /v1/campaigns/{id}/enrollments's answer.
type enrollmentBatch struct {
	Object    string                `json:"object"`
	Enrolled  int                   `json:"enrolled"`
	Reopened  int                   `json:"reopened"`
	Unchanged int                   `json:"unchanged"`
	Data      []enrollmentBatchItem `json:"data"`
}

// enroll: POST /v1/campaigns/{id}/enrollments enrolls 1 to 500 accounts,
// claims and statements in the campaign, all or nothing in one
// transaction: the campaign, each account and claim are read by a command
// of their own (so the decision is consistent with them), statements come
// from the statements read model, and each target's enrollment stream
// (domain.EnrollmentID) records enrollment.created — or
// enrollment.reopened for a cancelled or completed one; an actively
// enrolled target records nothing ("unchanged"). The journey runs from the
// target's due date: a claim's current due date, an account's oldest open
// debit's, a statement's month's last day; steps dated before today are
// skipped (with none left, the enrollment completes at once). 201 when
// anything was enrolled or reopened, 200 when every target was already
// enrolled. Every problem names its target (targets[i], account_ids[i], …).
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	id := chi.URLParam(r, "id")
	if !domain.HasPrefix(id, domain.PrefixCampaign) {
		writeError(w, r, campaignMissing(id))
		return
	}
	var in enrollRequest
	bodyErr := decode(r, &in)
	var plans []*enrollPlan
	if bodyErr == nil {
		plans, bodyErr = planEnrollments(in)
	}
	if bodyErr == nil {
		if err := s.resolveStatements(r.Context(), p, plans); err != nil {
			writeError(w, r, err)
			return
		}
	}
	at := debtorNow()
	today := domain.DateOf(at)
	var c *domain.Campaign
	campaignOK := false
	cmds := []eventstore.Command{campaignCommand(p.TenantID, id, func(agg *domain.Campaign) ([]domain.NewEvent, error) {
		c, campaignOK = agg, false
		switch {
		case !c.Created || c.Sandbox != p.Sandbox():
			return nil, campaignMissing(id)
		case bodyErr != nil:
			return nil, bodyErr
		case c.Status == domain.CampaignCompleted:
			return nil, &domain.Error{Code: domain.ECONFLICT, Reason: "campaign_completed",
				Message: fmt.Sprintf("campaign %s is completed: nothing more can be enrolled", c.ID)}
		}
		campaignOK = true
		return nil, nil
	})}
	// The targets' own commands, read-only: they only decide the target.
	for _, pl := range plans {
		if pl.err != nil {
			continue
		}
		switch pl.typ {
		case "account":
			cmds = append(cmds, accountCommand(p.TenantID, pl.id, func(a *domain.Account) ([]domain.NewEvent, error) {
				pl.resolved = false
				if !campaignOK {
					return nil, nil
				}
				if !a.Opened || a.Sandbox != p.Sandbox() {
					return nil, pl.missing()
				}
				pl.target = domain.EnrollmentTarget{Type: "account", ID: a.ID, AccountID: a.ID, DebtorIDs: a.DebtorIDs, Currency: a.Currency}
				pl.anchor, pl.sandbox = a.OldestDueDate(), a.Sandbox
				if pl.anchor == "" && !a.Sandbox { // a sandbox target is refused by Enroll
					return nil, pl.nothingToCollect("account " + a.ID + " owes nothing")
				}
				pl.resolved = true
				return nil, nil
			}))
		case "claim":
			cmds = append(cmds, claimCommand(p.TenantID, pl.id, func(cl *domain.Claim) ([]domain.NewEvent, error) {
				pl.resolved = false
				if !campaignOK {
					return nil, nil
				}
				if !cl.Created || cl.Sandbox != p.Sandbox() {
					return nil, pl.missing()
				}
				var debtors []string
				if cl.PrimaryDebtorID != "" {
					debtors = []string{cl.PrimaryDebtorID}
				}
				pl.target = domain.EnrollmentTarget{Type: "claim", ID: cl.ID, AccountID: cl.AccountID, ClaimID: cl.ID, DebtorIDs: debtors, Currency: cl.Currency}
				pl.anchor, pl.sandbox = cl.CurrentDueDate, cl.Sandbox
				if !cl.Sandbox && (cl.Status == domain.ClaimResolved || cl.Status == domain.ClaimStopped) {
					return nil, &domain.Error{Code: domain.ECONFLICT, Reason: "claim_closed",
						Message: fmt.Sprintf("claim %s is %s: nothing to collect", cl.ID, cl.Status),
						Fields:  []domain.FieldError{{Field: pl.field, Error: fmt.Sprintf("claim %s is %s", cl.ID, cl.Status)}}}
				}
				pl.resolved = true
				return nil, nil
			}))
		}
	}
	for _, pl := range plans {
		enrID := domain.EnrollmentID(id, pl.id)
		cmds = append(cmds, enrollmentCommand(p.TenantID, enrID, func(e *domain.Enrollment) ([]domain.NewEvent, error) {
			pl.enrollment = e
			switch {
			case !campaignOK:
				return nil, nil
			case pl.err != nil:
				return nil, pl.err
			case !pl.resolved:
				return nil, nil // its target's command said why
			}
			reopen := e.Created
			evs, err := e.Enroll(c, pl.target, pl.anchor, today, pl.sandbox, at)
			if err != nil {
				return nil, pl.targetError(err)
			}
			switch {
			case len(evs) == 0:
				pl.outcome = "unchanged"
			case reopen:
				pl.outcome = "reopened"
			default:
				pl.outcome = "enrolled"
			}
			return evs, nil
		}))
	}
	s.execute(w, r, cmds, func([]domain.Event) (result, error) {
		res := enrollmentBatch{Object: "enrollment_batch", Data: make([]enrollmentBatchItem, len(plans))}
		for i, pl := range plans {
			switch pl.outcome {
			case "enrolled":
				res.Enrolled++
			case "reopened":
				res.Reopened++
			default:
				res.Unchanged++
			}
			res.Data[i] = enrollmentBatchItem{Index: i, Field: pl.field, Outcome: pl.outcome, Enrollment: viewEnrollment(pl.enrollment, c)}
		}
		status := http.StatusOK
		if res.Enrolled+res.Reopened > 0 {
			status = http.StatusCreated
		}
		return result{Status: status, Body: res}, nil
	})
}

// campaignVisible answers 404 unless the campaigns read model has campaign
// id in the caller's tenant and mode.
func (s *Server) campaignVisible(ctx context.Context, p domain.Principal, id string) error {
	var ok bool
	if err := s.store.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM campaigns WHERE tenant_id = $1 AND sandbox = $2 AND id = $3)`,
		p.TenantID, p.Sandbox(), id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return campaignMissing(id)
	}
	return nil
}

var enrollmentStatuses = []string{string(domain.EnrollmentActive), string(domain.EnrollmentCompleted), string(domain.EnrollmentCancelled)}

// listEnrollments: GET /v1/campaigns/{id}/enrollments — the campaign's
// enrollments by id, filtered by ?status= and ?target_type= (comma lists)
// and ?target_id=.
func (s *Server) listEnrollments(w http.ResponseWriter, r *http.Request) {
	f := &queryFilters{r: r}
	statuses, types, target := f.oneOf("status", enrollmentStatuses), f.oneOf("target_type", domain.TargetTypes), f.text("target_id")
	pg, ok := s.startList(w, r, func() error { return f.err("enrollment") }, "campaigns")
	if !ok {
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	if err := s.campaignVisible(r.Context(), p, id); err != nil {
		writeError(w, r, err)
		return
	}
	rows, err := s.store.Pool().Query(r.Context(), `SELECT `+enrollmentColumns+` FROM enrollments
		WHERE tenant_id = $1 AND sandbox = $2 AND campaign_id = $3 AND id > $4
		  AND ($5::text[] IS NULL OR status = ANY($5))
		  AND ($6::text[] IS NULL OR target_type = ANY($6))
		  AND ($7 = '' OR target_id = $7)
		ORDER BY id LIMIT $8`, p.TenantID, p.Sandbox(), id, pg.After, statuses, types, target, pg.Limit+1)
	views, err := collect(rows, err, scanEnrollment)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v enrollmentView) string { return v.ID }))
}

// getEnrollment: GET /v1/campaigns/{id}/enrollments/{enrollment_id}, from
// the campaigns projection.
func (s *Server) getEnrollment(w http.ResponseWriter, r *http.Request) {
	if err := s.awaitPosition(r, "campaigns"); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id, enrID := chi.URLParam(r, "id"), pathParam(r, "enrollment_id")
	if err := s.campaignVisible(r.Context(), p, id); err != nil {
		writeError(w, r, err)
		return
	}
	v, err := scanEnrollment(s.store.Pool().QueryRow(r.Context(), `SELECT `+enrollmentColumns+` FROM enrollments
		WHERE tenant_id = $1 AND sandbox = $2 AND campaign_id = $3 AND id = $4`, p.TenantID, p.Sandbox(), id, enrID))
	if err != nil {
		writeError(w, r, notFound(err, "enrollment "+enrID))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// cancelEnrollment: DELETE /v1/campaigns/{id}/enrollments/{enrollment_id}
// {reason} (body optional) cancels an active enrollment (enrollment.ended,
// status cancelled): no more steps. 409 if it is not active.
func (s *Server) cancelEnrollment(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	id, enrID := chi.URLParam(r, "id"), pathParam(r, "enrollment_id")
	if !domain.HasPrefix(id, domain.PrefixCampaign) {
		writeError(w, r, campaignMissing(id))
		return
	}
	reason, bodyErr := optionalReason(r)
	enrMissing := domain.Errorf(domain.ENOTFOUND, "enrollment %s not found", enrID)
	at := debtorNow()
	var c *domain.Campaign
	var e *domain.Enrollment
	campaignOK := false
	cmds := []eventstore.Command{campaignCommand(p.TenantID, id, func(agg *domain.Campaign) ([]domain.NewEvent, error) {
		c, campaignOK = agg, false
		switch {
		case !c.Created || c.Sandbox != p.Sandbox():
			return nil, campaignMissing(id)
		case !domain.HasPrefix(enrID, domain.PrefixEnrollment):
			return nil, enrMissing
		case bodyErr != nil:
			return nil, bodyErr
		}
		campaignOK = true
		return nil, nil
	})}
	if domain.HasPrefix(enrID, domain.PrefixEnrollment) {
		cmds = append(cmds, enrollmentCommand(p.TenantID, enrID, func(agg *domain.Enrollment) ([]domain.NewEvent, error) {
			e = agg
			switch {
			case !campaignOK:
				return nil, nil
			case !e.Created || e.CampaignID != id || e.Sandbox != p.Sandbox():
				return nil, enrMissing
			}
			return e.Cancel(reason, at)
		}))
	}
	s.execute(w, r, cmds, func([]domain.Event) (result, error) {
		return result{Status: http.StatusOK, Body: viewEnrollment(e, c)}, nil
	})
}
