package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/eventstore/pgcluster"
	"github.com/arrears/arrears/migrations"
	"github.com/arrears/arrears/workers"
	"github.com/arrears/arrears/workers/natsembed"
)

// platform is the infrastructure one process runs on: PostgreSQL (external
// or a private cluster), NATS (external or embedded) and the event store.
type platform struct {
	cfg   Config
	log   *slog.Logger
	pg    *pgcluster.Cluster
	ns    *natsembed.Server
	pool  *pgxpool.Pool
	store *eventstore.Store
	nc    *nats.Conn
}

type platformOptions struct {
	mode   string // application_name suffix: serve, api, relay, worker, tool
	nats   bool   // connect to (or embed) NATS
	attach bool   // a tool: use a private cluster another process runs, do not stop it
}

func openPlatform(ctx context.Context, cfg Config, log *slog.Logger, opts platformOptions) (p *platform, err error) {
	built := &platform{cfg: cfg, log: log}
	p = built
	defer func() {
		if err != nil {
			built.close() // p is nil here: "return nil, err" set it
		}
	}()

	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		p.pg, err = pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(cfg.DataDir, "pg"), Logger: log, Attach: opts.attach})
		if err != nil {
			if errors.Is(err, pgcluster.ErrNoBinaries) {
				return nil, fmt.Errorf("DATABASE_URL is not set and %w", err)
			}
			return nil, err
		}
		if err := p.pg.EnsureDatabase(ctx, "arrears"); err != nil {
			return nil, err
		}
		dbURL = p.pg.URL("arrears")
		log.Info("using the private PostgreSQL cluster", "url", dbURL, "data_dir", p.pg.DataDir())
	}
	if _, err := migrations.Up(ctx, dbURL, nil); err != nil {
		return nil, err
	}
	pcfg, err := eventstore.ParsePoolConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pcfg.MaxConns = cfg.DBMaxConns
	if _, set := pcfg.ConnConfig.RuntimeParams["application_name"]; !set {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "arrears-" + opts.mode
	}
	if p.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := p.pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	p.store = eventstore.New(p.pool)

	if !opts.nats {
		return p, nil
	}
	natsURL := cfg.NATSURL
	if natsURL == "" {
		host, portStr, err := net.SplitHostPort(cfg.NATSListen)
		if err != nil {
			return nil, fmt.Errorf("ARREARS_NATS_LISTEN: %w", err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("ARREARS_NATS_LISTEN: %w", err)
		}
		_, listenSet := os.LookupEnv("ARREARS_NATS_LISTEN")
		p.ns, err = natsembed.Start(natsembed.Options{Host: host, Port: port, StoreDir: filepath.Join(cfg.DataDir, "nats"),
			FallbackToFreePort: !listenSet, Logger: log})
		if err != nil {
			return nil, err
		}
		natsURL = p.ns.URL()
		log.Info("embedded NATS server with JetStream is listening; subscribe with: nats sub --server "+natsURL+" '"+cfg.NATSSubjectPrefix+".>'",
			"url", natsURL, "store_dir", filepath.Join(cfg.DataDir, "nats"))
	}
	if p.nc, err = workers.ConnectNATS(natsURL, "arrears", log); err != nil {
		return nil, err
	}
	return p, nil
}

// close releases everything in reverse order of opening.
func (p *platform) close() {
	if p.nc != nil {
		_ = p.nc.Drain()
		deadline := time.Now().Add(5 * time.Second)
		for !p.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if p.ns != nil {
		p.ns.Stop()
	}
	if p.pool != nil {
		p.pool.Close()
	}
	if p.pg != nil {
		if err := p.pg.Stop(context.Background()); err != nil {
			p.log.Warn("stopping PostgreSQL", "err", err)
		}
	}
}
