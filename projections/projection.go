// Package projections holds arrears' read models and the engine that folds
// events into them exactly once: each batch of events and the projection's
// checkpoint are written in one PostgreSQL transaction.
package projections

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// Projection is a read model built from events. Apply must be a pure function
// of the events and the rows it already wrote: no clocks, no other tables, no
// metadata beyond the sandbox flag (events from NATS carry only that), so
// that a rebuild from the event store equals the live result.
type Projection interface {
	// Name is unique and stable: it keys the checkpoint and the consumer.
	Name() string
	// Tables are the tables the projection owns (emptied by a rebuild),
	// each with the columns that order its rows for comparison.
	Tables() []Table
	// Apply folds events, in global order, inside tx.
	Apply(ctx context.Context, tx pgx.Tx, events []domain.Event) error
}

// Table is a projection-owned table and the columns of its primary key.
type Table struct {
	Name string
	Key  []string
}

// Checkpoint is a projection's progress: the relay sequence (ordinal in the
// global order) of its last applied event, and that event's checkpoint.
type Checkpoint struct {
	Seq int64
	domain.Checkpoint
}

// Sequenced is an event with its relay sequence.
type Sequenced struct {
	Seq   int64
	Event domain.Event
}

// Engine applies events to projections transactionally.
type Engine struct {
	pool  *pgxpool.Pool
	store *eventstore.Store
}

// NewEngine returns an Engine.
func NewEngine(store *eventstore.Store) *Engine {
	return &Engine{pool: store.Pool(), store: store}
}

// Load returns p's checkpoint.
func (en *Engine) Load(ctx context.Context, name string) (Checkpoint, error) {
	var cp Checkpoint
	err := en.pool.QueryRow(ctx, `SELECT seq, tx_id, position FROM projection_checkpoints WHERE name = $1`, name).
		Scan(&cp.Seq, &cp.TxID, &cp.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return cp, fmt.Errorf("projections: load %s: %w", name, err)
	}
	return cp, nil
}

