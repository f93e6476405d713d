package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

const eventColumns = `position, tx_id::text::bigint AS tx_int, id, tenant_id, stream_type, stream_id, stream_version,
	type, schema_version, data, metadata, recorded_at, hash`

func scanEvent(row pgx.Row, e *domain.Event) error {
	var data, meta []byte
	var schema int32
	if err := row.Scan(&e.Position, &e.TxID, &e.ID, &e.TenantID, &e.StreamType, &e.StreamID, &e.StreamVersion,
		&e.Type, &schema, &data, &meta, &e.RecordedAt, &e.Hash); err != nil {
		return err
	}
	e.SchemaVersion = int(schema)
	e.Data = data
	e.RecordedAt = e.RecordedAt.UTC()
	if err := json.Unmarshal(meta, &e.Metadata); err != nil {
		return fmt.Errorf("event %s: metadata: %w", e.ID, err)
	}
	return nil
}

func collect(rows pgx.Rows, capacity int) ([]domain.Event, error) {
	defer rows.Close()
	out := make([]domain.Event, 0, capacity)
	for rows.Next() {
		var e domain.Event
		if err := scanEvent(rows, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ReadAll returns up to limit events after checkpoint in the gap-free global
// order (xid, position). It only returns events of transactions older than
// every transaction still running, so no event can later commit behind the
// returned ones: a reader that resumes from the last event's checkpoint never
// misses one.
func (s *Store) ReadAll(ctx context.Context, after domain.Checkpoint, limit int) ([]domain.Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+eventColumns+`
		FROM events
		WHERE (tx_id, position) > ($1::bigint::text::xid8, $2::bigint)
		  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY tx_id, position
		LIMIT $3`, after.TxID, after.Position, limit)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read all: %w", err)
	}
	evs, err := collect(rows, min(limit, 1024))
	if err != nil {
		return nil, fmt.Errorf("eventstore: read all: %w", err)
	}
	return evs, nil
}

// Nth returns the n-th event (n ≥ 1) after checkpoint in the global order,
// or ok=false if fewer than n events are readable.
func (s *Store) Nth(ctx context.Context, after domain.Checkpoint, n int64) (e domain.Event, ok bool, err error) {
	if n <= 0 {
		return e, false, fmt.Errorf("eventstore: nth: n must be ≥ 1, got %d", n)
	}
	err = scanEvent(s.pool.QueryRow(ctx, `
		SELECT `+eventColumns+`
		FROM events
		WHERE (tx_id, position) > ($1::bigint::text::xid8, $2::bigint)
		  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY tx_id, position
		OFFSET $3 LIMIT 1`, after.TxID, after.Position, n-1), &e)
	if err == pgx.ErrNoRows {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("eventstore: nth: %w", err)
	}
	return e, true, nil
}

// Pending counts, up to limit, the events after checkpoint that are committed
// (whether or not they are below the read horizon yet).
func (s *Store) Pending(ctx context.Context, after domain.Checkpoint, limit int) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT 1 FROM events
			WHERE (tx_id, position) > ($1::bigint::text::xid8, $2::bigint)
			LIMIT $3) t`, after.TxID, after.Position, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("eventstore: pending: %w", err)
	}
	return n, nil
}

// ReadStream returns a stream's events with version > afterVersion, in order.
func (s *Store) ReadStream(ctx context.Context, tenantID, streamID string, afterVersion int64) ([]domain.Event, error) {
	return readStream(ctx, s.pool, tenantID, streamID, afterVersion)
}

func readStream(ctx context.Context, q querier, tenantID, streamID string, afterVersion int64) ([]domain.Event, error) {
	rows, err := q.Query(ctx, `
		SELECT `+eventColumns+`
		FROM events
		WHERE tenant_id = $1 AND stream_id = $2 AND stream_version > $3
		ORDER BY stream_version`, tenantID, streamID, afterVersion)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read stream %s: %w", streamID, err)
	}
	evs, err := collect(rows, 16)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read stream %s: %w", streamID, err)
	}
	return evs, nil
}

// Event returns one event by id within a tenant.
func (s *Store) Event(ctx context.Context, tenantID, id string) (domain.Event, error) {
	var e domain.Event
	err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1 AND tenant_id = $2`, id, tenantID), &e)
	if err == pgx.ErrNoRows {
		return e, domain.Errorf(domain.ENOTFOUND, "event %s not found", id)
	}
	if err != nil {
		return e, fmt.Errorf("eventstore: event %s: %w", id, err)
	}
	return e, nil
}

// AwaitVisible waits until every transaction up to and including txID has
// ended, so ReadAll returns the events it appended: the read horizon passes
// only when all older transactions on the whole PostgreSQL cluster have
// finished, which can take a moment after a commit.
func (s *Store) AwaitVisible(ctx context.Context, txID int64) error {
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		var visible bool
		err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot()) > $1::bigint::text::xid8`, txID).Scan(&visible)
		if err != nil {
			return fmt.Errorf("eventstore: await visible: %w", err)
		}
		if visible {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("eventstore: await visible: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// LastTxID returns the transaction id of the newest event (0 when empty).
func (s *Store) LastTxID(ctx context.Context) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(tx_id)::text::bigint, 0) FROM events`).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("eventstore: last tx id: %w", err)
	}
	return id, nil
}
