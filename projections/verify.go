package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// maxDiffRows bounds the rows of each kind (changed, only live, only
// rebuilt) a table's report lists.
const maxDiffRows = 20

// Report compares a live projection with a rebuild from the event store at
// the same point in history.
type Report struct {
	Projection string     `json:"projection"`
	Checkpoint Checkpoint `json:"checkpoint"` // the live one, where both were compared
	// CheckpointProblem says the live checkpoint names another event than
	// the one at its sequence in the event store ("" if not).
	CheckpointProblem string        `json:"checkpoint_problem,omitempty"`
	Tables            []TableReport `json:"tables"`
}

// OK reports whether the live projection equals its rebuild.
func (r Report) OK() bool {
	if r.CheckpointProblem != "" {
		return false
	}
	for _, t := range r.Tables {
		if !t.OK() {
			return false
		}
	}
	return true
}

// TableReport compares one table. Checksums are over every row's JSON
// text (to_jsonb), order-independent: rows equal exactly, numeric scale
// included, or differ.
type TableReport struct {
	Table           string `json:"table"`
	LiveRows        int64  `json:"live_rows"`
	RebuiltRows     int64  `json:"rebuilt_rows"`
	LiveChecksum    string `json:"live_checksum"`
	RebuiltChecksum string `json:"rebuilt_checksum"`
	// Rows that differ, by kind: how many in all, and the first of each
	// kind in key order (at most maxDiffRows).
	Changed     int64     `json:"changed"`
	OnlyLive    int64     `json:"only_live"`
	OnlyRebuilt int64     `json:"only_rebuilt"`
	Diffs       []RowDiff `json:"diffs,omitempty"`
}

// OK reports whether the table equals its rebuild.
func (t TableReport) OK() bool {
	return t.LiveRows == t.RebuiltRows && t.LiveChecksum == t.RebuiltChecksum && t.Changed+t.OnlyLive+t.OnlyRebuilt == 0
}

// Diff kinds.
const (
	DiffChanged     = "changed"      // the key is in both, the rows differ
	DiffOnlyLive    = "only_live"    // the live table has a row the rebuild has not
	DiffOnlyRebuilt = "only_rebuilt" // the rebuild has a row the live table has not
)

// RowDiff is one row that differs between the live table and its rebuild.
type RowDiff struct {
	Kind    string          `json:"kind"`
	Key     []KeyValue      `json:"key"`
	Columns []ColumnDiff    `json:"columns,omitempty"` // changed: the columns that differ
	Live    json.RawMessage `json:"live,omitempty"`    // the live row
	Rebuilt json.RawMessage `json:"rebuilt,omitempty"` // the rebuilt row
}

// KeyValue is one column of a row's key.
type KeyValue struct {
	Column string          `json:"column"`
	Value  json.RawMessage `json:"value"`
}

// ColumnDiff is a column's value in the live row and in the rebuilt one.
type ColumnDiff struct {
	Column  string          `json:"column"`
	Live    json.RawMessage `json:"live"`
	Rebuilt json.RawMessage `json:"rebuilt"`
}

// KeyString renders a key as "col=value col=value" (strings unquoted).
func KeyString(key []KeyValue) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = k.Column + "=" + plain(k.Value)
	}
	return strings.Join(parts, " ")
}

