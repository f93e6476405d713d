package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arrears/arrears/projections"
)

// singles posts o.Singles one-entry batches from o.Clients clients (each on
// its own accounts).
func (r *runner) singles(ctx context.Context, res *Results) error {
	n, k := r.o.Singles, r.o.Clients
	lat := make([]time.Duration, n)
	var rr [64]atomic.Int64 // per client round robin (clients ≤ 64 share slots harmlessly)
	start := time.Now()
	err := parallel(ctx, n, k, func(ctx context.Context, i int) error {
		c := i % k
		own := r.owned[c]
		acct := own[int(rr[c%len(rr)].Add(1))%len(own)]
		body := append(appendEntry([]byte(`{"entries":[`), acct, r.nextRef.Add(1)), "]}"...)
		t := time.Now()
		out, err := r.do(ctx, http.MethodPost, "/v1/ledger-entries/batch", body, http.StatusCreated)
		lat[i] = time.Since(t)
		if err != nil {
			return err
		}
		var b struct {
			Posted int `json:"posted"`
		}
		if err := json.Unmarshal(out, &b); err != nil || b.Posted != 1 {
			return fmt.Errorf("unexpected response %.300s (%v)", out, err)
		}
		return nil
	})
	d := time.Since(start)
	if err != nil {
		return err
	}
	res.Singles = Singles{Clients: k, Posts: Rate{Count: n, Seconds: d.Seconds(), PerSecond: float64(n) / d.Seconds(), Latency: latencies(lat)}}
	r.logf("single-entry posts: %.0f/s, p99 %.1f ms", res.Singles.Posts.PerSecond, res.Singles.Posts.Latency.P99Ms)
	return nil
}

// singleRows is the single posts' baseline: as many single rows of the
// same shape as the events, each INSERT its own transaction, from as many
// connections.
func (r *runner) singleRows(ctx context.Context, res *Results) error {
	n, k := r.o.Singles, r.o.Clients
	ts, err := r.templates(ctx)
	if err != nil {
		return err
	}
	if err := r.createPlain(ctx); err != nil {
		return err
	}
	defer r.dropPlain(ctx)
	q := insertSQL(1)
	now := time.Now()
	lat := make([]time.Duration, n)
	start := time.Now()
	err = parallel(ctx, n, k, func(ctx context.Context, i int) error {
		t := time.Now()
		_, err := r.env.Pool.Exec(ctx, q, plainRow(ts, int64(i), now)...)
		lat[i] = time.Since(t)
		return err
	})
	d := time.Since(start)
	if err != nil {
		return fmt.Errorf("single-row INSERT: %w", err)
	}
	res.Singles.Baseline = Rate{Count: n, Seconds: d.Seconds(), PerSecond: float64(n) / d.Seconds(), Latency: latencies(lat)}
	r.logf("single-row INSERT transactions: %.0f/s, p99 %.1f ms", res.Singles.Baseline.PerSecond, res.Singles.Baseline.Latency.P99Ms)
	return nil
}

