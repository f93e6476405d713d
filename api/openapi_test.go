package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	imgpng "image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/api/spectest"
	"github.com/arrears/arrears/domain"
)

var quiet = slog.New(slog.DiscardHandler)

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type operation struct {
	Method, Path string
	Op           map[string]any
	Item         map[string]any
}

func operations(t *testing.T, doc map[string]any) []operation {
	t.Helper()
	var ops []operation
	for path, item := range doc["paths"].(map[string]any) {
		im := item.(map[string]any)
		for _, m := range httpMethods {
			if op, ok := im[m].(map[string]any); ok {
				ops = append(ops, operation{Method: strings.ToUpper(m), Path: path, Op: op, Item: im})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Path+ops[i].Method < ops[j].Path+ops[j].Method })
	if len(ops) == 0 {
		t.Fatal("the document has no operations")
	}
	return ops
}

// deref follows local $refs.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v is not an object", v)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		target, err := spectest.Pointer(doc, strings.TrimPrefix(ref, "#"))
		if err != nil {
			t.Fatalf("$ref %s: %v", ref, err)
		}
		v = target
	}
	t.Fatal("$ref chain too long")
	return nil
}

// TestOpenAPIDocument checks the document's own consistency.
func TestOpenAPIDocument(t *testing.T) {
	spec := spectest.Load(t)
	doc := spec.Document()

	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == "" || info["version"] == "" {
		t.Error("info.title and info.version are required")
	}

	t.Run("valid against the OpenAPI 3.1 schema", func(t *testing.T) {
		// The official schema of OpenAPI 3.1 documents
		// (https://spec.openapis.org/oas/3.1/schema/2022-10-07, Apache-2.0,
		// copied from github.com/pb33f/libopenapi v0.42.3). It checks the
		// document's structure: misspelt or misplaced keywords, parameters
		// without schema, bad security requirements …
		raw, err := os.ReadFile("openapi/testdata/oas-3.1-schema-2022-10-07.json")
		if err != nil {
			t.Fatal(err)
		}
		meta, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		const u = "https://spec.openapis.org/oas/3.1/schema/2022-10-07"
		if err := c.AddResource(u, meta); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile(u)
		if err != nil {
			t.Fatal(err)
		}
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(api.OpenAPIDocument()))
		if err := sch.Validate(inst); err != nil {
			t.Errorf("the document is not a valid OpenAPI 3.1 document: %v", err)
		}
		// The check has teeth: a misspelt keyword fails it.
		broken, _ := jsonschema.UnmarshalJSON(bytes.NewReader(bytes.Replace(api.OpenAPIDocument(), []byte(`"operationId"`), []byte(`"operationID"`), 1)))
		if sch.Validate(broken) == nil {
			t.Error("a misspelt operationId passed the OpenAPI schema")
		}
	})

	t.Run("every $ref resolves", func(t *testing.T) {
		var walk func(v any, at string)
		n := 0
		walk = func(v any, at string) {
			switch x := v.(type) {
			case map[string]any:
				if ref, ok := x["$ref"].(string); ok {
					n++
					p, local := strings.CutPrefix(ref, "#")
					if !local {
						t.Errorf("%s: $ref %s is not local", at, ref)
					} else if _, err := spectest.Pointer(doc, p); err != nil {
						t.Errorf("%s: $ref %s does not resolve: %v", at, ref, err)
					}
				}
				for k, e := range x {
					walk(e, at+"/"+k)
				}
			case []any:
				for i, e := range x {
					walk(e, fmt.Sprintf("%s/%d", at, i))
				}
			}
		}
		walk(doc, "")
		if n == 0 {
			t.Error("no $ref at all: components are not used")
		}
	})

	t.Run("every schema compiles and every example matches its schema", func(t *testing.T) {
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		const u = "https://arrears.invalid/openapi/v1.json"
		raw, _ := jsonschema.UnmarshalJSON(bytes.NewReader(api.OpenAPIDocument()))
		if err := c.AddResource(u, raw); err != nil {
			t.Fatal(err)
		}
		compile := func(ptr string) *jsonschema.Schema {
			s, err := c.Compile(u + "#" + (&url.URL{Fragment: ptr}).EscapedFragment())
			if err != nil {
				t.Errorf("schema %s does not compile: %v", ptr, err)
			}
			return s
		}
		schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
		for name := range schemas {
			compile("/components/schemas/" + name)
		}
		// Media type examples (request bodies and responses, also in
		// components) must validate against their schemas.
		var walk func(v any, ptr string)
		checked := 0
		walk = func(v any, ptr string) {
			m, ok := v.(map[string]any)
			if !ok {
				if a, ok := v.([]any); ok {
					for i, e := range a {
						walk(e, fmt.Sprintf("%s/%d", ptr, i))
					}
				}
				return
			}
			if strings.Contains(ptr, "/content/") && m["schema"] != nil {
				if ex, ok := m["example"]; ok {
					mt := ptr[strings.LastIndex(ptr, "/")+1:]
					mt = strings.ReplaceAll(mt, "~1", "/")
					if strings.Contains(mt, "json") {
						if s := compile(ptr + "/schema"); s != nil {
							if err := s.Validate(ex); err != nil {
								t.Errorf("example at %s does not match its schema: %v", ptr, err)
							}
							checked++
						}
					}
				}
				return
			}
			for k, e := range m {
				walk(e, ptr+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"))
			}
		}
		walk(raw, "")
		if checked < 5 {
			t.Errorf("only %d JSON examples checked", checked)
		}
	})

	t.Run("Scope names every resource", func(t *testing.T) {
		scope := doc["components"].(map[string]any)["schemas"].(map[string]any)["Scope"].(map[string]any)
		re, err := regexp.Compile(scope["pattern"].(string))
		if err != nil {
			t.Fatal(err)
		}
		desc, _ := info["description"].(string)
		for _, r := range domain.Resources {
			for _, a := range []string{"read", "write"} {
				if !re.MatchString(r + ":" + a) {
					t.Errorf("the Scope pattern refuses %s:%s", r, a)
				}
			}
			if !strings.Contains(desc, "`"+r+"`") {
				t.Errorf("the Scopes guide does not name the resource %s", r)
			}
		}
		for _, bad := range []string{"keys:admin", "nothing:read", "keys", ":read"} {
			if re.MatchString(bad) {
				t.Errorf("the Scope pattern accepts %q", bad)
			}
		}
	})

	t.Run("response objects are closed", func(t *testing.T) {
		// An undocumented field in a response must fail spectest: every
		// object schema with properties says additionalProperties: false.
		var walk func(v any, at string)
		walk = func(v any, at string) {
			switch x := v.(type) {
			case map[string]any:
				if _, ok := x["properties"]; ok && !strings.Contains(at, "/requestBody/") {
					ap, has := x["additionalProperties"]
					_, uneval := x["unevaluatedProperties"]
					if (!has || ap != false) && !uneval {
						t.Errorf("%s: object schema without additionalProperties: false", at)
					}
				}
				for k, e := range x {
					walk(e, at+"/"+k)
				}
			case []any:
				for i, e := range x {
					walk(e, fmt.Sprintf("%s/%d", at, i))
				}
			}
		}
		walk(doc["components"].(map[string]any)["schemas"], "/components/schemas")
		walk(doc["paths"], "/paths")
	})

	declaredTags := map[string]bool{}
	for _, tg := range doc["tags"].([]any) {
		declaredTags[tg.(map[string]any)["name"].(string)] = true
	}
	schemes := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)
	ids := map[string]string{}
	for _, o := range operations(t, doc) {
		name := o.Method + " " + o.Path
		t.Run(name, func(t *testing.T) {
			id, _ := o.Op["operationId"].(string)
			if id == "" {
				t.Error("no operationId")
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %s also used by %s", id, prev)
			}
			ids[id] = name
			tags, _ := o.Op["tags"].([]any)
			if len(tags) == 0 {
				t.Error("no tags")
			}
			for _, tg := range tags {
				if !declaredTags[tg.(string)] {
					t.Errorf("tag %v is not declared in the top-level tags", tg)
				}
			}
			if s, _ := o.Op["summary"].(string); s == "" {
				t.Error("no summary")
			}
			if s, _ := o.Op["description"].(string); s == "" {
				t.Error("no description")
			}

			// Security: explicit on every operation, naming declared schemes.
			sec, ok := o.Op["security"].([]any)
			if !ok {
				t.Error("no explicit security (use [] for public operations)")
			}
			for _, req := range sec {
				for scheme := range req.(map[string]any) {
					if _, ok := schemes[scheme]; !ok {
						t.Errorf("security scheme %s is not declared", scheme)
					}
				}
			}
			_, hasBody := o.Op["requestBody"]
			params := append(slices.Clone(asSlice(o.Item["parameters"])), asSlice(o.Op["parameters"])...)
			canFail := len(sec) > 0 || hasBody || len(params) > 0

			// Path parameters: exactly the template's.
			var inPath []string
			for _, p := range params {
				pm := deref(t, doc, p)
				if pm["in"] == "path" {
					inPath = append(inPath, pm["name"].(string))
					if pm["required"] != true {
						t.Errorf("path parameter %s must be required", pm["name"])
					}
				}
			}
			var inTemplate []string
			for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(o.Path, -1) {
				inTemplate = append(inTemplate, m[1])
			}
			sort.Strings(inPath)
			sort.Strings(inTemplate)
			if !slices.Equal(inPath, inTemplate) {
				t.Errorf("path parameters %v, template has %v", inPath, inTemplate)
			}

			// Writes under /v1 take Idempotency-Key (except the token exchange,
			// which issues a new token every time).
			if o.Method != "GET" && strings.HasPrefix(o.Path, "/v1/") && o.Path != "/v1/oauth2/token" {
				found := false
				for _, p := range params {
					pm := deref(t, doc, p)
					found = found || (pm["in"] == "header" && pm["name"] == "Idempotency-Key")
				}
				if !found {
					t.Error("write without the Idempotency-Key parameter")
				}
			}

			responses := o.Op["responses"].(map[string]any)
			problem4xx := false
			for code, r := range responses {
				rm := deref(t, doc, r)
				headers, _ := rm["headers"].(map[string]any)
				if _, ok := headers["X-Request-Id"]; !ok {
					t.Errorf("response %s does not document X-Request-Id", code)
				}
				if code == "429" {
					if _, ok := headers["Retry-After"]; !ok {
						t.Error("429 without Retry-After")
					}
				}
				if code == "default" {
					t.Errorf("a default response would let any undocumented status pass")
				}
				content, _ := rm["content"].(map[string]any)
				if code >= "400" {
					if o.Op["operationId"] == "getReadiness" && code == "503" {
						continue // a readiness report, not a problem
					}
					media, ok := content["application/problem+json"].(map[string]any)
					if !ok || len(content) != 1 {
						t.Errorf("response %s is not (only) application/problem+json", code)
						continue
					}
					ref, _ := media["schema"].(map[string]any)["$ref"].(string)
					if ref != "#/components/schemas/Problem" && ref != "#/components/schemas/OAuthProblem" {
						t.Errorf("response %s schema is %q, want the Problem schema", code, ref)
					}
					if code < "500" {
						problem4xx = true
					}
				}
				if strings.HasPrefix(code, "2") && o.Method != "HEAD" && code != "204" && len(content) == 0 {
					t.Errorf("response %s has no content", code)
				}
			}
			if canFail && !problem4xx {
				t.Error("no 4xx response using Problem")
			}
			if len(sec) > 0 {
				for _, code := range []string{"401", "500"} {
					if _, ok := responses[code]; !ok {
						t.Errorf("authenticated operation without a %s response", code)
					}
				}
			}
			if len(sec) > 0 && o.Path != "/v1/oauth2/token" {
				if _, ok := responses["429"]; !ok {
					t.Error("rate-limited operation without a 429 response")
				}
			}
			// A scope in the security requirement means 403 can happen.
			for _, req := range sec {
				for _, scopes := range req.(map[string]any) {
					if len(asSlice(scopes)) > 0 {
						if _, ok := responses["403"]; !ok {
							t.Error("scoped operation without a 403 response")
						}
					}
				}
			}
		})
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// TestOpenAPIDescribesEveryRoute compares the router with the document, both
// ways: a route without documentation, or documentation without a route,
// fails.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	spec := spectest.Load(t)
	documented := map[string]bool{}
	for _, op := range spec.Operations() {
		documented[op] = true
	}
	// A path registered for every method (chi's Handle) counts as GET.
	byPath := map[string][]string{}
	for _, r := range api.RoutesForTest() {
		m, p, _ := strings.Cut(r, " ")
		byPath[p] = append(byPath[p], m)
	}
	routed := map[string]bool{}
	for p, ms := range byPath {
		if len(ms) >= 9 {
			t.Logf("%s answers every method (%s): documented as GET", p, strings.Join(ms, " "))
			ms = []string{"GET"}
		}
		for _, m := range ms {
			routed[m+" "+p] = true
		}
	}
	for r := range routed {
		if !documented[r] {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	for op := range documented {
		if !routed[op] {
			t.Errorf("the OpenAPI document describes %s, which no route serves", op)
		}
	}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestOpenAPIPublicResponses exercises every route that needs no store, with
// every response checked against the document by spectest.Transport.
func TestOpenAPIPublicResponses(t *testing.T) {
	spec := spectest.Load(t)
	srv := httptest.NewServer(api.RoutedServerForTest())
	defer srv.Close()
	c := &http.Client{Transport: &spectest.Transport{Spec: spec, T: t}}

	resp, body := get(t, c, srv.URL+"/openapi/v1.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("/openapi/v1.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, api.OpenAPIDocument()) {
		t.Error("/openapi/v1.json does not serve the embedded document")
	}

	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/problems/invalid", "/problems/rate-limited", "/reference"} {
		if resp, _ := get(t, c, srv.URL+path); resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, srv.URL+"/problems/no-such-problem"); resp.StatusCode != 404 {
		t.Errorf("/problems/no-such-problem: %d", resp.StatusCode)
	}

	// Every problem type a problem document names is documented at its URI,
	// and the documented slug enum is exactly those.
	doc := spec.Document()
	slugParam := doc["paths"].(map[string]any)["/problems/{slug}"].(map[string]any)["get"].(map[string]any)["parameters"].([]any)[0]
	var slugs []string
	for _, s := range slugParam.(map[string]any)["schema"].(map[string]any)["enum"].([]any) {
		slugs = append(slugs, s.(string))
		if resp, _ := get(t, c, srv.URL+"/problems/"+s.(string)); resp.StatusCode != 200 {
			t.Errorf("/problems/%s: %d", s, resp.StatusCode)
		}
	}
	sort.Strings(slugs)
	if want := api.ProblemSlugsForTest(); !slices.Equal(slugs, want) {
		t.Errorf("the slug enum of /problems/{slug} is %v, the problem types are %v", slugs, want)
	}

	// Readiness failing: 503 with a readiness report.
	failing := httptest.NewServer(api.NewServer(api.Deps{Log: quiet, Checks: []api.Check{
		{Name: "postgres", Fn: func(context.Context) (any, error) { return map[string]any{"lag": 0}, nil }},
		{Name: "nats", Fn: func(context.Context) (any, error) { return nil, fmt.Errorf("connection refused") }},
	}}))
	defer failing.Close()
	if resp, _ := get(t, c, failing.URL+"/readyz"); resp.StatusCode != 503 {
		t.Errorf("/readyz with a failing check: %d", resp.StatusCode)
	}

	// Without credentials every authenticated operation answers 401, as
	// documented (problem+json, WWW-Authenticate).
	for _, op := range spec.Operations() {
		method, path, _ := strings.Cut(op, " ")
		if !strings.HasPrefix(path, "/v1/") || path == "/v1/oauth2/token" {
			continue
		}
		concrete := strings.NewReplacer("{id}", "key_01JD7Q5V6Z8K3M2N4P5R6S7T8V").Replace(path)
		var reqBody io.Reader
		if method == "POST" {
			reqBody = strings.NewReader(`{}`)
		}
		req, _ := http.NewRequest(method, srv.URL+concrete, reqBody)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s without credentials: %d, want 401", op, resp.StatusCode)
		}
	}

	// The token exchange's own errors.
	for _, tc := range []struct {
		form   string
		status int
	}{
		{"grant_type=password&username=a&password=b", 400},
		{"grant_type=client_credentials", 401},
	} {
		resp, err := c.Post(srv.URL+"/v1/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(tc.form))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("token %q: %d, want %d", tc.form, resp.StatusCode, tc.status)
		}
	}
	spec.Report(t)
}

// TestSpectestCatchesDrift proves the checker fails on what it must.
func TestSpectestCatchesDrift(t *testing.T) {
	spec := spectest.Load(t)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	okHeaders := h("Content-Type", "application/json", "X-Request-Id", "req_1")
	problem := h("Content-Type", "application/problem+json", "X-Request-Id", "req_1", "WWW-Authenticate", `Bearer realm="arrears"`)
	key := `{"object":"api_key","id":"key_01JD7Q5V6Z8K3M2N4P5R6S7T8V","name":"","prefix":"sk_live_Ab12Cd34","mode":"live","scopes":[],"read_only":false,"created_at":"2025-11-21T09:30:00Z","expires_at":null,"revoked_at":null,"last_used_at":null}`

	good := []struct {
		method, path string
		status       int
		header       http.Header
		body         string
	}{
		{"GET", "/healthz", 200, okHeaders, `{"status":"ok"}`},
		{"GET", "/v1/api-keys/key_1?min_position=3", 200, okHeaders, key},
		{"GET", "/v1/api-keys?limit=1", 200, okHeaders, `{"data":[` + key + `],"next_cursor":"eyJ2IjoxfQ"}`},
		{"GET", "/v1/api-keys", 200, okHeaders, `{"data":[],"next_cursor":null}`},
		{"GET", "/v1/api-keys", 401, problem, `{"type":"/problems/unauthorized","title":"Unauthorized","status":401,"detail":"missing API key","request_id":"req_1"}`},
		{"GET", "/metrics", 200, h("Content-Type", "text/plain; version=0.0.4; charset=utf-8", "X-Request-Id", "r"), "# HELP x\n"},
	}
	for _, g := range good {
		if errs := spec.Validate(g.method, g.path, g.status, g.header, []byte(g.body)); len(errs) > 0 {
			t.Errorf("%s %s %d: unexpected errors %v", g.method, g.path, g.status, errs)
		}
	}

	bad := []struct {
		name         string
		method, path string
		status       int
		header       http.Header
		body         string
	}{
		{"unknown path", "GET", "/v1/nothing-here", 200, okHeaders, `{}`},
		{"unknown method", "PATCH", "/v1/api-keys", 200, okHeaders, `{}`},
		{"undocumented status", "GET", "/healthz", 418, okHeaders, `{"status":"ok"}`},
		{"undocumented field", "GET", "/healthz", 200, okHeaders, `{"status":"ok","extra":1}`},
		{"wrong type", "GET", "/v1/api-keys/key_1", 200, okHeaders, strings.Replace(key, `"read_only":false`, `"read_only":"no"`, 1)},
		{"missing required field", "GET", "/v1/api-keys/key_1", 200, okHeaders, strings.Replace(key, `"mode":"live",`, ``, 1)},
		{"secret leaked outside creation", "GET", "/v1/api-keys/key_1", 200, okHeaders, strings.Replace(key, `}`, `,"secret":"sk_live_x"}`, 1)},
		{"bad date-time", "GET", "/v1/api-keys/key_1", 200, okHeaders, strings.Replace(key, `"2025-11-21T09:30:00Z"`, `"yesterday"`, 1)},
		{"wrong content type", "GET", "/healthz", 200, h("Content-Type", "text/plain", "X-Request-Id", "r"), `{"status":"ok"}`},
		{"problem as plain JSON", "GET", "/v1/api-keys", 401, h("Content-Type", "application/json", "X-Request-Id", "r", "WWW-Authenticate", "Bearer"), `{"type":"/problems/unauthorized","title":"Unauthorized","status":401}`},
		{"missing X-Request-Id", "GET", "/healthz", 200, h("Content-Type", "application/json"), `{"status":"ok"}`},
		{"missing WWW-Authenticate", "GET", "/v1/api-keys", 401, h("Content-Type", "application/problem+json", "X-Request-Id", "r"), `{"type":"/problems/unauthorized","title":"Unauthorized","status":401}`},
		{"non-integer rate-limit header", "GET", "/v1/api-keys", 200, h("Content-Type", "application/json", "X-Request-Id", "r", "X-RateLimit-Remaining", "lots"), `{"data":[],"next_cursor":null}`},
		{"not JSON", "GET", "/healthz", 200, okHeaders, `ok`},
		{"next_cursor missing", "GET", "/v1/api-keys", 200, okHeaders, `{"data":[]}`},
	}
	for _, b := range bad {
		if errs := spec.Validate(b.method, b.path, b.status, b.header, []byte(b.body)); len(errs) == 0 {
			t.Errorf("%s: %s %s %d passed, want a failure", b.name, b.method, b.path, b.status)
		} else {
			t.Logf("%s: %v", b.name, errs[0])
		}
	}

	if tmpl, ok := spec.Match("/v1/api-keys/key_1?x=1"); !ok || tmpl != "/v1/api-keys/{id}" {
		t.Errorf("Match = %q, %v", tmpl, ok)
	}
	if _, ok := spec.Match("/v1/api-keys/"); ok {
		t.Error("an empty segment matched {id}")
	}
}

var tagRe = regexp.MustCompile(`(?s)<[^>]*>`)

// pageText is the page's text, tags removed, whitespace collapsed.
func pageText(page string) string {
	return strings.Join(strings.Fields(html.UnescapeString(tagRe.ReplaceAllString(page, " "))), " ")
}

// TestReferencePage checks /reference names every operation and is
// self-contained.
func TestReferencePage(t *testing.T) {
	spec := spectest.Load(t)
	srv := httptest.NewServer(api.NewServer(api.Deps{Log: quiet}))
	defer srv.Close()
	resp, body := get(t, &http.Client{Transport: &spectest.Transport{Spec: spec, T: t}}, srv.URL+"/reference")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/reference: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	page := string(body)
	text := pageText(page)
	checkReferenceText(t, spec, text)
	for _, banned := range []string{"<script", "<link", "<img", "@import", "src=", "url("} {
		if strings.Contains(strings.ToLower(page), banned) {
			t.Errorf("the page contains %q: it must be self-contained", banned)
		}
	}
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if href := m[1]; !strings.HasPrefix(href, "#") && !strings.HasPrefix(href, "/") {
			t.Errorf("link to %s: the page must work offline", href)
		}
		if href := m[1]; strings.HasPrefix(href, "#") && !strings.Contains(page, `id="`+href[1:]+`"`) {
			t.Errorf("link to %s, which is not on the page", href)
		}
	}
}

