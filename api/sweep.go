package api

import (
	"context"
	"time"
)

// Sweep deletes expired Idempotency-Key records and access tokens every
// interval until ctx ends, in small batches so it never holds locks long.
func (s *Server) Sweep(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, q := range []string{
			`DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT 1000)`,
			`DELETE FROM access_tokens WHERE ctid IN (SELECT ctid FROM access_tokens WHERE expires_at < now() LIMIT 1000)`,
		} {
			for ctx.Err() == nil {
				tag, err := s.store.Pool().Exec(ctx, q)
				if err != nil {
					if ctx.Err() == nil {
						s.log.Warn("sweep", "err", err)
					}
					break
				}
				if tag.RowsAffected() < 1000 {
					break
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
