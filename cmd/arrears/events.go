package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
)

const eventsUsage = `Usage:
  arrears events export [--since TIME | --after-position N] [--tenant ID] [--no-keys] [--file PATH] > events.ndjson
      Write the event store as NDJSON: a header, the tenants, API keys (hashed
      secrets only) and creditor references, every event in the global order
      with its hash, and a trailer with the counts and a SHA-256 of the lines.
      --since TIME          only events recorded at or after TIME (RFC 3339)
      --after-position N    only events after the event at position N in the
                            global order (gap-free: pass the last position of
                            the previous export)
      --tenant ID           only this tenant's events and rows
      --no-keys             leave the API keys out
      --file PATH           write to PATH instead of standard output
      Partial exports (--since, --after-position) carry no rows and cannot be
      imported.

  arrears events import [--file PATH] [--no-rebuild] < events.ndjson
      Load a full export into an EMPTY database: every hash chain and the
      trailer are checked first; a tampered or truncated file is refused and
      nothing is imported. Then the projections are rebuilt (unless
      --no-rebuild; then run "arrears replay --all").
`

func events(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", eventsUsage)
	}
	switch args[0] {
	case "export":
		return eventsExport(ctx, args[1:])
	case "import":
		return eventsImport(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Print(eventsUsage)
		return nil
	}
	return fmt.Errorf("unknown events command %q\n%s", args[0], eventsUsage)
}

// isTerminal reports whether f is a terminal (progress is drawn only there).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func eventsExport(ctx context.Context, args []string) (err error) {
	fs := flag.NewFlagSet("events export", flag.ContinueOnError)
	since := fs.String("since", "", "only events recorded at or after this RFC 3339 time")
	afterPos := fs.Int64("after-position", 0, "only events after the event at this position in the global order")
	tenant := fs.String("tenant", "", "only this tenant")
	noKeys := fs.Bool("no-keys", false, "leave the API keys out")
	file := fs.String("file", "", "write to this file instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("events export takes no arguments, got %s", strings.Join(fs.Args(), " "))
	}
	opts := eventstore.ExportOptions{AfterPosition: *afterPos, TenantID: *tenant, WithoutKeys: *noKeys}
	if *since != "" {
		t, err := time.Parse(time.RFC3339Nano, *since)
		if err != nil {
			return fmt.Errorf("events export: --since: want an RFC 3339 time such as 2025-11-01T00:00:00Z: %w", err)
		}
		opts.Since = t
	}
	if *since != "" && *afterPos != 0 {
		return errors.New("events export: --since and --after-position exclude each other")
	}
	if *afterPos < 0 {
		return errors.New("events export: --after-position must be ≥ 0")
	}

	var out io.Writer = os.Stdout
	if *file == "" && isTerminal(os.Stdout) {
		return errors.New("events export: refusing to write an export to a terminal: redirect it (> events.ndjson) or use --file PATH")
	}
	p, err := tool(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	if *file != "" {
		f, err := os.Create(*file)
		if err != nil {
			return fmt.Errorf("events export: %w", err)
		}
		defer func() {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("events export: %w", cerr)
			}
			if err != nil {
				os.Remove(*file) // no half export left behind
			}
		}()
		out = f
	}

	start := time.Now()
	progress, done := progressTo("exporting")
	opts.Progress = progress
	sum, err := p.store.Export(ctx, out, opts)
	done()
	if err != nil {
		return err
	}
	d := time.Since(start)
	tr := sum.Trailer
	fmt.Fprintf(os.Stderr, "exported %d events (%d tenants, %d API keys, %d stream references) in %s (%.0f events/s); last position %d\n",
		tr.Events, tr.Tenants, tr.APIKeys, tr.StreamReferences, d.Round(time.Millisecond), float64(tr.Events)/d.Seconds(), tr.LastPosition)
	if sum.LeftOut > 0 {
		fmt.Fprintf(os.Stderr, "note: %d committed events are not in the export: older transactions on the PostgreSQL cluster were still running "+
			"(continue with --after-position %d)\n", sum.LeftOut, tr.LastPosition)
	}
	return nil
}

func eventsImport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("events import", flag.ContinueOnError)
	file := fs.String("file", "", "read the export from this file instead of standard input")
	noRebuild := fs.Bool("no-rebuild", false, "do not rebuild the projections (run arrears replay --all later)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("events import takes no arguments, got %s", strings.Join(fs.Args(), " "))
	}
	var in io.Reader = os.Stdin
	if *file != "" {
		f, err := os.Open(*file)
		if err != nil {
			return fmt.Errorf("events import: %w", err)
		}
		defer f.Close()
		in = f
	} else if isTerminal(os.Stdin) {
		return errors.New("events import: reads an export from standard input (arrears events import < events.ndjson) or --file PATH")
	}
	p, err := tool(ctx)
	if err != nil {
		return err
	}
	defer p.close()

	start := time.Now()
	progress, done := progressTo("importing")
	sum, err := p.store.Import(ctx, in, progress)
	done()
	if err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Printf("imported %d events (%d tenants, %d API keys, %d stream references) in %s (%.0f events/s); every hash chain verified\n",
		sum.Events, sum.Tenants, sum.APIKeys, sum.StreamReferences, d.Round(time.Millisecond), float64(sum.Events)/d.Seconds())

	// The projections read below the read horizon, which every older
	// transaction on the PostgreSQL cluster holds back while it runs.
	if !*noRebuild {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := p.store.AwaitVisible(wctx, sum.TxID)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "arrears: older transactions on the PostgreSQL cluster kept the imported events unreadable for 2 minutes: projections not rebuilt")
			*noRebuild = true
		}
	}
	if *noRebuild {
		fmt.Println(`the read models are empty: run "arrears replay --all" (or start arrears, whose projectors catch up)`)
	} else {
		engine := projections.NewEngine(p.store)
		for _, pr := range projections.All() {
			start := time.Now()
			progress, done := progressTo("rebuilding " + pr.Name())
			cp, err := engine.Rebuild(ctx, pr, func(n int64) { progress(n, sum.Events) })
			done()
			if err != nil {
				return fmt.Errorf("events import: the events are imported, but rebuilding %s failed (run arrears replay --all): %w", pr.Name(), err)
			}
			fmt.Printf("%s: rebuilt from %d events in %s\n", pr.Name(), cp.Seq, time.Since(start).Round(time.Millisecond))
		}
	}
	fmt.Printf("the relay publishes the %d events to JetStream stream %s from sequence 1: it must be new (empty) or hold exactly these events\n",
		sum.Events, p.cfg.NATSStream)
	return nil
}
