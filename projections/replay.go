package projections

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arrears/arrears/domain"
)

// This file rebuilds a projection beside the live one, in a shadow schema,
// while the server keeps serving from the live tables:
//
//   - the shadow schema gets a copy of each of the projection's tables
//     (CREATE TABLE … (LIKE live INCLUDING ALL): columns, defaults,
//     generated columns, constraints, indexes), with the live tables' names
//     of indexes and constraints, owner, privileges, options and comment;
//   - the whole history is folded into it in batches, one short transaction
//     each, with search_path putting the shadow schema first: the
//     projection's unqualified SQL writes and reads its own shadow tables,
//     everything else (events, checkpoints) resolves as usual. A projection
//     only reads its own tables (the Projection contract), so nothing it
//     reads comes from a half-built copy of another projection. Each
//     batch's events are read while the previous batch is folded, and in a
//     history of more than one batch the indexes only readers use
//     (ReadIndexer) are built after this fold, not maintained row by row;
//   - Replay then swaps, in ONE short transaction: it takes the projection's
//     checkpoint lock (live runners pause), catches the shadow up to the end
//     of readable history, locks the live tables (readers wait only from
//     here to the commit, and at most swapLockTimeout per attempt), moves
//     the live tables out and the shadow ones in, and saves the shadow's
//     checkpoint. Afterwards the old tables are dropped.
//   - Verify instead catches the shadow up to exactly the live checkpoint
//     under the same lock, compares, and throws the shadow away.
//
// Only one replay or verify of a projection runs at a time (a session
// advisory lock); a shadow left behind by a crashed one is dropped by the
// next.

// shadowBatch is the number of events folded per transaction into a shadow.
var shadowBatch = 5000

// swapLockTimeout bounds how long a swap waits for the live tables' locks
// (and so how long readers queue behind it) before it is rolled back and
// retried, at most swapAttempts times.
var (
	swapLockTimeout = 2 * time.Second
	swapAttempts    = 30
)

// shadow is a projection being rebuilt in a schema of its own, on a
// dedicated connection that holds the projection's replay lock.
type shadow struct {
	en     *Engine
	p      Projection
	conn   *pgxpool.Conn
	schema string // the shadow schema
	tag    string // random part of the schema names
	tables []liveTable
	cp     Checkpoint // what the shadow tables hold (committed)
	pages  *pager     // reading from cp (nil: start one at the next batch)
	// deferred are the read indexes dropped from the shadow tables until
	// the history is folded.
	deferred        []deferredIndex
	indexesDeferred bool
}

// liveTable is one of a projection's tables: where it lives and its oid.
type liveTable struct {
	Table
	schema string
	oid    uint32 // the live table
	copy   uint32 // its shadow
}

func (t liveTable) live() string { return pgx.Identifier{t.schema, t.Name}.Sanitize() }

func (s *shadow) table(t liveTable) string { return pgx.Identifier{s.schema, t.Name}.Sanitize() }

// shadowNames matches the schemas a replay or verify of the projection
// called name creates.
func shadowNames(name string) string {
	return `^arrears_(replay|verify|old)_[0-9a-f]{8}_` + regexp.QuoteMeta(name) + `$`
}

// openShadow creates the shadow of p's tables, empty; purpose is "replay"
// (the tables will be swapped in: they copy every property of the live
// ones) or "verify" (unlogged scratch copies). Close it when done.
func (en *Engine) openShadow(ctx context.Context, p Projection, purpose string) (_ *shadow, err error) {
	if en.pool.Config().MaxConns < 2 {
		return nil, errors.New("a pool of at least 2 connections is needed")
	}
	conn, err := en.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		conn.Release()
		return nil, err
	}
	tag := hex.EncodeToString(b[:])
	s := &shadow{en: en, p: p, conn: conn, tag: tag, schema: "arrears_" + purpose + "_" + tag + "_" + p.Name()}
	if len(s.schema)+4 > 63 { // + "_old" must fit an identifier
		conn.Release()
		return nil, fmt.Errorf("projection name %q too long for a shadow schema", p.Name())
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('arrears.replay:' || $1, 0))`, p.Name()); err != nil {
		conn.Release()
		return nil, fmt.Errorf("wait for other replays of %s: %w", p.Name(), err)
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	// Shadows of a replay or verify that died: nothing else uses them, as
	// this one holds the lock.
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname ~ $1`, shadowNames(p.Name()))
	if err != nil {
		return nil, err
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, n := range stale {
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{n}.Sanitize()+` CASCADE`); err != nil {
			return nil, fmt.Errorf("drop stale schema %s: %w", n, err)
		}
	}

	for _, t := range p.Tables() {
		lt := liveTable{Table: t}
		err := conn.QueryRow(ctx, `SELECT n.nspname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.oid = to_regclass($1)`, pgx.Identifier{t.Name}.Sanitize()).Scan(&lt.schema, &lt.oid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("table %s not found", t.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t.Name, err)
		}
		if purpose == "replay" {
			if err := swappable(ctx, conn, lt); err != nil {
				return nil, err
			}
		}
		s.tables = append(s.tables, lt)
	}

	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{s.schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create schema: %w", err)
	}
	for i := range s.tables {
		if err := s.create(ctx, &s.tables[i], purpose == "replay"); err != nil {
			return nil, fmt.Errorf("create %s: %w", s.table(s.tables[i]), err)
		}
	}
	return s, nil
}

