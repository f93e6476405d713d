package api_test

// POST /v1/oauth2/token: OAuth2 client credentials.

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// requireOAuthError requires an RFC 6749 error (also a problem document).
func requireOAuthError(t *testing.T, r *response, status int, code string) {
	t.Helper()
	p := r.problem(t, status)
	require.Equal(t, code, p.Error, "body: %s", r.Body)
	require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	if status == http.StatusUnauthorized {
		require.NotEmpty(t, r.Header.Get("WWW-Authenticate"))
	}
}

func TestOAuth2Token(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "OAuth")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "client", Scopes: []string{"keys:read", "events:read"}})
	testKey := e.key(t, ten.ID, eventstore.NewKey{Name: "test client", Mode: domain.ModeTest})
	roKey := e.key(t, ten.ID, eventstore.NewKey{Name: "ro client", ReadOnly: true})
	full := e.key(t, ten.ID, eventstore.NewKey{Name: "admin"})

	for _, basic := range []bool{true, false} {
		name := map[bool]string{true: "HTTP Basic", false: "form fields"}[basic]
		t.Run(name, func(t *testing.T) {
			r := e.token(t, basic, k.ID, k.Secret)
			require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
			require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
			var tok struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int    `json:"expires_in"`
				Scope       string `json:"scope"`
			}
			r.decode(t, &tok)
			require.Equal(t, "Bearer", tok.TokenType)
			require.InDelta(t, 3600, tok.ExpiresIn, 1) // one hour, rounded to seconds
			require.Equal(t, "keys:read events:read", tok.Scope)
			require.True(t, strings.HasPrefix(tok.AccessToken, "tok_"))

			org := e.get(t, tok.AccessToken, "/v1/organization")
			require.Equal(t, http.StatusOK, org.Status)
			o := org.object(t)
			require.Equal(t, ten.ID, o["id"])
			require.Equal(t, "live", o["mode"])
			require.Equal(t, map[string]any{"id": k.ID, "scopes": []any{"keys:read", "events:read"}, "read_only": false}, o["key"])
			// The token carries the key's scopes.
			require.Equal(t, http.StatusOK, e.get(t, tok.AccessToken, "/v1/api-keys").Status)
			requireProblem(t, e.post(t, tok.AccessToken, "/v1/api-keys", map[string]any{"name": "by token"}), http.StatusForbidden, "forbidden", "missing_scope")
			// X-Api-Key takes a token too.
			r = e.send(t, req{Method: http.MethodGet, Path: "/v1/organization", Header: []string{"X-Api-Key", tok.AccessToken}})
			require.Equal(t, http.StatusOK, r.Status)
		})
	}

	t.Run("mode and read-only carried", func(t *testing.T) {
		tok := e.accessToken(t, true, testKey)
		require.Equal(t, "test", e.get(t, tok, "/v1/organization").object(t)["mode"])
		made := e.createKey(t, tok, map[string]any{"name": "by test token"})
		require.Equal(t, domain.ModeTest, made.Mode)
		require.Equal(t, http.StatusNotFound, e.get(t, tok, "/v1/api-keys/"+k.ID).Status)

		tok = e.accessToken(t, false, roKey)
		requireProblem(t, e.post(t, tok, "/v1/api-keys", map[string]any{"name": "ro token"}), http.StatusForbidden, "forbidden", "read_only_key")
	})

	t.Run("refused", func(t *testing.T) {
		tok := e.accessToken(t, true, k)
		tokens := e.count(t, `SELECT count(*) FROM access_tokens`)
		mangled := []byte(k.Secret)
		mangled[len(mangled)-1] ^= 1 // another alphanumeric
		for _, c := range []struct {
			name       string
			id, secret string
		}{
			{"wrong secret", k.ID, testKey.Secret},
			{"mangled secret", k.ID, string(mangled)},
			{"unknown client", e.freshID(k.ID), k.Secret},
			{"another key's id", testKey.ID, k.Secret},
			{"a token as the secret", k.ID, tok},
			{"no secret", k.ID, ""},
			{"no client", "", k.Secret},
		} {
			for _, basic := range []bool{true, false} {
				requireOAuthError(t, e.token(t, basic, c.id, c.secret), http.StatusUnauthorized, "invalid_client")
			}
		}
		for _, gt := range []string{"password", "authorization_code", "refresh_token"} {
			r := e.token(t, true, k.ID, k.Secret, "grant_type", gt)
			requireOAuthError(t, r, http.StatusBadRequest, "unsupported_grant_type")
		}
		require.Equal(t, tokens, e.count(t, `SELECT count(*) FROM access_tokens`), "a refused exchange issued a token")
	})

	t.Run("revoked key", func(t *testing.T) {
		victim := e.createKey(t, full.Secret, map[string]any{"name": "to revoke"})
		tok := e.accessToken(t, true, victim)
		for _, s := range []string{victim.Secret, tok} {
			require.Equal(t, http.StatusOK, e.get(t, s, "/v1/organization").Status)
		}
		require.Equal(t, http.StatusOK, e.delete(t, full.Secret, "/v1/api-keys/"+victim.ID).Status)
		for _, s := range []string{victim.Secret, tok} {
			requireProblem(t, e.get(t, s, "/v1/organization"), http.StatusUnauthorized, "unauthorized", "")
		}
		requireOAuthError(t, e.token(t, true, victim.ID, victim.Secret), http.StatusUnauthorized, "invalid_client")
	})

	t.Run("expired key", func(t *testing.T) {
		expires := time.Now().Add(1500 * time.Millisecond).UTC()
		short := e.createKey(t, full.Secret, map[string]any{"name": "short-lived", "expires_at": expires.Format(time.RFC3339Nano)})
		require.NotNil(t, short.ExpiresAt)
		require.WithinDuration(t, expires, *short.ExpiresAt, time.Millisecond)
		tok := e.accessToken(t, false, short)
		for _, s := range []string{short.Secret, tok} {
			require.Equal(t, http.StatusOK, e.get(t, s, "/v1/organization").Status)
		}
		time.Sleep(time.Until(*short.ExpiresAt) + 10*time.Millisecond)
		for _, s := range []string{short.Secret, tok} {
			requireProblem(t, e.get(t, s, "/v1/organization"), http.StatusUnauthorized, "unauthorized", "")
		}
		requireOAuthError(t, e.token(t, true, short.ID, short.Secret), http.StatusUnauthorized, "invalid_client")
	})

	t.Run("expired token", func(t *testing.T) {
		ctx := context.Background()
		for _, c := range []struct {
			expires time.Duration
			status  int
		}{{-time.Second, http.StatusUnauthorized}, {time.Minute, http.StatusOK}} {
			tok := "tok_" + e.freshID("x_")[2:] + "abcdefghijklmn"
			h := sha256.Sum256([]byte(tok))
			_, err := e.pool.Exec(ctx, `INSERT INTO access_tokens (token_hash, key_id, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')`,
				h[:], k.ID, c.expires.Milliseconds())
			require.NoError(t, err)
			require.Equal(t, c.status, e.get(t, tok, "/v1/organization").Status)
		}
	})
}
