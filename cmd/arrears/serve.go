package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/workers"
)

// serve runs the process roles of mode: "serve" (all), "api", "relay" or
// "worker". Every mode serves /healthz, /readyz and /metrics.
func serve(ctx context.Context, mode string) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg)
	if err != nil {
		return err
	}
	log = log.With("mode", mode)
	log.Info("arrears starting", "version", version)

	runAPI := mode == "serve" || mode == "api"
	runRelay := mode == "serve" || mode == "relay"
	runWorkers := mode == "serve" || mode == "worker"

	p, err := openPlatform(ctx, cfg, log, platformOptions{mode: mode, nats: runRelay || runWorkers})
	if err != nil {
		return err
	}
	defer p.close()

	var relay *workers.Relay
	if runRelay {
		relay, err = workers.NewRelay(p.store, p.nc, workers.RelayConfig{
			NATS: cfg.natsConfig(), BatchSize: cfg.RelayBatchSize, PollInterval: cfg.RelayPollInterval,
		}, log)
		if err != nil {
			return err
		}
		p.store.OnAppend(relay.Wake)
	}
	var projectors []*workers.Projector
	if runWorkers {
		projectors, err = workers.Projectors(p.store, p.nc, workers.ProjectorConfig{NATS: cfg.natsConfig(), BatchSize: cfg.ProjectionBatchSize}, log)
		if err != nil {
			return err
		}
	}
	var dispatcher *workers.Dispatcher // webhooks (dispatcher.go)
	if runWorkers && !cfg.Webhooks.Disabled {
		dispatcher = workers.NewDispatcher(p.store, nil, cfg.Webhooks.dispatcher(), log)
	}
	var claimSync *workers.ClaimSync // managed claims follow their invoices
	if runWorkers {
		claimSync = workers.NewClaimSync(p.store, workers.ClaimSyncConfig{}, log)
		p.store.OnAppend(claimSync.Wake)
	}

	checks := []api.Check{{Name: "postgres", Fn: func(ctx context.Context) (any, error) { return nil, p.pool.Ping(ctx) }}}
	if p.nc != nil {
		checks = append(checks, api.Check{Name: "nats", Fn: func(context.Context) (any, error) {
			if s := p.nc.Status(); s != nats.CONNECTED {
				return s.String(), fmt.Errorf("NATS connection is %s", s)
			}
			return nil, nil
		}})
	}
	checks = append(checks, api.Check{Name: "relay", Fn: func(ctx context.Context) (any, error) {
		l, err := workers.MeasureRelayLag(ctx, p.store)
		if err != nil {
			return nil, err
		}
		if age := time.Duration(l.OldestPending * float64(time.Second)); age > cfg.ReadyMaxRelayLag {
			return l, fmt.Errorf("oldest unpublished event is %s old (limit %s)", age.Round(time.Millisecond), cfg.ReadyMaxRelayLag)
		}
		return l, nil
	}})
	if len(projectors) > 0 {
		checks = append(checks, api.Check{Name: "projections", Fn: func(ctx context.Context) (any, error) {
			detail := map[string]any{}
			var failed error
			for _, pr := range projectors {
				for _, name := range pr.Projections() {
					d := map[string]any{"consumer": workers.ConsumerName(pr.Name())}
					if err := pr.ProjectionError(name); err != nil {
						d["error"] = err.Error()
						failed = fmt.Errorf("projection %s is not current: %w", name, err)
					}
					detail[name] = d
				}
			}
			return detail, failed
		}})
	}
	if dispatcher != nil {
		checks = append(checks, api.Check{Name: "webhooks", Fn: func(ctx context.Context) (any, error) {
			b, err := workers.MeasureWebhookBacklog(ctx, p.store)
			if err != nil {
				return nil, err
			}
			return b, dispatcher.LastError()
		}})
	}
	if claimSync != nil {
		checks = append(checks, api.Check{Name: "claim_sync", Fn: func(ctx context.Context) (any, error) {
			l, err := workers.MeasureClaimSyncLag(ctx, p.store)
			if err != nil {
				return nil, err
			}
			return l, claimSync.LastError()
		}})
	}
	deps := api.Deps{Log: log, Checks: checks, Config: cfg.apiConfig()}
	if runAPI {
		deps.Store, deps.Auth = p.store, eventstore.NewAuthenticator(p.store)
		if cfg.DatabaseURL == "" {
			if err := bootstrapDevTenant(ctx, p, log); err != nil {
				return err
			}
		}
	}
	handler := api.NewServer(deps)

	ln, err := listen(cfg, log)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	// Workers run until the HTTP server has drained, then stop.
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	var wg sync.WaitGroup
	if relay != nil {
		wg.Go(func() { _ = relay.Run(wctx) })
	}
	for _, pr := range projectors {
		wg.Go(func() { _ = pr.Run(wctx) })
	}
	if dispatcher != nil {
		wg.Go(func() { _ = dispatcher.Run(wctx) })
	}
	if claimSync != nil {
		wg.Go(func() { _ = claimSync.Run(wctx) })
	}
	if runWorkers && cfg.SchedulerInterval > 0 {
		sched := workers.NewScheduler(p.store, workers.SystemClock{}, workers.SchedulerConfig{Interval: cfg.SchedulerInterval}, log)
		wg.Go(func() { _ = sched.Run(wctx) })
	}
	if runAPI {
		wg.Go(func() { handler.Sweep(wctx, 10*time.Minute) })
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Serve(ln) }()
	log.Info("arrears ready", "url", "http://"+ln.Addr().String(), "relay", runRelay, "workers", runWorkers, "api", runAPI)

	select {
	case <-ctx.Done():
	case err := <-httpErr:
		stopWorkers()
		wg.Wait()
		return fmt.Errorf("http: %w", err)
	}

	log.Info("shutting down: draining HTTP requests, then the relay")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("HTTP shutdown", "err", err)
	}
	if relay != nil {
		if err := relay.Drain(sctx); err != nil {
			log.Warn("relay drain", "err", err)
		}
	}
	stopWorkers()
	wg.Wait()
	log.Info("arrears stopped")
	return nil
}

// listen binds the HTTP address; when the default address is taken and none
// was configured, it falls back to a free port (and says so).
func listen(cfg Config, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err == nil {
		return ln, nil
	}
	if cfg.httpAddrSet || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("http: listen %s: %w", cfg.HTTPAddr, err)
	}
	host, _, _ := net.SplitHostPort(cfg.HTTPAddr)
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, fmt.Errorf("http: listen %s: %w", cfg.HTTPAddr, err)
	}
	log.Warn("default HTTP address is taken; listening on a free port instead (set ARREARS_HTTP_ADDR to choose)",
		"wanted", cfg.HTTPAddr, "url", "http://"+ln.Addr().String())
	return ln, nil
}
