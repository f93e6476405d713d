// Package bench is `arrears bench`: end-to-end load scenarios against a
// running arrears (API, relay and projectors) and, in the same run, the
// physical limit of the same PostgreSQL for rows of the same shape.
//
// The caller (cmd/arrears) starts the platform on a fresh database and
// passes an Env; Run drives the scenarios over HTTP and PostgreSQL and
// returns every figure. Scenarios, in order:
//
//  1. batch ingest: Entries invoices in batches of Batch over HTTP from
//     Clients concurrent clients, timed from the first request to the
//     moment the ledger projection (the balances) has applied the last
//     batch; API latency; projection lag; then a second, rate-limited run
//     at 80 % of that rate for the lag target;
//  2. baselines: the same number of event rows into a plain table by COPY
//     and by one multi-row INSERT per batch, straight through pgx;
//  3. single-entry posts, and single-row INSERT transactions as their
//     baseline, with the same concurrency;
//  4. GET balance at a fixed request rate (open loop);
//  5. replay of every projection.
package bench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arrears/arrears/eventstore"
)

// Options are the scenario sizes (the command's flags).
type Options struct {
	Quick       bool    `json:"quick"`
	Entries     int     `json:"entries"`      // batch ingest: ledger entries in all
	Batch       int     `json:"batch"`        // entries per request
	Clients     int     `json:"clients"`      // concurrent HTTP clients (and baseline connections)
	Accounts    int     `json:"accounts"`     // accounts the entries are spread over (one debtor each)
	LagSeconds  float64 `json:"lag_seconds"`  // length of the 80 % ingest run
	Singles     int     `json:"singles"`      // single-entry posts (and single-row baseline inserts)
	ReadRate    float64 `json:"read_rate"`    // GET balance requests per second
	ReadSeconds float64 `json:"read_seconds"` // length of the read scenario
	Idempotency bool    `json:"idempotency"`  // send an Idempotency-Key with every write
}

// DefaultOptions returns the full run's sizes, or -quick's.
func DefaultOptions(quick bool) Options {
	if quick {
		return Options{Quick: true, Entries: 20_000, Batch: 1000, Clients: 4, Accounts: 100, LagSeconds: 2, Singles: 200, ReadRate: 200, ReadSeconds: 2}
	}
	// 1,000,000 entries took 12.5 minutes on the README's 2-core machine:
	// the default is sized to about 5 (see README "Performance").
	return Options{Entries: 300_000, Batch: 1000, Clients: 8, Accounts: 1000, LagSeconds: 20, Singles: 5000, ReadRate: 2000, ReadSeconds: 10}
}

func (o Options) validate() error {
	switch {
	case o.Entries < 1:
		return fmt.Errorf("-entries must be ≥ 1")
	case o.Batch < 1 || o.Batch > 10_000:
		return fmt.Errorf("-batch must be 1 to 10,000 (the API's limit)")
	case o.Clients < 1:
		return fmt.Errorf("-clients must be ≥ 1")
	case o.Accounts < o.Clients:
		return fmt.Errorf("-accounts must be ≥ -clients (each client owns its accounts)")
	case o.Singles < 1:
		return fmt.Errorf("-singles must be ≥ 1")
	case o.ReadRate <= 0 || o.ReadSeconds <= 0:
		return fmt.Errorf("-read-rate and -read-seconds must be > 0")
	case o.LagSeconds <= 0:
		return fmt.Errorf("-lag-seconds must be > 0")
	}
	return nil
}

