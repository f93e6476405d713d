package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/bench"
	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/workers"
)

const benchUsage = `Usage: arrears bench [-quick] [flags]

Runs the whole stack in this process (API on a loopback port, relay,
projectors) against a FRESH database — with DATABASE_URL a new database
arrears_bench_<random> on that server, dropped at the end; else a private
PostgreSQL cluster in a temporary directory — and an embedded NATS server
(or, with NATS_URL, a stream and subjects of its own on that server, deleted
at the end). Then: batch ingest with projection lag, the COPY / INSERT
baselines, single-entry posts and their baseline, GET balance at a fixed
rate, and a replay of every projection. Prints one table and writes every
figure to a JSON file. The targets are goals, never assertions: the exit
status says only whether the run worked.

Flags:
`

func benchCmd(ctx context.Context, args []string) (err error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), benchUsage); fs.PrintDefaults() }
	full, short := bench.DefaultOptions(false), bench.DefaultOptions(true)
	quick := fs.Bool("quick", false, fmt.Sprintf("a short run that only checks the command works (%d entries, %d single posts, %.0f s of reads at %.0f/s)",
		short.Entries, short.Singles, short.ReadSeconds, short.ReadRate))
	entries := fs.Int("entries", full.Entries, "batch ingest: ledger entries in all")
	batch := fs.Int("batch", full.Batch, "entries per batch request (and rows per baseline batch)")
	clients := fs.Int("clients", full.Clients, "concurrent HTTP clients (and baseline connections)")
	accounts := fs.Int("accounts", full.Accounts, "accounts the entries are spread over (each with a debtor)")
	lagSeconds := fs.Float64("lag-seconds", full.LagSeconds, "length of the ingest run at 80 % of the measured rate (projection lag)")
	singles := fs.Int("singles", full.Singles, "single-entry posts (and single-row INSERT transactions)")
	readRate := fs.Float64("read-rate", full.ReadRate, "GET balance requests per second (open loop)")
	readSeconds := fs.Float64("read-seconds", full.ReadSeconds, "length of the read scenario, seconds")
	idem := fs.Bool("idempotency", false, "send an Idempotency-Key with every write")
	out := fs.String("out", "", "JSON results file (default bench/results/<YYYY-MM-DD>.json)")
	profDir := fs.String("cpuprofile", "", "write a CPU profile of this process per scenario into this directory")
	traceDir := fs.String("trace", "", "write a runtime execution trace of this process per scenario into this directory (go tool trace)")
	probe := fs.Bool("pause-probe", false, "internal: run only the pause probe the bench starts as a process of its own (it sleeps 1 ms at a time and reports each late wake on stdout until stdin ends)")
	noProbe := fs.Bool("no-pause-probe", false, "do not run the pause probe (no machine pauses in the report)")
	keep := fs.Bool("keep", false, "keep the database (and the private cluster's directory and the server log)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench takes no arguments, got %s", strings.Join(fs.Args(), " "))
	}
	if *probe {
		return bench.RunPauseProbe(ctx, os.Stdin, os.Stdout)
	}
	o := full
	if *quick {
		o = short
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "entries":
			o.Entries = *entries
		case "batch":
			o.Batch = *batch
		case "clients":
			o.Clients = *clients
		case "accounts":
			o.Accounts = *accounts
		case "lag-seconds":
			o.LagSeconds = *lagSeconds
		case "singles":
			o.Singles = *singles
		case "read-rate":
			o.ReadRate = *readRate
		case "read-seconds":
			o.ReadSeconds = *readSeconds
		}
	})
	o.Idempotency = *idem
	if *out == "" {
		*out = filepath.Join("bench", "results", time.Now().UTC().Format("2006-01-02")+".json")
	}

	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "arrears-bench-")
	if err != nil {
		return err
	}
	// A private cluster runs as postgres when we are root: it must reach its directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "arrears.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer func() {
		_ = logFile.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "arrears bench: the server log (%s) ends:\n%s\n", logPath, logTail(logPath, 30))
		}
		if *keep {
			fmt.Fprintf(os.Stderr, "arrears bench: kept %s (server log, private cluster or NATS store, if any)\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("config: LOG_LEVEL: %w", err)
	}
	// The server logs as in production (an access line per request at
	// info), to a file: stdout and stderr are the bench's.
	log := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: level})).With("mode", "bench")
	slog.SetDefault(log) // the API logs failed requests to the default logger

	setup := map[string]string{}
	cfg.DataDir = dir
	cfg.RateLimitRequests = 0 // the load comes from one key
	if cfg.DatabaseURL != "" {
		name := "arrears_bench_" + randomSuffix()
		dbURL, drop, err := createBenchDatabase(ctx, cfg.DatabaseURL, name)
		if err != nil {
			return err
		}
		defer func() {
			if *keep {
				fmt.Fprintf(os.Stderr, "arrears bench: kept database %s\n", name)
				return
			}
			if derr := drop(); derr != nil && err == nil {
				err = derr
			}
		}()
		cfg.DatabaseURL = dbURL
		setup["postgresql"] = "new database " + name + " on the DATABASE_URL server"
		setup["database"] = name
	} else {
		setup["postgresql"] = "private cluster (initdb, default settings) in " + filepath.Join(dir, "pg")
	}
	if cfg.NATSURL != "" {
		sfx := randomSuffix()
		cfg.NATSStream = "ARREARS_BENCH_" + strings.ToUpper(sfx)
		cfg.NATSSubjectPrefix = "arrears.bench." + sfx
		setup["nats"] = "stream " + cfg.NATSStream + " (subjects " + cfg.NATSSubjectPrefix + ".>) on the NATS_URL server"
		setup["nats_stream"] = cfg.NATSStream
	} else {
		cfg.NATSListen = "127.0.0.1:-1" // a free port
		setup["nats"] = "embedded server (JetStream file store) in this process"
	}
	setup["api"] = "in this process on a loopback port; rate limit off; log level " + cfg.LogLevel + " to a file"
	setup["workers"] = "relay and every projector in this process"

	fmt.Fprintf(os.Stderr, "arrears bench: starting the platform (%s; NATS: %s)\n", setup["postgresql"], setup["nats"])
	p, err := openPlatform(ctx, cfg, log, platformOptions{mode: "bench", nats: true})
	if err != nil {
		return err
	}
	defer p.close()

	relay, err := workers.NewRelay(p.store, p.nc, workers.RelayConfig{NATS: cfg.natsConfig(), BatchSize: cfg.RelayBatchSize, PollInterval: cfg.RelayPollInterval}, log)
	if err != nil {
		return err
	}
	p.store.OnAppend(relay.Wake)
	projectors, err := workers.Projectors(p.store, p.nc, workers.ProjectorConfig{NATS: cfg.natsConfig(), BatchSize: cfg.ProjectionBatchSize}, log)
	if err != nil {
		return err
	}
	handler := api.NewServer(api.Deps{Log: log, Store: p.store, Auth: eventstore.NewAuthenticator(p.store), Config: cfg.apiConfig()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { _ = relay.Run(wctx) })
	for _, pr := range projectors {
		wg.Go(func() { _ = pr.Run(wctx) })
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = relay.Drain(sctx)
		stopWorkers()
		wg.Wait()
		if cfg.NATSURL != "" {
			if js, jerr := jetstream.New(p.nc); jerr == nil {
				if derr := js.DeleteStream(sctx, cfg.NATSStream); derr != nil && !errors.Is(derr, jetstream.ErrStreamNotFound) && err == nil {
					err = fmt.Errorf("bench: delete stream %s: %w", cfg.NATSStream, derr)
				}
			}
		}
	}()

	var secret string
	err = p.store.WithTx(ctx, func(tx pgx.Tx) error {
		t, _, err := p.store.CreateTenantTx(ctx, tx, "Bench", domain.Metadata{Actor: "system:bench"})
		if err != nil {
			return err
		}
		_, secret, _, err = p.store.CreateKeyTx(ctx, tx, eventstore.NewKey{TenantID: t.ID, Name: "bench", Mode: domain.ModeLive}, domain.Metadata{Actor: "system:bench"})
		return err
	})
	if err != nil {
		return fmt.Errorf("bench: tenant and key: %w", err)
	}
	pcfg := p.pool.Config().Copy()
	pcfg.MaxConns = int32(o.Clients + 4)
	pcfg.ConnConfig.RuntimeParams["application_name"] = "arrears-bench-load"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	env := bench.Env{BaseURL: "http://" + ln.Addr().String(), APIKey: secret, Pool: pool, Store: p.store, Log: os.Stderr, Setup: setup, ProfileDir: *profDir, TraceDir: *traceDir}
	if !*noProbe {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: the pause probe: %w", err)
		}
		env.PauseProbe = []string{exe, "bench", "-pause-probe"}
	}
	if p.pg != nil {
		if b, err := os.ReadFile(filepath.Join(p.pg.DataDir(), "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			env.PostgresPID, _ = strconv.Atoi(strings.TrimSpace(first))
		}
	}
	res, err := bench.Run(ctx, env, o)
	if err != nil {
		return err
	}
	if err := res.WriteJSON(*out); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	m := res.Machine
	fmt.Printf("arrears bench, %s: %s, %d CPUs, %s RAM, %s, Go %s, PostgreSQL %s (fsync %s, synchronous_commit %s, shared_buffers %s)\n\n",
		res.Date, m.CPUModel, m.CPUs, m.MemTotal, m.Kernel, res.GoVersion, m.PostgreSQL["server_version"], m.PostgreSQL["fsync"],
		m.PostgreSQL["synchronous_commit"], m.PostgreSQL["shared_buffers"])
	if err := res.WriteTable(os.Stdout); err != nil {
		return err
	}
	var cpu, db, contended, pauses []string
	for _, k := range []string{"ingest", "lag80", "baselines", "singles", "single_rows", "reads", "replay"} {
		if u, ok := res.Pauses[k]; ok {
			pauses = append(pauses, fmt.Sprintf("%s %d (max %.0f ms, %.1f %%)", k, u.Count, u.MaxMs, 100*u.Share))
		}
		if c, ok := res.CPU[k]; ok {
			pg := "?"
			if c.PostgresCores != nil {
				pg = fmt.Sprintf("%.1f", *c.PostgresCores)
			}
			cpu = append(cpu, fmt.Sprintf("%s %.1f / %s / %.1f", k, c.ProcessCores, pg, c.MachineCores))
			if c.OtherCores != nil && *c.OtherCores >= 0.25 {
				contended = append(contended, fmt.Sprintf("%s %.1f", k, *c.OtherCores))
			}
		}
		if d, ok := res.DB[k]; ok {
			db = append(db, fmt.Sprintf("%s %d / %.1f MB", k, d.WriteTransactions, d.WALMB))
		}
	}
	fmt.Printf("\nCPU cores busy (this process / its private PostgreSQL, ? if not private / whole machine, of %d): %s.\n", m.CPUs, strings.Join(cpu, ", "))
	fmt.Printf("PostgreSQL server (write transactions / WAL, to the projections caught up): %s.\n", strings.Join(db, ", "))
	if len(pauses) > 0 {
		fmt.Printf("Machine pauses (a process of its own sleeping 1 ms at a time woke ≥ 10 ms late: count, longest, share of the time it was held up): %s.\n", strings.Join(pauses, ", "))
	}
	if len(contended) > 0 {
		fmt.Printf("WARNING: other processes kept CPU cores busy during %s: those figures understate this machine.\n", strings.Join(contended, ", "))
	}
	fmt.Printf("Projection lag: %s.\nBaselines: %s.\nPeak RSS: %s.\nTargets are goals, not assertions. All figures: %s\n",
		bench.LagMethod, bench.BaselineTable, res.PeakRSSNote, *out)
	return nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// createBenchDatabase creates database name on the server of serverURL and
// returns its URL and a function that drops it.
func createBenchDatabase(ctx context.Context, serverURL, name string) (string, func() error, error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("bench: DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("bench: create database %s: %w", name, err)
	}
	dbURL, err := withDatabase(serverURL, name)
	if err != nil {
		return "", nil, err
	}
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			return fmt.Errorf("bench: drop database %s: %w", name, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("bench: drop database %s: %w", name, err)
		}
		return nil
	}
	return dbURL, drop, nil
}

// withDatabase returns connection string s naming database name instead.
func withDatabase(s, name string) (string, error) {
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return s + " dbname=" + name, nil // key=value form: the last setting wins
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("bench: DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	q := u.Query()
	if q.Has("dbname") {
		q.Set("dbname", name)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