// reads sends GET /v1/accounts/{id}/balance for random accounts at
// o.ReadRate per second for o.ReadSeconds, open loop: request i is due at
// start + i/rate whatever happened to the others, and its latency counts
// from then (so a stall is not hidden by requests never sent: no
// coordinated omission). A server that cannot keep up is given a grace of
// max(5 s, o.ReadSeconds) after the last request was due; a request not
// answered by then counts as answered then (a lower bound) and as
// unanswered in the figures.
func (r *runner) reads(ctx context.Context, res *Results) error {
	// Warm-up, not measured: one read of each account, as a server that
	// serves this rate has done long before. The first read of an account
	// in a process loads its whole history into the read cache; without
	// this, the first seconds of the run measure those loads (about 70 ms
	// p99 in the first second, falling to 2–10 ms by the fifth).
	warm := time.Now()
	if err := parallel(ctx, len(r.accounts), r.o.Clients, func(ctx context.Context, i int) error {
		_, err := r.do(ctx, http.MethodGet, "/v1/accounts/"+r.accounts[i].id+"/balance", nil, http.StatusOK)
		return err
	}); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	res.Reads.WarmUpSeconds = time.Since(warm).Seconds()
	total := int(r.o.ReadRate * r.o.ReadSeconds)
	interval := time.Duration(float64(time.Second) / r.o.ReadRate)
	lat := make([]time.Duration, total)
	answered := make([]bool, total)
	var firstErr error
	var errOnce sync.Once
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const maxInFlight = 256
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	due := func(i int) time.Time { return start.Add(time.Duration(i) * interval) }
	deadline := due(total).Add(max(5*time.Second, time.Duration(r.o.ReadSeconds*float64(time.Second))))
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
dispatch:
	for i := 0; i < total; {
		for ; i < total && !due(i).After(time.Now()); i++ {
			idx := i
			acct := r.accounts[rnd.IntN(len(r.accounts))]
			select {
			case sem <- struct{}{}:
			case <-rctx.Done():
				break dispatch
			}
			wg.Go(func() {
				defer func() { <-sem }()
				_, err := r.do(rctx, http.MethodGet, "/v1/accounts/"+acct.id+"/balance", nil, http.StatusOK)
				lat[idx] = time.Since(due(idx))
				switch {
				case err == nil:
					answered[idx] = true
				case rctx.Err() == nil:
					errOnce.Do(func() { firstErr = err })
				}
			})
		}
		if i < total {
			select {
			case <-rctx.Done():
				break dispatch
			case <-time.After(time.Until(due(i))):
			}
		}
	}
	wg.Wait()
	d := time.Since(start)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if firstErr != nil {
		return fmt.Errorf("a read failed: %w", firstErr)
	}
	n := 0
	for i := range lat {
		if answered[i] {
			n++
		} else {
			lat[i] = deadline.Sub(due(i))
		}
	}
	res.Reads = Reads{TargetPerSecond: r.o.ReadRate, Unanswered: total - n, WarmUpSeconds: res.Reads.WarmUpSeconds,
		Rate: Rate{Count: total, Seconds: d.Seconds(), PerSecond: float64(n) / d.Seconds(), Latency: latencies(lat)}}
	perSecond := max(int(r.o.ReadRate), 1)
	var p99s []string
	for lo := 0; lo < total; lo += perSecond {
		l := latencies(lat[lo:min(lo+perSecond, total)])
		res.Reads.BySecond = append(res.Reads.BySecond, l)
		p99s = append(p99s, fmt.Sprintf("%.1f", l.P99Ms))
	}
	r.logf("GET balance at %.0f/s: %.0f/s answered, p50 %.2f ms, p99 %.2f ms, %d unanswered; p99 of each second (ms): %s", r.o.ReadRate, res.Reads.PerSecond,
		res.Reads.Latency.P50Ms, res.Reads.Latency.P99Ms, res.Reads.Unanswered, strings.Join(p99s, " "))
	if r.probe == nil {
		return nil
	}
	// The same requests without those the machine held up: due in a pause
	// of the machine the probe saw, or while its backlog drained.
	pauses, err := r.probe.pauses(start, due(total))
	if err != nil {
		return err
	}
	dues := make([]time.Time, total)
	for i := range dues {
		dues[i] = due(i)
	}
	var outside []time.Duration
	for i, in := range inPause(dues, pauses) {
		if in {
			res.Reads.InPauses++
		} else {
			outside = append(outside, lat[i])
		}
	}
	l := latencies(outside)
	res.Reads.OutsidePauses = &l
	r.logf("GET balance: %d of %d requests were due in a machine pause of ≥ %s or its backlog; the others: p50 %.2f ms, p99 %.2f ms",
		res.Reads.InPauses, total, PauseCounted, l.P50Ms, l.P99Ms)
	return nil
}

// replay rebuilds every projection with Engine.ReplayAll (into shadow
// tables, swapped in), as `arrears replay --all` does: the history read
// once, each page folded into every projection at the same time, then each
// finished and swapped in. Per projection it records the time until it was
// swapped in.
func (r *runner) replay(ctx context.Context, res *Results) error {
	en := projections.NewEngine(r.env.Store)
	all := projections.All()
	var done, of atomic.Int64
	stop := r.progress(func() string { return fmt.Sprintf("replay: %d of %d events", done.Load(), of.Load()) })
	t := time.Now()
	cps, err := en.ReplayAll(ctx, all, func(_ projections.Projection, d, total int64) { done.Store(d); of.Store(total) },
		func(p projections.Projection, cp projections.Checkpoint) {
			d := time.Since(t)
			res.Replay.Projections = append(res.Replay.Projections, ReplayOne{Name: p.Name(), Events: cp.Seq, Seconds: d.Seconds(), EventsPerSecond: float64(cp.Seq) / d.Seconds()})
			r.logf("replay: %s swapped in after %s (%d events)", p.Name(), d.Round(time.Millisecond), cp.Seq)
		})
	stop()
	if err != nil {
		return err
	}
	d := time.Since(t)
	var events int64
	for _, cp := range cps {
		events = max(events, cp.Seq)
	}
	res.Replay.Events, res.Replay.Seconds = events, d.Seconds()
	res.Replay.EventsPerSecond = float64(events) / d.Seconds()
	r.logf("replay of every projection: %d events in %s (%.0f events/s)", events, d.Round(time.Millisecond), res.Replay.EventsPerSecond)
	return nil
}
