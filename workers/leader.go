package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// errStandby is what a worker's lead returns when another process holds
// its leadership.
var errStandby = errors.New("another process is the leader")

// runLeader runs lead until ctx is done, again every retry after it
// returns: errStandby (another process leads) is logged once as standby,
// other errors are logged and passed to failed (if set).
func runLeader(ctx context.Context, log *slog.Logger, what string, retry time.Duration, lead func(context.Context) error, failed func(error)) {
	standby := false
	for {
		err := lead(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, errStandby):
			if !standby {
				log.Info(what + " on standby: another process is the leader")
				standby = true
			}
		case err != nil:
			if failed != nil {
				failed(err)
			}
			log.Error(what+" stopped; retrying", "err", err)
			standby = false
		}
		if !sleep(ctx, retry) {
			return
		}
	}
}

// takeLeadership takes the session advisory lock lockID on a connection
// of its own: errStandby if another process holds it. release unlocks it
// (closing the session if that fails, which ends the lock with it) and
// returns the connection.
func takeLeadership(ctx context.Context, pool *pgxpool.Pool, what string, lockID int64) (conn *pgxpool.Conn, release func(), err error) {
	conn, err = pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: acquire: %w", what, err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockID).Scan(&got); err != nil {
		conn.Release()
		return nil, nil, fmt.Errorf("%s: lock: %w", what, err)
	}
	if !got {
		conn.Release()
		return nil, nil, errStandby
	}
	return conn, func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, lockID); err != nil {
			conn.Conn().Close(uctx)
		}
		conn.Release()
	}, nil
}

// pendingAfter counts (up to 10,000) the events committed after cp and
// the age in seconds of the oldest of them: a worker's lag.
func pendingAfter(ctx context.Context, store *eventstore.Store, cp domain.Checkpoint) (pending int, oldestSeconds float64, err error) {
	if pending, err = store.Pending(ctx, cp, 10_000); err != nil || pending == 0 {
		return pending, 0, err
	}
	var oldest time.Time
	err = store.Pool().QueryRow(ctx, `
		SELECT recorded_at FROM events
		WHERE (tx_id, position) > ($1::bigint::text::xid8, $2::bigint)
		ORDER BY tx_id, position LIMIT 1`, cp.TxID, cp.Position).Scan(&oldest)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return pending, 0, err
	}
	if !oldest.IsZero() {
		oldestSeconds = time.Since(oldest).Seconds()
	}
	return pending, oldestSeconds, nil
}
