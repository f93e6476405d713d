package api_test

// Webhook endpoints and the operations on their deliveries (the dispatcher
// itself is tested in workers/).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type webhookEndpoint struct {
	Object                  string     `json:"object"`
	ID                      string     `json:"id"`
	Mode                    string     `json:"mode"`
	URL                     string     `json:"url"`
	Description             string     `json:"description"`
	EventTypes              []string   `json:"event_types"`
	Enabled                 bool       `json:"enabled"`
	DisabledReason          *string    `json:"disabled_reason"`
	SecretPrefix            string     `json:"secret_prefix"`
	Secret                  string     `json:"secret"`
	SecretWithheld          bool       `json:"secret_withheld"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	Position                int64      `json:"-"`
}

type webhookDelivery struct {
	ID            string     `json:"id"`
	EndpointID    string     `json:"endpoint_id"`
	EventID       *string    `json:"event_id"`
	EventType     string     `json:"event_type"`
	Origin        string     `json:"origin"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

// createWebhookEndpoint creates an endpoint and returns it with its secret.
func (e *env) createWebhookEndpoint(t *testing.T, secret string, body any, header ...string) webhookEndpoint {
	t.Helper()
	r := e.post(t, secret, "/v1/webhook-endpoints", body, header...)
	require.Equal(t, http.StatusCreated, r.Status, "create webhook endpoint: %s", r.Body)
	var ep webhookEndpoint
	r.decode(t, &ep)
	ep.Position = r.position(t)
	return ep
}

func (e *env) webhookEventCount(t *testing.T) int {
	return e.count(t, `SELECT count(*) FROM events WHERE stream_type = 'webhook_endpoint'`)
}

