package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/arrears/arrears/domain"
)

// awaitPosition implements read-your-writes: with ?min_position=N (a write's
// Arrears-Position) it waits, at most Config.WaitLimit, until every named
// projection has applied the event at position N. Reads served from tables
// written with the events themselves name no projection and never wait.
func (s *Server) awaitPosition(r *http.Request, projections ...string) error {
	v := r.URL.Query().Get("min_position")
	if v == "" {
		return nil
	}
	pos, err := strconv.ParseInt(v, 10, 64)
	if err != nil || pos < 0 {
		return domain.Invalid("invalid min_position", domain.FieldError{Field: "query:min_position", Error: "must be a non-negative integer (a write's Arrears-Position)"})
	}
	if len(projections) == 0 || pos == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WaitLimit)
	defer cancel()
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		ok, err := s.passed(ctx, pos, projections)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return domain.Errorf(domain.EUNAVAILABLE, "the read model has not reached position %d within %s; retry", pos, s.cfg.WaitLimit)
		case <-time.After(wait):
		}
	}
}

// passed reports whether every projection has applied the event at pos: its
// checkpoint is at or after that event in the global (tx_id, position)
// order. A position no event has (a rolled-back transaction's) counts as
// passed once the projections are past a later event.
func (s *Server) passed(ctx context.Context, pos int64, projections []string) (bool, error) {
	var ok bool
	err := s.store.Pool().QueryRow(ctx, `
		WITH target AS (
			SELECT tx_id::text::bigint AS tx, position FROM events WHERE position >= $1 ORDER BY position LIMIT 1
		)
		SELECT count(*) = cardinality($2::text[]) AND bool_and((c.tx_id, c.position) >= (t.tx, t.position))
		FROM projection_checkpoints c, target t
		WHERE c.name = ANY($2)`, pos, projections).Scan(&ok)
	return ok, err
}
