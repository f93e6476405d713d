package api_test

// Integration tests of the HTTP API against a real PostgreSQL and a real NATS
// (relay and stream_heads projector running where reads need them); no
// mocks. This file holds the set-up and the helpers; the tests are in
// *_integration_test.go.
//
// Every response of the suite goes through checkingTransport, which checks
// the conventions every response must keep (X-Request-Id, problem+json for
// errors, request_id equal to X-Request-Id, a type URI that resolves) and,
// through specTransport, validates it against the OpenAPI document.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/api/spectest"
	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/eventstore/pgtest"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/workers"
	"github.com/arrears/arrears/workers/natstest"
)

var (
	testDB   *pgtest.DB
	testNATS *natstest.Server
)

func TestMain(m *testing.M) { natstest.Main(m, &testDB, &testNATS) }

var logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// generous is the rate limit of every test server but the rate-limit test's.
var generous = api.RateLimit{Requests: 1_000_000, Per: time.Second}

type envOptions struct {
	config    api.Config // RateLimit defaults to generous
	projector bool       // run a relay and the stream_heads and debtors projectors
	maxConns  int32      // pool size; default 10
}

// env is one installation: its own database, API server and (optionally)
// relay and stream_heads projector on its own JetStream stream.
type env struct {
	pool   *pgxpool.Pool
	store  *eventstore.Store
	server *api.Server
	url    string
	client *http.Client
	ids    *domain.IDGenerator
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.maxConns == 0 {
		o.maxConns = 10
	}
	if o.config.RateLimit == (api.RateLimit{}) {
		o.config.RateLimit = generous
	}
	_, pool := testDB.Isolated(t, o.maxConns)
	store := eventstore.New(pool)
	if o.projector {
		startWorkers(t, store)
	}
	srv := api.NewServer(api.Deps{Log: logger, Store: store, Auth: eventstore.NewAuthenticator(store), Config: o.config})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	base := &http.Transport{MaxIdleConns: 100, MaxIdleConnsPerHost: 100, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(base.CloseIdleConnections)
	return &env{pool: pool, store: store, server: srv, url: hs.URL, ids: domain.NewIDGenerator(nil),
		client: &http.Client{Transport: checkingTransport(t, specTransport(t, base), base), Timeout: 30 * time.Second}}
}

var (
	specOnce sync.Once
	spec     *spectest.Spec
	specErr  error
)

// specTransport validates every response against the OpenAPI document,
// except those of requests marked offSpec (unknown routes and methods, which
// no OpenAPI document can describe).
func specTransport(t *testing.T, next http.RoundTripper) http.RoundTripper {
	t.Helper()
	specOnce.Do(func() { spec, specErr = spectest.New() })
	require.NoError(t, specErr, "OpenAPI document")
	checked := &spectest.Transport{Spec: spec, T: t, Base: next}
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Context().Value(offSpecKey{}) != nil {
			return next.RoundTrip(r)
		}
		return checked.RoundTrip(r)
	})
}

type offSpecKey struct{}