// deferIndexes drops the shadow tables' read indexes (ReadIndexer) until
// buildIndexes: once.
func (s *shadow) deferIndexes(ctx context.Context) error {
	if s.indexesDeferred {
		return nil
	}
	s.indexesDeferred = true
	names := make([]string, len(s.tables))
	for i, t := range s.tables {
		names[i] = s.table(t)
	}
	var err error
	s.deferred, err = dropReadIndexes(ctx, s.conn, s.p, names)
	return err
}

// buildIndexes builds the read indexes deferIndexes dropped, two at a
// time (the shadow's connection and one of the pool's: index builds of a
// table only share-lock it, and the fold is done).
func (s *shadow) buildIndexes(ctx context.Context) error {
	var (
		mu   sync.Mutex
		next int
		errs [2]error
		wg   sync.WaitGroup
	)
	work := func(q sqlConn) error {
		for {
			mu.Lock()
			i := next
			next++
			mu.Unlock()
			if i >= len(s.deferred) {
				return nil
			}
			if err := createIndexes(ctx, q, s.deferred[i:i+1]); err != nil {
				return err
			}
		}
	}
	wg.Go(func() { errs[0] = work(s.conn) })
	if len(s.deferred) > 1 {
		wg.Go(func() { errs[1] = work(s.en.pool) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return err
	}
	s.deferred = nil
	return nil
}

// swappable refuses a table that a move to another schema would not carry
// over whole, or would leave something behind pointing at the old one.
func swappable(ctx context.Context, conn *pgxpool.Conn, t liveTable) error {
	rows, err := conn.Query(ctx, `
		SELECT 'it is not a plain table' FROM pg_class WHERE oid = $1 AND relkind <> 'r'
		UNION ALL SELECT 'table inheritance' WHERE EXISTS (SELECT FROM pg_inherits WHERE inhrelid = $1 OR inhparent = $1)
		UNION ALL SELECT format('trigger %I', tgname) FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal
		UNION ALL SELECT format('foreign key %I of %s', conname, conrelid::regclass) FROM pg_constraint
			WHERE contype = 'f' AND (conrelid = $1 OR confrelid = $1)
		UNION ALL SELECT 'row-level security' FROM pg_class WHERE oid = $1 AND relrowsecurity
		UNION ALL SELECT DISTINCT format('view or rule %s', r.ev_class::regclass) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
			WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND r.ev_class <> $1
		UNION ALL SELECT format('publication %I', p.pubname) FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = $1
		UNION ALL SELECT format('owned sequence %s', d.objid::regclass) FROM pg_depend d JOIN pg_class q ON q.oid = d.objid AND q.relkind = 'S'
			WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype IN ('a', 'i')`, t.oid)
	if err != nil {
		return fmt.Errorf("table %s: %w", t.live(), err)
	}
	why, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("table %s: %w", t.live(), err)
	}
	if len(why) > 0 {
		return fmt.Errorf("table %s cannot be swapped for a rebuilt copy: %s", t.live(), strings.Join(why, ", "))
	}
	return nil
}

// create creates t's shadow table; exact: with every property a swap must
// carry over (names of indexes and constraints, owner, privileges,
// persistence, storage options, comment), else unlogged.
func (s *shadow) create(ctx context.Context, tp *liveTable, exact bool) error {
	t := *tp
	conn := s.conn
	var persistence, owner string
	var options []string
	var comment *string
	if err := conn.QueryRow(ctx, `SELECT relpersistence::text, pg_get_userbyid(relowner), coalesce(reloptions, '{}'), obj_description(oid, 'pg_class')
		FROM pg_class WHERE oid = $1`, t.oid).Scan(&persistence, &owner, &options, &comment); err != nil {
		return err
	}
	kind := "UNLOGGED "
	if exact && persistence == "p" {
		kind = ""
	}
	if _, err := conn.Exec(ctx, `CREATE `+kind+`TABLE `+s.table(t)+` (LIKE `+t.live()+` INCLUDING ALL)`); err != nil {
		return err
	}
	if err := conn.QueryRow(ctx, `SELECT $1::regclass::oid`, s.table(t)).Scan(&tp.copy); err != nil {
		return err
	}
	t = *tp
	if !exact {
		return nil
	}
	stmts := []string{}
	if len(options) > 0 {
		stmts = append(stmts, `ALTER TABLE `+s.table(t)+` SET (`+strings.Join(options, ", ")+`)`)
	}
	if comment != nil {
		var lit string
		if err := conn.QueryRow(ctx, `SELECT quote_literal($1)`, *comment).Scan(&lit); err != nil {
			return err
		}
		stmts = append(stmts, `COMMENT ON TABLE `+s.table(t)+` IS `+lit)
	}
	stmts = append(stmts, `ALTER TABLE `+s.table(t)+` OWNER TO `+pgx.Identifier{owner}.Sanitize())
	for _, sql := range stmts {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	if err := s.copyPrivileges(ctx, t); err != nil {
		return err
	}
	if err := s.rename(ctx, t); err != nil {
		return err
	}
	live, err := shape(ctx, conn, t.oid)
	if err != nil {
		return err
	}
	copied, err := shape(ctx, conn, t.copy)
	if err != nil {
		return err
	}
	if d := diffLines(live, copied); d != "" {
		return fmt.Errorf("the copy differs from %s: %s", t.live(), d)
	}
	return nil
}

// privileges lists a table's privileges as "grantee privilege grantable".
const privileges = `
	SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.privilege_type, a.is_grantable
	FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
	WHERE c.oid = $1 ORDER BY 1, 2`

type privilege struct {
	grantee, privilege string
	grantable          bool
}

func listPrivileges(ctx context.Context, conn *pgxpool.Conn, oid uint32) ([]privilege, error) {
	rows, err := conn.Query(ctx, privileges, oid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (privilege, error) {
		var p privilege
		err := r.Scan(&p.grantee, &p.privilege, &p.grantable)
		return p, err
	})
}

// copyPrivileges makes t's shadow grant what t grants (default privileges
// may have granted the new table more, or a role the live table lost).
func (s *shadow) copyPrivileges(ctx context.Context, t liveTable) error {
	live, err := listPrivileges(ctx, s.conn, t.oid)
	if err != nil {
		return err
	}
	copied, err := listPrivileges(ctx, s.conn, t.copy)
	if err != nil {
		return err
	}
	if slices.Equal(live, copied) {
		return nil
	}
	for _, p := range copied {
		if !slices.Contains(live, p) {
			if _, err := s.conn.Exec(ctx, `REVOKE `+p.privilege+` ON `+s.table(t)+` FROM `+p.grantee+` CASCADE`); err != nil {
				return err
			}
		}
	}
	for _, p := range live {
		if !slices.Contains(copied, p) {
			sql := `GRANT ` + p.privilege + ` ON ` + s.table(t) + ` TO ` + p.grantee
			if p.grantable {
				sql += ` WITH GRANT OPTION`
			}
			if _, err := s.conn.Exec(ctx, sql); err != nil {
				return err
			}
		}
	}
	return nil
}

// named is an index or constraint: its name and its definition without it.
type named struct{ name, def string }

// indexesAndConstraints lists t's indexes and the constraints that are not
// an index's (those are renamed with their index), each with its
// definition stripped of its own name and its table's.
const indexesAndConstraints = `
	SELECT 'index', i.relname, concat_ws(' ', CASE WHEN x.indisprimary THEN 'primary' END, CASE WHEN x.indisunique THEN 'unique' END,
		substring(pg_get_indexdef(i.oid) from ' USING .*$'))
	FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = $1
	UNION ALL
	SELECT 'constraint', conname, contype::text || ' ' || pg_get_constraintdef(oid)
	FROM pg_constraint WHERE conrelid = $1 AND conindid = 0
	ORDER BY 1, 3, 2`

func listNamed(ctx context.Context, conn *pgxpool.Conn, oid uint32) (indexes, constraints []named, err error) {
	rows, err := conn.Query(ctx, indexesAndConstraints, oid)
	if err != nil {
		return nil, nil, err
	}
	var kind string
	var n named
	_, err = pgx.ForEachRow(rows, []any{&kind, &n.name, &n.def}, func() error {
		if kind == "index" {
			indexes = append(indexes, n)
		} else {
			constraints = append(constraints, n)
		}
		return nil
	})
	return indexes, constraints, err
}

// rename gives t's shadow indexes and constraints the live ones' names,
// matched by definition (LIKE names copied indexes after their columns;
// migrations refer to the original names).
func (s *shadow) rename(ctx context.Context, t liveTable) error {
	liveIdx, liveCon, err := listNamed(ctx, s.conn, t.oid)
	if err != nil {
		return err
	}
	idx, con, err := listNamed(ctx, s.conn, t.copy)
	if err != nil {
		return err
	}
	type rename struct{ from, to string }
	pair := func(what string, live, copied []named) ([]rename, error) {
		if len(live) != len(copied) {
			return nil, fmt.Errorf("%d %ss on the live table, %d on the copy", len(live), what, len(copied))
		}
		var out []rename
		for i := range live { // both sorted by definition
			if live[i].def != copied[i].def {
				return nil, fmt.Errorf("no copy of %s %s (%s)", what, live[i].name, live[i].def)
			}
			if live[i].name != copied[i].name {
				out = append(out, rename{copied[i].name, live[i].name})
			}
		}
		return out, nil
	}
	ri, err := pair("index", liveIdx, idx)
	if err != nil {
		return err
	}
	rc, err := pair("constraint", liveCon, con)
	if err != nil {
		return err
	}
	// Through temporary names: a copy may hold a name another one needs.
	var stmts []string
	for _, phase := range []bool{false, true} {
		for i, r := range ri {
			from, to := r.from, fmt.Sprintf("arrears_swap_%s_%d", s.tag, i)
			if phase {
				from, to = to, r.to
			}
			stmts = append(stmts, `ALTER INDEX `+pgx.Identifier{s.schema, from}.Sanitize()+` RENAME TO `+pgx.Identifier{to}.Sanitize())
		}
		for i, r := range rc {
			from, to := r.from, fmt.Sprintf("arrears_swap_%s_%d", s.tag, i)
			if phase {
				from, to = to, r.to
			}
			stmts = append(stmts, `ALTER TABLE `+s.table(t)+` RENAME CONSTRAINT `+pgx.Identifier{from}.Sanitize()+` TO `+pgx.Identifier{to}.Sanitize())
		}
	}
	for _, sql := range stmts {
		if _, err := s.conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// shape describes a table for comparison with its copy: columns, indexes
// and constraints with their names, owner, privileges, persistence and
// options — everything but its own name and schema.
func shape(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, oid uint32) ([]string, error) {
	rows, err := q.Query(ctx, `
		SELECT line FROM (
			SELECT 0 AS part, 0 AS ord, format('table %s owner %s options %s comment %s', relpersistence, pg_get_userbyid(relowner),
				coalesce(reloptions::text, '{}'), coalesce(quote_literal(obj_description(oid, 'pg_class')), 'none')) AS line
			FROM pg_class WHERE oid = $1
			UNION ALL
			SELECT 1, a.attnum, format('column %I %s%s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
				CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
				CASE WHEN a.attgenerated <> '' THEN ' generated ' ELSE ' default ' END || pg_get_expr(d.adbin, d.adrelid),
				CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END,
				' collate ' || nullif(a.attcollation, 0)::regcollation::text)
			FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
			UNION ALL
			SELECT 2, 0, format('%s %I %s', kind, name, def) FROM (`+strings.Replace(indexesAndConstraints, "ORDER BY 1, 3, 2", "", 1)+`) x (kind, name, def)
			UNION ALL
			SELECT 3, 0, format('grant %s %s %s', grantee, privilege_type, is_grantable) FROM (`+strings.Replace(privileges, "ORDER BY 1, 2", "", 1)+`) p (grantee, privilege_type, is_grantable)
		) s ORDER BY part, ord, line`, oid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// diffLines says how b differs from a ("" if not at all).
func diffLines(a, b []string) string {
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "missing "+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "extra "+l)
		}
	}
	if len(out) == 0 && !slices.Equal(a, b) {
		out = append(out, "column order")
	}
	return strings.Join(out, "; ")
}

// usePath makes the shadow tables shadow the live ones for the rest of tx.
func (s *shadow) usePath(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT set_config('search_path',
		CASE WHEN current_setting('search_path') = '' THEN $1 ELSE $1 || ', ' || current_setting('search_path') END, true)`,
		pgx.Identifier{s.schema}.Sanitize())
	return err
}

// step folds up to n events after from into the shadow, inside tx (which
// uses the shadow's path); it returns the checkpoint reached and how many
// events it folded.
func (s *shadow) step(ctx context.Context, tx pgx.Tx, from Checkpoint, n int) (Checkpoint, int, error) {
	if n <= 0 {
		return from, 0, nil
	}
	evs, err := s.en.store.ReadAll(ctx, from.Checkpoint, n)
	if err != nil || len(evs) == 0 {
		return from, 0, err
	}
	if err := s.p.Apply(ctx, tx, evs); err != nil {
		return from, 0, fmt.Errorf("apply: %w", err)
	}
	return Checkpoint{Seq: from.Seq + int64(len(evs)), Checkpoint: evs[len(evs)-1].Checkpoint()}, len(evs), nil
}

// batch folds up to n events into the shadow in a transaction of its own
// and returns how many it folded. After a full batch it reads the next one
// (on another connection) while it folds this one.
func (s *shadow) batch(ctx context.Context, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	if s.pages == nil || s.pages.n != n { // (a page of another size would overshoot a verify's target)
		s.pages = s.en.pages(ctx, s.cp.Checkpoint, n)
	}
	evs, err := s.pages.next()
	if err != nil || len(evs) == 0 {
		s.pages = nil
		return 0, err
	}
	cp := Checkpoint{Seq: s.cp.Seq + int64(len(evs)), Checkpoint: evs[len(evs)-1].Checkpoint()}
	if err := s.fold(ctx, evs, cp); err != nil {
		s.pages = nil
		return 0, err
	}
	return len(evs), nil
}

// fold folds evs, the events after the shadow's checkpoint, into the
// shadow in a transaction of its own; cp is the checkpoint they reach.
func (s *shadow) fold(ctx context.Context, evs []domain.Event, cp Checkpoint) error {
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		// A crash loses the shadow anyway: no need to wait for the disk.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		if err := s.usePath(ctx, tx); err != nil {
			return err
		}
		if err := s.p.Apply(ctx, tx, evs); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.cp = cp
	return nil
}

// close drops the shadow schema, releases the replay lock and the
// connection. It uses a context of its own: it also runs after ctx ended.
func (s *shadow) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	drop := `DROP SCHEMA IF EXISTS ` + pgx.Identifier{s.schema}.Sanitize() + ` CASCADE`
	if s.conn.Conn().IsClosed() {
		// The session (and its lock) is gone; a later replay drops what
		// this fails to.
		_, _ = s.en.pool.Exec(ctx, drop)
		s.conn.Release()
		return
	}
	_, err1 := s.conn.Exec(ctx, drop)
	_, err2 := s.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended('arrears.replay:' || $1, 0))`, s.p.Name())
	if err1 != nil || err2 != nil {
		_ = s.conn.Conn().Close(ctx) // ends the session, and with it the lock
	}
	s.conn.Release()
}

// countEvents is the number of events in the store: the total a progress
// report counts towards.
func (en *Engine) countEvents(ctx context.Context) (int64, error) {
	var n int64
	if err := en.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}

// Replay rebuilds p from the whole event history into fresh tables and
// swaps them in for the live ones atomically, while readers keep reading
// the live tables (see the top of this file): readers never see a
// half-built state and wait only for the swap itself (milliseconds; at
// most swapLockTimeout per attempt behind a long-running reader). Live
// runners pause only for the swap and continue from the checkpoint it
// saves. progress, if set, is called after each batch with the events
// folded and the number of events in the store when the replay started
// (it may block: the replay waits). It returns the checkpoint saved.
func (en *Engine) Replay(ctx context.Context, p Projection, progress func(done, total int64)) (Checkpoint, error) {
	cp, err := en.replay(ctx, p, progress)
	if err != nil {
		return cp, fmt.Errorf("projections: replay %s: %w", p.Name(), err)
	}
	return cp, nil
}

func (en *Engine) replay(ctx context.Context, p Projection, progress func(done, total int64)) (Checkpoint, error) {
	total, err := en.countEvents(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	s, err := en.openShadow(ctx, p, "replay")
	if err != nil {
		return Checkpoint{}, err
	}
	defer s.close()
	if err := s.foldAll(ctx, total, progress); err != nil {
		return s.cp, err
	}
	return s.cp, s.finish(ctx, total, progress)
}

// foldAll folds the history into the shadow in batches until a batch
// comes back short.
func (s *shadow) foldAll(ctx context.Context, total int64, progress func(done, total int64)) error {
	for {
		n, err := s.batch(ctx, shadowBatch)
		if err != nil {
			return err
		}
		if progress != nil && n > 0 {
			progress(s.cp.Seq, max(total, s.cp.Seq))
		}
		if n < shadowBatch {
			return nil
		}
		// A history of more than one batch: the read indexes are
		// built at the end of this fold, not maintained row by row.
		if err := s.deferIndexes(ctx); err != nil {
			return err
		}
	}
}

// finish completes a replay whose shadow holds the history: it builds the
// deferred indexes, analyses the tables, folds what was appended
// meanwhile, swaps the shadow in and drops the old tables.
func (s *shadow) finish(ctx context.Context, total int64, progress func(done, total int64)) error {
	if err := s.buildIndexes(ctx); err != nil {
		return err
	}
	// Statistics before the tables serve reads; then the events appended
	// meanwhile, so that the swap has little left to fold.
	for _, t := range s.tables {
		if _, err := s.conn.Exec(ctx, `ANALYZE `+s.table(t)); err != nil {
			return err
		}
	}
	if err := s.foldAll(ctx, total, progress); err != nil {
		return err
	}
	old, err := s.swap(ctx)
	if err != nil {
		return err
	}
	// The live tables are the rebuilt ones now; drop the old ones
	// (without CASCADE: swappable made sure nothing depends on them).
	names := make([]string, len(s.tables))
	for i, t := range s.tables {
		names[i] = pgx.Identifier{old, t.Name}.Sanitize()
	}
	if _, err := s.conn.Exec(ctx, `DROP TABLE `+strings.Join(names, ", ")); err != nil {
		return fmt.Errorf("swapped in, but dropping the old tables in schema %s failed: %w", old, err)
	}
	if _, err := s.conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{old}.Sanitize()); err != nil {
		return fmt.Errorf("swapped in, but dropping schema %s failed: %w", old, err)
	}
	return nil
}

// ReplayAll replays ps as Replay does, reading the event history once for
// all of them: each page of events is folded into every projection's
// shadow at the same time (each on its own connection, in a transaction of
// its own), then each projection is finished and swapped in, one after the
// other. Replaying one after the other read and decoded the whole history
// once per projection. It needs a connection per projection and one to
// read ahead; with a smaller pool it replays them one after the other.
// progress, if set, is called as Replay's with the projection it is about;
// swapped, if set, after each projection is swapped in. It returns the
// checkpoints saved, in the order of ps.
func (en *Engine) ReplayAll(ctx context.Context, ps []Projection, progress func(p Projection, done, total int64), swapped func(p Projection, cp Checkpoint)) ([]Checkpoint, error) {
	cps := make([]Checkpoint, len(ps))
	progressOf := func(p Projection) func(done, total int64) {
		if progress == nil {
			return nil
		}
		return func(done, total int64) { progress(p, done, total) }
	}
	if len(ps) <= 1 || int(en.pool.Config().MaxConns) < len(ps)+2 {
		for i, p := range ps {
			cp, err := en.Replay(ctx, p, progressOf(p))
			if err != nil {
				return cps, err
			}
			cps[i] = cp
			if swapped != nil {
				swapped(p, cp)
			}
		}
		return cps, nil
	}
	total, err := en.countEvents(ctx)
	if err != nil {
		return cps, err
	}
	shadows := make([]*shadow, 0, len(ps))
	defer func() {
		for _, s := range shadows {
			s.close()
		}
	}()
	for _, p := range ps {
		s, err := en.openShadow(ctx, p, "replay")
		if err != nil {
			return cps, fmt.Errorf("projections: replay %s: %w", p.Name(), err)
		}
		shadows = append(shadows, s)
	}
	// The shared fold: one page read (the next one read ahead while this
	// one is folded), folded into every shadow concurrently.
	var cp Checkpoint
	pages := en.pages(ctx, cp.Checkpoint, shadowBatch)
	for {
		evs, err := pages.next()
		if err != nil {
			return cps, fmt.Errorf("projections: replay: %w", err)
		}
		if len(evs) == 0 {
			break
		}
		next := Checkpoint{Seq: cp.Seq + int64(len(evs)), Checkpoint: evs[len(evs)-1].Checkpoint()}
		errs := make([]error, len(shadows))
		var wg sync.WaitGroup
		for i, s := range shadows {
			wg.Go(func() {
				if cp.Seq > 0 {
					if errs[i] = s.deferIndexes(ctx); errs[i] != nil {
						return
					}
				}
				errs[i] = s.fold(ctx, evs, next)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return cps, fmt.Errorf("projections: replay %s: %w", ps[i].Name(), err)
			}
		}
		cp = next
		for _, s := range shadows {
			if f := progressOf(s.p); f != nil {
				f(cp.Seq, max(total, cp.Seq))
			}
		}
		if len(evs) < shadowBatch {
			break
		}
	}
	for i, s := range shadows {
		if err := s.finish(ctx, total, progressOf(s.p)); err != nil {
			return cps, fmt.Errorf("projections: replay %s: %w", s.p.Name(), err)
		}
		cps[i] = s.cp
		if swapped != nil {
			swapped(s.p, s.cp)
		}
	}
	return cps, nil
}

// swap catches the shadow up and swaps it in, in one transaction, retried
// if it cannot lock the live tables in time. It returns the schema the old
// tables were moved to.
func (s *shadow) swap(ctx context.Context) (string, error) {
	old := "arrears_old_" + s.tag + "_" + s.p.Name()
	for attempt := 1; ; attempt++ {
		var cp Checkpoint
		err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
			live, err := lock(ctx, tx, s.p.Name())
			if err != nil {
				return err
			}
			if err := s.usePath(ctx, tx); err != nil {
				return err
			}
			cp = s.cp
			for {
				var n int
				if cp, n, err = s.step(ctx, tx, cp, shadowBatch); err != nil {
					return err
				}
				if n < shadowBatch {
					break
				}
			}
			if cp.Seq < live.Seq {
				return fmt.Errorf("the rebuild reached sequence %d of readable history, the live projection is at %d", cp.Seq, live.Seq)
			}
			// From here to the commit, readers of the tables wait.
			if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, swapLockTimeout.Milliseconds())); err != nil {
				return err
			}
			lives := make([]string, len(s.tables))
			for i, t := range s.tables {
				lives[i] = t.live()
			}
			if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(lives, ", ")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
				return err
			}
			for _, t := range s.tables {
				var oid uint32
				if err := tx.QueryRow(ctx, `SELECT coalesce(to_regclass($1)::oid, 0)`, t.live()).Scan(&oid); err != nil {
					return err
				}
				if oid != t.oid {
					return fmt.Errorf("table %s was replaced during the replay", t.live())
				}
				a, err := shape(ctx, tx, t.oid)
				if err != nil {
					return err
				}
				b, err := shape(ctx, tx, t.copy)
				if err != nil {
					return err
				}
				if d := diffLines(a, b); d != "" {
					return fmt.Errorf("table %s changed during the replay: %s", t.live(), d)
				}
			}
			stmts := []string{`CREATE SCHEMA ` + pgx.Identifier{old}.Sanitize()}
			for _, t := range s.tables {
				stmts = append(stmts, `ALTER TABLE `+t.live()+` SET SCHEMA `+pgx.Identifier{old}.Sanitize())
			}
			for _, t := range s.tables {
				stmts = append(stmts, `ALTER TABLE `+s.table(t)+` SET SCHEMA `+pgx.Identifier{t.schema}.Sanitize())
			}
			for _, sql := range stmts {
				if _, err := tx.Exec(ctx, sql); err != nil {
					return err
				}
			}
			return save(ctx, tx, s.p.Name(), cp)
		})
		if err == nil {
			s.cp = cp
			return old, nil
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "40P01") && attempt < swapAttempts {
			// lock_not_available, deadlock_detected: a reader held a table
			// too long; let it finish and try again.
			t := time.NewTimer(time.Duration(attempt) * 100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return "", ctx.Err()
			case <-t.C:
			}
			continue
		}
		return "", fmt.Errorf("swap: %w", err)
	}
}
