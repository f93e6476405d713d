package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// pollInterval is the checkpoint poller's period: the resolution of every
// projection-lag figure.
const pollInterval = 2 * time.Millisecond

// LagMethod explains how projection lag is measured (printed and stored
// with the figures).
const LagMethod = "a poller reads projection_checkpoints every 2 ms on its own connection and records the time it first " +
	"sees each new (tx_id, position); a batch's lag is the first time the ledger checkpoint is at or past the batch's last " +
	"event in the global (tx_id, position) order, minus the time the batch's HTTP response arrived (the commit is " +
	"acknowledged: commit happens before it, so this is the lag the client can observe). from_recorded_at measures from " +
	"the events' recorded_at instead (taken before the insert: an upper bound that includes the write transaction). " +
	"Resolution ≈ 2 ms plus one query round trip, erring high"

// cpSample is a checkpoint the poller saw, and when.
type cpSample struct {
	at time.Time
	g  globalPos
}

// tracker polls every projection's checkpoint and keeps each one's
// history of changes.
type tracker struct {
	mu     sync.Mutex
	series map[string][]cpSample
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

// track starts a poller on a connection of its own (autocommit queries:
// it holds no transaction open).
func (r *runner) track(ctx context.Context) (*tracker, error) {
	conn, err := r.env.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	t := &tracker{series: map[string][]cpSample{}, cancel: cancel, done: make(chan struct{})}
	first, err := r.checkpoints(ctx, conn)
	if err != nil {
		conn.Release()
		cancel()
		return nil, err
	}
	now := time.Now()
	for n, g := range first {
		t.series[n] = []cpSample{{now, g}}
	}
	go func() {
		defer close(t.done)
		defer conn.Release()
		tick := time.NewTicker(pollInterval)
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			cps, err := r.checkpoints(pctx, conn)
			if err != nil {
				if pctx.Err() == nil {
					t.mu.Lock()
					t.err = err
					t.mu.Unlock()
				}
				return
			}
			at := time.Now()
			t.mu.Lock()
			for n, g := range cps {
				s := t.series[n]
				if len(s) == 0 || s[len(s)-1].g != g {
					t.series[n] = append(s, cpSample{at, g})
				}
			}
			t.mu.Unlock()
		}
	}()
	return t, nil
}

func (t *tracker) stop() {
	t.cancel()
	<-t.done
}

// latest returns projection name's last checkpoint seen.
func (t *tracker) latest(name string) (globalPos, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.series[name]
	if len(s) == 0 {
		return globalPos{}, false
	}
	return s[len(s)-1].g, true
}

// passed returns when projection name was first seen at or past g.
func (t *tracker) passed(name string, g globalPos) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.series[name]
	i := sort.Search(len(s), func(i int) bool { return !s[i].g.before(g) })
	if i == len(s) {
		return time.Time{}, false
	}
	return s[i].at, true
}

// wait waits until every projection in names has passed g and returns when
// each did.
func (t *tracker) wait(ctx context.Context, names []string, g globalPos, timeout time.Duration) (map[string]time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		out := map[string]time.Time{}
		for _, n := range names {
			if at, ok := t.passed(n, g); ok {
				out[n] = at
			}
		}
		if len(out) == len(names) {
			return out, nil
		}
		t.mu.Lock()
		err := t.err
		t.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("checkpoint poller: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("projections not at position %d (tx %d) within %s: only %v", g.pos, g.tx, timeout, keys(out))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

func keys(m map[string]time.Time) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
