package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/migrations"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/workers"
)

// progressTo returns a progress printer writing "\r<label>: done / total
// events (p%)" ("\r<label>: done events" while total ≤ 0) to stderr when it
// is a terminal, and nothing otherwise; done clears the line.
func progressTo(label string) (update func(done, total int64), done func()) {
	if !isTerminal(os.Stderr) {
		return func(int64, int64) {}, func() {}
	}
	return func(n, total int64) {
			if total <= 0 {
				fmt.Fprintf(os.Stderr, "\r\033[K%s: %d events", label, n)
				return
			}
			fmt.Fprintf(os.Stderr, "\r\033[K%s: %d / %d events (%.1f%%)", label, n, total, 100*float64(min(n, total))/float64(total))
		},
		func() { fmt.Fprint(os.Stderr, "\r\033[K") }
}

// tool opens the platform for a one-shot command (no NATS; attaches to the
// private cluster a running `arrears serve` owns).
func tool(ctx context.Context) (*platform, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	if cfg.LogLevel == "info" {
		cfg.LogLevel = "warn" // keep tool output readable
	}
	log, err := newLogger(cfg)
	if err != nil {
		return nil, err
	}
	return openPlatform(ctx, cfg, log, platformOptions{mode: "tool", attach: true})
}

func migrate(ctx context.Context, args []string) error {
	if len(args) > 1 || (len(args) == 1 && args[0] != "up" && args[0] != "status") {
		return fmt.Errorf("usage: arrears migrate [up|status]")
	}
	p, err := tool(ctx) // applies pending migrations
	if err != nil {
		return err
	}
	defer p.close()
	st, err := migrations.Status(ctx, p.pool.Config().ConnString())
	if err != nil {
		return err
	}
	for _, s := range st {
		applied := "pending"
		if !s.AppliedAt.IsZero() {
			applied = "applied " + s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Printf("%05d  %-28s %s\n", s.Source.Version, s.Source.Path, applied)
	}
	return nil
}

func replay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	name := fs.String("projection", "", "projection to rebuild")
	all := fs.Bool("all", false, "rebuild every projection")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ps []projections.Projection
	switch {
	case *all && *name == "":
		ps = projections.All()
	case !*all && *name != "":
		p, ok := projections.ByName(*name)
		if !ok {
			var names []string
			for _, p := range projections.All() {
				names = append(names, p.Name())
			}
			return fmt.Errorf("replay: no projection %q (have: %v)", *name, names)
		}
		ps = []projections.Projection{p}
	default:
		return fmt.Errorf("usage: arrears replay --projection NAME | --all")
	}
	p, err := tool(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	// Each projection is rebuilt into fresh tables beside the live ones and
	// swapped in at the end: a running server keeps serving meanwhile.
	// Together they read the history once.
	engine := projections.NewEngine(p.store)
	start := time.Now()
	var mu sync.Mutex // the callbacks come from several goroutines
	label := make([]string, len(ps))
	for i, pr := range ps {
		label[i] = pr.Name()
	}
	update, clear := progressTo("replaying " + strings.Join(label, ", "))
	_, err = engine.ReplayAll(ctx, ps, func(_ projections.Projection, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		update(done, total)
	}, func(pr projections.Projection, cp projections.Checkpoint) {
		mu.Lock()
		defer mu.Unlock()
		clear()
		d := time.Since(start)
		fmt.Printf("%s: rebuilt from %d events in %s (%.0f events/s) and swapped in\n", pr.Name(), cp.Seq, d.Round(time.Millisecond), float64(cp.Seq)/d.Seconds())
	})
	clear()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

func verify(ctx context.Context) error {
	p, err := tool(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	var total int64
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total); err != nil {
		return fmt.Errorf("verify: count events: %w", err)
	}
	start := time.Now()
	progress, done := progressTo("verifying hash chains")
	rep, err := p.store.VerifyChains(ctx, func(n int64) { progress(n, total) })
	done()
	if err != nil {
		return err
	}
	fmt.Printf("hash chains: %d streams, %d events in %s\n", rep.Streams, rep.Events, time.Since(start).Round(time.Millisecond))
	if rep.OK() {
		fmt.Println("OK: every chain verifies")
	}
	for _, pr := range rep.Problems {
		fmt.Printf("BROKEN tenant=%s stream=%s version=%d event=%s: %s\n", pr.TenantID, pr.StreamID, pr.Version, pr.EventID, pr.Problem)
	}

	// Every projection is rebuilt beside the live one and compared with it
	// at the live checkpoint; nothing live changes.
	engine := projections.NewEngine(p.store)
	var differ []string
	for _, pr := range projections.All() {
		start := time.Now()
		progress, done := progressTo("rebuilding " + pr.Name())
		r, err := engine.Verify(ctx, pr, progress)
		done()
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Printf("projection %s: FAILED to rebuild: %v\n", pr.Name(), err)
			differ = append(differ, pr.Name())
			continue
		}
		printProjectionReport(r, time.Since(start))
		if behind := total - r.Checkpoint.Seq; behind > 0 {
			fmt.Printf("  (the live projection has not applied the last %d of the %d events counted at the start; they were not compared)\n", behind, total)
		}
		if !r.OK() {
			differ = append(differ, pr.Name())
		}
	}
	if len(differ) == 0 {
		fmt.Println("projections: every one matches its rebuild")
	}
	if n := len(rep.Problems) + len(differ); n > 0 {
		var what []string
		if len(rep.Problems) > 0 {
			what = append(what, fmt.Sprintf("%d broken chain event(s)", len(rep.Problems)))
		}
		if len(differ) > 0 {
			what = append(what, "projection(s) differing from a rebuild: "+strings.Join(differ, ", "))
		}
		return fmt.Errorf("verify: %d problem(s) found: %s", n, strings.Join(what, "; "))
	}
	return nil
}

// printProjectionReport prints a projection's comparison with its rebuild:
// one line if it matches, else every differing table with its differing
// rows (the first of each kind) by key.
func printProjectionReport(r projections.Report, took time.Duration) {
	if r.OK() {
		var sizes []string
		for _, t := range r.Tables {
			sizes = append(sizes, fmt.Sprintf("%s %d rows", t.Table, t.LiveRows))
		}
		fmt.Printf("projection %s: matches its rebuild at sequence %d (%s) in %s\n", r.Projection, r.Checkpoint.Seq,
			strings.Join(sizes, ", "), took.Round(time.Millisecond))
		return
	}
	fmt.Printf("projection %s: DIFFERS from its rebuild at sequence %d\n", r.Projection, r.Checkpoint.Seq)
	if r.CheckpointProblem != "" {
		fmt.Printf("  checkpoint: %s\n", r.CheckpointProblem)
	}
	for _, t := range r.Tables {
		if t.OK() {
			fmt.Printf("  table %s: matches (%d rows)\n", t.Table, t.LiveRows)
			continue
		}
		var counts []string
		for _, c := range []struct {
			n    int64
			what string
		}{{t.Changed, "changed"}, {t.OnlyLive, "only in live"}, {t.OnlyRebuilt, "only in rebuilt"}} {
			if c.n > 0 {
				counts = append(counts, fmt.Sprintf("%d %s", c.n, c.what))
			}
		}
		fmt.Printf("  table %s: DIFFERS: live %d rows (checksum %.16s), rebuilt %d rows (checksum %.16s): %s\n",
			t.Table, t.LiveRows, t.LiveChecksum, t.RebuiltRows, t.RebuiltChecksum, strings.Join(counts, ", "))
		listed := map[string]int64{}
		for _, d := range t.Diffs {
			listed[d.Kind]++
			key := projections.KeyString(d.Key)
			switch d.Kind {
			case projections.DiffChanged:
				var cols []string
				for _, c := range d.Columns {
					cols = append(cols, fmt.Sprintf("%s: live %s, rebuilt %s", c.Column, c.Live, c.Rebuilt))
				}
				fmt.Printf("    changed          %s: %s\n", key, strings.Join(cols, "; "))
			case projections.DiffOnlyLive:
				fmt.Printf("    only in live     %s: %s\n", key, abbreviate(string(d.Live), 300))
			case projections.DiffOnlyRebuilt:
				fmt.Printf("    only in rebuilt  %s: %s\n", key, abbreviate(string(d.Rebuilt), 300))
			}
		}
		for _, c := range []struct {
			kind, what string
			n          int64
		}{{projections.DiffChanged, "changed", t.Changed}, {projections.DiffOnlyLive, "only in live", t.OnlyLive}, {projections.DiffOnlyRebuilt, "only in rebuilt", t.OnlyRebuilt}} {
			if more := c.n - listed[c.kind]; more > 0 {
				fmt.Printf("    … and %d more %s\n", more, c.what)
			}
		}
	}
}

// abbreviate cuts s to at most n runes, marking the cut.
func abbreviate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// fixedDate is a clock on another day, at the current time of day.
type fixedDate struct{ date domain.Date }

func (f fixedDate) Now() time.Time {
	now := time.Now().UTC()
	return f.date.Time().Add(now.Sub(now.Truncate(24 * time.Hour)))
}

// tick runs the collection scheduler once: overdue marks, promises to pay,
// journey steps, as of today or of --date. A date ahead of today decides
// now what that day would (a promise due before it is broken, a step dated
// up to it fires): for demonstrations and sandboxes, not for live data.
func tick(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tick", flag.ContinueOnError)
	date := fs.String("date", "", "the UTC date to run as of (YYYY-MM-DD); default today")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var clock workers.Clock = workers.SystemClock{}
	if *date != "" {
		d, err := domain.ParseDate(*date)
		if err != nil {
			return fmt.Errorf("tick: --date %w", err)
		}
		clock = fixedDate{d}
	}
	p, err := tool(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	// Bring the scheduler's read models up to date here: no projector may
	// be running.
	ready := func(ctx context.Context) error {
		return workers.CatchUpProjections(ctx, p.store, workers.SchedulerProjections, time.Minute)
	}
	res, err := workers.NewScheduler(p.store, clock, workers.SchedulerConfig{Ready: ready}, p.log).Tick(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d overdue marks, %d promises decided, %d journey steps due, %d enrollments ended\n",
		res.Date, res.Overdue, res.Promises, res.Steps, res.Ended)
	if res.Position > 0 {
		fmt.Printf("Arrears-Position: %d\n", res.Position)
	}
	return nil
}
