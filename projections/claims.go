package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
)

// Claims projects every claim's current state (table claims): the fold of
// its events by (*domain.Claim).Apply itself — promises to pay and custom
// triggers included. For each batch it reads the rows of the claims the
// batch touches back into domain.Claim values, applies their events in
// order and writes them back — so the read model can never fold
// differently from the command side. It takes every event of a claim
// stream: an event type the domain does not fold fails the projection
// (as it fails the command side's load) instead of being skipped, so a new
// claim event cannot be silently forgotten here.
type Claims struct{}

// Name implements Projection.
func (Claims) Name() string { return "claims" }

// Tables implements Projection.
func (Claims) Tables() []Table {
	return []Table{{Name: "claims", Key: []string{"tenant_id", "id"}}}
}

// ClaimColumns are the claims columns in the order ScanClaim reads them.
const ClaimColumns = `tenant_id, id, sandbox, reference, account_id, entry_reference, primary_debtor_id,
	amount::text, original_amount::text, credits::text, debits::text, paid::text, currency, total_fees::text,
	coalesce(to_char(original_due_date, 'YYYY-MM-DD'), ''), coalesce(to_char(current_due_date, 'YYYY-MM-DD'), ''),
	product_reference, portfolio_reference, creditor_reference, scores, meta, status, resolution, status_reason,
	overdue_thresholds, recreations, version, created_at, updated_at, resolved_at, promises, triggers`

// ScanClaim reads a row of ClaimColumns back into the claim it folds.
func ScanClaim(row interface{ Scan(dest ...any) error }) (*domain.Claim, error) {
	c := &domain.Claim{Created: true}
	var sums [6]string
	var orig, cur string
	var scores, meta []byte
	var status, resolution string
	var overdue []int32
	var promises []byte
	if err := row.Scan(&c.TenantID, &c.ID, &c.Sandbox, &c.Reference, &c.AccountID, &c.EntryReference, &c.PrimaryDebtorID,
		&sums[0], &sums[1], &sums[2], &sums[3], &sums[4], &c.Currency, &sums[5], &orig, &cur,
		&c.ProductReference, &c.PortfolioReference, &c.CreditorReference, &scores, &meta, &status, &resolution, &c.StatusReason,
		&overdue, &c.Recreations, &c.Version, &c.CreatedAt, &c.UpdatedAt, &c.ResolvedAt, &promises, &c.Triggers); err != nil {
		return nil, err
	}
	for i, dst := range []*decimal.Decimal{&c.Amount, &c.OriginalAmount, &c.Credits, &c.Debits, &c.Paid, &c.TotalFees} {
		d, err := decimal.NewFromString(sums[i])
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", c.ID, err)
		}
		*dst = d
	}
	c.OriginalDueDate, c.CurrentDueDate = domain.Date(orig), domain.Date(cur)
	c.Status, c.Resolution = domain.ClaimStatus(status), domain.ClaimResolution(resolution)
	if len(scores) > 0 && string(scores) != "null" {
		if err := json.Unmarshal(scores, &c.Scores); err != nil {
			return nil, fmt.Errorf("claim %s: scores: %w", c.ID, err)
		}
		if len(c.Scores) == 0 {
			c.Scores = nil
		}
	}
	if len(meta) > 0 && string(meta) != "null" {
		c.Meta = json.RawMessage(meta)
	}
	for _, th := range overdue {
		c.Overdue = append(c.Overdue, int(th))
	}
	if len(promises) > 0 {
		if err := json.Unmarshal(promises, &c.Promises); err != nil {
			return nil, fmt.Errorf("claim %s: promises: %w", c.ID, err)
		}
	}
	if len(c.Promises) == 0 {
		c.Promises = nil // as folded from no promise_made
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	if c.ResolvedAt != nil {
		t := c.ResolvedAt.UTC()
		c.ResolvedAt = &t
	}
	return c, nil
}

const claimUpsert = `
	INSERT INTO claims (tenant_id, id, sandbox, reference, account_id, entry_reference, primary_debtor_id,
	                    amount, original_amount, credits, debits, paid, currency, total_fees, original_due_date, current_due_date,
	                    product_reference, portfolio_reference, creditor_reference, scores, meta, status, resolution, status_reason,
	                    overdue_thresholds, recreations, version, created_at, updated_at, resolved_at,
	                    promises, active_promise_due, triggers)
	VALUES ($1, $2, $3, $4, $5, $6, $7, trim_scale($8::numeric), trim_scale($9::numeric), trim_scale($10::numeric),
	        trim_scale($11::numeric), trim_scale($12::numeric), $13, trim_scale($14::numeric), $15::date, $16::date,
	        $17, $18, $19, $20::jsonb, $21::jsonb, $22, $23, $24, $25::integer[], $26, $27, $28, $29, $30,
	        $31::jsonb, $32::date, $33)
	ON CONFLICT (tenant_id, id) DO UPDATE SET
		sandbox = EXCLUDED.sandbox, reference = EXCLUDED.reference, account_id = EXCLUDED.account_id,
		entry_reference = EXCLUDED.entry_reference, primary_debtor_id = EXCLUDED.primary_debtor_id,
		amount = EXCLUDED.amount, original_amount = EXCLUDED.original_amount, credits = EXCLUDED.credits,
		debits = EXCLUDED.debits, paid = EXCLUDED.paid, currency = EXCLUDED.currency, total_fees = EXCLUDED.total_fees,
		original_due_date = EXCLUDED.original_due_date, current_due_date = EXCLUDED.current_due_date,
		product_reference = EXCLUDED.product_reference, portfolio_reference = EXCLUDED.portfolio_reference,
		creditor_reference = EXCLUDED.creditor_reference, scores = EXCLUDED.scores, meta = EXCLUDED.meta,
		status = EXCLUDED.status, resolution = EXCLUDED.resolution, status_reason = EXCLUDED.status_reason,
		overdue_thresholds = EXCLUDED.overdue_thresholds, recreations = EXCLUDED.recreations, version = EXCLUDED.version,
		created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, resolved_at = EXCLUDED.resolved_at,
		promises = EXCLUDED.promises, active_promise_due = EXCLUDED.active_promise_due, triggers = EXCLUDED.triggers`

