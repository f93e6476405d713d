package main_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAPIThroughTheBinary drives the real binary: a key from `arrears keys
// create`, then the HTTP API of `arrears serve` — auth, scopes, an
// idempotent write and its replay, read-your-writes through the projection
// pipeline, the token exchange, revocation.
func TestAPIThroughTheBinary(t *testing.T) {
	in := newInstallation(t)
	out, stderr, code := runTool(t, 60*time.Second, in.env(), "keys", "create", "--tenant", "Acme Lending", "--name", "ops")
	require.Zero(t, code, stderr)
	secret := strings.TrimSpace(out)
	require.True(t, strings.HasPrefix(secret, "sk_live_"), "stdout is the secret: %q", out)
	out, _, code = runTool(t, 60*time.Second, in.env(), "keys", "create", "--tenant", "Acme Lending", "--scopes", "keys:read")
	require.Zero(t, code)
	narrow := strings.TrimSpace(out)

	srv := startProc(t, "serve", "", in.env(), "serve")
	base := srv.waitReady(30 * time.Second)

	do := func(method, path, key string, body string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, b
	}

	resp, body := do("GET", "/v1/organization", secret, "")
	require.Equal(t, 200, resp.StatusCode, string(body))
	assert.Contains(t, string(body), `"name":"Acme Lending"`)
	assert.Contains(t, string(body), `"mode":"live"`)

	resp, body = do("GET", "/v1/organization", "", "")
	assert.Equal(t, 401, resp.StatusCode)
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))

	resp, body = do("POST", "/v1/api-keys", narrow, `{"name":"x"}`)
	assert.Equal(t, 403, resp.StatusCode, string(body))
	assert.Contains(t, string(body), `"reason":"missing_scope"`)

	// An idempotent write and its replay.
	resp, first := do("POST", "/v1/api-keys", secret, `{"name":"reporting","scopes":["events:read"]}`, "Idempotency-Key", "k-1")
	require.Equal(t, 201, resp.StatusCode, string(first))
	pos := resp.Header.Get("Arrears-Position")
	require.NotEmpty(t, pos)
	var created struct{ ID, Secret string }
	require.NoError(t, json.Unmarshal(first, &created))
	require.True(t, strings.HasPrefix(created.Secret, "sk_live_"))
	resp, replay := do("POST", "/v1/api-keys", secret, `{"name":"reporting","scopes":["events:read"]}`, "Idempotency-Key", "k-1")
	require.Equal(t, 201, resp.StatusCode)
	assert.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
	assert.Equal(t, pos, resp.Header.Get("Arrears-Position"))
	assert.NotContains(t, string(replay), created.Secret, "the secret is never stored, so never replayed")
	assert.Contains(t, string(replay), `"secret_withheld":true`)
	assert.Equal(t, int64(1), in.scalar(t, `SELECT count(*) FROM api_keys WHERE name = 'reporting'`))

	// Read-your-writes through relay → JetStream → projector.
	resp, body = do("GET", "/v1/streams/"+created.ID+"?min_position="+pos, created.Secret, "")
	require.Equal(t, 200, resp.StatusCode, string(body))
	assert.Contains(t, string(body), `"last_event_type":"api_key.created"`)

	// Token exchange, then revocation kills key and token.
	form := "grant_type=client_credentials&client_id=" + created.ID + "&client_secret=" + created.Secret
	resp, body = do("POST", "/v1/oauth2/token", "", form, "Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, 200, resp.StatusCode, string(body))
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	require.NoError(t, json.Unmarshal(body, &tok))
	assert.Equal(t, 3600, tok.ExpiresIn)
	resp, _ = do("GET", "/v1/organization", tok.AccessToken, "")
	assert.Equal(t, 200, resp.StatusCode)
	resp, body = do("DELETE", "/v1/api-keys/"+created.ID, secret, "")
	require.Equal(t, 200, resp.StatusCode, string(body))
	for _, k := range []string{created.Secret, tok.AccessToken} {
		resp, _ = do("GET", "/v1/organization", k, "")
		assert.Equal(t, 401, resp.StatusCode)
	}

	// The CLI sees the revocation.
	out, _, code = runTool(t, 60*time.Second, in.env(), "keys", "list", "--tenant", "Acme Lending")
	require.Zero(t, code)
	assert.Regexp(t, created.ID+`.*revoked`, out)
	assert.False(t, bytes.Contains([]byte(out), []byte(created.Secret)))
	srv.Stop(30 * time.Second)
}