// lock locks p's checkpoint row for the transaction and returns it. Every
// writer of a projection takes this lock first, so live runners, several
// processes and a rebuild serialise on it.
//
// It also turns synchronous_commit off for the transaction: a projection is
// derived data, written with its checkpoint in one transaction, so a crash
// that loses its last commits (PostgreSQL stays consistent: they are lost
// whole, never torn) only rolls the projection back to an earlier
// checkpoint, from which the events are applied again. Not waiting for the
// WAL flush takes the disk off the projection's commit path. Event appends
// keep the server's setting.
func lock(ctx context.Context, tx pgx.Tx, name string) (Checkpoint, error) {
	var cp Checkpoint
	b := &pgx.Batch{}
	b.Queue(`SET LOCAL synchronous_commit = off`)
	b.Queue(`INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name)
	b.Queue(`SELECT seq, tx_id, position FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, name).QueryRow(func(row pgx.Row) error {
		return row.Scan(&cp.Seq, &cp.TxID, &cp.Position)
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return Checkpoint{}, fmt.Errorf("projections: lock %s: %w", name, err)
	}
	return cp, nil
}

func save(ctx context.Context, tx pgx.Tx, name string, cp Checkpoint) error {
	_, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET seq = $2, tx_id = $3, position = $4, updated_at = now() WHERE name = $1`,
		name, cp.Seq, cp.TxID, cp.Position)
	if err != nil {
		return fmt.Errorf("projections: save %s: %w", name, err)
	}
	return nil
}

// Result says what an Apply did.
type Result struct {
	Checkpoint Checkpoint
	Applied    int // events applied (including backfilled)
	Duplicates int // events skipped as already applied
	Backfilled int // events read from the event store to fill a gap
}

// maxInlineBackfill bounds the gap Apply fills inside its own transaction;
// larger gaps are first closed by CatchUp in batches.
const maxInlineBackfill = 10_000

// Apply applies events (sorted by Seq, typically a JetStream batch) to p in
// one transaction with its checkpoint: events at or below the checkpoint are
// duplicates and skipped; a jump in sequence is filled from the event store,
// so no event is ever skipped.
func (en *Engine) Apply(ctx context.Context, p Projection, events []Sequenced) (Result, error) {
	if len(events) == 0 {
		return Result{}, nil
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Seq < events[j].Seq })
	res, err := en.apply(ctx, p, events)
	if errors.Is(err, errLargeGap) {
		// Close the gap in batches of their own first, then apply.
		if _, err := en.CatchUp(ctx, p, events[0].Seq-1, 1000); err != nil {
			return Result{}, err
		}
		res, err = en.apply(ctx, p, events)
	}
	return res, err
}

var errLargeGap = errors.New("gap too large to fill in one transaction")

func (en *Engine) apply(ctx context.Context, p Projection, events []Sequenced) (Result, error) {
	var res Result
	err := pgx.BeginFunc(ctx, en.pool, func(tx pgx.Tx) error {
		res = Result{}
		cp, err := lock(ctx, tx, p.Name())
		if err != nil {
			return err
		}
		if events[0].Seq-cp.Seq-1 > maxInlineBackfill {
			return errLargeGap
		}
		batch := make([]domain.Event, 0, len(events))
		for _, s := range events {
			if s.Seq <= cp.Seq {
				res.Duplicates++
				continue
			}
			if gap := s.Seq - cp.Seq - 1; gap > 0 {
				missing, err := en.read(ctx, cp.Checkpoint, gap)
				if err != nil {
					return fmt.Errorf("projections: %s: backfill %d events before sequence %d: %w", p.Name(), gap, s.Seq, err)
				}
				batch = append(batch, missing...)
				res.Backfilled += len(missing)
				cp = Checkpoint{Seq: cp.Seq + gap, Checkpoint: missing[len(missing)-1].Checkpoint()}
			}
			e := s.Event
			if e.TxID == 0 {
				return fmt.Errorf("projections: %s: event %s (sequence %d) lacks its transaction id", p.Name(), e.ID, s.Seq)
			}
			batch = append(batch, e)
			cp = Checkpoint{Seq: s.Seq, Checkpoint: e.Checkpoint()}
		}
		if len(batch) == 0 {
			res.Checkpoint = cp
			return nil
		}
		if err := p.Apply(ctx, tx, batch); err != nil {
			return fmt.Errorf("projections: %s: apply: %w", p.Name(), err)
		}
		res.Applied, res.Checkpoint = len(batch), cp
		return save(ctx, tx, p.Name(), cp)
	})
	return res, err
}

// read returns exactly n events after cp from the event store.
func (en *Engine) read(ctx context.Context, cp domain.Checkpoint, n int64) ([]domain.Event, error) {
	out := make([]domain.Event, 0, n)
	for int64(len(out)) < n {
		evs, err := en.store.ReadAll(ctx, cp, int(min(n-int64(len(out)), 5000)))
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			return nil, fmt.Errorf("event store has only %d of the %d events after %+v", len(out), n, cp)
		}
		out = append(out, evs...)
		cp = evs[len(evs)-1].Checkpoint()
	}
	return out, nil
}

// CatchUp applies events from the event store until p's sequence reaches
// target (or, with target < 0, the end of readable history), batch events
// per transaction.
func (en *Engine) CatchUp(ctx context.Context, p Projection, target int64, batch int) (Result, error) {
	var total Result
	for {
		var done bool
		err := pgx.BeginFunc(ctx, en.pool, func(tx pgx.Tx) error {
			cp, err := lock(ctx, tx, p.Name())
			if err != nil {
				return err
			}
			total.Checkpoint = cp
			n := int64(batch)
			if target >= 0 {
				n = min(n, target-cp.Seq)
			}
			if n <= 0 {
				done = true
				return nil
			}
			evs, err := en.store.ReadAll(ctx, cp.Checkpoint, int(n))
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				done = true
				return nil
			}
			if err := p.Apply(ctx, tx, evs); err != nil {
				return fmt.Errorf("projections: %s: apply: %w", p.Name(), err)
			}
			cp = Checkpoint{Seq: cp.Seq + int64(len(evs)), Checkpoint: evs[len(evs)-1].Checkpoint()}
			total.Checkpoint = cp
			total.Applied += len(evs)
			total.Backfilled += len(evs)
			return save(ctx, tx, p.Name(), cp)
		})
		if err != nil {
			return total, err
		}
		if done {
			return total, nil
		}
	}
}

// Rebuild empties p's tables and folds the whole event history into them in
// ONE transaction: TRUNCATE locks the tables ACCESS EXCLUSIVE, so readers
// block until it commits, and live runners wait on the checkpoint lock
// meanwhile. For tests and idle installations; a serving one uses Replay,
// which builds beside the live tables and swaps. progress, if set, is
// called after each page of events. A full page is followed by reading the
// next one while it is folded. In a history of more than one page, a
// ReadIndexer's read indexes are dropped for the fold and built at the end.
func (en *Engine) Rebuild(ctx context.Context, p Projection, progress func(applied int64)) (Checkpoint, error) {
	var cp Checkpoint
	err := pgx.BeginFunc(ctx, en.pool, func(tx pgx.Tx) error {
		if _, err := lock(ctx, tx, p.Name()); err != nil {
			return err
		}
		names := make([]string, 0, len(p.Tables()))
		for _, t := range p.Tables() {
			names = append(names, pgx.Identifier{t.Name}.Sanitize())
		}
		if _, err := tx.Exec(ctx, `TRUNCATE `+strings.Join(names, ", ")); err != nil {
			return fmt.Errorf("projections: %s: truncate: %w", p.Name(), err)
		}
		var deferred []deferredIndex
		indexesDeferred := false
		cp = Checkpoint{}
		pages := en.pages(ctx, cp.Checkpoint, rebuildPage)
		for {
			evs, err := pages.next()
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				break
			}
			if cp.Seq > 0 && !indexesDeferred {
				// A history of more than one page: the read indexes are
				// built at the end, not maintained row by row.
				indexesDeferred = true
				var err error
				if deferred, err = dropReadIndexes(ctx, tx, p, names); err != nil {
					return fmt.Errorf("projections: %s: %w", p.Name(), err)
				}
			}
			if err := p.Apply(ctx, tx, evs); err != nil {
				return fmt.Errorf("projections: %s: apply: %w", p.Name(), err)
			}
			cp = Checkpoint{Seq: cp.Seq + int64(len(evs)), Checkpoint: evs[len(evs)-1].Checkpoint()}
			if progress != nil {
				progress(cp.Seq)
			}
		}
		if err := createIndexes(ctx, tx, deferred); err != nil {
			return fmt.Errorf("projections: %s: %w", p.Name(), err)
		}
		return save(ctx, tx, p.Name(), cp)
	})
	return cp, err
}

// rebuildPage is the number of events Rebuild folds per Apply.
var rebuildPage = 5000

// page is a page of events read from the event store, or why not.
type page struct {
	events []domain.Event
	err    error
}

// pager reads the history in pages of n events: after a full page, the
// next one is read (on another connection) while the caller folds it.
type pager struct {
	en    *Engine
	ctx   context.Context
	n     int
	from  domain.Checkpoint
	ahead <-chan page
}

func (en *Engine) pages(ctx context.Context, from domain.Checkpoint, n int) *pager {
	return &pager{en: en, ctx: ctx, n: n, from: from}
}

// next returns the next page (empty at the end of readable history).
func (p *pager) next() ([]domain.Event, error) {
	ahead := p.ahead
	if ahead == nil {
		ahead = p.en.readAhead(p.ctx, p.from, p.n)
	}
	p.ahead = nil
	pg := <-ahead
	if pg.err != nil {
		return nil, pg.err
	}
	if len(pg.events) > 0 {
		p.from = pg.events[len(pg.events)-1].Checkpoint()
	}
	if len(pg.events) == p.n {
		p.ahead = p.en.readAhead(p.ctx, p.from, p.n)
	}
	return pg.events, nil
}

// readAhead reads up to n events after cp in the background (on a
// connection of its own) and delivers them on the channel it returns.
// Nobody need receive: the channel holds the page.
func (en *Engine) readAhead(ctx context.Context, cp domain.Checkpoint, n int) <-chan page {
	ch := make(chan page, 1)
	go func() {
		evs, err := en.store.ReadAll(ctx, cp, n)
		ch <- page{evs, err}
	}()
	return ch
}

// Dump returns every row of p's tables as JSON text, in key order: the
// comparable state of the projection.
func Dump(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, p Projection) (map[string][]string, error) {
	out := make(map[string][]string, len(p.Tables()))
	for _, t := range p.Tables() {
		keys := make([]string, len(t.Key))
		for i, k := range t.Key {
			keys[i] = pgx.Identifier{k}.Sanitize()
		}
		tbl := pgx.Identifier{t.Name}.Sanitize()
		rows, err := q.Query(ctx, `SELECT to_jsonb(t)::text FROM `+tbl+` t ORDER BY `+strings.Join(keys, ", "))
		if err != nil {
			return nil, fmt.Errorf("projections: dump %s: %w", t.Name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("projections: dump %s: %w", t.Name, err)
		}
		out[t.Name] = lines
	}
	return out, nil
}