// plain is a JSON value as text: strings without their quotes.
func plain(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// Verify rebuilds p from the event store in a shadow schema (as Replay
// does) and compares it with the live tables at the live checkpoint: the
// shadow follows the live checkpoint in batches, then one transaction
// holding the checkpoint lock (live runners pause; readers do not) folds
// the shadow up to exactly the live sequence and compares them table by
// table, then rolls back; the shadow is dropped. Nothing live changes.
// progress, if set, is called after each batch with the events folded and
// the live sequence they head for.
func (en *Engine) Verify(ctx context.Context, p Projection, progress func(done, total int64)) (Report, error) {
	r, err := en.verify(ctx, p, progress)
	if err != nil {
		return r, fmt.Errorf("projections: verify %s: %w", p.Name(), err)
	}
	return r, nil
}

func (en *Engine) verify(ctx context.Context, p Projection, progress func(done, total int64)) (Report, error) {
	r := Report{Projection: p.Name()}
	s, err := en.openShadow(ctx, p, "verify")
	if err != nil {
		return r, err
	}
	defer s.close()
	// Chase the live checkpoint (it only moves forward) in batches of
	// their own, so that the locked transaction has little left to fold.
	for {
		live, err := en.Load(ctx, p.Name())
		if err != nil {
			return r, err
		}
		if s.cp.Seq >= live.Seq {
			break
		}
		n, err := s.batch(ctx, int(min(int64(shadowBatch), live.Seq-s.cp.Seq)))
		if err != nil {
			return r, err
		}
		if n == 0 {
			break // nothing readable: the locked transaction says why
		}
		if progress != nil {
			progress(s.cp.Seq, live.Seq)
		}
	}

	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return r, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // the shadow's tail and the checkpoint row lock.
	live, err := lock(ctx, tx, p.Name())
	if err != nil {
		return r, err
	}
	r.Checkpoint = live
	if s.cp.Seq > live.Seq {
		return r, fmt.Errorf("the live checkpoint went back from beyond sequence %d to %d during the verify", s.cp.Seq, live.Seq)
	}
	if err := s.usePath(ctx, tx); err != nil {
		return r, err
	}
	cp := s.cp
	for cp.Seq < live.Seq {
		var n int
		if cp, n, err = s.step(ctx, tx, cp, int(min(int64(shadowBatch), live.Seq-cp.Seq))); err != nil {
			return r, err
		}
		if n == 0 {
			return r, fmt.Errorf("the live projection is at sequence %d, the event store has only %d readable events", live.Seq, cp.Seq)
		}
	}
	if cp.Checkpoint != live.Checkpoint {
		r.CheckpointProblem = fmt.Sprintf("the live checkpoint at sequence %d is event (tx %d, position %d), the event store's event %d is (tx %d, position %d)",
			live.Seq, live.TxID, live.Position, cp.Seq, cp.TxID, cp.Position)
	}
	for _, t := range s.tables {
		tr, err := compare(ctx, tx, t, s.table(t))
		if err != nil {
			return r, fmt.Errorf("compare %s: %w", t.Name, err)
		}
		r.Tables = append(r.Tables, tr)
	}
	return r, nil
}

// compare compares live table t with its rebuild, rebuilt.
func compare(ctx context.Context, tx pgx.Tx, t liveTable, rebuilt string) (TableReport, error) {
	tr := TableReport{Table: t.Name}
	// An order-independent checksum: the sum of a 64-bit hash of each
	// row's text (no giant string to aggregate), with the row count.
	const sum = `SELECT count(*), md5(count(*) || ':' || coalesce(sum(('x' || left(md5(to_jsonb(t)::text), 16))::bit(64)::bigint::numeric), 0)) FROM `
	if err := tx.QueryRow(ctx, sum+t.live()+` t`).Scan(&tr.LiveRows, &tr.LiveChecksum); err != nil {
		return tr, err
	}
	if err := tx.QueryRow(ctx, sum+rebuilt+` t`).Scan(&tr.RebuiltRows, &tr.RebuiltChecksum); err != nil {
		return tr, err
	}
	if tr.LiveRows == tr.RebuiltRows && tr.LiveChecksum == tr.RebuiltChecksum {
		return tr, nil
	}

	var keys, join, order []string
	for i, k := range t.Key {
		keys = append(keys, fmt.Sprintf("t.%s AS k%d", pgx.Identifier{k}.Sanitize(), i))
		join = append(join, fmt.Sprintf("l.k%d = r.k%d", i, i))
		order = append(order, fmt.Sprintf("k%d", i))
	}
	coalesced := make([]string, len(t.Key))
	for i := range t.Key {
		coalesced[i] = fmt.Sprintf("coalesce(l.k%d, r.k%d) AS k%d", i, i, i)
	}
	side := `SELECT ` + strings.Join(keys, ", ") + `, to_jsonb(t) AS j FROM `
	rows, err := tx.Query(ctx, `
		WITH l AS (`+side+t.live()+` t), r AS (`+side+rebuilt+` t),
		d AS (
			SELECT CASE WHEN r.j IS NULL THEN 'only_live' WHEN l.j IS NULL THEN 'only_rebuilt' ELSE 'changed' END AS kind,
				l.j AS lj, r.j AS rj, `+strings.Join(coalesced, ", ")+`
			FROM l FULL JOIN r ON `+strings.Join(join, " AND ")+`
			WHERE l.j::text IS DISTINCT FROM r.j::text)
		SELECT kind, lj::text, rj::text, n FROM (
			SELECT kind, lj, rj, row_number() OVER (PARTITION BY kind ORDER BY `+strings.Join(order, ", ")+`) AS rn,
				count(*) OVER (PARTITION BY kind) AS n
			FROM d) x
		WHERE rn <= $1
		ORDER BY kind, rn`, maxDiffRows)
	if err != nil {
		return tr, err
	}
	var kind string
	var lj, rj *string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&kind, &lj, &rj, &n}, func() error {
		d, err := rowDiff(kind, t.Key, lj, rj)
		if err != nil {
			return err
		}
		switch kind {
		case DiffChanged:
			tr.Changed = n
		case DiffOnlyLive:
			tr.OnlyLive = n
		case DiffOnlyRebuilt:
			tr.OnlyRebuilt = n
		}
		tr.Diffs = append(tr.Diffs, d)
		return nil
	})
	return tr, err
}

// rowDiff describes one differing row from its live and rebuilt JSON.
func rowDiff(kind string, key []string, lj, rj *string) (RowDiff, error) {
	d := RowDiff{Kind: kind}
	var l, r map[string]json.RawMessage
	if lj != nil {
		d.Live = json.RawMessage(*lj)
		if err := json.Unmarshal(d.Live, &l); err != nil {
			return d, err
		}
	}
	if rj != nil {
		d.Rebuilt = json.RawMessage(*rj)
		if err := json.Unmarshal(d.Rebuilt, &r); err != nil {
			return d, err
		}
	}
	row := l
	if row == nil {
		row = r
	}
	for _, k := range key {
		d.Key = append(d.Key, KeyValue{Column: k, Value: row[k]})
	}
	if l != nil && r != nil {
		cols := make([]string, 0, len(l))
		for c := range l {
			cols = append(cols, c)
		}
		for c := range r {
			if _, ok := l[c]; !ok {
				cols = append(cols, c)
			}
		}
		slices.Sort(cols)
		for _, c := range cols {
			if string(l[c]) != string(r[c]) {
				d.Columns = append(d.Columns, ColumnDiff{Column: c, Live: l[c], Rebuilt: r[c]})
			}
		}
	}
	return d, nil
}
