package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// TestRevokeTwiceKeepsItsPosition: revoking a revoked key changes nothing
// and answers the position of the revocation that happened.
func TestRevokeTwiceKeepsItsPosition(t *testing.T) {
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Revokers")
	admin := e.key(t, ten.ID, eventstore.NewKey{Mode: domain.ModeLive})
	victim := e.createKey(t, admin.Secret, map[string]any{"name": "victim"})
	first := e.delete(t, admin.Secret, "/v1/api-keys/"+victim.ID)
	require.Equal(t, http.StatusOK, first.Status, string(first.Body))
	pos := first.Header.Get(api.HeaderPosition)
	require.NotEmpty(t, pos)
	again := e.delete(t, admin.Secret, "/v1/api-keys/"+victim.ID)
	require.Equal(t, http.StatusOK, again.Status)
	assert.Equal(t, pos, again.Header.Get(api.HeaderPosition))
	assert.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'api_key.revoked'`, victim.ID))
}

// TestTokenEndpointIsRateLimited: minting tokens spends the client's budget.
func TestTokenEndpointIsRateLimited(t *testing.T) {
	e := newEnv(t, envOptions{config: api.Config{RateLimit: api.RateLimit{Requests: 2, Per: time.Minute}}})
	ten := e.tenant(t, "Minters")
	k := e.key(t, ten.ID, eventstore.NewKey{Mode: domain.ModeLive})
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {k.ID}, "client_secret": {k.Secret}}.Encode()
	var last *response
	for range 3 {
		last = e.send(t, req{Method: "POST", Path: "/v1/oauth2/token", Body: form, Header: []string{"Content-Type", "application/x-www-form-urlencoded"}})
	}
	require.Equal(t, http.StatusTooManyRequests, last.Status, string(last.Body))
	assert.NotEmpty(t, last.Header.Get("Retry-After"))
	assert.Equal(t, 2, e.count(t, `SELECT count(*) FROM access_tokens`))
}

// TestSweepRemovesOnlyExpired: the sweeper deletes expired idempotency
// records and access tokens and leaves live ones.
func TestSweepRemovesOnlyExpired(t *testing.T) {
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Sweepers")
	k := e.key(t, ten.ID, eventstore.NewKey{Mode: domain.ModeLive})
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, key, request_hash, method, path, state, expires_at)
		VALUES ($1, 'live:old', '\x00', 'POST', '/v1/api-keys', 'complete', now() - interval '1 hour'),
		       ($1, 'live:new', '\x00', 'POST', '/v1/api-keys', 'complete', now() + interval '1 hour')`, ten.ID)
	require.NoError(t, err)
	_, err = e.pool.Exec(ctx, `INSERT INTO access_tokens (token_hash, key_id, expires_at)
		VALUES (sha256('old'), $1, now() - interval '1 minute'), (sha256('new'), $1, now() + interval '1 hour')`, k.ID)
	require.NoError(t, err)

	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.server.Sweep(sctx, time.Hour); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.count(t, `SELECT count(*) FROM idempotency_keys`)+e.count(t, `SELECT count(*) FROM access_tokens`) != 2 {
		require.True(t, time.Now().Before(deadline), "sweep did not run")
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	assert.Equal(t, 1, e.count(t, `SELECT count(*) FROM idempotency_keys WHERE key = 'live:new'`))
	assert.Equal(t, 1, e.count(t, `SELECT count(*) FROM access_tokens WHERE token_hash = sha256('new')`))
}

// TestAccountRightAfterItsDebtor: the debtor check reads the event store, so
// an account can name a debtor created a moment ago without min_position.
func TestAccountRightAfterItsDebtor(t *testing.T) {
	e := newEnv(t, envOptions{}) // no projector: the debtors read model stays empty
	ten := e.tenant(t, "Sequential")
	k := e.key(t, ten.ID, eventstore.NewKey{Mode: domain.ModeLive})
	for range 5 {
		d := e.post(t, k.Secret, "/v1/debtors", map[string]any{"first_name": "Jane", "last_name": "Doe"})
		require.Equal(t, http.StatusCreated, d.Status, string(d.Body))
		var debtor struct{ ID string }
		require.NoError(t, json.Unmarshal(d.Body, &debtor))
		a := e.post(t, k.Secret, "/v1/accounts", map[string]any{"currency": "EUR", "debtor_ids": []string{debtor.ID}})
		require.Equal(t, http.StatusCreated, a.Status, string(a.Body))
	}
	test := e.key(t, ten.ID, eventstore.NewKey{Mode: domain.ModeTest})
	d := e.post(t, k.Secret, "/v1/debtors", map[string]any{"first_name": "Live", "last_name": "Only"})
	var live struct{ ID string }
	require.NoError(t, json.Unmarshal(d.Body, &live))
	a := e.post(t, test.Secret, "/v1/accounts", map[string]any{"currency": "EUR", "debtor_ids": []string{live.ID}})
	assert.Equal(t, http.StatusUnprocessableEntity, a.Status, "a sandbox account cannot name a live debtor")
}
