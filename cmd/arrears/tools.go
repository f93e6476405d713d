package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/arrears/arrears/migrations"
	"github.com/arrears/arrears/projections"
)

// progressTo returns a progress printer writing "\r<label>: n events" to
// stderr when it is a terminal, and nothing otherwise.
func progressTo(label string) (update func(n int64), done func()) {
	fi, err := os.Stderr.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func(int64) {}, func() {}
	}
	return func(n int64) { fmt.Fprintf(os.Stderr, "\r%s: %d events", label, n) },
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
	engine := projections.NewEngine(p.store)
	for _, pr := range ps {
		start := time.Now()
		progress, done := progressTo("replaying " + pr.Name())
		cp, err := engine.Rebuild(ctx, pr, progress)
		done()
		if err != nil {
			return fmt.Errorf("replay %s: %w", pr.Name(), err)
		}
		d := time.Since(start)
		rate := float64(cp.Seq) / d.Seconds()
		fmt.Printf("%s: rebuilt from %d events in %s (%.0f events/s)\n", pr.Name(), cp.Seq, d.Round(time.Millisecond), rate)
	}
	return nil
}

func verify(ctx context.Context) error {
	p, err := tool(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	start := time.Now()
	progress, done := progressTo("verifying")
	rep, err := p.store.VerifyChains(ctx, progress)
	done()
	if err != nil {
		return err
	}
	fmt.Printf("hash chains: %d streams, %d events in %s\n", rep.Streams, rep.Events, time.Since(start).Round(time.Millisecond))
	if rep.OK() {
		fmt.Println("OK: every chain verifies")
		return nil
	}
	for _, pr := range rep.Problems {
		fmt.Printf("BROKEN tenant=%s stream=%s version=%d event=%s: %s\n", pr.TenantID, pr.StreamID, pr.Version, pr.EventID, pr.Problem)
	}
	return fmt.Errorf("verify: %d problem(s) found", len(rep.Problems))
}
