package workers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/webhooks"
	"github.com/arrears/arrears/workers"
)

// loopbackOnly lets deliveries reach test receivers on this host, and
// nothing else private.
var loopbackOnly = func() webhooks.AddressPolicy {
	p, err := webhooks.ParseAllowlist("loopback")
	if err != nil {
		panic(err)
	}
	return p
}()

// hookClock is a clock tests set by hand.
type hookClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *hookClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *hookClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// hooks returns the webhooks service of e (its URL policy allowing loopback).
func (e *env) hooks() *webhooks.Service {
	return webhooks.NewService(e.store, webhooks.Config{Policy: loopbackOnly})
}

// endpoint registers an endpoint of tenant in mode and returns it with its secret.
func (e *env) endpoint(tenant string, mode domain.Mode, url string, types ...string) (webhooks.Endpoint, string) {
	e.t.Helper()
	svc := e.hooks()
	ctx := context.Background()
	require.NoError(e.t, svc.Ready(ctx))
	var ep webhooks.Endpoint
	var secret string
	require.NoError(e.t, e.store.WithTx(ctx, func(tx pgx.Tx) error {
		var err error
		ep, secret, _, err = svc.CreateTx(ctx, tx, webhooks.NewEndpoint{TenantID: tenant, Mode: mode, URL: url, EventTypes: types}, domain.Metadata{})
		return err
	}))
	return ep, secret
}

// ping queues a test ping to the endpoint and returns the delivery id.
func (e *env) ping(ep webhooks.Endpoint) string {
	e.t.Helper()
	ctx := context.Background()
	var d webhooks.Delivery
	require.NoError(e.t, e.store.WithTx(ctx, func(tx pgx.Tx) error {
		var err error
		d, err = e.hooks().TestPingTx(ctx, tx, ep.TenantID, ep.Mode, ep.ID)
		return err
	}))
	return d.ID
}

type deliveryRow struct {
	Status    string
	Attempts  int
	Failures  int
	Next      *time.Time
	Code      *int
	LastError *string
}

func (e *env) delivery(id string) deliveryRow {
	e.t.Helper()
	var d deliveryRow
	require.NoError(e.t, e.pool.QueryRow(context.Background(), `SELECT status, attempts, failures, next_attempt_at, last_status_code, last_error
		FROM webhook_deliveries WHERE id = $1`, id).Scan(&d.Status, &d.Attempts, &d.Failures, &d.Next, &d.Code, &d.LastError))
	return d
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	err    error // of Verify with the receiver's secret
}

// receiver is a webhook receiver verifying with the Standard Webhooks
// library's Verify (timestamp tolerance included).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret string
	got    []received
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		var err error
		if wh, werr := standardwebhooks.NewWebhook(rc.secret); werr != nil {
			err = werr
		} else {
			err = wh.Verify(body, r.Header)
		}
		rc.got = append(rc.got, received{header: r.Header.Clone(), body: body, err: err})
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) setSecret(s string) { rc.mu.Lock(); rc.secret = s; rc.mu.Unlock() }