// startWorkers runs a relay and the stream_heads, debtors and ledger projectors for store until
// the test ends.
func startWorkers(t *testing.T, store *eventstore.Store) {
	t.Helper()
	nc, err := workers.ConnectNATS(testNATS.URL, "api-test", logger)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	topo := natstest.Topology(t, testNATS.URL)
	relay, err := workers.NewRelay(store, nc, workers.RelayConfig{NATS: topo, PollInterval: 20 * time.Millisecond,
		CheckInterval: 200 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, logger)
	require.NoError(t, err)
	store.OnAppend(relay.Wake)
	runs := []func(context.Context) error{relay.Run}
	for _, p := range []projections.Projection{projections.StreamHeads{}, projections.Debtors{}, projections.Ledger{}, projections.Claims{}, projections.Disputes{}, projections.Campaigns{}} {
		proj, err := workers.NewProjector(p, store, nc,
			workers.ProjectorConfig{NATS: topo, MaxWait: 100 * time.Millisecond, BatchSize: 100}, logger)
		require.NoError(t, err)
		runs = append(runs, proj.Run)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("worker: %v", err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// ---- tenants and keys, created directly in the store ----

type apiKey struct {
	domain.APIKey
	Secret   string
	Position int64 // of its api_key.created event
}

func (e *env) tenant(t *testing.T, name string) domain.Tenant {
	t.Helper()
	var ten domain.Tenant
	require.NoError(t, e.store.WithTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		ten, _, err = e.store.CreateTenantTx(context.Background(), tx, name, domain.Metadata{})
		return err
	}))
	return ten
}

// key creates a key of tenantID; the mode defaults to live.
func (e *env) key(t *testing.T, tenantID string, nk eventstore.NewKey) apiKey {
	t.Helper()
	nk.TenantID = tenantID
	if nk.Mode == "" {
		nk.Mode = domain.ModeLive
	}
	if nk.Name == "" {
		nk.Name = "setup"
	}
	var k apiKey
	require.NoError(t, e.store.WithTx(context.Background(), func(tx pgx.Tx) error {
		key, secret, ev, err := e.store.CreateKeyTx(context.Background(), tx, nk, domain.Metadata{})
		k = apiKey{APIKey: key, Secret: secret, Position: ev.Position}
		return err
	}))
	return k
}

// freshID returns a well-formed id, of the same kind as like, that nothing has.
func (e *env) freshID(like string) string {
	if debtor, month, currency, ok := domain.ParseStatementID(like); ok { // a derived id: of a fresh debtor
		return domain.StatementID(e.freshID(debtor), month, currency)
	}
	prefix, _, _ := strings.Cut(like, "_")
	return e.ids.New(prefix, time.Now())
}

// ---- HTTP ----

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// req is one request: Body is sent as is when a string or []byte, as JSON
// otherwise; Header entries are name, value pairs.
type req struct {
	Method, Path string
	Auth         string // Authorization: Bearer …
	Body         any
	Header       []string
	OffSpec      bool // a request the OpenAPI document cannot describe (unknown route or method)
}

func (e *env) send(t *testing.T, r req) *response {
	t.Helper()
	res, err := e.trySend(r)
	require.NoError(t, err, "%s %s", r.Method, r.Path)
	return res
}

// trySend is send for goroutines other than the test's.
func (e *env) trySend(r req) (*response, error) {
	var body io.Reader
	switch b := r.Body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(j)
	}
	ctx := context.Background()
	if r.OffSpec {
		ctx = context.WithValue(ctx, offSpecKey{}, true)
	}
	hr, err := http.NewRequestWithContext(ctx, r.Method, e.url+r.Path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.Auth != "" {
		hr.Header.Set("Authorization", "Bearer "+r.Auth)
	}
	for i := 0; i+1 < len(r.Header); i += 2 {
		hr.Header.Set(r.Header[i], r.Header[i+1])
	}
	resp, err := e.client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

func (e *env) get(t *testing.T, secret, path string) *response {
	t.Helper()
	return e.send(t, req{Method: http.MethodGet, Path: path, Auth: secret})
}

func (e *env) post(t *testing.T, secret, path string, body any, header ...string) *response {
	t.Helper()
	return e.send(t, req{Method: http.MethodPost, Path: path, Auth: secret, Body: body, Header: header})
}

func (e *env) delete(t *testing.T, secret, path string, header ...string) *response {
	t.Helper()
	return e.send(t, req{Method: http.MethodDelete, Path: path, Auth: secret, Header: header})
}

// createKey creates a key through the API and returns it with its secret.
func (e *env) createKey(t *testing.T, secret string, body any, header ...string) apiKey {
	t.Helper()
	r := e.post(t, secret, "/v1/api-keys", body, header...)
	require.Equal(t, http.StatusCreated, r.Status, "create key: %s", r.Body)
	var v struct {
		domain.APIKey
		Secret string `json:"secret"`
	}
	r.decode(t, &v)
	require.NotEmpty(t, v.Secret)
	return apiKey{APIKey: v.APIKey, Secret: v.Secret, Position: r.position(t)}
}

func (r *response) String() string {
	return fmt.Sprintf("%d %s", r.Status, r.Body)
}

func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Body, v), "body: %s", r.Body)
}

func (r *response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

func (r *response) position(t *testing.T) int64 {
	t.Helper()
	var p int64
	_, err := fmt.Sscan(r.Header.Get(api.HeaderPosition), &p)
	require.NoError(t, err, "Arrears-Position %q", r.Header.Get(api.HeaderPosition))
	require.Positive(t, p)
	return p
}

type problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail"`
	Reason    string              `json:"reason"`
	Errors    []domain.FieldError `json:"errors"`
	RequestID string              `json:"request_id"`
	Error     string              `json:"error"` // OAuth2 token endpoint
}

