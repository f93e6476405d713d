package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// batchSample is one POST /v1/ledger-entries/batch.
type batchSample struct {
	n           int
	position    int64 // the batch's last event (the response's position)
	sent, acked time.Time

	g        globalPos // resolved after the run
	recorded time.Time // the events' recorded_at
}

// dueDates are the invoices' due dates: 300 days from 2026-03-01, so that
// the balances have overdue amounts in every aging bucket and current ones.
var dueDates = func() []string {
	out := make([]string, 300)
	d := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		out[i] = d.AddDate(0, 0, i).Format("2006-01-02")
	}
	return out
}()

// appendEntry appends one invoice of acct with the n-th reference of the
// run to b.
func appendEntry(b []byte, acct account, n int64) []byte {
	b = append(b, `{"account_reference":"`...)
	b = append(b, acct.ref...)
	b = append(b, `","reference":"INV-`...)
	b = strconv.AppendInt(b, n, 10)
	cents := 1000 + n*7919%90000
	b = append(b, `","kind":"invoice","amount":"`...)
	b = strconv.AppendInt(b, cents/100, 10)
	b = append(b, '.', byte('0'+cents%100/10), byte('0'+cents%10))
	b = append(b, `","due_date":"`...)
	b = append(b, dueDates[n%int64(len(dueDates))]...)
	return append(b, `"}`...)
}