func (e *env) dispatcher(clock workers.Clock, cfg workers.DispatcherConfig) *workers.Dispatcher {
	if cfg.Policy.Allow == nil {
		cfg.Policy = loopbackOnly
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	return workers.NewDispatcher(e.store, clock, cfg, logger)
}

// TestWebhooksDeliveredAndVerified: events flow from the event store through
// the relay, the outbox projection and the dispatcher to a receiver that
// verifies every delivery with the Standard Webhooks library's Verify; each
// payload is the event's public CloudEvent, byte for byte what the relay
// publishes; endpoints of another mode, tenant or filter get nothing; a
// tampered body or id fails verification; after a rotation both secrets
// verify.
func TestWebhooksDeliveredAndVerified(t *testing.T) {
	e := newEnv(t, "")
	rc, sandboxRC, otherRC := newReceiver(t), newReceiver(t), newReceiver(t)
	ep, secret := e.endpoint("ten_w", domain.ModeLive, rc.URL+"/hooks", "ledger_entry.*")
	rc.setSecret(secret)
	sandboxEP, sandboxSecret := e.endpoint("ten_w", domain.ModeTest, sandboxRC.URL, "*")
	sandboxRC.setSecret(sandboxSecret)
	otherTenant, otherSecret := e.endpoint("ten_other", domain.ModeLive, otherRC.URL, "*")
	otherRC.setSecret(otherSecret)
	filtered, _ := e.endpoint("ten_w", domain.ModeLive, otherRC.URL, "payment.*")

	e.relay(relayDefaults())
	e.projector(projections.WebhookOutbox{})
	run(t, e.dispatcher(nil, workers.DispatcherConfig{}).Run)

	evs := e.appendN(40, 5)
	eventually(t, 30*time.Second, "40 deliveries", func() bool { return len(rc.received()) >= 40 })

	byID := map[string]domain.Event{}
	for _, ev := range evs {
		byID[ev.ID] = ev
	}
	seen := map[string]bool{}
	for _, r := range rc.received() {
		require.NoError(t, r.err, "Verify")
		id := r.header.Get("webhook-id")
		require.True(t, domain.HasPrefix(id, domain.PrefixWebhookDelivery), id)
		require.False(t, seen[id], "delivered twice: %s", id)
		seen[id] = true
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		var ce domain.CloudEvent
		require.NoError(t, json.Unmarshal(r.body, &ce))
		stored, err := e.store.Event(context.Background(), "ten_w", ce.ID)
		require.NoError(t, err)
		want, err := json.Marshal(stored.ToCloudEvent())
		require.NoError(t, err)
		require.Equal(t, string(want), string(r.body), "the payload is the public envelope")
		require.Contains(t, byID, ce.ID)
		require.Equal(t, domain.WebhookDeliveryID(ep.ID, ce.ID, "", stored.RecordedAt), id, "the stable id")
	}
	require.Len(t, seen, 40)
	require.Equal(t, 40, e.count(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'succeeded' AND attempts = 1 AND last_status_code = 204`, ep.ID))

	// Tampering is caught.
	r := rc.received()[0]
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, wh.VerifyIgnoringTimestamp(r.body, r.header))
	tampered := bytes.Replace(r.body, []byte(`"n":`), []byte(`"n":1`), 1)
	require.NotEqual(t, r.body, tampered)
	require.Error(t, wh.VerifyIgnoringTimestamp(tampered, r.header), "tampered body")
	h := r.header.Clone()
	h.Set("webhook-id", "whdl_forged")
	require.Error(t, wh.VerifyIgnoringTimestamp(r.body, h), "another id")
	wrong, err := standardwebhooks.NewWebhook(webhooks.NewSecret())
	require.NoError(t, err)
	require.Error(t, wrong.VerifyIgnoringTimestamp(r.body, r.header), "another secret")

	// Rotation: during the overlap every delivery verifies with either secret.
	ctx := context.Background()
	svc := e.hooks()
	require.NoError(t, svc.Ready(ctx))
	var rot webhooks.Rotation
	require.NoError(t, e.store.WithTx(ctx, func(tx pgx.Tx) error {
		var err error
		rot, err = svc.RotateTx(ctx, tx, "ten_w", domain.ModeLive, ep.ID, time.Hour, domain.Metadata{})
		return err
	}))
	rc.setSecret(rot.Secret)
	e.appendN(5, 1)
	eventually(t, 30*time.Second, "45 deliveries", func() bool { return len(rc.received()) >= 45 })
	newWH, err := standardwebhooks.NewWebhook(rot.Secret)
	require.NoError(t, err)
	for _, r := range rc.received()[40:] {
		require.NoError(t, r.err)
		require.Len(t, strings.Fields(r.header.Get("webhook-signature")), 2)
		require.NoError(t, wh.Verify(r.body, r.header), "previous secret")
		require.NoError(t, newWH.Verify(r.body, r.header), "new secret")
	}

	// Nothing for the other mode, tenant or filter: their outbox is empty.
	require.Zero(t, e.count(`SELECT count(*) FROM webhook_outbox WHERE endpoint_id = ANY($1)`, []string{sandboxEP.ID, otherTenant.ID, filtered.ID}))
	require.Empty(t, sandboxRC.received())
	require.Empty(t, otherRC.received())
	e.requireReplayEqualsLive(projections.WebhookOutbox{})
}

// scripted is a receiver answering each request with the next of a list of
// responses (status and headers), counting requests.
type scripted struct {
	*httptest.Server
	mu    sync.Mutex
	next  []func(w http.ResponseWriter)
	calls atomic.Int64
}

func newScripted(t *testing.T) *scripted {
	s := &scripted{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		s.mu.Lock()
		var f func(http.ResponseWriter)
		if len(s.next) > 0 {
			f, s.next = s.next[0], s.next[1:]
		}
		s.mu.Unlock()
		if f == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		f(w)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scripted) push(f func(w http.ResponseWriter)) {
	s.mu.Lock()
	s.next = append(s.next, f)
	s.mu.Unlock()
}

func status(code int, header ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

// TestDispatcherRetrySchedule walks a delivery through the whole schedule
// with a fake clock: each failure waits the next step (1m, 5m, 30m, 2h,
// 12h, 24h) exactly (no jitter), a Retry-After (seconds or HTTP date)
// replaces the step, nothing is attempted early, a redirect is a failure,
// and the seventh failure is final. Then: 410 Gone fails the delivery and
// disables the endpoint (an event), whose other deliveries then wait; 2xx
// succeeds; jitter stays within its bounds.
func TestDispatcherRetrySchedule(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	clock := &hookClock{}
	d := e.dispatcher(clock, workers.DispatcherConfig{Jitter: -1, PerEndpoint: 1})
	rcv := newScripted(t)
	ep, _ := e.endpoint("ten_r", domain.ModeLive, rcv.URL, "*")
	id := e.ping(ep)
	// The delivery was queued at the wall clock's now: start just after, on
	// a whole second (Retry-After dates have no fractions).
	clock.now = time.Now().UTC().Truncate(time.Second).Add(time.Second)

	httpDate := func(after time.Duration) string { return clock.Now().Add(after).UTC().Format(http.TimeFormat) }
	steps := []struct {
		respond   func(http.ResponseWriter)
		wantWait  time.Duration // 0: final
		wantCode  int
		wantError string
	}{
		{status(500), time.Minute, 500, "HTTP 500"},
		{status(503, "Retry-After", "120"), 120 * time.Second, 503, "HTTP 503"},
		{status(302, "Location", "http://127.0.0.1:1/elsewhere"), 30 * time.Minute, 302, "redirects are not followed"},
		{status(429, "Retry-After", "not a number"), 2 * time.Hour, 429, "HTTP 429"},
		{status(500), 12 * time.Hour, 500, "HTTP 500"},
		{nil, 3 * time.Hour, 503, "HTTP 503"}, // Retry-After as an HTTP date (set below), not the step's 24 h
		{status(500), 0, 500, "HTTP 500"},
	}
	for i, st := range steps {
		respond := st.respond
		if respond == nil {
			respond = status(503, "Retry-After", httpDate(3*time.Hour))
		}
		rcv.push(respond)
		n, err := d.RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "attempt %d", i+1)
		got := e.delivery(id)
		require.Equal(t, i+1, got.Attempts)
		require.Equal(t, i+1, got.Failures)
		require.NotNil(t, got.Code)
		require.Equal(t, st.wantCode, *got.Code)
		require.Contains(t, *got.LastError, st.wantError)
		if st.wantWait == 0 {
			require.Equal(t, "failed", got.Status)
			require.Nil(t, got.Next)
			break
		}
		require.Equal(t, "pending", got.Status)
		require.NotNil(t, got.Next)
		require.Equal(t, clock.Now().Add(st.wantWait).Truncate(time.Microsecond), got.Next.UTC(), "attempt %d", i+1)
		// Not a moment early.
		clock.Add(st.wantWait - time.Second)
		n, err = d.RunOnce(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "attempted before its time")
		clock.Add(time.Second)
	}
	require.Equal(t, int64(7), rcv.calls.Load())
	n, err := d.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a failed delivery is not retried")

	// 410 Gone: failed at once, endpoint disabled; its next delivery waits.
	gone, goneSecond := e.ping(ep), e.ping(ep)
	rcv.push(status(http.StatusGone))
	n, err = d.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, "failed", e.delivery(gone).Status)
	require.Equal(t, 410, *e.delivery(gone).Code)
	var enabled bool
	var reason *string
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = $1`, ep.ID).Scan(&enabled, &reason))
	require.False(t, enabled)
	require.NotNil(t, reason)
	require.Contains(t, *reason, "410")
	require.Equal(t, 1, e.count(`SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'webhook_endpoint.disabled'`, ep.ID))
	n, err = d.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a disabled endpoint's deliveries wait")
	require.Equal(t, "pending", e.delivery(goneSecond).Status)

	// Re-enabled: the waiting delivery goes out, and 2xx succeeds.
	svc := e.hooks()
	enable := true
	require.NoError(t, e.store.WithTx(ctx, func(tx pgx.Tx) error {
		_, _, err := svc.UpdateTx(ctx, tx, ep.TenantID, ep.Mode, ep.ID, webhooks.Patch{Enabled: &enable}, domain.Metadata{})
		return err
	}))
	rcv.push(status(http.StatusAccepted))
	n, err = d.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, "succeeded", e.delivery(goneSecond).Status)
	require.Equal(t, 202, *e.delivery(goneSecond).Code)

	// Jitter ±50 %: every first retry between 30 s and 90 s, not all equal.
	jd := e.dispatcher(clock, workers.DispatcherConfig{Jitter: 0.5})
	var ids []string
	for range 8 {
		ids = append(ids, e.ping(ep))
		rcv.push(status(500))
	}
	for {
		n, err := jd.RunOnce(ctx)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	waits := map[time.Duration]bool{}
	for _, id := range ids {
		got := e.delivery(id)
		require.Equal(t, 1, got.Failures)
		w := got.Next.Sub(clock.Now())
		require.GreaterOrEqual(t, w, 30*time.Second)
		require.LessOrEqual(t, w, 90*time.Second)
		waits[w] = true
	}
	require.Greater(t, len(waits), 1, "jitter varies the waits")
}

// TestDispatcherBoundsConcurrencyPerEndpoint: with PerEndpoint 2, a slow
// receiver never sees more than two requests at once, and every delivery
// still arrives.
func TestDispatcherBoundsConcurrencyPerEndpoint(t *testing.T) {
	e := newEnv(t, "")
	var inFlight, peak atomic.Int64
	var done atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		inFlight.Add(-1)
		done.Add(1)
	}))
	t.Cleanup(srv.Close)
	ep, _ := e.endpoint("ten_c", domain.ModeLive, srv.URL, "*")
	for range 12 {
		e.ping(ep)
	}
	run(t, e.dispatcher(nil, workers.DispatcherConfig{PerEndpoint: 2, Concurrency: 8}).Run)
	eventually(t, 20*time.Second, "12 deliveries", func() bool { return done.Load() == 12 })
	require.LessOrEqual(t, peak.Load(), int64(2))
	require.Equal(t, int64(2), peak.Load(), "the bound is used")
	eventually(t, 5*time.Second, "all succeeded", func() bool {
		return e.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`) == 12
	})
}

// TestSSRFGuard: deliveries to loopback, link-local (cloud metadata),
// private, IPv6 loopback and IPv4-mapped addresses, a decimal IPv4
// address, a hostname resolving to loopback, and through a redirect to a
// private address — none connects. The URLs are put in the endpoint table
// directly, as if registration had been passed (DNS can change after it):
// the dialer is what must refuse. A sentinel after the guard refuses (and
// records) any address that is not loopback, so no test packet ever leaves
// this host even if the guard were broken.
func TestSSRFGuard(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	var accepted atomic.Int64
	listen := func(addr string) string {
		ln, err := net.Listen("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		return port
	}
	p4 := listen("127.0.0.1:0")
	p6 := listen("[::1]:0")
	p2 := listen("127.0.0.2:0")
	var leaked sync.Map
	sentinel := func(network, address string) error {
		host, _, _ := net.SplitHostPort(address)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			leaked.Store(address, true)
			return errors.New("sentinel: not loopback")
		}
		return nil
	}
	cases := []struct{ name, url string }{
		{"loopback", "http://127.0.0.1:" + p4 + "/"},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/"},
		{"rfc1918", "http://10.0.0.1/"},
		{"ipv6 loopback", "http://[::1]:" + p6 + "/"},
		{"ipv4-mapped ipv6", "http://[::ffff:127.0.0.1]:" + p4 + "/"},
		{"decimal ipv4", "http://2130706433:" + p4 + "/"},
		{"hostname resolving to loopback", "http://localhost:" + p4 + "/"},
	}
	d := workers.NewDispatcher(e.store, nil, workers.DispatcherConfig{Timeout: 3 * time.Second,
		Client: workers.WebhookClient(webhooks.AddressPolicy{}, 3*time.Second, sentinel)}, logger)
	var ids []string
	for _, c := range cases {
		ep, _ := e.endpoint("ten_ssrf", domain.ModeLive, "https://hooks.example.com/"+strings.ReplaceAll(c.name, " ", "-"), "*")
		_, err := e.pool.Exec(ctx, `UPDATE webhook_endpoints SET url = $2 WHERE id = $1`, ep.ID, c.url)
		require.NoError(t, err)
		ids = append(ids, e.ping(ep))
	}
	n, err := d.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, len(cases), n)
	for i, c := range cases {
		got := e.delivery(ids[i])
		assert.Equal(t, "pending", got.Status, c.name)
		assert.Nil(t, got.Code, "%s: a response came back", c.name)
		if assert.NotNil(t, got.LastError, c.name) {
			assert.True(t, strings.Contains(*got.LastError, "refused to connect") || strings.Contains(*got.LastError, "no such host"),
				"%s: %s", c.name, *got.LastError)
		}
	}
	require.Zero(t, accepted.Load(), "a connection was made")
	leaked.Range(func(k, _ any) bool { t.Errorf("the guard let %v through", k); return true })

	// A redirect to a private address: the first hop is allowed (only
	// 127.0.0.1), answers 302 to 127.0.0.2. The dispatcher never follows a
	// redirect; a client that would is refused at the dial.
	redirector := httptest.NewServer(http.RedirectHandler("http://127.0.0.2:"+p2+"/internal", http.StatusFound))
	t.Cleanup(redirector.Close)
	only1, err := webhooks.ParseAllowlist("127.0.0.1/32")
	require.NoError(t, err)
	ep, _ := e.endpoint("ten_ssrf", domain.ModeLive, redirector.URL, "*")
	id := e.ping(ep)
	rd := workers.NewDispatcher(e.store, nil, workers.DispatcherConfig{Policy: only1, Client: workers.WebhookClient(only1, 3*time.Second, sentinel)}, logger)
	n, err = rd.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got := e.delivery(id)
	require.Equal(t, 302, *got.Code)
	require.Contains(t, *got.LastError, "redirects are not followed")
	following := workers.WebhookClient(only1, 3*time.Second, sentinel)
	following.CheckRedirect = nil // follow, as a naive client would
	resp, err := following.Post(redirector.URL, "application/json", strings.NewReader(`{}`))
	if resp != nil {
		resp.Body.Close()
	}
	var blocked *workers.BlockedAddressError
	require.ErrorAs(t, err, &blocked, "the redirect's target is refused at the dial")
	require.Contains(t, blocked.Address, "127.0.0.2")
	require.Zero(t, accepted.Load(), "the redirect target was connected to")
	leaked.Range(func(k, _ any) bool { t.Errorf("the guard let %v through", k); return true })
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// TestIntakeAfterDelete: outbox rows of an endpoint deleted before the
// dispatcher took them in come in cancelled (never sent, not counted as
// backlog); those of a live endpoint come in pending, once.
func TestIntakeAfterDelete(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	gone, _ := e.endpoint("ten_w", domain.ModeLive, srv.URL+"/gone", "*")
	kept, _ := e.endpoint("ten_w", domain.ModeLive, srv.URL+"/kept", "*")
	e.appendN(6, 2)
	last, err := e.store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, e.store.AwaitVisible(ctx, last))
	_, err = projections.NewEngine(e.store).CatchUp(ctx, projections.WebhookOutbox{}, -1, 100)
	require.NoError(t, err)
	require.Equal(t, 12, e.count(`SELECT count(*) FROM webhook_outbox`))
	require.NoError(t, e.store.WithTx(ctx, func(tx pgx.Tx) error {
		_, _, err := e.hooks().DeleteTx(ctx, tx, "ten_w", domain.ModeLive, gone.ID, domain.Metadata{})
		return err
	}))
	clock := &hookClock{now: time.Now().UTC()}
	d := e.dispatcher(clock, workers.DispatcherConfig{PerEndpoint: 10})
	backlog, err := workers.MeasureWebhookBacklog(ctx, e.store)
	require.NoError(t, err)
	require.Equal(t, int64(0), backlog["due"])
	n, err := d.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 6, n, "only the kept endpoint's")
	require.Equal(t, int64(6), hits.Load())
	require.Equal(t, 6, e.count(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'cancelled' AND attempts = 0`, gone.ID))
	require.Equal(t, 6, e.count(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'succeeded'`, kept.ID))
	// A second intake (after a rebuild of the outbox, say) adds nothing.
	_, err = projections.NewEngine(e.store).Rebuild(ctx, projections.WebhookOutbox{}, nil)
	require.NoError(t, err)
	_, err = e.pool.Exec(ctx, `UPDATE webhook_intake SET tx_id = 0, position = 0, endpoint_id = ''`)
	require.NoError(t, err)
	n, err = d.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 12, e.count(`SELECT count(*) FROM webhook_deliveries`))
}