// claimKey names a claim stream.
type claimKey struct{ tenant, id string }

// Apply implements Projection: the batch's claim events are grouped by
// claim, each claim is read from its row (or starts empty), folded by
// (*domain.Claim).Apply, and written back with one upsert, pipelined. Events
// of a claim never created (only in foreign data: the command side refuses
// them) change nothing; events of other streams are ignored.
func (Claims) Apply(ctx context.Context, tx pgx.Tx, events []domain.Event) error {
	byClaim := map[claimKey][]domain.Event{}
	var order []claimKey
	for _, e := range events {
		if e.StreamType != domain.StreamTypeClaim {
			continue
		}
		k := claimKey{e.TenantID, e.StreamID}
		if _, ok := byClaim[k]; !ok {
			order = append(order, k)
		}
		byClaim[k] = append(byClaim[k], e)
	}
	if len(order) == 0 {
		return nil
	}
	tenants, ids := make([]string, len(order)), make([]string, len(order))
	for i, k := range order {
		tenants[i], ids[i] = k.tenant, k.id
	}
	rows, err := tx.Query(ctx, `SELECT `+ClaimColumns+` FROM claims
		WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, tenants, ids)
	if err != nil {
		return fmt.Errorf("claims: read: %w", err)
	}
	current, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*domain.Claim, error) { return ScanClaim(r) })
	if err != nil {
		return fmt.Errorf("claims: read: %w", err)
	}
	state := make(map[claimKey]*domain.Claim, len(order))
	for _, c := range current {
		state[claimKey{c.TenantID, c.ID}] = c
	}
	q := &queue{}
	for _, k := range order {
		c, ok := state[k]
		if !ok {
			c = domain.NewClaim(k.tenant, k.id)
		}
		evs := byClaim[k]
		for _, e := range evs {
			if !c.Created && e.Type != domain.EventClaimCreated {
				continue
			}
			if err := c.Apply(e.Type, e.Data); err != nil {
				return fmt.Errorf("claim %s: %s (version %d): %w", e.StreamID, e.Type, e.StreamVersion, err)
			}
			c.Version = e.StreamVersion
		}
		if !c.Created {
			continue
		}
		args, err := claimRow(c)
		if err != nil {
			return err
		}
		q.add(evs[len(evs)-1], anyRows, claimUpsert, args...)
		if err := q.flushIfFull(ctx, tx); err != nil {
			return err
		}
	}
	return q.flush(ctx, tx)
}

// claimRow is c as claimUpsert's arguments.
func claimRow(c *domain.Claim) ([]any, error) {
	scores := c.Scores
	if scores == nil {
		scores = []domain.Score{}
	}
	sj, err := json.Marshal(scores)
	if err != nil {
		return nil, fmt.Errorf("claim %s: scores: %w", c.ID, err)
	}
	var meta *string
	if len(c.Meta) > 0 && string(c.Meta) != "null" {
		meta = ptr(string(c.Meta))
	}
	date := func(d domain.Date) *string {
		if d == "" {
			return nil
		}
		return ptr(string(d))
	}
	overdue := make([]int32, len(c.Overdue))
	for i, th := range c.Overdue {
		overdue[i] = int32(th)
	}
	var resolved *time.Time
	if c.ResolvedAt != nil {
		resolved = ptr(*c.ResolvedAt)
	}
	promises := c.Promises
	if promises == nil {
		promises = []domain.Promise{}
	}
	pj, err := json.Marshal(promises)
	if err != nil {
		return nil, fmt.Errorf("claim %s: promises: %w", c.ID, err)
	}
	var activeDue *string
	if p := c.ActivePromise(); p != nil {
		activeDue = date(p.DueDate)
	}
	return []any{c.TenantID, c.ID, c.Sandbox, c.Reference, c.AccountID, c.EntryReference, c.PrimaryDebtorID,
		c.Amount.String(), c.OriginalAmount.String(), c.Credits.String(), c.Debits.String(), c.Paid.String(), c.Currency,
		c.TotalFees.String(), date(c.OriginalDueDate), date(c.CurrentDueDate),
		c.ProductReference, c.PortfolioReference, c.CreditorReference, string(sj), meta,
		string(c.Status), string(c.Resolution), c.StatusReason, overdue, c.Recreations, c.Version,
		c.CreatedAt, c.UpdatedAt, resolved, string(pj), activeDue, c.Triggers}, nil
}
