package workers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/webhooks"
)

// DefaultRetrySchedule is the wait before each retry of a failed delivery:
// after the first attempt fails, 1 minute; then 5 minutes, 30 minutes, 2
// hours, 12 hours and 24 hours. A delivery whose last retry fails is failed.
var DefaultRetrySchedule = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 12 * time.Hour, 24 * time.Hour}

// DispatcherConfig tunes the webhook dispatcher.
type DispatcherConfig struct {
	Schedule      []time.Duration        // retry waits; default DefaultRetrySchedule
	Jitter        float64                // each wait varies by up to ± this fraction; default 0.1, negative: none
	Timeout       time.Duration          // per attempt; default 15 s
	Concurrency   int                    // attempts in flight in this process; default 16
	PerEndpoint   int                    // attempts in flight per endpoint, across dispatchers; default 4
	Lease         time.Duration          // how long a claimed delivery is reserved; default 2 × Timeout
	PollInterval  time.Duration          // default 1 s
	IntakeBatch   int                    // outbox rows taken in per transaction; default 1000
	MaxRetryAfter time.Duration          // the longest Retry-After honoured; default 24 h
	Policy        webhooks.AddressPolicy // where deliveries may connect
	SecretsKey    []byte                 // as the API's (nil: the installation key)
	Client        *http.Client           // default WebhookClient(Policy, Timeout, nil)
}

func (c DispatcherConfig) withDefaults() DispatcherConfig {
	if c.Schedule == nil {
		c.Schedule = DefaultRetrySchedule
	}
	if c.Jitter == 0 {
		c.Jitter = 0.1
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.PerEndpoint <= 0 {
		c.PerEndpoint = 4
	}
	if c.Lease <= 0 {
		c.Lease = 2 * c.Timeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.IntakeBatch <= 0 {
		c.IntakeBatch = 1000
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = 24 * time.Hour
	}
	if c.Client == nil {
		c.Client = WebhookClient(c.Policy, c.Timeout, nil)
	}
	return c
}

var (
	webhookAttempts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "arrears_webhook_attempts_total", Help: "Webhook delivery attempts, by outcome: succeeded, retry, failed, gone (410: endpoint disabled), blocked (address policy).",
	}, []string{"outcome"})
	webhookLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "arrears_webhook_attempt_seconds", Help: "Duration of webhook delivery attempts.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
)

// Dispatcher delivers webhooks: it takes the outbox projection's rows in
// as deliveries, claims due deliveries (FOR UPDATE SKIP LOCKED, then a lease
// recorded in a short transaction: no transaction is open during an HTTP
// call), signs each message (Standard Webhooks) with every secret of the
// endpoint that signs now, POSTs it, and records the outcome. A process that
// dies mid-delivery leaves a lease that expires, and the delivery is
// claimed again: at-least-once, with the same webhook-id. Any number of
// dispatchers may run.
type Dispatcher struct {
	store *eventstore.Store
	hooks *webhooks.Service
	clock Clock
	cfg   DispatcherConfig
	log   *slog.Logger

	wake    chan struct{}
	slots   chan struct{}
	lastErr lastError
	rngMu   sync.Mutex
	rng     *rand.Rand
}

// NewDispatcher returns a Dispatcher; clock nil is the wall clock.
func NewDispatcher(store *eventstore.Store, clock Clock, cfg DispatcherConfig, log *slog.Logger) *Dispatcher {
	cfg = cfg.withDefaults()
	if clock == nil {
		clock = SystemClock{}
	}
	return &Dispatcher{store: store, hooks: webhooks.NewService(store, webhooks.Config{SecretsKey: cfg.SecretsKey, Policy: cfg.Policy}),
		clock: clock, cfg: cfg, log: log.With("worker", "webhooks"), wake: make(chan struct{}, 1),
		slots: make(chan struct{}, cfg.Concurrency), rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
}

// LastError is the error of the last round, nil when it worked.
func (d *Dispatcher) LastError() error { return d.lastErr.Load() }

// Wake makes the dispatcher look for work now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx ends, then waits for attempts in flight.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.log.Info("webhook dispatcher started", "concurrency", d.cfg.Concurrency, "per_endpoint", d.cfg.PerEndpoint)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		n, err := d.round(ctx, &wg)
		d.lastErr.Set(err)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhook dispatcher round failed", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-time.After(d.cfg.PollInterval):
		}
	}
}

