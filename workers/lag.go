package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// RelayLag is how far the relay (in whichever process leads) is behind the
// event store.
type RelayLag struct {
	Sequence      int64             `json:"sequence"`               // relay checkpoint
	Pending       int               `json:"pending"`                // committed events not yet published (capped at 10,000)
	OldestPending float64           `json:"oldest_pending_seconds"` // age of the oldest of them
	Checkpoint    domain.Checkpoint `json:"-"`
}

// MeasureRelayLag reads the relay checkpoint and what is committed after it.
func MeasureRelayLag(ctx context.Context, store *eventstore.Store) (RelayLag, error) {
	var l RelayLag
	err := store.Pool().QueryRow(ctx, `SELECT seq, tx_id, position FROM relay_log ORDER BY seq DESC LIMIT 1`).
		Scan(&l.Sequence, &l.Checkpoint.TxID, &l.Checkpoint.Position)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("relay lag: %w", err)
	}
	if l.Pending, l.OldestPending, err = pendingAfter(ctx, store, l.Checkpoint); err != nil {
		return l, fmt.Errorf("relay lag: %w", err)
	}
	return l, nil
}

// Drain waits until the relay has published every committed event, or ctx
// ends. Used on shutdown after the HTTP server stopped taking writes.
func (r *Relay) Drain(ctx context.Context) error {
	for {
		if !r.Leader() {
			return nil
		}
		l, err := MeasureRelayLag(ctx, r.store)
		if err != nil {
			return err
		}
		if l.Pending == 0 {
			return nil
		}
		r.Wake()
		if !sleep(ctx, 10*time.Millisecond) {
			return ctx.Err()
		}
	}
}