func checkReferenceText(t *testing.T, spec *spectest.Spec, text string) {
	t.Helper()
	for _, op := range spec.Operations() {
		if !strings.Contains(text, op) {
			t.Errorf("the reference does not show %q", op)
		}
	}
	doc := spec.Document()
	for name := range doc["components"].(map[string]any)["schemas"].(map[string]any) {
		if !strings.Contains(text, name) {
			t.Errorf("the reference does not show schema %s", name)
		}
	}
	for _, want := range []string{
		"Authentication", "Bearer sk_live_", "sk_test_", "tok_", "X-Api-Key", "<resource>:read", "read_only",
		"Idempotency-Key", "Idempotent-Replayed", "application/problem+json", "next_cursor", "min_position",
		"Arrears-Position", "X-RateLimit-Remaining", "Retry-After", "X-Request-Id", "/problems/invalid",
		"scope keys:write", "scope events:read",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the reference does not mention %q", want)
		}
	}
}

// TestReferenceInChromium renders /reference in a real browser: the DOM it
// builds must show every operation, and a screenshot must have content.
// Without chromium it is skipped, unless ARREARS_REQUIRE_CHROMIUM=1.
func TestReferenceInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("ARREARS_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("ARREARS_REQUIRE_CHROMIUM=1 but %s is missing: %v", bin, err)
		}
		t.Skipf("%s not installed", bin)
	}
	if testing.Short() && os.Getenv("ARREARS_REQUIRE_CHROMIUM") != "1" {
		t.Skip("-short")
	}
	spec := spectest.Load(t)
	srv := httptest.NewServer(api.NewServer(api.Deps{Log: quiet}))
	defer srv.Close()
	pageURL := srv.URL + "/reference"
	dir := t.TempDir()

	run := func(extra ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		args := append([]string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(dir, "profile"),
		}, extra...)
		args = append(args, pageURL)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\nstderr: %s", extra, err, tail(stderr.String(), 2000))
		}
		return stdout.Bytes()
	}

	dom := run("--dump-dom")
	if len(dom) < 1000 {
		t.Fatalf("chromium dumped %d bytes of DOM", len(dom))
	}
	text := pageText(string(dom))
	checkReferenceText(t, spec, text)
	if !strings.Contains(string(dom), "Idempotency-Key") {
		t.Error("the rendered DOM does not mention Idempotency-Key")
	}
	for _, op := range spec.Operations() {
		_, path, _ := strings.Cut(op, " ")
		if !strings.Contains(string(dom), path) {
			t.Errorf("the rendered DOM does not contain %s", path)
		}
	}

	png := filepath.Join(dir, "ref.png")
	run("--screenshot="+png, "--window-size=1280,2000", "--hide-scrollbars")
	st, err := os.Stat(png)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if st.Size() <= 10<<10 {
		t.Errorf("screenshot is %d bytes: the page rendered (nearly) empty", st.Size())
	}
	b, _ := os.ReadFile(png)
	img, err := imgpng.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	// A blank page compresses to a PNG of about 15 KB at this size, so the
	// file size alone proves little: count what is painted.
	bounds := img.Bounds()
	if bounds.Dx() != 1280 || bounds.Dy() != 2000 {
		t.Errorf("screenshot is %dx%d, want 1280x2000", bounds.Dx(), bounds.Dy())
	}
	colors := map[[3]uint32]int{}
	total := 0
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 2 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[[3]uint32{r >> 8, g >> 8, bl >> 8}]++
			total++
		}
	}
	dominant := 0
	for _, n := range colors {
		dominant = max(dominant, n)
	}
	painted := float64(total-dominant) / float64(total)
	t.Logf("screenshot: %d bytes, %d colours, %.1f%% of pixels off the background", st.Size(), len(colors), 100*painted)
	if len(colors) < 16 || painted < 0.05 {
		t.Errorf("screenshot looks blank: %d colours, %.1f%% painted", len(colors), 100*painted)
	}
	if out := os.Getenv("ARREARS_REFERENCE_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// The document must stay valid JSON with no duplicate keys (the standard
// decoder silently keeps the last one).
func TestOpenAPINoDuplicateKeys(t *testing.T) {
	dec := json.NewDecoder(bytes.NewReader(api.OpenAPIDocument()))
	var check func(path string) error
	check = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			keys := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k := kt.(string)
				if keys[k] {
					t.Errorf("duplicate key %s/%s", path, k)
				}
				keys[k] = true
				if err := check(path + "/" + k); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := check(fmt.Sprintf("%s/%d", path, i)); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := check(""); err != nil {
		t.Fatal(err)
	}
}