// round takes the outbox in, claims as many due deliveries as this process
// has free slots and starts their attempts; it returns how many it started.
func (d *Dispatcher) round(ctx context.Context, wg *sync.WaitGroup) (int, error) {
	if err := d.intake(ctx); err != nil {
		return 0, err
	}
	free := cap(d.slots) - len(d.slots)
	if free == 0 {
		return 0, nil
	}
	claimed, err := d.claim(ctx, free)
	if err != nil {
		return 0, err
	}
	for _, c := range claimed {
		d.slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-d.slots; d.Wake() }()
			d.attempt(context.WithoutCancel(ctx), c)
		})
	}
	return len(claimed), nil
}

// RunOnce takes the outbox in, claims every due delivery (up to the
// concurrency) and attempts them, waiting for the outcomes: one round, for
// tests driving a fake clock. It returns the number attempted.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	var wg sync.WaitGroup
	n, err := d.round(ctx, &wg)
	wg.Wait()
	return n, err
}

// intake copies new webhook_outbox rows into webhook_deliveries, in the
// outbox's (tx_id, position, endpoint_id) order after the intake cursor.
// The outbox projection writes its rows in that order, one transaction at a
// time, so a row behind the cursor can never appear later; a rebuild of the
// projection rewrites the same ids, which ON CONFLICT keeps out. Rows of an
// endpoint deleted meanwhile (or unknown here) come in cancelled.
func (d *Dispatcher) intake(ctx context.Context) error {
	for {
		var n int64
		now := d.clock.Now().UTC()
		err := pgx.BeginFunc(ctx, d.store.Pool(), func(tx pgx.Tx) error {
			var c struct {
				tx, pos  int64
				endpoint string
			}
			if err := tx.QueryRow(ctx, `SELECT tx_id, position, endpoint_id FROM webhook_intake WHERE id = 1 FOR UPDATE`).Scan(&c.tx, &c.pos, &c.endpoint); err != nil {
				return fmt.Errorf("webhooks: intake cursor: %w", err)
			}
			var last struct {
				tx, pos  *int64
				endpoint *string
			}
			err := tx.QueryRow(ctx, `
				WITH batch AS (
					SELECT * FROM webhook_outbox WHERE (tx_id, position, endpoint_id) > ($1, $2, $3)
					ORDER BY tx_id, position, endpoint_id LIMIT $4),
				ins AS (
					INSERT INTO webhook_deliveries (id, tenant_id, sandbox, endpoint_id, event_id, event_type, origin, status, next_attempt_at, created_at)
					SELECT b.id, b.tenant_id, b.sandbox, b.endpoint_id, b.event_id, b.event_type, 'event',
					       CASE WHEN e.id IS NULL OR e.deleted_at IS NOT NULL THEN 'cancelled' ELSE 'pending' END, $5, $5
					FROM batch b LEFT JOIN webhook_endpoints e ON e.id = b.endpoint_id
					ON CONFLICT (id) DO NOTHING)
				SELECT count(*), (array_agg(tx_id ORDER BY tx_id DESC, position DESC, endpoint_id DESC))[1],
				       (array_agg(position ORDER BY tx_id DESC, position DESC, endpoint_id DESC))[1],
				       (array_agg(endpoint_id ORDER BY tx_id DESC, position DESC, endpoint_id DESC))[1]
				FROM batch`, c.tx, c.pos, c.endpoint, d.cfg.IntakeBatch, now).Scan(&n, &last.tx, &last.pos, &last.endpoint)
			if err != nil {
				return fmt.Errorf("webhooks: intake: %w", err)
			}
			if n == 0 {
				return nil
			}
			_, err = tx.Exec(ctx, `UPDATE webhook_intake SET tx_id = $1, position = $2, endpoint_id = $3 WHERE id = 1`, *last.tx, *last.pos, *last.endpoint)
			return err
		})
		if err != nil || n < int64(d.cfg.IntakeBatch) {
			return err
		}
	}
}