// problem requires r to be a problem+json document with status and returns it.
func (r *response) problem(t *testing.T, status int) problem {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	var p problem
	r.decode(t, &p)
	require.Equal(t, status, p.Status)
	return p
}

// requireProblem requires a problem with status, type slug and reason ("" =
// none).
func requireProblem(t *testing.T, r *response, status int, slug, reason string) problem {
	t.Helper()
	p := r.problem(t, status)
	require.Equal(t, api.ProblemTypePrefix+slug, p.Type, "body: %s", r.Body)
	require.Equal(t, reason, p.Reason, "body: %s", r.Body)
	return p
}

// requireInvalid requires a 422 naming field (and possibly others).
func requireInvalid(t *testing.T, r *response, field string) problem {
	t.Helper()
	p := r.problem(t, http.StatusUnprocessableEntity)
	require.Equal(t, "/problems/invalid", p.Type)
	var fields []string
	for _, fe := range p.Errors {
		fields = append(fields, fe.Field)
	}
	require.Contains(t, fields, field, "body: %s", r.Body)
	return p
}

// ---- conventions checked on every response ----

// resolvedTypes caches problem type URIs already fetched, per server.
var resolvedTypes sync.Map

// checkingTransport checks what every response must satisfy and reports
// violations as test errors. base is used for the checks' own requests.
func checkingTransport(t *testing.T, next, base http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if err != nil {
			return resp, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		what := r.Method + " " + r.URL.RequestURI()
		reqID := resp.Header.Get(api.HeaderRequestID)
		if reqID == "" {
			t.Errorf("%s: no X-Request-Id", what)
		}
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode >= 400 && r.URL.Path != "/readyz" && ct != "application/problem+json" {
			t.Errorf("%s: %d with Content-Type %q, want application/problem+json", what, resp.StatusCode, ct)
		}
		if ct != "application/problem+json" {
			return resp, nil
		}
		var p problem
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("%s: problem is not JSON: %v: %s", what, err, body)
			return resp, nil
		}
		// A replayed problem (Idempotency-Key) is the stored response, request_id
		// included: that of the original request.
		replayed := resp.Header.Get(api.HeaderIdempotentReplayed) == "true"
		if p.Status != resp.StatusCode || p.Title == "" || (p.RequestID != reqID && !replayed) || p.RequestID == "" ||
			!strings.HasPrefix(p.Type, api.ProblemTypePrefix) {
			t.Errorf("%s: bad problem (status %d, X-Request-Id %q): %s", what, resp.StatusCode, reqID, body)
			return resp, nil
		}
		typeURL := r.URL.Scheme + "://" + r.URL.Host + p.Type
		if _, done := resolvedTypes.Load(typeURL); done {
			return resp, nil
		}
		tr, err := (&http.Client{Transport: base}).Get(typeURL)
		if err != nil {
			t.Errorf("GET %s: %v", p.Type, err)
			return resp, nil
		}
		defer tr.Body.Close()
		var page map[string]any
		if tr.StatusCode != http.StatusOK || tr.Header.Get("Content-Type") != "application/json" ||
			json.NewDecoder(tr.Body).Decode(&page) != nil || page["type"] != p.Type {
			t.Errorf("GET %s (type of %s): %d %s, want 200 JSON describing it", p.Type, what, tr.StatusCode, tr.Header.Get("Content-Type"))
			return resp, nil
		}
		resolvedTypes.Store(typeURL, true)
		return resp, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// ---- routes ----

type route struct{ Method, Pattern string }

// routes walks the server's router.
func (e *env) routes(t *testing.T) []route {
	t.Helper()
	var out []route
	require.NoError(t, chi.Walk(e.server.Routes(), func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, route{method, pattern})
		return nil
	}))
	require.NotEmpty(t, out)
	return out
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// count runs a count query.
func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// requireActive requires key k to still authenticate (and not be revoked).
func (e *env) requireActive(t *testing.T, k apiKey) {
	t.Helper()
	r := e.get(t, k.Secret, "/v1/organization")
	require.Equal(t, http.StatusOK, r.Status, "key %s no longer works: %s", k.ID, r.Body)
	require.Zero(t, e.count(t, `SELECT count(*) FROM api_keys WHERE id = $1 AND revoked_at IS NOT NULL`, k.ID))
}
