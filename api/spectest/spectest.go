// Package spectest keeps the OpenAPI document true: it checks HTTP
// responses against api.OpenAPIDocument(). A response whose (method, path,
// status) the document does not describe fails the test, and so does a body
// that does not match the documented schema (response objects declare
// additionalProperties: false, so an undocumented field fails too), a wrong
// Content-Type, or a missing required header.
//
// Use it directly:
//
//	spec := spectest.Load(t)
//	spec.Check(t, "GET", "/v1/api-keys?limit=2", resp.StatusCode, resp.Header, body)
//
// or wrap an http.Client so every response is checked:
//
//	client := &http.Client{Transport: &spectest.Transport{Spec: spec, T: t}}
//
// and log which documented operations no test exercised with spec.Report(t)
// (or print spec.Coverage() from TestMain when one Spec serves many tests).
package spectest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/arrears/arrears/api"
)

// docURL names the document inside the schema compiler; $refs
// ("#/components/schemas/…") resolve against it.
const docURL = "https://arrears.invalid/openapi/v1.json"

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Spec is the parsed OpenAPI document plus a record of which operations and
// statuses were checked. It is safe for concurrent use.
type Spec struct {
	doc   map[string]any
	paths []pathTemplate

	mu       sync.Mutex
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema // by JSON pointer
	seen     map[string]map[string]int     // "GET /v1/api-keys/{id}" → status → count
}

type pathTemplate struct {
	template string
	segs     []string // "{…}" segments match any one non-empty segment
	literals int
}

// Load parses the document the API serves, failing t if it cannot.
func Load(t testing.TB) *Spec {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatalf("spectest: %v", err)
	}
	return s
}

// New parses the document the API serves (for TestMain, where there is no t).
func New() (*Spec, error) {
	return Parse(api.OpenAPIDocument())
}

// Parse parses an OpenAPI 3.1 document.
func Parse(doc []byte) (*Spec, error) {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("parse OpenAPI document: %w", err)
	}
	root, ok := inst.(map[string]any)
	if !ok {
		return nil, errors.New("OpenAPI document is not a JSON object")
	}
	if v, _ := root["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		return nil, fmt.Errorf("openapi is %q, want 3.1.x", v)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020) // the OpenAPI 3.1 dialect is JSON Schema 2020-12
	c.AssertFormat()                     // date-time, uri-reference … are checked, not just annotations
	if err := c.AddResource(docURL, inst); err != nil {
		return nil, fmt.Errorf("load OpenAPI document: %w", err)
	}
	s := &Spec{doc: root, compiler: c, schemas: map[string]*jsonschema.Schema{}, seen: map[string]map[string]int{}}
	paths, _ := root["paths"].(map[string]any)
	for p := range paths {
		pt := pathTemplate{template: p, segs: strings.Split(strings.TrimPrefix(p, "/"), "/")}
		for _, seg := range pt.segs {
			if !isParam(seg) {
				pt.literals++
			}
		}
		s.paths = append(s.paths, pt)
	}
	// Most literal segments first, so /v1/things/search wins over /v1/things/{id}.
	sort.Slice(s.paths, func(i, j int) bool {
		if s.paths[i].literals != s.paths[j].literals {
			return s.paths[i].literals > s.paths[j].literals
		}
		return s.paths[i].template < s.paths[j].template
	})
	return s, nil
}

// Document returns the parsed document (JSON values as decoded by
// jsonschema.UnmarshalJSON: numbers are json.Number).
func (s *Spec) Document() map[string]any { return s.doc }

