package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ReadIndexer is implemented by a projection whose tables have indexes
// that only serve readers: its Apply never uses them (no lookup, no
// constraint). Rebuild and Replay drop them while they fold the whole
// history and build them afterwards: one sort each instead of an index
// insertion per row written.
type ReadIndexer interface {
	// ReadIndexes names the indexes (of the projection's tables).
	ReadIndexes() []string
}

// deferredIndex is an index dropped while a history is folded, and how to
// create it again.
type deferredIndex struct {
	name    string  // schema-qualified, quoted
	create  string  // pg_get_indexdef: schema-qualified, with its name and options
	comment *string // COMMENT ON INDEX …, if it has one
}

// sqlConn is a transaction or a connection.
type sqlConn interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// dropReadIndexes drops p's read indexes (if p is a ReadIndexer) on the
// tables named (as q's search path resolves them), and returns how to
// create them again. Unique indexes and those of constraints are never
// dropped; a name that is not there is ignored.
func dropReadIndexes(ctx context.Context, q sqlConn, p Projection, tables []string) ([]deferredIndex, error) {
	ri, ok := p.(ReadIndexer)
	if !ok || len(ri.ReadIndexes()) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `
		SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(i.indexrelid),
			CASE WHEN obj_description(i.indexrelid, 'pg_class') IS NOT NULL
				THEN format('COMMENT ON INDEX %I.%I IS %L', n.nspname, c.relname, obj_description(i.indexrelid, 'pg_class')) END
		FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE i.indrelid IN (SELECT to_regclass(t)::oid FROM unnest($2::text[]) AS t)
		  AND c.relname = ANY ($1::text[])
		  AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion
		  AND NOT EXISTS (SELECT FROM pg_constraint WHERE conindid = i.indexrelid)
		ORDER BY 1`, ri.ReadIndexes(), tables)
	if err != nil {
		return nil, fmt.Errorf("read indexes: %w", err)
	}
	defs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (deferredIndex, error) {
		var d deferredIndex
		err := r.Scan(&d.name, &d.create, &d.comment)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read indexes: %w", err)
	}
	for _, d := range defs {
		if _, err := q.Exec(ctx, `DROP INDEX `+d.name); err != nil {
			return nil, fmt.Errorf("drop read index %s: %w", d.name, err)
		}
	}
	return defs, nil
}

// createIndexes creates again the indexes dropReadIndexes dropped.
func createIndexes(ctx context.Context, q sqlConn, defs []deferredIndex) error {
	for _, d := range defs {
		if _, err := q.Exec(ctx, d.create); err != nil {
			return fmt.Errorf("create read index %s: %w", d.name, err)
		}
		if d.comment != nil {
			if _, err := q.Exec(ctx, *d.comment); err != nil {
				return fmt.Errorf("comment on read index %s: %w", d.name, err)
			}
		}
	}
	return nil
}

// ReadIndexes implements ReadIndexer: the indexes of the API's lists and
// lookups. The fold finds rows by primary key only; restating a debtor
// joins accounts on debtor_ids (accounts_debtor_ids), entries on their
// primary key's (tenant_id, account_id) prefix and payments on
// payments_account_id, and re-chaining statements reads statements_debtor:
// those stay.
func (Ledger) ReadIndexes() []string {
	return []string{"accounts_reference", "ledger_entries_account", "ledger_entries_kind", "ledger_entries_posted", "ledger_entries_seq",
		"payments_account", "payments_reference", "transactions_sandbox", "transactions_account", "statements_sandbox"}
}