// Env is the running installation under test.
type Env struct {
	BaseURL string            // the API, e.g. http://127.0.0.1:41234
	APIKey  string            // a full-access live key of a fresh tenant
	Pool    *pgxpool.Pool     // the bench's own pool on the installation's database (not the API's)
	Store   *eventstore.Store // the installation's store (replay)
	Log     io.Writer         // progress lines
	Setup   map[string]string // how the platform was set up, for the report
	// ProfileDir, if set, receives a CPU profile of this process per
	// scenario (<n>-<scenario>.pprof) and a heap profile at its end
	// (<n>-<scenario>.heap.pprof).
	ProfileDir string
	// PauseProbe, if set, is the command of the pause probe (a process of
	// its own running RunPauseProbe): the machine's stalls are then
	// reported per scenario, and the reads also without the requests due
	// in one.
	PauseProbe []string
	// TraceDir, if set, receives a runtime execution trace of this
	// process per scenario (<n>-<scenario>.trace, for go tool trace).
	TraceDir string
	// PostgresPID is the postmaster of a private cluster, whose CPU time
	// (with its backends') is reported per scenario; 0 for none.
	PostgresPID int
}

// Run runs every scenario and returns the figures.
func Run(ctx context.Context, env Env, o Options) (*Results, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	r, err := newRunner(env, o)
	if err != nil {
		return nil, err
	}
	res := &Results{Date: time.Now().UTC().Format("2006-01-02"), StartedAt: time.Now().UTC(), Options: o, Setup: env.Setup}
	res.Machine, res.Git = machine(ctx, env.Pool), GitInfo()
	start := time.Now()

	if len(env.PauseProbe) > 0 {
		if r.probe, err = startPauseProbe(env.PauseProbe); err != nil {
			return nil, err
		}
		defer r.probe.stop()
	}
	r.logf("setting up %d debtors and accounts", o.Accounts)
	if err := r.setup(ctx); err != nil {
		return nil, fmt.Errorf("bench: setup: %w", err)
	}
	steps := []struct {
		key, name string
		fn        func(context.Context, *Results) error
	}{
		{"ingest", "batch ingest", r.ingest},
		{"lag80", "lag at 80 % of the ingest rate", r.lag80},
		{"baselines", "baselines: COPY and multi-row INSERT", r.baselines},
		{"singles", "single-entry posts", r.singles},
		{"single_rows", "single-row INSERT transactions", r.singleRows},
		{"reads", "GET balance at a fixed rate", r.reads},
		{"replay", "replay of every projection", r.replay},
	}
	res.CPU, res.DB, res.Pauses = map[string]CPUUse{}, map[string]DBUse{}, map[string]PauseUse{}
	var prevKey string
	var prevDB dbSnap
	for i, s := range steps {
		if err := r.quiesce(ctx); err != nil {
			return nil, fmt.Errorf("bench: before %s: %w", s.name, err)
		}
		if prevKey != "" {
			res.DB[prevKey] = r.dbSince(ctx, prevDB)
		}
		prevKey, prevDB = s.key, r.dbNow(ctx)
		r.logf("%s…", s.name)
		stopProfile, err := startProfile(env.ProfileDir, fmt.Sprintf("%d-%s.pprof", i+1, s.key))
		if err != nil {
			return nil, err
		}
		stopTrace, err := startTrace(env.TraceDir, fmt.Sprintf("%d-%s.trace", i+1, s.key))
		if err != nil {
			stopProfile()
			return nil, err
		}
		t, c := time.Now(), cpuNow(env.PostgresPID)
		err = s.fn(ctx, res)
		end := time.Now()
		res.CPU[s.key] = cpuNow(env.PostgresPID).since(c, end.Sub(t))
		stopTrace()
		stopProfile()
		if err == nil && r.probe != nil {
			var ps []Pause
			if ps, err = r.probe.pauses(t, end); err == nil {
				res.Pauses[s.key] = pauseUse(ps, t, end)
			}
		}
		if err == nil {
			err = writeHeapProfile(env.ProfileDir, fmt.Sprintf("%d-%s.heap.pprof", i+1, s.key))
		}
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", s.name, err)
		}
		r.logf("%s: done in %s", s.name, time.Since(t).Round(time.Millisecond))
	}
	if err := r.quiesce(ctx); err != nil {
		return nil, err
	}
	res.DB[prevKey] = r.dbSince(ctx, prevDB)
	res.PeakRSSBytes = peakRSS()
	res.Seconds = time.Since(start).Seconds()
	res.GoVersion = runtime.Version()
	res.evaluate()
	return res, nil
}