func isParam(seg string) bool { return strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") }

// Match returns the path template of the document that requestPath (a
// concrete path, query string allowed) falls under.
func (s *Spec) Match(requestPath string) (string, bool) {
	p := requestPath
	if u, err := url.Parse(requestPath); err == nil {
		p = u.EscapedPath() // a parameter with an escaped "/" (%2F) is one segment
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for _, pt := range s.paths {
		if len(pt.segs) != len(segs) {
			continue
		}
		ok := true
		for i, seg := range pt.segs {
			if isParam(seg) {
				if segs[i] == "" {
					ok = false
					break
				}
				continue
			}
			if seg != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return pt.template, true
		}
	}
	return "", false
}

// Check validates one response against the document: the operation for
// (method, requestPath) must exist and document status (or a range such as
// 4XX, or default); the Content-Type must be one the response documents; the
// body must match the schema; required headers must be present and documented
// headers must match their schemas. Failures are reported with t.Errorf, so
// Check may be called from any goroutine.
func (s *Spec) Check(t testing.TB, method, requestPath string, status int, header http.Header, body []byte) {
	t.Helper()
	for _, err := range s.Validate(method, requestPath, status, header, body) {
		t.Errorf("spectest: %s %s → %d: %v%s", method, requestPath, status, err, snippet(body))
	}
}

// Validate is Check without a testing.TB: it returns every disagreement.
func (s *Spec) Validate(method, requestPath string, status int, header http.Header, body []byte) []error {
	method = strings.ToUpper(method)
	tmpl, ok := s.Match(requestPath)
	if !ok {
		return []error{fmt.Errorf("path is not in the OpenAPI document")}
	}
	item, _ := s.doc["paths"].(map[string]any)[tmpl].(map[string]any)
	op, _ := item[strings.ToLower(method)].(map[string]any)
	if op == nil {
		return []error{fmt.Errorf("operation %s %s is not in the OpenAPI document", method, tmpl)}
	}
	opKey := method + " " + tmpl
	base := "/paths/" + escape(tmpl) + "/" + strings.ToLower(method) + "/responses"
	responses, _ := op["responses"].(map[string]any)
	code := strconv.Itoa(status)
	key := code
	if _, ok := responses[key]; !ok {
		key = code[:1] + "XX"
		if _, ok := responses[key]; !ok {
			key = "default"
		}
	}
	respV, ok := responses[key]
	if !ok {
		return []error{fmt.Errorf("status %d is not documented for %s (documented: %s)", status, opKey, strings.Join(sortedKeys(responses), ", "))}
	}
	s.record(opKey, key)

	ptr := base + "/" + escape(key)
	resp, ptr, err := s.deref(respV, ptr)
	if err != nil {
		return []error{err}
	}
	var errs []error

	// Headers.
	if hs, _ := resp["headers"].(map[string]any); hs != nil {
		for _, name := range sortedKeys(hs) {
			if strings.EqualFold(name, "Content-Type") {
				continue // OpenAPI ignores it here
			}
			h, hptr, err := s.deref(hs[name], ptr+"/headers/"+escape(name))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			values := header.Values(name)
			if len(values) == 0 {
				if req, _ := h["required"].(bool); req {
					errs = append(errs, fmt.Errorf("required response header %s is missing", name))
				}
				continue
			}
			if _, ok := h["schema"]; ok {
				if err := s.validateHeader(hptr+"/schema", values[0]); err != nil {
					errs = append(errs, fmt.Errorf("header %s: %q: %v", name, values[0], err))
				}
			}
		}
	}

	// Body.
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 && method != http.MethodHead {
			errs = append(errs, fmt.Errorf("the response documents no body, but there is one"))
		}
		return errs
	}
	ctHeader := header.Get("Content-Type")
	if ctHeader == "" {
		return append(errs, fmt.Errorf("no Content-Type; documented: %s", strings.Join(sortedKeys(content), ", ")))
	}
	mt, _, err := mime.ParseMediaType(ctHeader)
	if err != nil {
		return append(errs, fmt.Errorf("bad Content-Type %q: %v", ctHeader, err))
	}
	mtKey := matchMediaType(content, mt)
	if mtKey == "" {
		return append(errs, fmt.Errorf("Content-Type %s is not documented (documented: %s)", mt, strings.Join(sortedKeys(content), ", ")))
	}
	if method == http.MethodHead {
		return errs
	}
	media, _ := content[mtKey].(map[string]any)
	if _, ok := media["schema"]; !ok {
		return errs
	}
	if isJSONLines(mt) {
		// Newline-delimited JSON: the schema describes each line (zero lines
		// is an empty selection, not an error).
		sch, err := s.schema(ptr + "/content/" + escape(mtKey) + "/schema")
		if err != nil {
			return append(errs, err)
		}
		for i, line := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
			if err == nil {
				err = sch.Validate(inst)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d does not match the documented schema:\n%v", i+1, err))
			}
		}
		return errs
	}
	if !isJSON(mt) {
		if len(body) == 0 {
			errs = append(errs, fmt.Errorf("empty %s body", mt))
		}
		return errs
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return append(errs, fmt.Errorf("body is not JSON: %v", err))
	}
	sch, err := s.schema(ptr + "/content/" + escape(mtKey) + "/schema")
	if err != nil {
		return append(errs, err)
	}
	if err := sch.Validate(inst); err != nil {
		errs = append(errs, fmt.Errorf("body does not match the documented schema:\n%v", err))
	}
	return errs
}

// deref follows $refs of a response or header object, returning it and its
// JSON pointer in the document.
func (s *Spec) deref(v any, ptr string) (map[string]any, string, error) {
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, ptr, fmt.Errorf("%s is not an object", ptr)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, ptr, nil
		}
		p, ok := strings.CutPrefix(ref, "#")
		if !ok {
			return nil, ptr, fmt.Errorf("%s: only local $refs are supported, got %s", ptr, ref)
		}
		target, err := Pointer(s.doc, p)
		if err != nil {
			return nil, ptr, fmt.Errorf("%s: $ref %s: %v", ptr, ref, err)
		}
		v, ptr = target, p
	}
	return nil, ptr, fmt.Errorf("%s: $ref chain too long", ptr)
}

// Pointer resolves a JSON pointer ("/components/schemas/Problem") in doc.
func Pointer(doc any, ptr string) (any, error) {
	cur := doc
	if ptr == "" {
		return cur, nil
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("no %q", tok)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("no index %q", tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("cannot descend into %T at %q", cur, tok)
		}
	}
	return cur, nil
}

