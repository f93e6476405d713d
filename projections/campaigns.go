package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// Campaigns projects every campaign (table campaigns) and every enrollment
// in one (table enrollments): the folds of their streams by
// (*domain.Campaign).Apply and (*domain.Enrollment).Apply, as Claims folds
// claims — rows read back into the aggregates, events applied, rows
// written back. Every event of a campaign or enrollment stream is folded:
// a type the domain does not know fails the projection instead of being
// skipped.
//
// enrollments.next_due_date is derived: while the enrollment is active and
// its campaign has a step next_step, anchor_date + that step's day_offset;
// otherwise (no step left, ended, or a campaign not known) NULL. The
// campaign's steps never change after campaign.created, so the column
// depends on nothing but the two folds; a campaign created after an
// enrollment naming it (which the command side never does) sets the
// column of its enrollments when it comes.
type Campaigns struct{}

// Name implements Projection.
func (Campaigns) Name() string { return "campaigns" }

// Tables implements Projection.
func (Campaigns) Tables() []Table {
	return []Table{
		{Name: "campaigns", Key: []string{"tenant_id", "id"}},
		{Name: "enrollments", Key: []string{"tenant_id", "id"}},
	}
}

// CampaignColumns are the campaigns columns in the order ScanCampaign reads
// them.
const CampaignColumns = `tenant_id, id, sandbox, name, type, description, steps, meta, status, reason, version, created_at, updated_at`

