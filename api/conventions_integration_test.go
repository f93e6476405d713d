package api_test

// Errors, request ids, organization, pagination, rate limits and
// read-your-writes.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Errors")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "k"})

	t.Run("unknown route", func(t *testing.T) {
		for _, path := range []string{"/v1/nope", "/nope", "/v1/api-keys/" + k.ID + "/extra", "/v2/api-keys"} {
			for _, auth := range []string{"", k.Secret} {
				r := e.send(t, req{Method: http.MethodGet, Path: path, Auth: auth, OffSpec: true})
				requireProblem(t, r, http.StatusNotFound, "not-found", "")
			}
		}
	})

	t.Run("wrong method", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			allow        []string
		}{
			{http.MethodPut, "/v1/api-keys", []string{http.MethodGet, http.MethodPost}},
			{http.MethodPatch, "/v1/organization", []string{http.MethodGet}},
			{http.MethodPost, "/v1/streams/" + k.ID, []string{http.MethodGet}},
			{http.MethodGet, "/v1/oauth2/token", []string{http.MethodPost}},
			{http.MethodPost, "/healthz", []string{http.MethodGet}},
		} {
			r := e.send(t, req{Method: c.method, Path: c.path, Auth: k.Secret, Body: "{}", OffSpec: true})
			requireProblem(t, r, http.StatusMethodNotAllowed, "method-not-allowed", "")
			// RFC 9110 §15.5.6: a 405 MUST carry Allow.
			var allow []string
			for _, v := range r.Header.Values("Allow") {
				for m := range strings.SplitSeq(v, ",") {
					allow = append(allow, strings.TrimSpace(m))
				}
			}
			for _, m := range c.allow {
				require.Contains(t, allow, m, "%s %s: Allow %q", c.method, c.path, allow)
			}
		}
	})

	t.Run("request bodies", func(t *testing.T) {
		for _, c := range []struct {
			name, body, field string
			_                 string
		}{
			{"empty", "", "body", ""},
			{"blank", "  \n", "body", ""},
			{"truncated", `{"name":`, "body", ""},
			{"not JSON", `name=x`, "body", ""},
			{"bare word", `{name}`, "body", ""},
			{"an array", `[{"name":"x"}]`, "body", ""},
			{"a string", `"x"`, "body", ""},
			{"two values", `{"name":"x"}{"name":"y"}`, "body", ""},
			{"unknown field", `{"name":"x","nmae":"y"}`, "nmae", ""},
			{"name not a string", `{"name":5}`, "name", ""},
			{"name an object", `{"name":{"a":1}}`, "name", ""},
			{"scopes not an array", `{"scopes":"keys:read"}`, "scopes", ""},
			{"scope not a string", `{"scopes":[1]}`, "scopes", ""},
			{"read_only not a boolean", `{"read_only":"yes"}`, "read_only", ""},
			{"expires_at not a string", `{"expires_at":5}`, "expires_at", ""},
			{"expires_at not a timestamp", `{"expires_at":"tomorrow"}`, "expires_at", ""},
			{"expires_at in the past", `{"expires_at":"2001-01-01T00:00:00Z"}`, "expires_at", ""},
			{"name too long", `{"name":"` + strings.Repeat("n", 201) + `"}`, "name", ""},
			{"bad scope", `{"scopes":["keys:read","keys:delete"]}`, "scopes[1]", ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := e.post(t, k.Secret, "/v1/api-keys", c.body)
				requireInvalid(t, r, c.field)
			})
		}
		t.Run("too large", func(t *testing.T) {
			big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
			requireInvalid(t, e.post(t, k.Secret, "/v1/api-keys", big), "body")
		})
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM api_keys`))
	})

	t.Run("credentials", func(t *testing.T) {
		r := e.get(t, "", "/v1/organization")
		requireProblem(t, r, http.StatusUnauthorized, "unauthorized", "")
		require.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer")
		for _, bad := range []string{"sk_live_" + strings.Repeat("x", 40), "tok_" + strings.Repeat("x", 40), "nonsense", k.Secret + "x", k.Secret[:len(k.Secret)-1]} {
			r := e.get(t, bad, "/v1/organization")
			requireProblem(t, r, http.StatusUnauthorized, "unauthorized", "")
			require.Contains(t, r.Header.Get("WWW-Authenticate"), "invalid_token")
		}
		// Another scheme is no credential.
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(k.ID+":"+k.Secret))
		r = e.send(t, req{Method: http.MethodGet, Path: "/v1/organization", Header: []string{"Authorization", basic}})
		requireProblem(t, r, http.StatusUnauthorized, "unauthorized", "")
		require.NotEmpty(t, r.Header.Get("WWW-Authenticate"))
		// X-Api-Key is accepted.
		r = e.send(t, req{Method: http.MethodGet, Path: "/v1/organization", Header: []string{"X-Api-Key", k.Secret}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		// Every /v1 route but the token endpoint needs a credential.
		for _, rt := range e.routes(t) {
			if !strings.HasPrefix(rt.Pattern, "/v1/") || rt.Pattern == "/v1/oauth2/token" {
				continue
			}
			r := e.send(t, req{Method: rt.Method, Path: strings.ReplaceAll(rt.Pattern, "{id}", k.ID), Body: "{}"})
			requireProblem(t, r, http.StatusUnauthorized, "unauthorized", "")
			require.NotEmpty(t, r.Header.Get("WWW-Authenticate"), "%s %s", rt.Method, rt.Pattern)
		}
	})

	t.Run("request ids", func(t *testing.T) {
		generated := regexp.MustCompile(`^req_[0-9A-HJKMNP-TV-Z]{26}$`)
		for _, c := range []struct {
			path, auth string
			status     int
		}{
			{"/v1/organization", k.Secret, http.StatusOK},
			{"/v1/organization", "", http.StatusUnauthorized},
			{"/v1/api-keys/" + e.freshID(k.ID), k.Secret, http.StatusNotFound},
			{"/v1/api-keys?limit=0", k.Secret, http.StatusUnprocessableEntity},
			{"/healthz", "", http.StatusOK},
		} {
			mine := "client-" + strconv.Itoa(c.status) + "-" + strings.Repeat("r", 10)
			r := e.send(t, req{Method: http.MethodGet, Path: c.path, Auth: c.auth, Header: []string{"X-Request-Id", mine}})
			require.Equal(t, c.status, r.Status)
			require.Equal(t, mine, r.Header.Get("X-Request-Id"))
			if c.status >= 400 {
				require.Equal(t, mine, r.problem(t, c.status).RequestID)
			}
			for _, sent := range []string{"", "has space", strings.Repeat("x", 201), "naïve"} {
				r := e.send(t, req{Method: http.MethodGet, Path: c.path, Auth: c.auth, Header: []string{"X-Request-Id", sent}})
				id := r.Header.Get("X-Request-Id")
				require.Regexp(t, generated, id, "sent %q", sent)
				if c.status >= 400 {
					require.Equal(t, id, r.problem(t, c.status).RequestID)
				}
			}
		}
		// A write records the request id in its event's metadata.
		r := e.post(t, k.Secret, "/v1/api-keys", map[string]any{"name": "traced"}, "X-Request-Id", "trace-me-1")
		require.Equal(t, http.StatusCreated, r.Status)
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE metadata->>'request_id' = 'trace-me-1' AND type = 'api_key.created'`))
	})

	t.Run("problem types resolve", func(t *testing.T) {
		for _, slug := range []string{"invalid", "not-found", "method-not-allowed", "conflict", "forbidden", "unauthorized", "rate-limited", "unavailable", "internal"} {
			r := e.get(t, "", api.ProblemTypePrefix+slug)
			require.Equal(t, http.StatusOK, r.Status)
			require.Equal(t, "application/json", r.Header.Get("Content-Type"))
			o := r.object(t)
			require.Equal(t, api.ProblemTypePrefix+slug, o["type"])
			require.NotEmpty(t, o["title"])
			require.NotEmpty(t, o["description"])
		}
		requireProblem(t, e.get(t, "", "/problems/no-such-problem"), http.StatusNotFound, "not-found", "")
	})
}

func TestOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Acme Collections")
	for _, nk := range []eventstore.NewKey{
		{Name: "full"},
		{Name: "scoped", Scopes: []string{"keys:read", "events:write"}},
		{Name: "ro test", Mode: domain.ModeTest, ReadOnly: true, Scopes: []string{"claims:read"}},
	} {
		k := e.key(t, ten.ID, nk)
		r := e.get(t, k.Secret, "/v1/organization")
		require.Equal(t, http.StatusOK, r.Status)
		var o struct {
			Object    string    `json:"object"`
			ID        string    `json:"id"`
			Name      string    `json:"name"`
			CreatedAt time.Time `json:"created_at"`
			Mode      string    `json:"mode"`
			Key       struct {
				ID       string   `json:"id"`
				Scopes   []string `json:"scopes"`
				ReadOnly bool     `json:"read_only"`
			} `json:"key"`
		}
		r.decode(t, &o)
		require.Equal(t, "organization", o.Object)
		require.Equal(t, ten.ID, o.ID)
		require.Equal(t, "Acme Collections", o.Name)
		require.WithinDuration(t, ten.CreatedAt, o.CreatedAt, time.Millisecond)
		require.Equal(t, string(k.Mode), o.Mode)
		require.Equal(t, k.ID, o.Key.ID)
		require.Equal(t, k.Scopes, o.Key.Scopes)
		require.NotNil(t, o.Key.Scopes)
		require.Equal(t, nk.ReadOnly, o.Key.ReadOnly)
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Pages")
	caller := e.key(t, ten.ID, eventstore.NewKey{Name: "caller", Scopes: []string{"keys:read"}})
	want := []string{caller.ID}
	for i := range 7 {
		want = append(want, e.key(t, ten.ID, eventstore.NewKey{Name: fmt.Sprintf("page %d", i)}).ID)
	}
	// Not listed: another mode, another tenant.
	e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	e.key(t, e.tenant(t, "Other").ID, eventstore.NewKey{Name: "other"})
	slices.Sort(want)

	type page struct {
		Data []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
			Secret string `json:"secret"`
		} `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}
	walk := func(t *testing.T, limit int) (ids []string, sizes []int) {
		path := fmt.Sprintf("/v1/api-keys?limit=%d", limit)
		for range 20 {
			r := e.get(t, caller.Secret, path)
			require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
			require.Contains(t, string(r.Body), `"next_cursor":`) // present, null at the end
			var p page
			r.decode(t, &p)
			sizes = append(sizes, len(p.Data))
			for _, k := range p.Data {
				require.Equal(t, "api_key", k.Object)
				require.Empty(t, k.Secret)
				ids = append(ids, k.ID)
			}
			if p.NextCursor == nil {
				return ids, sizes
			}
			require.Len(t, p.Data, limit, "a page before the last is full")
			path = fmt.Sprintf("/v1/api-keys?limit=%d&cursor=%s", limit, *p.NextCursor)
		}
		t.Fatal("no last page after 20")
		return nil, nil
	}
	for _, c := range []struct {
		limit int
		sizes []int
	}{
		{3, []int{3, 3, 2}},
		{4, []int{4, 4}}, // exactly two pages: no empty third
		{8, []int{8}},
		{1, []int{1, 1, 1, 1, 1, 1, 1, 1}},
		{200, []int{8}},
		{50, []int{8}},
	} {
		t.Run(fmt.Sprintf("limit=%d", c.limit), func(t *testing.T) {
			ids, sizes := walk(t, c.limit)
			require.Equal(t, c.sizes, sizes)
			require.Equal(t, want, ids, "every key once, in order")
		})
	}
	t.Run("default limit", func(t *testing.T) {
		var p page
		e.get(t, caller.Secret, "/v1/api-keys").decode(t, &p)
		require.Len(t, p.Data, len(want))
		require.Nil(t, p.NextCursor)
	})
	t.Run("invalid", func(t *testing.T) {
		cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for q, field := range map[string]string{
			"limit=0":         "query:limit",
			"limit=201":       "query:limit",
			"limit=-1":        "query:limit",
			"limit=abc":       "query:limit",
			"limit=1.5":       "query:limit",
			"cursor=garbage!": "query:cursor",
			"cursor=" + cursor(`{"v":2,"a":"key_x"}`):    "query:cursor",
			"cursor=" + cursor(`{"v":1,"a":""}`):         "query:cursor",
			"cursor=" + cursor(`not json`):               "query:cursor",
			"limit=0&cursor=" + cursor(`{"v":1,"a":""}`): "query:cursor",
		} {
			t.Run(q, func(t *testing.T) {
				requireInvalid(t, e.get(t, caller.Secret, "/v1/api-keys?"+q), field)
			})
		}
	})
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{config: api.Config{RateLimit: api.RateLimit{Requests: 3, Per: time.Minute}}})
	ten := e.tenant(t, "Limited")
	k1 := e.key(t, ten.ID, eventstore.NewKey{Name: "k1"})
	k2 := e.key(t, ten.ID, eventstore.NewKey{Name: "k2"})
	header := func(r *response, name string) int {
		t.Helper()
		n, err := strconv.Atoi(r.Header.Get(name))
		require.NoError(t, err, "%s: %q", name, r.Header.Get(name))
		return n
	}
	for i, path := range []string{"/v1/organization", "/v1/api-keys", "/v1/api-keys/" + k2.ID} {
		r := e.get(t, k1.Secret, path)
		require.Equal(t, http.StatusOK, r.Status)
		require.Equal(t, 3, header(r, "X-RateLimit-Limit"))
		require.Equal(t, 2-i, header(r, "X-RateLimit-Remaining"))
		require.GreaterOrEqual(t, header(r, "X-RateLimit-Reset"), 0)
		require.LessOrEqual(t, header(r, "X-RateLimit-Reset"), 60)
		require.Empty(t, r.Header.Get("Retry-After"))
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := e.send(t, req{Method: method, Path: "/v1/api-keys", Auth: k1.Secret, Body: map[string]any{"name": "limited"}})
		requireProblem(t, r, http.StatusTooManyRequests, "rate-limited", "")
		require.GreaterOrEqual(t, header(r, "Retry-After"), 1)
		require.Equal(t, 3, header(r, "X-RateLimit-Limit"))
		require.Equal(t, 0, header(r, "X-RateLimit-Remaining"))
		require.Positive(t, header(r, "X-RateLimit-Reset"))
	}
	require.Zero(t, e.count(t, `SELECT count(*) FROM api_keys WHERE name = 'limited'`))
	// Another key has its own budget.
	r := e.get(t, k2.Secret, "/v1/organization")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, 2, header(r, "X-RateLimit-Remaining"))
	// Unauthenticated requests and public endpoints are not the key's.
	require.Equal(t, http.StatusUnauthorized, e.get(t, "", "/v1/organization").Status)
	require.Equal(t, http.StatusOK, e.get(t, "", "/healthz").Status)
}

func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "RYW")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "k"})

	type stream struct {
		Object        string `json:"object"`
		ID            string `json:"id"`
		Type          string `json:"type"`
		Version       int64  `json:"version"`
		EventCount    int64  `json:"event_count"`
		LastEventType string `json:"last_event_type"`
		LastPosition  int64  `json:"last_position"`
	}
	for i := range 5 { // every write, read at once
		created := e.post(t, k.Secret, "/v1/api-keys", map[string]any{"name": fmt.Sprintf("ryw %d", i)})
		require.Equal(t, http.StatusCreated, created.Status)
		p := created.position(t)
		id := created.object(t)["id"].(string)
		var s stream
		r := e.get(t, k.Secret, fmt.Sprintf("/v1/streams/%s?min_position=%d", id, p))
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		r.decode(t, &s)
		require.Equal(t, stream{"stream", id, "api_key", 1, 1, "api_key.created", p}, s)

		revoked := e.delete(t, k.Secret, "/v1/api-keys/"+id)
		require.Equal(t, http.StatusOK, revoked.Status)
		p2 := revoked.position(t)
		require.Greater(t, p2, p)
		r = e.get(t, k.Secret, fmt.Sprintf("/v1/streams/%s?min_position=%d", id, p2))
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		r.decode(t, &s)
		require.Equal(t, stream{"stream", id, "api_key", 2, 2, "api_key.revoked", p2}, s)
	}
	for _, v := range []string{"abc", "-1", "1.5", "9223372036854775808", "0x10"} {
		requireInvalid(t, e.get(t, k.Secret, "/v1/streams/"+k.ID+"?min_position="+v), "query:min_position")
		requireInvalid(t, e.get(t, k.Secret, "/v1/api-keys?min_position="+v), "query:min_position")
	}
}

// TestReadYourWritesWaitLimit: with the projection stopped, a read that asks
// for a later position answers 503 after Config.WaitLimit.
func TestReadYourWritesWaitLimit(t *testing.T) {
	t.Parallel()
	const limit = 300 * time.Millisecond
	e := newEnv(t, envOptions{config: api.Config{WaitLimit: limit}}) // no projector
	ten := e.tenant(t, "Stalled")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "k"})
	created := e.createKey(t, k.Secret, map[string]any{"name": "unseen"})
	start := time.Now()
	r := e.get(t, k.Secret, fmt.Sprintf("/v1/streams/%s?min_position=%d", created.ID, created.Position))
	took := time.Since(start)
	p := requireProblem(t, r, http.StatusServiceUnavailable, "unavailable", "")
	require.Contains(t, p.Detail, strconv.FormatInt(created.Position, 10))
	require.GreaterOrEqual(t, took, limit)
	require.Less(t, took, limit+2*time.Second)
	// Reads that need no projection do not wait.
	require.Equal(t, http.StatusOK, e.get(t, k.Secret, fmt.Sprintf("/v1/api-keys/%s?min_position=%d", created.ID, created.Position)).Status)
	require.Equal(t, http.StatusNotFound, e.get(t, k.Secret, "/v1/streams/"+created.ID).Status)
}