// TestWebhookEndpointLifecycle: create (secret shown once, never in an event
// or in clear in the database), read, list, update, rotate (both secrets
// sign for the overlap), delete (gone, deliveries cancelled).
func TestWebhookEndpointLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Hooks")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "k"})

	r := e.post(t, k.Secret, "/v1/webhook-endpoints", map[string]any{"url": "https://hooks.example.com/in", "description": " billing ",
		"event_types": []string{"payment.*", "claim.resolved"}}, "Idempotency-Key", "create-hook-1")
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	var ep webhookEndpoint
	r.decode(t, &ep)
	require.True(t, domain.HasPrefix(ep.ID, domain.PrefixWebhookEndpoint), ep.ID)
	require.Equal(t, "/v1/webhook-endpoints/"+ep.ID, r.Header.Get("Location"))
	require.Equal(t, "webhook_endpoint", ep.Object)
	require.Equal(t, "live", ep.Mode)
	require.Equal(t, "billing", ep.Description)
	require.Equal(t, []string{"payment.*", "claim.resolved"}, ep.EventTypes)
	require.True(t, ep.Enabled)
	require.True(t, strings.HasPrefix(ep.Secret, "whsec_"), ep.Secret)
	require.True(t, strings.HasPrefix(ep.Secret, ep.SecretPrefix))
	pos := r.position(t)

	// The secret is nowhere in clear: not in the event, not in the tables.
	var data, meta string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT data::text, metadata::text FROM events WHERE position = $1`, pos).Scan(&data, &meta))
	require.NotContains(t, data+meta, ep.Secret[6:])
	require.Contains(t, data, "https://hooks.example.com/in")
	require.Zero(t, e.count(t, `SELECT count(*) FROM webhook_secrets WHERE position($1::bytea IN sealed) > 0`, []byte(ep.Secret)))
	require.Zero(t, e.count(t, `SELECT count(*) FROM webhook_endpoints e WHERE to_jsonb(e)::text LIKE '%' || $1 || '%'`, ep.Secret[6:20]))

	// An Idempotency-Key replay withholds the secret.
	again := e.post(t, k.Secret, "/v1/webhook-endpoints", map[string]any{"url": "https://hooks.example.com/in", "description": " billing ",
		"event_types": []string{"payment.*", "claim.resolved"}}, "Idempotency-Key", "create-hook-1")
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	var replayed webhookEndpoint
	again.decode(t, &replayed)
	require.Equal(t, ep.ID, replayed.ID)
	require.Empty(t, replayed.Secret)
	require.True(t, replayed.SecretWithheld)
	require.Equal(t, 1, e.webhookEventCount(t))

	// Read and list: no secret.
	got := e.get(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID)
	require.Equal(t, http.StatusOK, got.Status, "%s", got.Body)
	require.NotContains(t, string(got.Body), ep.Secret)
	other := e.createWebhookEndpoint(t, k.Secret, map[string]any{"url": "http://hooks.example.org:8080/x?y=1"})
	require.Equal(t, []string{"*"}, other.EventTypes, "default filter")
	var page struct {
		Data       []webhookEndpoint `json:"data"`
		NextCursor *string           `json:"next_cursor"`
	}
	e.get(t, k.Secret, "/v1/webhook-endpoints?limit=1").decode(t, &page)
	require.Len(t, page.Data, 1)
	require.Equal(t, ep.ID, page.Data[0].ID)
	require.NotNil(t, page.NextCursor)
	e.get(t, k.Secret, "/v1/webhook-endpoints?cursor="+*page.NextCursor).decode(t, &page)
	require.Len(t, page.Data, 1)
	require.Equal(t, other.ID, page.Data[0].ID)

	// Update; a change to nothing records nothing.
	patch := e.send(t, req{Method: http.MethodPatch, Path: "/v1/webhook-endpoints/" + ep.ID, Auth: k.Secret,
		Body: map[string]any{"event_types": []string{"*"}, "enabled": false}})
	require.Equal(t, http.StatusOK, patch.Status, "%s", patch.Body)
	var patched webhookEndpoint
	patch.decode(t, &patched)
	require.Equal(t, []string{"*"}, patched.EventTypes)
	require.False(t, patched.Enabled)
	require.Equal(t, "https://hooks.example.com/in", patched.URL)
	patch.position(t)
	same := e.send(t, req{Method: http.MethodPatch, Path: "/v1/webhook-endpoints/" + ep.ID, Auth: k.Secret, Body: map[string]any{"enabled": false}})
	require.Equal(t, http.StatusOK, same.Status)
	require.Empty(t, same.Header.Get("Arrears-Position"))
	require.Equal(t, 3, e.webhookEventCount(t))

	// Rotate: default overlap 24 h, then one of an hour; three secrets sign
	// until the first expires.
	rot := e.post(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/rotate-secret", nil)
	require.Equal(t, http.StatusOK, rot.Status, "%s", rot.Body)
	var rotated webhookEndpoint
	rot.decode(t, &rotated)
	require.True(t, strings.HasPrefix(rotated.Secret, "whsec_"))
	require.NotEqual(t, ep.Secret, rotated.Secret)
	require.NotNil(t, rotated.PreviousSecretExpiresAt)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), *rotated.PreviousSecretExpiresAt, time.Minute)
	rot = e.post(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/rotate-secret", map[string]any{"overlap_seconds": 3600})
	require.Equal(t, http.StatusOK, rot.Status, "%s", rot.Body)
	rot.decode(t, &rotated)
	require.WithinDuration(t, time.Now().Add(time.Hour), *rotated.PreviousSecretExpiresAt, time.Minute)
	require.Equal(t, 3, e.count(t, `SELECT count(*) FROM webhook_secrets WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > now())`, ep.ID))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM webhook_secrets WHERE endpoint_id = $1 AND expires_at IS NULL`, ep.ID))
	requireInvalid(t, e.post(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/rotate-secret", map[string]any{"overlap_seconds": 700000}), "overlap_seconds")

	// Delete: pending deliveries cancelled, the endpoint gone.
	require.Equal(t, http.StatusOK, e.send(t, req{Method: http.MethodPatch, Path: "/v1/webhook-endpoints/" + ep.ID, Auth: k.Secret,
		Body: map[string]any{"enabled": true}}).Status)
	ping := e.post(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/test", nil)
	require.Equal(t, http.StatusAccepted, ping.Status, "%s", ping.Body)
	del := e.delete(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID)
	require.Equal(t, http.StatusOK, del.Status, "%s", del.Body)
	del.position(t)
	require.Equal(t, http.StatusNotFound, e.get(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID).Status)
	require.Equal(t, http.StatusNotFound, e.delete(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID).Status)
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'cancelled'`, ep.ID))
	e.get(t, k.Secret, "/v1/webhook-endpoints").decode(t, &page)
	require.Len(t, page.Data, 1)
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'webhook_endpoint.deleted'`, ep.ID))
}

