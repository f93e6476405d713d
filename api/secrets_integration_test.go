package api_test

// No plaintext secret anywhere in the database.

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// secretLike matches what a key or token secret looks like.
var secretLike = regexp.MustCompile(`sk_(live|test)_[A-Za-z0-9]{20,}|tok_[A-Za-z0-9]{20,}`)

// dumpDatabase returns the content of every table of every non-system
// schema: each row as text (t::text), and every bytea value raw (a
// plaintext stored in bytea shows only as hex in the row text).
func (e *env) dumpDatabase(t *testing.T) map[string][]string {
	t.Helper()
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgx.Identifier, error) {
		var s, n string
		return pgx.Identifier{s, n}, r.Scan(&s, &n)
	})
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	out := map[string][]string{}
	for _, tbl := range tables {
		name := tbl.Sanitize()
		rows, err := e.pool.Query(ctx, `SELECT t::text FROM `+name+` t`)
		require.NoError(t, err)
		text, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		out[name] = append(out[name], text...)
		rows, err = e.pool.Query(ctx, `SELECT * FROM `+name)
		require.NoError(t, err)
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					out[name] = append(out[name], string(b))
				}
			}
		}
		require.NoError(t, rows.Err())
	}
	return out
}

// findSecrets returns where the dump holds anything secret-like or any
// 20-character piece of a secret in issued (or its hex or base64 form).
func findSecrets(dump map[string][]string, issued []string) []string {
	const w = 20
	pieces := map[string]string{}
	for _, s := range issued {
		random := s[strings.IndexByte(s, '_')+1:]
		random = random[strings.IndexByte(random, '_')+1:] // sk_live_ has two
		for i := 0; i+w <= len(random); i++ {
			pieces[random[i:i+w]] = s
		}
	}
	var found []string
	for table, values := range dump {
		for _, v := range values {
			if m := secretLike.FindString(v); m != "" {
				found = append(found, fmt.Sprintf("%s: secret-like %q", table, m))
			}
			for i := 0; i+w <= len(v); i++ {
				if s, ok := pieces[v[i:i+w]]; ok {
					found = append(found, fmt.Sprintf("%s: a piece of issued secret %.12s…", table, s))
					break
				}
			}
			if len(issued) <= 100 {
				for _, s := range issued {
					if strings.Contains(v, hex.EncodeToString([]byte(s))) || strings.Contains(v, base64.StdEncoding.EncodeToString([]byte(s))) ||
						strings.Contains(v, base64.RawURLEncoding.EncodeToString([]byte(s))) {
						found = append(found, fmt.Sprintf("%s: issued secret %.12s… encoded", table, s))
					}
				}
			}
		}
	}
	return found
}

// requireNoSecrets requires that no issued secret, and nothing that looks
// like one, is stored anywhere in the database.
func (e *env) requireNoSecrets(t *testing.T, issued []string) {
	t.Helper()
	for _, s := range issued {
		require.Regexp(t, secretLike, s, "not an issued secret")
	}
	if found := findSecrets(e.dumpDatabase(t), issued); len(found) > 0 {
		t.Fatalf("%d secrets stored in the database, e.g. %q", len(found), found[:min(5, len(found))])
	}
}

// token exchanges client credentials at POST /v1/oauth2/token, with HTTP
// Basic or as form fields.
func (e *env) token(t *testing.T, basic bool, id, secret string, form ...string) *response {
	t.Helper()
	v := url.Values{"grant_type": {"client_credentials"}}
	for i := 0; i+1 < len(form); i += 2 {
		v.Set(form[i], form[i+1])
	}
	h := []string{"Content-Type", "application/x-www-form-urlencoded"}
	if basic {
		h = append(h, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret))))
	} else {
		v.Set("client_id", id)
		v.Set("client_secret", secret)
	}
	return e.send(t, req{Method: http.MethodPost, Path: "/v1/oauth2/token", Body: v.Encode(), Header: h})
}

// accessToken exchanges a key for a token and returns it.
func (e *env) accessToken(t *testing.T, basic bool, k apiKey) string {
	t.Helper()
	r := e.token(t, basic, k.ID, k.Secret)
	require.Equal(t, http.StatusOK, r.Status, "token: %s", r.Body)
	tok, _ := r.object(t)["access_token"].(string)
	require.True(t, strings.HasPrefix(tok, "tok_"), "access_token %q", tok)
	return tok
}

func TestNoPlaintextSecretInDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Secrets")
	live := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	issued := []string{live.Secret, test.Secret}

	// Keys made through the API, plain and with Idempotency-Key (replayed).
	var made []apiKey
	for _, c := range []struct {
		secret string
		body   string
		idem   string
	}{
		{live.Secret, `{"name":"plain live"}`, ""},
		{test.Secret, `{"name":"plain test"}`, ""},
		{live.Secret, `{"name":"idem live","scopes":["keys:write"]}`, "secrets-1"},
		{test.Secret, `{"name":"idem test","read_only":true}`, "secrets-1"},
		{live.Secret, `{"name":"idem live 2"}`, "secrets-2"},
	} {
		var h []string
		if c.idem != "" {
			h = []string{"Idempotency-Key", c.idem}
		}
		k := e.createKey(t, c.secret, c.body, h...)
		made = append(made, k)
		issued = append(issued, k.Secret)
		if c.idem != "" {
			for range 2 {
				r := e.post(t, c.secret, "/v1/api-keys", c.body, h...)
				require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))
				require.NotContains(t, r.object(t), "secret")
			}
		}
	}
	// Tokens, used for reads and a write (the key made with a token too).
	for i, k := range []apiKey{live, test, made[2]} {
		tok := e.accessToken(t, i%2 == 0, k)
		issued = append(issued, tok)
		require.Equal(t, http.StatusOK, e.get(t, tok, "/v1/organization").Status)
		if k.ID != made[2].ID {
			byToken := e.createKey(t, tok, map[string]any{"name": "by token"}, "Idempotency-Key", "by-token")
			issued = append(issued, byToken.Secret)
		}
	}
	// Revocation with Idempotency-Key, replayed: the last write.
	var lastWrite int64
	for range 2 {
		r := e.delete(t, live.Secret, "/v1/api-keys/"+made[4].ID, "Idempotency-Key", "revoke")
		require.Equal(t, http.StatusOK, r.Status)
		lastWrite = r.position(t)
	}
	// Wrong secrets presented are not stored either.
	wrong := []string{"sk_live_" + strings.Repeat("Wr0ng", 8), "tok_" + strings.Repeat("Wr0ng", 8)}
	for _, w := range wrong {
		require.Equal(t, http.StatusUnauthorized, e.get(t, w, "/v1/organization").Status)
	}
	require.Equal(t, http.StatusUnauthorized, e.token(t, true, live.ID, wrong[0]).Status)
	issued = append(issued, wrong...)
	// Everything projected (stream_heads, relay_log) before looking.
	r := e.get(t, live.Secret, fmt.Sprintf("/v1/streams/%s?min_position=%d", made[4].ID, lastWrite))
	require.Equal(t, "api_key.revoked", r.object(t)["last_event_type"])

	e.requireNoSecrets(t, issued)

	t.Run("the scan finds a planted secret", func(t *testing.T) {
		ctx := context.Background()
		_, err := e.pool.Exec(ctx, `CREATE TABLE canary (b bytea, j jsonb)`)
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = e.pool.Exec(ctx, `DROP TABLE canary`) })
		for _, c := range []struct {
			b []byte
			j string
		}{
			{[]byte(`{"secret":"` + issued[3] + `"}`), `{}`},                              // raw in bytea
			{nil, `{"x":"` + issued[4][10:35] + `"}`},                                     // a piece, no prefix
			{nil, `{"x":"` + base64.StdEncoding.EncodeToString([]byte(issued[5])) + `"}`}, // encoded
			{nil, `{"x":"sk_test_` + strings.Repeat("a", 30) + `"}`},                      // looks like one
		} {
			_, err := e.pool.Exec(ctx, `DELETE FROM canary`)
			require.NoError(t, err)
			_, err = e.pool.Exec(ctx, `INSERT INTO canary VALUES ($1, $2)`, c.b, c.j)
			require.NoError(t, err)
			require.NotEmpty(t, findSecrets(e.dumpDatabase(t), issued), "planted %s %s", c.b, c.j)
		}
	})
}