// postBatches posts entries invoices in batches of o.Batch from o.Clients
// clients, each writing only its own accounts, round robin. With rate > 0
// (entries per second) batch k is not sent before start + k·batch/rate
// (and immediately if that time has passed); else as fast as the clients go.
func (r *runner) postBatches(ctx context.Context, entries int, rate float64) ([]batchSample, time.Time, error) {
	nb := (entries + r.o.Batch - 1) / r.o.Batch
	samples := make([]batchSample, nb)
	var next, accepted atomic.Int64
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	stopProgress := r.progress(func() string {
		return fmt.Sprintf("%d of %d entries accepted (%.0f/s)", accepted.Load(), entries, float64(accepted.Load())/time.Since(start).Seconds())
	})
	defer stopProgress()
	for c := range r.o.Clients {
		wg.Go(func() {
			own, rr := r.owned[c], 0
			buf := make([]byte, 0, 160*r.o.Batch)
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= nb {
					return
				}
				n := min(r.o.Batch, entries-k*r.o.Batch)
				buf = append(buf[:0], `{"entries":[`...)
				for j := range n {
					if j > 0 {
						buf = append(buf, ',')
					}
					buf = appendEntry(buf, own[rr%len(own)], r.nextRef.Add(1))
					rr++
				}
				buf = append(buf, "]}"...)
				if rate > 0 {
					if d := time.Until(start.Add(time.Duration(float64(k*r.o.Batch) / rate * float64(time.Second)))); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
				}
				sent := time.Now()
				body, err := r.do(ctx, http.MethodPost, "/v1/ledger-entries/batch", buf, http.StatusCreated)
				acked := time.Now()
				if err != nil {
					cancel(err)
					return
				}
				var res struct {
					Posted   int   `json:"posted"`
					Position int64 `json:"position"`
				}
				if err := json.Unmarshal(body, &res); err != nil || res.Posted != n || res.Position <= 0 {
					cancel(fmt.Errorf("batch %d: unexpected response %.300s (%v)", k, body, err))
					return
				}
				samples[k] = batchSample{n: n, position: res.Position, sent: sent, acked: acked}
				accepted.Add(int64(n))
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, start, err
	}
	return samples, start, nil
}

// resolve looks up each batch's place in the global order and recorded_at.
func (r *runner) resolve(ctx context.Context, samples []batchSample) error {
	pos := make([]int64, len(samples))
	for i, s := range samples {
		pos[i] = s.position
	}
	type row struct {
		g        globalPos
		recorded time.Time
	}
	found := make(map[int64]row, len(pos))
	for len(pos) > 0 {
		chunk := pos[:min(len(pos), 10_000)]
		pos = pos[len(chunk):]
		rows, err := r.env.Pool.Query(ctx, `SELECT position, tx_id::text::bigint, recorded_at FROM events WHERE position = ANY($1)`, chunk)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p int64
			var x row
			if err := rows.Scan(&p, &x.g.tx, &x.recorded); err != nil {
				rows.Close()
				return err
			}
			x.g.pos = p
			found[p] = x
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	for i := range samples {
		x, ok := found[samples[i].position]
		if !ok {
			return fmt.Errorf("no event at position %d", samples[i].position)
		}
		samples[i].g, samples[i].recorded = x.g, x.recorded
	}
	return nil
}

// phase is one timed run of batches, to the moment the projections
// applied its last one.
type phase struct {
	samples       []batchSample
	start         time.Time // first request
	lastAck       time.Time
	ledgerAt      time.Time // the ledger projection passed the last batch
	allAt         time.Time // every projection did
	api, lag, rec Latency
	tailRate      float64 // entries/s over the last quarter
}

func (r *runner) runPhase(ctx context.Context, entries int, rate float64) (*phase, error) {
	tr, err := r.track(ctx)
	if err != nil {
		return nil, err
	}
	defer tr.stop()
	samples, start, err := r.postBatches(ctx, entries, rate)
	if err != nil {
		return nil, err
	}
	if err := r.resolve(ctx, samples); err != nil {
		return nil, err
	}
	ph := &phase{samples: samples, start: start}
	var last globalPos
	apis := make([]time.Duration, len(samples))
	for i, s := range samples {
		if last.before(s.g) {
			last = s.g
		}
		if s.acked.After(ph.lastAck) {
			ph.lastAck = s.acked
		}
		apis[i] = s.acked.Sub(s.sent)
	}
	stopProgress := r.progress(func() string {
		g, _ := tr.latest(ledgerProjection)
		return fmt.Sprintf("waiting for the projections: ledger at position %d of %d", g.pos, last.pos)
	})
	at, err := tr.wait(ctx, r.names, last, 30*time.Minute)
	stopProgress()
	if err != nil {
		return nil, err
	}
	ph.ledgerAt = at[ledgerProjection]
	for _, t := range at {
		if t.After(ph.allAt) {
			ph.allAt = t
		}
	}
	lags := make([]time.Duration, len(samples))
	recs := make([]time.Duration, len(samples))
	for i, s := range samples {
		seen, ok := tr.passed(ledgerProjection, s.g)
		if !ok {
			return nil, fmt.Errorf("the ledger projection was never seen at position %d", s.position)
		}
		lags[i] = max(seen.Sub(s.acked), 0)
		recs[i] = max(seen.Sub(s.recorded), 0)
	}
	ph.api, ph.lag, ph.rec = latencies(apis), latencies(lags), latencies(recs)

	// The rate over the last quarter of the batches (in commit order), as
	// the ledger projection applied them: the end-to-end capacity once the
	// accounts have their history (it falls as they grow).
	ph.tailRate = float64(entries) / ph.ledgerAt.Sub(start).Seconds()
	if len(samples) >= 8 {
		byG := slices.Clone(samples)
		slices.SortFunc(byG, func(a, b batchSample) int {
			if a.g.before(b.g) {
				return -1
			}
			if b.g.before(a.g) {
				return 1
			}
			return 0
		})
		from := len(byG) * 3 / 4
		t0, _ := tr.passed(ledgerProjection, byG[from-1].g)
		n := 0
		for _, s := range byG[from:] {
			n += s.n
		}
		if d := ph.ledgerAt.Sub(t0); d > 0 {
			ph.tailRate = float64(n) / d.Seconds()
		}
	}
	return ph, nil
}

// ledgerProjection keeps the balances (accounts), entries, transactions
// and statements: the projection the ingest waits for.
const ledgerProjection = "ledger"

func (r *runner) ingest(ctx context.Context, res *Results) error {
	ph, err := r.runPhase(ctx, r.o.Entries, 0)
	if err != nil {
		return err
	}
	d := ph.ledgerAt.Sub(ph.start)
	res.Ingest = Ingest{
		Entries: r.o.Entries, Batches: len(ph.samples), Batch: r.o.Batch, Clients: r.o.Clients, Accounts: r.o.Accounts,
		Seconds:            d.Seconds(),
		EntriesPerSecond:   float64(r.o.Entries) / d.Seconds(),
		TailPerSecond:      ph.tailRate,
		AcceptedPerSecond:  float64(r.o.Entries) / ph.lastAck.Sub(ph.start).Seconds(),
		LedgerCatchUpMs:    ms(ph.ledgerAt.Sub(ph.lastAck)),
		AllCaughtUpSeconds: ph.allAt.Sub(ph.start).Seconds(),
		API:                ph.api,
		Lag:                LagStats{FromResponse: ph.lag, FromRecordedAt: ph.rec},
		PeakRSSBytes:       peakRSS(),
	}
	r.logf("ingest: %d entries in %.1f s: %.0f entries/s to the ledger projection caught up (%.0f/s accepted by the API; %.0f/s over the last quarter)",
		r.o.Entries, d.Seconds(), res.Ingest.EntriesPerSecond, res.Ingest.AcceptedPerSecond, ph.tailRate)
	return nil
}

// lag80 posts batches at 80 % of the measured ingest rate — the lower of
// the whole run's and its last quarter's, as the rate falls while the
// accounts' histories grow — for o.LagSeconds and measures the projection
// lag of every batch.
func (r *runner) lag80(ctx context.Context, res *Results) error {
	rate := 0.8 * min(res.Ingest.EntriesPerSecond, res.Ingest.TailPerSecond)
	entries := int(rate * r.o.LagSeconds)
	entries = max(r.o.Batch*r.o.Clients, (entries+r.o.Batch-1)/r.o.Batch*r.o.Batch)
	ph, err := r.runPhase(ctx, entries, rate)
	if err != nil {
		return err
	}
	// Batch k is due at k·batch/rate: the rate achieved is what was sent
	// between the first send and the last.
	achieved := float64(entries) / ph.lastAck.Sub(ph.start).Seconds()
	if len(ph.samples) > 1 {
		first, last := ph.samples[0].sent, ph.samples[0].sent
		for _, s := range ph.samples {
			first, last = minTime(first, s.sent), maxTime(last, s.sent)
		}
		if d := last.Sub(first); d > 0 {
			achieved = float64(entries-ph.samples[len(ph.samples)-1].n) / d.Seconds()
		}
	}
	res.Lag80 = Lag80{
		TargetEntriesPerSecond:   rate,
		AchievedEntriesPerSecond: achieved,
		Entries:                  entries,
		Batches:                  len(ph.samples),
		Seconds:                  ph.lastAck.Sub(ph.start).Seconds(),
		API:                      ph.api,
		Lag:                      LagStats{FromResponse: ph.lag, FromRecordedAt: ph.rec},
	}
	r.logf("lag at %.0f entries/s: p50 %.1f ms, p99 %.1f ms", rate, ph.lag.P50Ms, ph.lag.P99Ms)
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
