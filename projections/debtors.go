package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// Debtors projects every debtor's current attributes (table debtors).
type Debtors struct{}

// Name implements Projection.
func (Debtors) Name() string { return "debtors" }

// Tables implements Projection.
func (Debtors) Tables() []Table {
	return []Table{{Name: "debtors", Key: []string{"tenant_id", "id"}}}
}

// debtorSet is the SET list shared by debtor.created (on a row that already
// exists) and debtor.updated: like (*domain.Debtor).apply, only the fields
// the event carries change (a NULL parameter keeps the column).
const debtorSet = `
	reference    = COALESCE($4, d.reference),
	type         = COALESCE($5, d.type),
	first_name   = COALESCE($6, d.first_name),
	last_name    = COALESCE($7, d.last_name),
	company_name = COALESCE($8, d.company_name),
	email        = COALESCE($9, d.email),
	phone        = COALESCE($10, d.phone),
	birth_date   = CASE WHEN $11::boolean THEN $12::date ELSE d.birth_date END,
	address      = COALESCE($13::jsonb, d.address),
	locale       = COALESCE($14, d.locale),
	meta         = COALESCE($15::jsonb, d.meta),
	version      = $16,
	updated_at   = $17`

const debtorCreate = `
	INSERT INTO debtors AS d (tenant_id, id, sandbox, reference, type, first_name, last_name, company_name, email, phone,
	                          birth_date, address, locale, meta, version, created_at, updated_at)
	VALUES ($1, $2, $3, COALESCE($4, ''), COALESCE($5, ''), COALESCE($6, ''), COALESCE($7, ''), COALESCE($8, ''),
	        COALESCE($9, ''), COALESCE($10, ''), CASE WHEN $11::boolean THEN $12::date END, $13::jsonb,
	        COALESCE($14, ''), $15::jsonb, $16, $17, $17)
	ON CONFLICT (tenant_id, id) DO UPDATE SET sandbox = $3, created_at = $17,` + debtorSet

// debtor.updated of a debtor never created changes nothing: the command
// side refuses it, so it only exists in foreign test data. ($3, the sandbox
// flag, only counts on create; it is referenced so that both statements take
// the same arguments.)
const debtorUpdate = `UPDATE debtors AS d SET` + debtorSet + `
	WHERE d.tenant_id = $1 AND d.id = $2 AND $3::boolean IS NOT NULL`

// Apply implements Projection: one statement per debtor event, in order,
// pipelined in one round trip. Every other event is ignored.
func (Debtors) Apply(ctx context.Context, tx pgx.Tx, events []domain.Event) error {
	q := &queue{}
	for _, e := range events {
		if e.StreamType != domain.StreamTypeDebtor || (e.Type != domain.EventDebtorCreated && e.Type != domain.EventDebtorUpdated) {
			continue
		}
		var c domain.DebtorChanged
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return fmt.Errorf("debtor %s: %s (version %d): %w", e.StreamID, e.Type, e.StreamVersion, err)
		}
		f := c.DebtorFields
		var typ *string
		if f.Type != nil {
			s := string(*f.Type)
			typ = &s
		}
		birthSet, birth := f.BirthDate != nil, (*string)(nil)
		if birthSet && *f.BirthDate != "" {
			s := string(*f.BirthDate)
			birth = &s
		}
		var address, meta *string
		if f.Address != nil {
			j, err := json.Marshal(f.Address)
			if err != nil {
				return err
			}
			address = ptr(string(j))
		}
		if f.Meta != nil {
			meta = ptr(string(f.Meta))
		}
		sql := debtorUpdate
		if e.Type == domain.EventDebtorCreated {
			sql = debtorCreate
		}
		q.add(e, anyRows, sql, e.TenantID, e.StreamID, c.Sandbox || e.Metadata.Sandbox,
			trimmed(f.Reference), typ, trimmed(f.FirstName), trimmed(f.LastName), trimmed(f.CompanyName),
			trimmed(f.Email), trimmed(f.Phone), birthSet, birth, address, trimmed(f.Locale), meta,
			e.StreamVersion, c.At)
		if err := q.flushIfFull(ctx, tx); err != nil {
			return err
		}
	}
	return q.flush(ctx, tx)
}

// trimmed is (*domain.Debtor).apply's normalisation of a set string field.
func trimmed(s *string) *string {
	if s == nil {
		return nil
	}
	return ptr(strings.TrimSpace(*s))
}

func ptr[T any](v T) *T { return &v }

// queue pipelines statements, each checked against what it must affect.
type queue struct {
	b     *pgx.Batch
	items []queued
}

type queued struct {
	e      domain.Event
	expect func(rows int64) error // nil: any number of rows
}

var anyRows func(int64) error

func (q *queue) add(e domain.Event, expect func(int64) error, sql string, args ...any) {
	if q.b == nil {
		q.b = &pgx.Batch{}
	}
	q.b.Queue(sql, args...)
	q.items = append(q.items, queued{e: e, expect: expect})
}

// maxPipeline bounds the statements sent in one round trip.
const maxPipeline = 1000

func (q *queue) flushIfFull(ctx context.Context, tx pgx.Tx) error {
	if len(q.items) < maxPipeline {
		return nil
	}
	return q.flush(ctx, tx)
}

// flush sends the queued statements in order and checks each result.
func (q *queue) flush(ctx context.Context, tx pgx.Tx) error {
	if len(q.items) == 0 {
		return nil
	}
	items := q.items
	br := tx.SendBatch(ctx, q.b)
	q.b, q.items = nil, nil
	for _, it := range items {
		tag, err := br.Exec()
		if err == nil && it.expect != nil {
			err = it.expect(tag.RowsAffected())
		}
		if err != nil {
			br.Close()
			e := it.e
			return fmt.Errorf("%s %s: %s (version %d): %w", e.StreamType, e.StreamID, e.Type, e.StreamVersion, err)
		}
	}
	return br.Close()
}