// TestWebhookEndpointValidation: every bad input is a 422 naming the field,
// and changes nothing.
func TestWebhookEndpointValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Hooks invalid")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "k"})
	ep := e.createWebhookEndpoint(t, k.Secret, map[string]any{"url": "https://hooks.example.com/ok"})
	before := e.webhookEventCount(t)
	cases := []struct {
		name  string
		body  string
		field string
	}{
		{"no url", `{}`, "url"},
		{"empty url", `{"url":""}`, "url"},
		{"relative url", `{"url":"/hooks"}`, "url"},
		{"ftp", `{"url":"ftp://hooks.example.com/x"}`, "url"},
		{"credentials", `{"url":"https://u:p@hooks.example.com/x"}`, "url"},
		{"fragment", `{"url":"https://hooks.example.com/x#f"}`, "url"},
		{"loopback", `{"url":"http://127.0.0.1:8080/x"}`, "url"},
		{"localhost", `{"url":"http://localhost/x"}`, "url"},
		{"metadata", `{"url":"http://169.254.169.254/latest/meta-data"}`, "url"},
		{"rfc1918", `{"url":"http://10.0.0.1/x"}`, "url"},
		{"ipv6 loopback", `{"url":"http://[::1]/x"}`, "url"},
		{"ipv4-mapped", `{"url":"http://[::ffff:127.0.0.1]/x"}`, "url"},
		{"decimal ip", `{"url":"http://2130706433/x"}`, "url"},
		{"hex ip", `{"url":"http://0x7f.0.0.1/x"}`, "url"},
		{"url type", `{"url":5}`, "url"},
		{"no types", `{"url":"https://hooks.example.com/x","event_types":[]}`, "event_types"},
		{"bad type", `{"url":"https://hooks.example.com/x","event_types":["payment.*","Payment.Completed"]}`, "event_types[1]"},
		{"inner wildcard", `{"url":"https://hooks.example.com/x","event_types":["*.completed"]}`, "event_types[0]"},
		{"trailing dot", `{"url":"https://hooks.example.com/x","event_types":["payment."]}`, "event_types[0]"},
		{"long description", `{"url":"https://hooks.example.com/x","description":"` + strings.Repeat("x", 501) + `"}`, "description"},
		{"unknown field", `{"url":"https://hooks.example.com/x","secret":"whsec_mine"}`, "secret"},
	}
	for _, c := range cases {
		t.Run("create "+c.name, func(t *testing.T) {
			requireInvalid(t, e.post(t, k.Secret, "/v1/webhook-endpoints", c.body), c.field)
		})
		t.Run("update "+c.name, func(t *testing.T) {
			if c.body == `{}` {
				return // nothing to change is no error on PATCH
			}
			requireInvalid(t, e.send(t, req{Method: http.MethodPatch, Path: "/v1/webhook-endpoints/" + ep.ID, Auth: k.Secret, Body: c.body}), c.field)
		})
	}
	for _, c := range []struct{ body, field string }{
		{`{}`, "from"},
		{`{"from":"2026-01-02T00:00:00Z","to":"2026-01-01T00:00:00Z"}`, "to"},
		{`{"from":"yesterday"}`, "from"},
	} {
		requireInvalid(t, e.post(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/replay", c.body), c.field)
	}
	requireInvalid(t, e.get(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/deliveries?status=done"), "query:status")
	require.Equal(t, before, e.webhookEventCount(t), "refused requests recorded nothing")
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM webhook_endpoints`))
	require.Zero(t, e.count(t, `SELECT count(*) FROM webhook_deliveries`))
}

// TestWebhookDeliveryOperations: test ping, the delivery log, redelivery and
// replay of a time range.
func TestWebhookDeliveryOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Hooks ops")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "k"})
	start := time.Now().UTC().Add(-time.Second)
	for i := range 3 {
		e.createDebtor(t, k.Secret, map[string]any{"first_name": "Replay", "last_name": fmt.Sprint(i)})
	}
	testKey := e.key(t, ten.ID, eventstore.NewKey{Name: "sandbox", Mode: domain.ModeTest})
	e.createDebtor(t, testKey.Secret, map[string]any{"first_name": "Sandbox", "last_name": "Only"})
	ep := e.createWebhookEndpoint(t, k.Secret, map[string]any{"url": "https://hooks.example.com/ops", "event_types": []string{"debtor.*"}})

	ping := e.post(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/test", nil)
	require.Equal(t, http.StatusAccepted, ping.Status, "%s", ping.Body)
	var pd webhookDelivery
	ping.decode(t, &pd)
	require.Equal(t, "test.ping", pd.EventType)
	require.Equal(t, "test", pd.Origin)
	require.Equal(t, "pending", pd.Status)
	require.Nil(t, pd.EventID)
	var payload []byte
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT payload FROM webhook_deliveries WHERE id = $1`, pd.ID).Scan(&payload))
	var ce domain.CloudEvent
	require.NoError(t, json.Unmarshal(payload, &ce))
	require.Equal(t, "test.ping", ce.Type)
	require.Equal(t, "1.0", ce.SpecVersion)
	require.Equal(t, ten.ID, ce.TenantID)

	// Replay: the three live debtor.created events, not the sandbox one.
	rp := e.post(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/replay", map[string]any{"from": start.Format(time.RFC3339Nano)})
	require.Equal(t, http.StatusAccepted, rp.Status, "%s", rp.Body)
	require.Equal(t, float64(3), rp.object(t)["deliveries"])
	rp = e.post(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/replay", map[string]any{"from": start.Add(-time.Hour).Format(time.RFC3339), "to": start.Format(time.RFC3339Nano)})
	require.Equal(t, float64(0), rp.object(t)["deliveries"])

	var list struct {
		Data       []webhookDelivery `json:"data"`
		NextCursor *string           `json:"next_cursor"`
	}
	e.get(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/deliveries").decode(t, &list)
	require.Len(t, list.Data, 4)
	origins := map[string]int{}
	for _, d := range list.Data {
		origins[d.Origin]++
		if d.Origin == "replay" {
			require.Equal(t, "debtor.created", d.EventType)
			require.NotNil(t, d.EventID)
		}
	}
	require.Equal(t, map[string]int{"test": 1, "replay": 3}, origins)
	e.get(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/deliveries?status=pending&limit=3").decode(t, &list)
	require.Len(t, list.Data, 3)
	require.NotNil(t, list.NextCursor)
	e.get(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/deliveries?status=pending&limit=3&cursor="+*list.NextCursor).decode(t, &list)
	require.Len(t, list.Data, 1)
	e.get(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/deliveries?status=failed").decode(t, &list)
	require.Empty(t, list.Data)

	// Redeliver a failed delivery: pending again, same id, retries from the start.
	_, err := e.pool.Exec(context.Background(), `UPDATE webhook_deliveries SET status = 'failed', failures = 7, attempts = 7, next_attempt_at = NULL WHERE id = $1`, pd.ID)
	require.NoError(t, err)
	rd := e.post(t, k.Secret, "/v1/webhook-deliveries/"+pd.ID+"/redeliver", nil)
	require.Equal(t, http.StatusAccepted, rd.Status, "%s", rd.Body)
	var redelivered webhookDelivery
	rd.decode(t, &redelivered)
	require.Equal(t, pd.ID, redelivered.ID)
	require.Equal(t, "pending", redelivered.Status)
	require.Equal(t, 7, redelivered.Attempts)
	require.NotNil(t, redelivered.NextAttemptAt)
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM webhook_deliveries WHERE id = $1 AND failures = 0`, pd.ID))

	// The sandbox key sees none of it; a disabled endpoint takes no pings.
	require.Equal(t, http.StatusNotFound, e.post(t, testKey.Secret, "/v1/webhook-deliveries/"+pd.ID+"/redeliver", nil).Status)
	require.Equal(t, http.StatusNotFound, e.get(t, testKey.Secret, "/v1/webhook-endpoints/"+ep.ID+"/deliveries").Status)
	require.Equal(t, http.StatusOK, e.send(t, req{Method: http.MethodPatch, Path: "/v1/webhook-endpoints/" + ep.ID, Auth: k.Secret, Body: `{"enabled":false}`}).Status)
	requireProblem(t, e.post(t, k.Secret, "/v1/webhook-endpoints/"+ep.ID+"/test", nil), http.StatusConflict, "conflict", "endpoint_disabled")
	requireProblem(t, e.post(t, k.Secret, "/v1/webhook-deliveries/"+pd.ID+"/redeliver", nil), http.StatusConflict, "conflict", "endpoint_disabled")
}

// TestWebhookScopesAndModes: webhooks:read reads, webhooks:write writes,
// other scopes neither; endpoints of one mode are invisible to the other.
func TestWebhookScopesAndModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Hooks scopes")
	full := e.key(t, ten.ID, eventstore.NewKey{Name: "full"})
	ep := e.createWebhookEndpoint(t, full.Secret, map[string]any{"url": "https://hooks.example.com/s"})
	keys := map[string]apiKey{}
	for _, sc := range []string{"webhooks:read", "webhooks:write", "events:write"} {
		keys[sc] = e.key(t, ten.ID, eventstore.NewKey{Name: sc, Scopes: []string{sc}})
	}
	const ok, denied = 0, http.StatusForbidden
	base := "/v1/webhook-endpoints/" + ep.ID
	routes := []struct {
		method, path, body string
		write              bool
	}{
		{http.MethodGet, "/v1/webhook-endpoints", "", false},
		{http.MethodGet, base, "", false},
		{http.MethodGet, base + "/deliveries", "", false},
		{http.MethodPost, "/v1/webhook-endpoints", `{"url":"https://hooks.example.com/scoped"}`, true},
		{http.MethodPatch, base, `{"description":"scoped"}`, true},
		{http.MethodPost, base + "/rotate-secret", ``, true},
		{http.MethodPost, base + "/test", ``, true},
		{http.MethodPost, base + "/replay", `{"from":"2026-01-01T00:00:00Z"}`, true},
		{http.MethodPost, "/v1/webhook-deliveries/whdl_01JD7Q5V6Z8K3M2N4P5R6S7T8W/redeliver", ``, true},
	}
	for _, scope := range []string{"webhooks:read", "webhooks:write", "events:write"} {
		for _, rt := range routes {
			want := ok
			if scope == "events:write" || (rt.write && scope == "webhooks:read") {
				want = denied
			}
			t.Run(scope+" "+rt.method+" "+rt.path, func(t *testing.T) {
				r := e.send(t, req{Method: rt.method, Path: rt.path, Auth: keys[scope].Secret, Body: rt.body})
				if want == denied {
					p := requireProblem(t, r, http.StatusForbidden, "forbidden", "missing_scope")
					require.Contains(t, p.Detail, "webhooks")
					return
				}
				require.NotEqual(t, http.StatusForbidden, r.Status, "%s", r.Body)
				require.Less(t, r.Status, 500, "%s", r.Body)
			})
		}
	}
	// DELETE last.
	require.Equal(t, http.StatusForbidden, e.delete(t, keys["webhooks:read"].Secret, base).Status)
	require.Equal(t, http.StatusOK, e.delete(t, keys["webhooks:write"].Secret, base).Status)

	// Modes: a test key's endpoint is invisible to live keys, and the reverse.
	testKey := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	sandboxEP := e.createWebhookEndpoint(t, testKey.Secret, map[string]any{"url": "https://hooks.example.com/sandbox"})
	require.Equal(t, "test", sandboxEP.Mode)
	require.Equal(t, http.StatusNotFound, e.get(t, full.Secret, "/v1/webhook-endpoints/"+sandboxEP.ID).Status)
	var page struct {
		Data []webhookEndpoint `json:"data"`
	}
	e.get(t, testKey.Secret, "/v1/webhook-endpoints").decode(t, &page)
	require.Len(t, page.Data, 1)
	require.Equal(t, sandboxEP.ID, page.Data[0].ID)
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND (metadata->>'sandbox')::boolean`, sandboxEP.ID))
}

// webhooksOfB creates an endpoint for each of B's keys (one live, one test),
// and a test-ping delivery to each, for the cross-tenant table (F is its
// foreign type).
func webhooksOfB[F ~struct{ id, owner string }](t *testing.T, e *env, owners ...string) (endpoints, deliveries []F) {
	t.Helper()
	for _, owner := range owners {
		ep := e.createWebhookEndpoint(t, owner, map[string]any{"url": "https://hooks.example.com/b"})
		endpoints = append(endpoints, F(struct{ id, owner string }{ep.ID, owner}))
		r := e.post(t, owner, "/v1/webhook-endpoints/"+ep.ID+"/test", nil)
		require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
		deliveries = append(deliveries, F(struct{ id, owner string }{r.object(t)["id"].(string), owner}))
	}
	return endpoints, deliveries
}
