package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// plainTable is the baselines' table: the events table's columns and
// defaults with its primary key only — no unique constraints, no
// secondary index, no trigger — i.e. what writing these bytes costs.
const plainTable = "bench_plain_events"

// BaselineTable describes plainTable in the report.
const BaselineTable = "plain table with the columns and defaults of the events table (position identity primary key only: " +
	"events also has two unique indexes, the global-order index and append-only triggers); rows copied from real " +
	"ledger_entry.posted events of the ingest (same data, metadata and hash sizes), new ids; logged, synchronous_commit as configured"

var plainColumns = []string{"id", "tenant_id", "stream_type", "stream_id", "stream_version", "type", "schema_version", "data", "metadata", "recorded_at", "hash"}

// template is a real event row the baselines copy.
type template struct {
	tenant, stype, stream, typ, data, meta string
	schema                                 int32
	hash                                   []byte
}

func (r *runner) templates(ctx context.Context) ([]template, error) {
	rows, err := r.env.Pool.Query(ctx, `SELECT tenant_id, stream_type, stream_id, type, schema_version, data::text, metadata::text, hash
		FROM events WHERE type = 'ledger_entry.posted' ORDER BY position DESC LIMIT 1000`)
	if err != nil {
		return nil, err
	}
	ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (template, error) {
		var t template
		err := row.Scan(&t.tenant, &t.stype, &t.stream, &t.typ, &t.schema, &t.data, &t.meta, &t.hash)
		return t, err
	})
	if err == nil && len(ts) == 0 {
		err = fmt.Errorf("no ledger_entry.posted event to copy")
	}
	return ts, err
}

// plainRow returns the values of baseline row k.
func plainRow(ts []template, k int64, now time.Time) []any {
	t := ts[k%int64(len(ts))]
	return []any{"evt_bench_" + strconv.FormatInt(k, 10), t.tenant, t.stype, t.stream, k + 1, t.typ, t.schema, t.data, t.meta, now, t.hash}
}

func (r *runner) createPlain(ctx context.Context) error {
	_, err := r.env.Pool.Exec(ctx, `DROP TABLE IF EXISTS `+plainTable+`;
		CREATE TABLE `+plainTable+` (
			position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
			id             text        NOT NULL,
			tenant_id      text        NOT NULL,
			stream_type    text        NOT NULL,
			stream_id      text        NOT NULL,
			stream_version bigint      NOT NULL,
			type           text        NOT NULL,
			schema_version integer     NOT NULL DEFAULT 1,
			data           jsonb       NOT NULL,
			metadata       jsonb       NOT NULL DEFAULT '{}',
			recorded_at    timestamptz NOT NULL,
			hash           bytea       NOT NULL)`)
	return err
}

func (r *runner) dropPlain(ctx context.Context) {
	_, _ = r.env.Pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS `+plainTable)
}

// maxInsertRows is the most rows one INSERT takes (65,535 parameters).
const maxInsertRows = 65535 / 11

// insertSQL is one multi-row INSERT of n plain rows.
func insertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + plainTable + " (" + strings.Join(plainColumns, ", ") + ") VALUES ")
	p := 1
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range plainColumns {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(p))
			p++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// plainBatches writes rows in batches of o.Batch from o.Clients
// connections (each batch its own transaction) with write, and returns the
// rate and the per-batch latency.
func (r *runner) plainBatches(ctx context.Context, rows int, write func(ctx context.Context, first int64, n int) error) (Rate, error) {
	if err := r.createPlain(ctx); err != nil {
		return Rate{}, err
	}
	defer r.dropPlain(ctx)
	nb := (rows + r.o.Batch - 1) / r.o.Batch
	lat := make([]time.Duration, nb)
	start := time.Now()
	err := parallel(ctx, nb, r.o.Clients, func(ctx context.Context, k int) error {
		n := min(r.o.Batch, rows-k*r.o.Batch)
		t := time.Now()
		if err := write(ctx, int64(k*r.o.Batch), n); err != nil {
			return err
		}
		lat[k] = time.Since(t)
		return nil
	})
	d := time.Since(start)
	if err != nil {
		return Rate{}, err
	}
	var count int
	if err := r.env.Pool.QueryRow(ctx, `SELECT count(*) FROM `+plainTable).Scan(&count); err != nil {
		return Rate{}, err
	}
	if count != rows {
		return Rate{}, fmt.Errorf("%s has %d rows, want %d", plainTable, count, rows)
	}
	return Rate{Count: rows, Seconds: d.Seconds(), PerSecond: float64(rows) / d.Seconds(), Latency: latencies(lat)}, nil
}

// baselines writes as many rows as the ingest posted entries, of the same
// shape as the events it wrote, by COPY and by multi-row INSERT, with the
// same batch size and concurrency.
func (r *runner) baselines(ctx context.Context, res *Results) error {
	ts, err := r.templates(ctx)
	if err != nil {
		return err
	}
	res.Baseline.Table = BaselineTable
	now := time.Now()
	res.Baseline.Copy, err = r.plainBatches(ctx, r.o.Entries, func(ctx context.Context, first int64, n int) error {
		_, err := r.env.Pool.CopyFrom(ctx, pgx.Identifier{plainTable}, plainColumns, pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			return plainRow(ts, first+int64(i), now), nil
		}))
		return err
	})
	if err != nil {
		return fmt.Errorf("COPY: %w", err)
	}
	r.logf("baseline COPY: %.0f rows/s", res.Baseline.Copy.PerSecond)
	if _, err := r.env.Pool.Exec(ctx, `CHECKPOINT`); err != nil {
		_ = err // not privileged: fine
	}
	var sqlMu sync.Mutex
	sqls := map[int]string{}
	res.Baseline.Insert, err = r.plainBatches(ctx, r.o.Entries, func(ctx context.Context, first int64, n int) error {
		stmt := func(first int64, n int) (string, []any) {
			sqlMu.Lock()
			q, ok := sqls[n]
			if !ok {
				q = insertSQL(n)
				sqls[n] = q
			}
			sqlMu.Unlock()
			args := make([]any, 0, n*len(plainColumns))
			for i := range n {
				args = append(args, plainRow(ts, first+int64(i), now)...)
			}
			return q, args
		}
		if n <= maxInsertRows {
			q, args := stmt(first, n)
			_, err := r.env.Pool.Exec(ctx, q, args...)
			return err
		}
		// More rows than one statement takes parameters for: several
		// statements in one transaction.
		return pgx.BeginFunc(ctx, r.env.Pool, func(tx pgx.Tx) error {
			for done := 0; done < n; done += maxInsertRows {
				q, args := stmt(first+int64(done), min(maxInsertRows, n-done))
				if _, err := tx.Exec(ctx, q, args...); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("multi-row INSERT: %w", err)
	}
	r.logf("baseline multi-row INSERT: %.0f rows/s", res.Baseline.Insert.PerSecond)
	return nil
}
