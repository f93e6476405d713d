package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/arrears/arrears/domain"
)

// Cut is a point in history: the events recorded at or before At (when At
// is not zero) and at positions up to Position (when Position is not
// zero). The zero Cut cuts nothing.
type Cut struct {
	At       time.Time
	Position int64
}

// LoadAsOf folds into agg the longest prefix of a stream whose events all
// lie within cut, and returns the version it reached (0: the stream had no
// event yet at that point). A prefix, not a filter: a stream's state is
// only ever the fold of its first n events, so the first event beyond the
// cut ends it even if a later one would be within it (recorded_at comes
// from the appending process's clock; a stream's positions only grow).
//
// It reads committed events: an append still in flight when LoadAsOf runs
// whose events fall within the cut is not seen by this call but may be by a
// later one. A cut taken from a write's response (its Arrears-Position, or
// a time after it) is stable for the stream that write changed.
func (s *Store) LoadAsOf(ctx context.Context, tenantID, streamID string, cut Cut, agg domain.Aggregate) (int64, error) {
	var at *time.Time
	if !cut.At.IsZero() {
		t := cut.At.UTC()
		at = &t
	}
	var pos *int64
	if cut.Position != 0 {
		pos = &cut.Position
	}
	rows, err := s.pool.Query(ctx, `
		SELECT stream_version, type, data
		FROM events
		WHERE tenant_id = $1 AND stream_id = $2
		  AND stream_version < coalesce((
			SELECT min(stream_version) FROM events
			WHERE tenant_id = $1 AND stream_id = $2
			  AND (($3::timestamptz IS NOT NULL AND recorded_at > $3) OR ($4::bigint IS NOT NULL AND position > $4))
		  ), 9223372036854775807)
		ORDER BY stream_version`, tenantID, streamID, at, pos)
	if err != nil {
		return 0, fmt.Errorf("eventstore: load %s as of %+v: %w", streamID, cut, err)
	}
	defer rows.Close()
	var version int64
	for rows.Next() {
		var typ string
		var data []byte
		if err := rows.Scan(&version, &typ, &data); err != nil {
			return 0, fmt.Errorf("eventstore: load %s as of %+v: %w", streamID, cut, err)
		}
		if err := agg.Apply(typ, data); err != nil {
			return 0, fmt.Errorf("eventstore: load %s as of %+v: %w", streamID, cut, err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("eventstore: load %s as of %+v: %w", streamID, cut, err)
	}
	return version, nil
}