// schema compiles (once) the schema at ptr.
func (s *Spec) schema(ptr string) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.schemas[ptr]; ok {
		return sch, nil
	}
	// The fragment is a URL fragment: percent-encode what a URL would.
	sch, err := s.compiler.Compile(docURL + "#" + (&url.URL{Fragment: ptr}).EscapedFragment())
	if err != nil {
		return nil, fmt.Errorf("compile schema %s: %v", ptr, err)
	}
	s.schemas[ptr] = sch
	return sch, nil
}

// validateHeader checks a header value against a scalar schema: integers
// and numbers are parsed first.
func (s *Spec) validateHeader(ptr, value string) error {
	sch, err := s.schema(ptr)
	if err != nil {
		return err
	}
	var inst any = value
	if sch.Types != nil {
		ts := sch.Types.ToStrings()
		if slices.Contains(ts, "integer") || slices.Contains(ts, "number") {
			inst = json.Number(value)
			if _, err := strconv.ParseFloat(value, 64); err != nil {
				return errors.New("not a number")
			}
		} else if slices.Contains(ts, "boolean") {
			b, err := strconv.ParseBool(value)
			if err != nil {
				return errors.New("not a boolean")
			}
			inst = b
		}
	}
	return sch.Validate(inst)
}

func (s *Spec) record(op, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[op] == nil {
		s.seen[op] = map[string]int{}
	}
	s.seen[op][status]++
}

// Operations lists every documented operation as "METHOD /path/{template}",
// sorted.
func (s *Spec) Operations() []string {
	var ops []string
	for p, item := range s.doc["paths"].(map[string]any) {
		im, _ := item.(map[string]any)
		for _, m := range methods {
			if _, ok := im[m]; ok {
				ops = append(ops, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

// Seen returns, for every operation checked so far, how often each
// documented status was seen.
func (s *Spec) Seen() map[string]map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]int, len(s.seen))
	for op, st := range s.seen {
		out[op] = make(map[string]int, len(st))
		for k, v := range st {
			out[op][k] = v
		}
	}
	return out
}

// Unexercised lists the documented operations no checked response came from.
func (s *Spec) Unexercised() []string {
	seen := s.Seen()
	var out []string
	for _, op := range s.Operations() {
		if _, ok := seen[op]; !ok {
			out = append(out, op)
		}
	}
	return out
}

// Report logs the Coverage. It never fails the test.
func (s *Spec) Report(t testing.TB) {
	t.Helper()
	t.Log(s.Coverage())
}

// Coverage describes what was checked: operations never exercised, and per
// exercised operation the documented statuses that were and were not seen.
// For a TestMain, after m.Run: fmt.Print(spec.Coverage()).
func (s *Spec) Coverage() string {
	seen := s.Seen()
	var b strings.Builder
	ops := s.Operations()
	fmt.Fprintf(&b, "OpenAPI coverage: %d of %d operations exercised\n", len(ops)-len(s.Unexercised()), len(ops))
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		op2, _ := s.doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
		documented := sortedKeys(op2["responses"].(map[string]any))
		st, ok := seen[op]
		if !ok {
			fmt.Fprintf(&b, "  never:   %s\n", op)
			continue
		}
		var hit, miss []string
		for _, code := range documented {
			if st[code] > 0 {
				hit = append(hit, code)
			} else {
				miss = append(miss, code)
			}
		}
		fmt.Fprintf(&b, "  checked: %s  seen %s", op, strings.Join(hit, " "))
		if len(miss) > 0 {
			fmt.Fprintf(&b, "  not seen %s", strings.Join(miss, " "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Transport is an http.RoundTripper that checks every response against the
// document (the body is read and handed on unchanged). Base nil means
// http.DefaultTransport. Failures go to T.Errorf.
type Transport struct {
	Spec *Spec
	T    testing.TB
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (tr *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := tr.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("spectest: read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	tr.T.Helper()
	tr.Spec.Check(tr.T, req.Method, req.URL.RequestURI(), resp.StatusCode, resp.Header, body)
	return resp, nil
}

// Client returns an http.Client whose responses are all checked.
func (s *Spec) Client(t testing.TB) *http.Client {
	return &http.Client{Transport: &Transport{Spec: s, T: t}}
}

func matchMediaType(content map[string]any, mt string) string {
	if _, ok := content[mt]; ok {
		return mt
	}
	for k := range content {
		if pk, _, err := mime.ParseMediaType(k); err == nil && pk == mt {
			return k
		}
	}
	typ, _, _ := strings.Cut(mt, "/")
	if _, ok := content[typ+"/*"]; ok {
		return typ + "/*"
	}
	if _, ok := content["*/*"]; ok {
		return "*/*"
	}
	return ""
}

func isJSON(mt string) bool { return mt == "application/json" || strings.HasSuffix(mt, "+json") }

// isJSONLines reports whether mt is newline-delimited JSON, one value per line.
func isJSONLines(mt string) bool { return mt == "application/x-ndjson" || mt == "application/jsonl" }

// escape encodes a JSON pointer token.
func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func snippet(body []byte) string {
	const max = 600
	if len(body) == 0 {
		return ""
	}
	s := string(body)
	if len(s) > max {
		s = s[:max] + "…"
	}
	return "\n  body: " + strings.TrimSpace(s)
}
