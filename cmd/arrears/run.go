package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

const usage = `arrears — event-sourced ledger and debt-collections engine

Usage: arrears <command> [flags]

Commands:
  serve     API, relay and projection workers in one process (the default)
  api       only the HTTP API
  relay     only the relay (event store → JetStream); one is active, others stand by
  worker    only the projection workers
  migrate   apply pending schema migrations ("migrate status" lists them)
  replay    rebuild projections from the event store into fresh tables and swap
            them in while serving: --projection NAME | --all
  verify    walk every stream's hash chain and compare every projection with a
            rebuild; exit status 1 if a chain is broken or a projection differs
  events    export the event store as NDJSON, or import an export into an empty database ("arrears events" for usage)
  tail      print live events from NATS (--subject S, --raw, --count N, --server URL)
  tick      run the collection scheduler once (--date YYYY-MM-DD: as of that day)
  keys      create, list and revoke API keys ("arrears keys" for usage)
  bench     load benchmark on a fresh database: ingest, latency, lag, replay (-quick: short run)
  version   print the version

Configuration comes from environment variables; see README.md.
With no DATABASE_URL and no NATS_URL, arrears runs a private PostgreSQL
cluster and an embedded NATS server under ARREARS_DATA_DIR (./data).
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve", "api", "relay", "worker":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		return serve(ctx, cmd)
	case "migrate":
		return migrate(ctx, args)
	case "replay":
		return replay(ctx, args)
	case "keys":
		return keys(ctx, args)
	case "tick":
		return tick(ctx, args)
	case "tail":
		return tailCmd(ctx, args)
	case "events":
		return events(ctx, args)
	case "bench":
		return benchCmd(ctx, args)
	case "verify":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		return verify(ctx)
	case "version", "--version":
		fmt.Println("arrears", version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func noArgs(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s takes no arguments, got %s", cmd, strings.Join(fs.Args(), " "))
	}
	return nil
}
