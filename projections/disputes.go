package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// Disputes projects every dispute's current state (table disputes): the
// fold of its events by (*domain.Dispute).Apply itself, as Claims folds
// claims — each batch reads the rows of the disputes it touches back into
// domain.Dispute values, applies their events in order and writes them
// back. Every event of a dispute stream is folded: a type the domain does
// not know fails the projection instead of being skipped.
type Disputes struct{}

// Name implements Projection.
func (Disputes) Name() string { return "disputes" }

// Tables implements Projection.
func (Disputes) Tables() []Table {
	return []Table{{Name: "disputes", Key: []string{"tenant_id", "id"}}}
}

// DisputeColumns are the disputes columns in the order ScanDispute reads
// them.
const DisputeColumns = `tenant_id, id, sandbox, account_id, claim_id, debtor_ids, reason, description, reference, meta,
	status, outcome, note, version, opened_at, closed_at, updated_at`

// ScanDispute reads a row of DisputeColumns back into the dispute it folds.
func ScanDispute(row interface{ Scan(dest ...any) error }) (*domain.Dispute, error) {
	d := &domain.Dispute{Created: true}
	var meta []byte
	var status string
	if err := row.Scan(&d.TenantID, &d.ID, &d.Sandbox, &d.AccountID, &d.ClaimID, &d.DebtorIDs, &d.Reason, &d.Description,
		&d.Reference, &meta, &status, &d.Outcome, &d.Note, &d.Version, &d.OpenedAt, &d.ClosedAt, &d.UpdatedAt); err != nil {
		return nil, err
	}
	d.Status = domain.DisputeStatus(status)
	if len(d.DebtorIDs) == 0 {
		d.DebtorIDs = nil
	}
	if len(meta) > 0 && string(meta) != "null" {
		d.Meta = json.RawMessage(meta)
	}
	d.OpenedAt, d.UpdatedAt = d.OpenedAt.UTC(), d.UpdatedAt.UTC()
	d.ClosedAt = utcPtr(d.ClosedAt)
	return d, nil
}

const disputeUpsert = `
	INSERT INTO disputes (tenant_id, id, sandbox, account_id, claim_id, debtor_ids, reason, description, reference, meta,
	                      status, outcome, note, version, opened_at, closed_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6::text[], $7, $8, $9, $10::jsonb, $11, $12, $13, $14, $15, $16, $17)
	ON CONFLICT (tenant_id, id) DO UPDATE SET
		sandbox = EXCLUDED.sandbox, account_id = EXCLUDED.account_id, claim_id = EXCLUDED.claim_id,
		debtor_ids = EXCLUDED.debtor_ids, reason = EXCLUDED.reason, description = EXCLUDED.description,
		reference = EXCLUDED.reference, meta = EXCLUDED.meta, status = EXCLUDED.status, outcome = EXCLUDED.outcome,
		note = EXCLUDED.note, version = EXCLUDED.version, opened_at = EXCLUDED.opened_at, closed_at = EXCLUDED.closed_at,
		updated_at = EXCLUDED.updated_at`

// Apply implements Projection: the batch's dispute events are grouped by
// dispute, each is read from its row (or starts empty), folded by
// (*domain.Dispute).Apply and written back with one upsert, pipelined.
// Events of a dispute never opened change nothing; events of other
// streams are ignored.
func (Disputes) Apply(ctx context.Context, tx pgx.Tx, events []domain.Event) error {
	byStream, order := groupStreams(events, domain.StreamTypeDispute)
	if len(order) == 0 {
		return nil
	}
	current, err := readRows(ctx, tx, "disputes", DisputeColumns, order, ScanDispute)
	if err != nil {
		return err
	}
	state := make(map[streamKey]*domain.Dispute, len(current))
	for _, d := range current {
		state[streamKey{d.TenantID, d.ID}] = d
	}
	q := &queue{}
	for _, k := range order {
		d, ok := state[k]
		if !ok {
			d = domain.NewDispute(k.tenant, k.id)
		}
		evs := byStream[k]
		for _, e := range evs {
			if !d.Created && e.Type != domain.EventDisputeOpened {
				continue
			}
			if err := d.Apply(e.Type, e.Data); err != nil {
				return fmt.Errorf("dispute %s: %s (version %d): %w", e.StreamID, e.Type, e.StreamVersion, err)
			}
			d.Version = e.StreamVersion
		}
		if !d.Created {
			continue
		}
		q.add(evs[len(evs)-1], anyRows, disputeUpsert, d.TenantID, d.ID, d.Sandbox, d.AccountID, d.ClaimID, nonNil(d.DebtorIDs),
			d.Reason, d.Description, d.Reference, rawOrNull(metaOrNil(d.Meta)), string(d.Status), d.Outcome, d.Note, d.Version,
			d.OpenedAt, d.ClosedAt, d.UpdatedAt)
		if err := q.flushIfFull(ctx, tx); err != nil {
			return err
		}
	}
	return q.flush(ctx, tx)
}

// groupStreams groups the events of the streams of the given types by
// stream, in order, and lists the streams in the order of their first
// event.
func groupStreams(events []domain.Event, streamTypes ...string) (map[streamKey][]domain.Event, []streamKey) {
	by := map[streamKey][]domain.Event{}
	var order []streamKey
	for _, e := range events {
		match := false
		for _, st := range streamTypes {
			match = match || e.StreamType == st
		}
		if !match {
			continue
		}
		k := streamKey{e.TenantID, e.StreamID}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], e)
	}
	return by, order
}

// readRows reads the rows of table keyed (tenant_id, id) by keys, with
// columns, through scan, in one query.
func readRows[T any](ctx context.Context, tx pgx.Tx, table, columns string, keys []streamKey, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	tenants, ids := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		tenants[i], ids[i] = k.tenant, k.id
	}
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM `+pgx.Identifier{table}.Sanitize()+`
		WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", table, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", table, err)
	}
	return out, nil
}

// metaOrNil is a JSON object to store, or nil for none (absent or null).
func metaOrNil(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return m
}

// utcPtr is t in UTC (nil stays nil).
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