// claimed is a delivery this dispatcher holds the lease of.
type claimed struct {
	id, tenantID, endpointID string
	eventID                  *string
	payload                  []byte
	attempts, failures       int
}

// claim leases up to n due deliveries of enabled endpoints, keeping every
// endpoint within PerEndpoint attempts in flight (counting the leases other
// dispatchers hold), in one short transaction.
func (d *Dispatcher) claim(ctx context.Context, n int) ([]claimed, error) {
	now := d.clock.Now().UTC()
	rows, err := d.store.Pool().Query(ctx, `
		WITH busy AS (
			SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
			WHERE status = 'pending' AND lease_until > $1 GROUP BY endpoint_id),
		cand AS (
			SELECT d.id, d.endpoint_id, d.next_attempt_at,
			       row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS rn
			FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled AND e.deleted_at IS NULL
			WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until <= $1)),
		pick AS (
			SELECT c.id FROM cand c LEFT JOIN busy b USING (endpoint_id)
			WHERE c.rn + coalesce(b.n, 0) <= $4 ORDER BY c.next_attempt_at, c.id LIMIT $3),
		locked AS (
			SELECT d.id FROM webhook_deliveries d
			WHERE d.id IN (SELECT id FROM pick) AND d.status = 'pending' AND (d.lease_until IS NULL OR d.lease_until <= $1)
			FOR UPDATE SKIP LOCKED)
		UPDATE webhook_deliveries d SET lease_until = $2, attempts = d.attempts + 1, last_attempt_at = $1
		FROM locked WHERE d.id = locked.id
		RETURNING d.id, d.tenant_id, d.endpoint_id, d.event_id, d.payload, d.attempts, d.failures`,
		now, now.Add(d.cfg.Lease), n, d.cfg.PerEndpoint)
	if err != nil {
		return nil, fmt.Errorf("webhooks: claim: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
		var c claimed
		err := r.Scan(&c.id, &c.tenantID, &c.endpointID, &c.eventID, &c.payload, &c.attempts, &c.failures)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: claim: %w", err)
	}
	return out, nil
}

// outcome is what one attempt came to.
type outcome struct {
	status     int    // HTTP status, 0 if none
	err        string // why it failed ("" on success)
	retryAfter time.Duration
	hasRetry   bool
}

// attempt makes one HTTP attempt of c and records its outcome.
func (d *Dispatcher) attempt(ctx context.Context, c claimed) {
	start := time.Now()
	o := d.send(ctx, c)
	webhookLatency.Observe(time.Since(start).Seconds())
	if err := d.record(ctx, c, o); err != nil {
		d.lastErr.Set(err)
		d.log.Warn("webhook: recording an attempt failed (the lease expires and the delivery is retried)", "delivery", c.id, "err", err)
	}
}

func (d *Dispatcher) send(ctx context.Context, c claimed) outcome {
	ep, err := d.hooks.EndpointByID(ctx, d.store.Pool(), c.endpointID)
	if err != nil {
		return outcome{err: "endpoint: " + err.Error()}
	}
	payload := c.payload
	if c.eventID != nil {
		ev, err := d.store.Event(ctx, c.tenantID, *c.eventID)
		if err != nil {
			return outcome{err: "event: " + err.Error()}
		}
		if payload, err = json.Marshal(ev.ToCloudEvent()); err != nil {
			return outcome{err: "event: " + err.Error()}
		}
	}
	now := d.clock.Now()
	secrets, err := d.hooks.Secrets(ctx, c.endpointID, now)
	if err != nil || len(secrets) == 0 {
		return outcome{err: fmt.Sprintf("secrets: %v (%d signing)", err, len(secrets))}
	}
	ts := now.Unix()
	sig, err := webhooks.Sign(secrets, c.id, ts, payload)
	if err != nil {
		return outcome{err: "sign: " + err.Error()}
	}
	actx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.URL, bytes.NewReader(payload))
	if err != nil {
		return outcome{err: "request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "arrears-webhooks/1")
	req.Header.Set(webhooks.HeaderID, c.id)
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhooks.HeaderSignature, sig)
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		if blocked(err) {
			webhookAttempts.WithLabelValues("blocked").Inc()
		}
		return outcome{err: truncate(err.Error(), 500)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	o := outcome{status: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return o
	}
	o.err = "HTTP " + strconv.Itoa(resp.StatusCode)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		o.err += " (redirects are not followed)"
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		o.retryAfter, o.hasRetry = d.parseRetryAfter(ra, now)
	}
	return o
}

// parseRetryAfter reads Retry-After: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3), capped at MaxRetryAfter.
func (d *Dispatcher) parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	var wait time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		wait = time.Duration(min(secs, int64(d.cfg.MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		wait = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(wait, d.cfg.MaxRetryAfter), true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// delay is the wait before retry number failures (1-based), with jitter.
func (d *Dispatcher) delay(failures int) time.Duration {
	base := d.cfg.Schedule[failures-1]
	if d.cfg.Jitter <= 0 {
		return base
	}
	d.rngMu.Lock()
	f := 1 + d.cfg.Jitter*(2*d.rng.Float64()-1)
	d.rngMu.Unlock()
	return time.Duration(float64(base) * f)
}

// record writes an attempt's outcome, fenced by the attempt count: if the
// lease expired and another dispatcher claimed the delivery meanwhile, or
// it was cancelled, this outcome is dropped.
func (d *Dispatcher) record(ctx context.Context, c claimed, o outcome) error {
	now := d.clock.Now().UTC()
	var status *int
	if o.status != 0 {
		status = &o.status
	}
	ctx = context.WithoutCancel(ctx)
	if o.err == "" {
		webhookAttempts.WithLabelValues("succeeded").Inc()
		_, err := d.store.Pool().Exec(ctx, `UPDATE webhook_deliveries SET status = 'succeeded', completed_at = $3, lease_until = NULL,
			next_attempt_at = NULL, last_status_code = $4, last_error = NULL WHERE id = $1 AND attempts = $2 AND status = 'pending'`,
			c.id, c.attempts, now, status)
		return err
	}
	failures := c.failures + 1
	if o.status == http.StatusGone {
		webhookAttempts.WithLabelValues("gone").Inc()
		return d.store.WithTx(ctx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'failed', failures = $3, completed_at = $4, lease_until = NULL,
				next_attempt_at = NULL, last_status_code = 410, last_error = 'HTTP 410: the receiver is gone; endpoint disabled'
				WHERE id = $1 AND attempts = $2 AND status = 'pending'`, c.id, c.attempts, failures, now)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			return d.hooks.DisableTx(ctx, tx, c.endpointID, "the receiver answered 410 Gone to delivery "+c.id)
		})
	}
	if failures > len(d.cfg.Schedule) {
		webhookAttempts.WithLabelValues("failed").Inc()
		_, err := d.store.Pool().Exec(ctx, `UPDATE webhook_deliveries SET status = 'failed', failures = $3, completed_at = $4, lease_until = NULL,
			next_attempt_at = NULL, last_status_code = $5, last_error = $6 WHERE id = $1 AND attempts = $2 AND status = 'pending'`,
			c.id, c.attempts, failures, now, status, o.err)
		return err
	}
	webhookAttempts.WithLabelValues("retry").Inc()
	wait := d.delay(failures)
	if o.hasRetry {
		wait = o.retryAfter
	}
	_, err := d.store.Pool().Exec(ctx, `UPDATE webhook_deliveries SET failures = $3, next_attempt_at = $4, lease_until = NULL,
		last_status_code = $5, last_error = $6 WHERE id = $1 AND attempts = $2 AND status = 'pending'`,
		c.id, c.attempts, failures, now.Add(wait), status, o.err)
	return err
}

// MeasureWebhookBacklog reports the deliveries due to enabled endpoints and
// the age of the oldest (for /readyz).
func MeasureWebhookBacklog(ctx context.Context, store *eventstore.Store) (map[string]any, error) {
	var pending int64
	var oldest *float64
	err := store.Pool().QueryRow(ctx, `SELECT count(*), extract(epoch FROM now() - min(d.next_attempt_at))::float8
		FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled AND e.deleted_at IS NULL
		WHERE d.status = 'pending' AND d.next_attempt_at <= now()`).Scan(&pending, &oldest)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"due": pending}
	if oldest != nil {
		out["oldest_due_seconds"] = *oldest
	}
	return out, nil
}