// ScanCampaign reads a row of CampaignColumns back into the campaign it
// folds.
func ScanCampaign(row interface{ Scan(dest ...any) error }) (*domain.Campaign, error) {
	c := &domain.Campaign{Created: true}
	var steps, meta []byte
	var status string
	if err := row.Scan(&c.TenantID, &c.ID, &c.Sandbox, &c.Name, &c.Type, &c.Description, &steps, &meta, &status, &c.Reason,
		&c.Version, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return nil, err
	}
	c.Status = domain.CampaignStatus(status)
	if err := json.Unmarshal(steps, &c.Steps); err != nil {
		return nil, fmt.Errorf("campaign %s: steps: %w", c.ID, err)
	}
	if len(meta) > 0 && string(meta) != "null" {
		c.Meta = json.RawMessage(meta)
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

// EnrollmentColumns are the enrollments columns in the order ScanEnrollment
// reads them.
const EnrollmentColumns = `tenant_id, id, sandbox, campaign_id, target_type, target_id, account_id, claim_id, statement_id,
	debtor_ids, currency, to_char(anchor_date, 'YYYY-MM-DD'), to_char(start_date, 'YYYY-MM-DD'), next_step, steps_fired,
	coalesce(to_char(next_due_date, 'YYYY-MM-DD'), ''), status, reason, runs, version, created_at, updated_at`

// ScanEnrollment reads a row of EnrollmentColumns back into the enrollment
// it folds, with its next_due_date ("" for none).
func ScanEnrollment(row interface{ Scan(dest ...any) error }) (*domain.Enrollment, domain.Date, error) {
	e := &domain.Enrollment{Created: true}
	var anchor, start, next, status string
	if err := row.Scan(&e.TenantID, &e.ID, &e.Sandbox, &e.CampaignID, &e.Target.Type, &e.Target.ID, &e.Target.AccountID,
		&e.Target.ClaimID, &e.Target.StatementID, &e.Target.DebtorIDs, &e.Target.Currency, &anchor, &start, &e.NextStep,
		&e.StepsFired, &next, &status, &e.Reason, &e.Runs, &e.Version, &e.CreatedAt, &e.UpdatedAt); err != nil {
		return nil, "", err
	}
	if len(e.Target.DebtorIDs) == 0 {
		e.Target.DebtorIDs = nil
	}
	e.AnchorDate, e.StartDate, e.Status = domain.Date(anchor), domain.Date(start), domain.EnrollmentStatus(status)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return e, domain.Date(next), nil
}

// NextDueDate is enrollments.next_due_date of e in its campaign c (nil
// when not known): the date its next step falls on while it is active, ""
// (NULL) when no step is left to fire.
func NextDueDate(e *domain.Enrollment, c *domain.Campaign) domain.Date {
	if c == nil || !c.Created || e.Status != domain.EnrollmentActive || e.NextStep < 0 || e.NextStep >= len(c.Steps) {
		return ""
	}
	return e.StepDate(c, e.NextStep)
}

const campaignUpsert = `
	INSERT INTO campaigns (tenant_id, id, sandbox, name, type, description, steps, meta, status, reason, version, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13)
	ON CONFLICT (tenant_id, id) DO UPDATE SET
		sandbox = EXCLUDED.sandbox, name = EXCLUDED.name, type = EXCLUDED.type, description = EXCLUDED.description,
		steps = EXCLUDED.steps, meta = EXCLUDED.meta, status = EXCLUDED.status, reason = EXCLUDED.reason,
		version = EXCLUDED.version, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at`

const enrollmentUpsert = `
	INSERT INTO enrollments (tenant_id, id, sandbox, campaign_id, target_type, target_id, account_id, claim_id, statement_id,
	                         debtor_ids, currency, anchor_date, start_date, next_step, steps_fired, next_due_date, status, reason,
	                         runs, version, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text[], $11, $12::date, $13::date, $14, $15, $16::date, $17, $18,
	        $19, $20, $21, $22)
	ON CONFLICT (tenant_id, id) DO UPDATE SET
		sandbox = EXCLUDED.sandbox, campaign_id = EXCLUDED.campaign_id, target_type = EXCLUDED.target_type,
		target_id = EXCLUDED.target_id, account_id = EXCLUDED.account_id, claim_id = EXCLUDED.claim_id,
		statement_id = EXCLUDED.statement_id, debtor_ids = EXCLUDED.debtor_ids, currency = EXCLUDED.currency,
		anchor_date = EXCLUDED.anchor_date, start_date = EXCLUDED.start_date, next_step = EXCLUDED.next_step,
		steps_fired = EXCLUDED.steps_fired, next_due_date = EXCLUDED.next_due_date, status = EXCLUDED.status,
		reason = EXCLUDED.reason, runs = EXCLUDED.runs, version = EXCLUDED.version, created_at = EXCLUDED.created_at,
		updated_at = EXCLUDED.updated_at`

// enrollmentsOfNewCampaign sets next_due_date of the enrollments of a
// campaign that has just been created ($3: its steps) as NextDueDate does.
const enrollmentsOfNewCampaign = `
	UPDATE enrollments SET next_due_date = CASE
		WHEN status = 'active' AND next_step >= 0 AND next_step < jsonb_array_length($3::jsonb)
		THEN anchor_date + (($3::jsonb -> next_step ->> 'day_offset')::integer) END
	WHERE tenant_id = $1 AND campaign_id = $2`

// Apply implements Projection: the batch's campaign and enrollment events
// are grouped by stream; each stream is read from its row (or starts
// empty), folded by its aggregate's Apply and written back with one
// upsert, pipelined — campaigns first, then enrollments with the steps of
// their campaigns. Events of a stream never created change nothing; events
// of other streams are ignored.
func (Campaigns) Apply(ctx context.Context, tx pgx.Tx, events []domain.Event) error {
	byStream, order := groupStreams(events, domain.StreamTypeCampaign, domain.StreamTypeEnrollment)
	if len(order) == 0 {
		return nil
	}
	var campaignKeys, enrollmentKeys []streamKey
	for _, k := range order {
		if byStream[k][0].StreamType == domain.StreamTypeCampaign {
			campaignKeys = append(campaignKeys, k)
		} else {
			enrollmentKeys = append(enrollmentKeys, k)
		}
	}
	q := &queue{}

	// Campaigns.
	campaigns := map[streamKey]*domain.Campaign{}
	if len(campaignKeys) > 0 {
		current, err := readRows(ctx, tx, "campaigns", CampaignColumns, campaignKeys, ScanCampaign)
		if err != nil {
			return err
		}
		for _, c := range current {
			campaigns[streamKey{c.TenantID, c.ID}] = c
		}
	}
	for _, k := range campaignKeys {
		c, ok := campaigns[k]
		if !ok {
			c = domain.NewCampaign(k.tenant, k.id)
		}
		existed := c.Created
		evs := byStream[k]
		for _, e := range evs {
			if !c.Created && e.Type != domain.EventCampaignCreated {
				continue
			}
			if err := c.Apply(e.Type, e.Data); err != nil {
				return fmt.Errorf("campaign %s: %s (version %d): %w", e.StreamID, e.Type, e.StreamVersion, err)
			}
			c.Version = e.StreamVersion
		}
		if !c.Created {
			continue
		}
		campaigns[k] = c
		steps := c.Steps
		if steps == nil {
			steps = []domain.CampaignStep{}
		}
		sj, err := json.Marshal(steps)
		if err != nil {
			return fmt.Errorf("campaign %s: steps: %w", c.ID, err)
		}
		last := evs[len(evs)-1]
		q.add(last, anyRows, campaignUpsert, c.TenantID, c.ID, c.Sandbox, c.Name, c.Type, c.Description, string(sj),
			rawOrNull(metaOrNil(c.Meta)), string(c.Status), c.Reason, c.Version, c.CreatedAt, c.UpdatedAt)
		if !existed {
			q.add(last, anyRows, enrollmentsOfNewCampaign, c.TenantID, c.ID, string(sj))
		}
		if err := q.flushIfFull(ctx, tx); err != nil {
			return err
		}
	}
	if len(enrollmentKeys) == 0 {
		return q.flush(ctx, tx)
	}

	// Enrollments.
	current, err := readRows(ctx, tx, "enrollments", EnrollmentColumns, enrollmentKeys,
		func(r interface{ Scan(...any) error }) (*domain.Enrollment, error) {
			e, _, err := ScanEnrollment(r)
			return e, err
		})
	if err != nil {
		return err
	}
	enrollments := make(map[streamKey]*domain.Enrollment, len(current))
	for _, e := range current {
		enrollments[streamKey{e.TenantID, e.ID}] = e
	}
	var folded []*domain.Enrollment
	var last []domain.Event
	for _, k := range enrollmentKeys {
		en, ok := enrollments[k]
		if !ok {
			en = domain.NewEnrollment(k.tenant, k.id)
		}
		evs := byStream[k]
		for _, e := range evs {
			if !en.Created && e.Type != domain.EventEnrollmentCreated {
				continue
			}
			if err := en.Apply(e.Type, e.Data); err != nil {
				return fmt.Errorf("enrollment %s: %s (version %d): %w", e.StreamID, e.Type, e.StreamVersion, err)
			}
			en.Version = e.StreamVersion
		}
		if en.Created {
			folded, last = append(folded, en), append(last, evs[len(evs)-1])
		}
	}
	// The campaigns of the enrollments that this batch did not fold.
	var missing []streamKey
	seen := map[streamKey]bool{}
	for _, en := range folded {
		k := streamKey{en.TenantID, en.CampaignID}
		if _, ok := campaigns[k]; !ok && !seen[k] {
			seen[k] = true
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		more, err := readRows(ctx, tx, "campaigns", CampaignColumns, missing, ScanCampaign)
		if err != nil {
			return err
		}
		for _, c := range more {
			campaigns[streamKey{c.TenantID, c.ID}] = c
		}
	}
	for i, en := range folded {
		var next *string
		if d := NextDueDate(en, campaigns[streamKey{en.TenantID, en.CampaignID}]); d != "" {
			next = ptr(string(d))
		}
		t := en.Target
		q.add(last[i], anyRows, enrollmentUpsert, en.TenantID, en.ID, en.Sandbox, en.CampaignID, t.Type, t.ID, t.AccountID,
			t.ClaimID, t.StatementID, nonNil(t.DebtorIDs), t.Currency, string(en.AnchorDate), string(en.StartDate), en.NextStep,
			en.StepsFired, next, string(en.Status), en.Reason, en.Runs, en.Version, en.CreatedAt, en.UpdatedAt)
		if err := q.flushIfFull(ctx, tx); err != nil {
			return err
		}
	}
	return q.flush(ctx, tx)
}
