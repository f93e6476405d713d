package workers

import (
	"context"
	"errors"
	"log/slog"
	"time"
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
