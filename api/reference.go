package api

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The reference page is the OpenAPI document rendered server-side: one
// self-contained HTML page (embedded CSS, no JavaScript, no external
// resources), so it works offline and cannot disagree with the document.

//go:embed reference/reference.tmpl reference/reference.css
var referenceFS embed.FS

// renderedReference renders the page once: the document is static.
var renderedReference = sync.OnceValues(func() ([]byte, error) { return renderReference(openAPIDocument) })

// serveReference: GET /reference.
func serveReference(w http.ResponseWriter, r *http.Request) {
	page, err := renderedReference()
	if err != nil {
		writeError(w, r, fmt.Errorf("render reference: %w", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	// Nothing on the page loads or runs anything: say so.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(page)
}

func renderReference(doc []byte) ([]byte, error) {
	root, err := decodeOrdered(doc)
	if err != nil {
		return nil, fmt.Errorf("parse OpenAPI document: %w", err)
	}
	b := &refBuilder{root: root}
	page, err := b.page()
	if err != nil {
		return nil, err
	}
	css, err := referenceFS.ReadFile("reference/reference.css")
	if err != nil {
		return nil, err
	}
	page.CSS = template.CSS(css)
	t, err := template.New("reference.tmpl").Funcs(template.FuncMap{"lower": strings.ToLower, "join": strings.Join}).ParseFS(referenceFS, "reference/reference.tmpl")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, page); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ---- view model ----

type refPage struct {
	CSS          template.CSS
	Title        string
	Version      string
	OpenAPI      string
	Summary      string
	Intro        template.HTML
	Guides       []refGuide
	Schemes      []refScheme
	ProblemTypes []refProblemType
	Problem      *refSchemaDef
	Headers      []refHeader
	Tags         []refTag
	Schemas      []refSchemaDef
}

type refGuide struct {
	ID, Title string
	Body      template.HTML
}

type refScheme struct {
	Name, Kind  string
	Description template.HTML
}

type refProblemType struct {
	Type, Title string
	Status      int
	About       template.HTML
}

type refTag struct {
	ID, Name    string
	Description template.HTML
	Ops         []refOp
}

type refOp struct {
	ID, OperationID, Method, Path, Summary string
	Description                            template.HTML
	Auth                                   []string
	Scopes                                 []string
	Public                                 bool
	Anonymous                              bool // also callable without credentials
	Params                                 []refParam
	Body                                   *refBody
	Responses                              []refResponse
	Curl                                   string
}

type refParam struct {
	Name, In    string
	Type        template.HTML
	Notes       []string
	Required    bool
	Description template.HTML
}

type refBody struct {
	ContentType string
	Required    bool
	Type        template.HTML
	Notes       []string
	Description template.HTML
	Fields      []refField
	Example     string
}

type refResponse struct {
	Status      string
	StatusText  string
	Class       string
	Description template.HTML
	ContentType string
	Type        template.HTML
	Notes       []string
	Fields      []refField
	Problem     bool // the body is a Problem: documented once, under Errors
	Headers     []refHeader
	Example     string
}

type refHeader struct {
	Name        string
	Required    bool
	Type        template.HTML
	Description template.HTML
}

type refField struct {
	Name        string
	Type        template.HTML
	Notes       []string
	Required    bool
	Description template.HTML
	Fields      []refField
}

type refSchemaDef struct {
	Name, ID    string
	Type        template.HTML
	Notes       []string
	Description template.HTML
	Fields      []refField
}

// ---- building ----

type refBuilder struct{ root any }

var methodOrder = []string{"get", "post", "put", "patch", "delete", "head", "options", "trace"}

func (b *refBuilder) page() (*refPage, error) {
	doc, ok := b.root.(*omap)
	if !ok {
		return nil, errors.New("OpenAPI document is not an object")
	}
	info := doc.obj("info")
	p := &refPage{Title: info.str("title"), Version: info.str("version"), OpenAPI: doc.str("openapi"), Summary: info.str("summary")}
	intro, guides := splitGuides(info.str("description"))
	p.Intro, p.Guides = intro, guides

	comps := doc.obj("components")
	for _, name := range comps.obj("securitySchemes").keys() {
		s := comps.obj("securitySchemes").obj(name)
		p.Schemes = append(p.Schemes, refScheme{Name: name, Kind: schemeLabel(s), Description: markdown(s.str("description"))})
	}
	for _, pt := range problemTypes {
		p.ProblemTypes = append(p.ProblemTypes, refProblemType{Type: ProblemTypePrefix + pt.Slug, Title: pt.Title, Status: pt.Status, About: markdown(pt.About)})
	}
	sort.Slice(p.ProblemTypes, func(i, j int) bool { return p.ProblemTypes[i].Status < p.ProblemTypes[j].Status })
	for _, name := range comps.obj("headers").keys() {
		p.Headers = append(p.Headers, b.header(name, comps.obj("headers").get(name)))
	}
	for _, name := range comps.obj("schemas").keys() {
		d := b.schemaDef(name)
		if name == "Problem" {
			p.Problem = &d
		}
		p.Schemas = append(p.Schemas, d)
	}

	// Operations, grouped by their first tag in the order of the tags list.
	tagIdx := map[string]int{}
	for _, t := range doc.arr("tags") {
		tm, _ := t.(*omap)
		tagIdx[tm.str("name")] = len(p.Tags)
		p.Tags = append(p.Tags, refTag{ID: "tag-" + slug(tm.str("name")), Name: tm.str("name"), Description: markdown(tm.str("description"))})
	}
	paths := doc.obj("paths")
	for _, path := range paths.keys() {
		item := paths.obj(path)
		for _, method := range methodOrder {
			op := item.obj(method)
			if op == nil {
				continue
			}
			o := b.operation(doc, path, method, item, op)
			tag := "Other"
			if ts := op.arr("tags"); len(ts) > 0 {
				tag, _ = ts[0].(string)
			}
			i, ok := tagIdx[tag]
			if !ok {
				i = len(p.Tags)
				tagIdx[tag] = i
				p.Tags = append(p.Tags, refTag{ID: "tag-" + slug(tag), Name: tag})
			}
			p.Tags[i].Ops = append(p.Tags[i].Ops, o)
		}
	}
	p.Tags = slices.DeleteFunc(p.Tags, func(t refTag) bool { return len(t.Ops) == 0 })
	return p, nil
}

func (b *refBuilder) operation(doc *omap, path, method string, item, op *omap) refOp {
	o := refOp{Method: strings.ToUpper(method), Path: path, OperationID: op.str("operationId"), Summary: op.str("summary"),
		Description: markdown(op.str("description"))}
	o.ID = "op-" + slug(o.OperationID)
	if o.OperationID == "" {
		o.ID = "op-" + slug(method+" "+path)
	}

	// Security: the operation's, or the document's.
	secReq := doc.arr("security")
	if op.has("security") {
		secReq = op.arr("security")
	}
	schemes := doc.obj("components").obj("securitySchemes")
	anonymous := len(secReq) == 0
	for _, r := range secReq {
		rm, _ := r.(*omap)
		if len(rm.keys()) == 0 {
			anonymous = true
			continue
		}
		for _, name := range rm.keys() {
			if l := schemeLabel(schemes.obj(name)); !slices.Contains(o.Auth, l) {
				o.Auth = append(o.Auth, l)
			}
			for _, s := range rm.arr(name) {
				if sc, _ := s.(string); sc != "" && !slices.Contains(o.Scopes, sc) {
					o.Scopes = append(o.Scopes, sc)
				}
			}
		}
	}
	if anonymous {
		o.Anonymous = true
		if len(o.Auth) == 0 {
			o.Public = true
		} else {
			o.Auth = append(o.Auth, "none (credentials in the form body)")
		}
	}

	// Parameters: the path item's, overridden by the operation's.
	var params []*omap
	seen := map[string]int{}
	for _, list := range [][]any{item.arr("parameters"), op.arr("parameters")} {
		for _, pr := range list {
			pm, _ := b.deref(pr).(*omap)
			if pm == nil {
				continue
			}
			k := pm.str("in") + ":" + pm.str("name")
			if i, ok := seen[k]; ok {
				params[i] = pm
				continue
			}
			seen[k] = len(params)
			params = append(params, pm)
		}
	}
	for _, pm := range params {
		v := b.schema(pm.get("schema"), 0, nil)
		desc := pm.str("description")
		if desc == "" {
			if sm, _ := b.deref(pm.get("schema")).(*omap); sm != nil {
				desc = sm.str("description")
			}
		}
		o.Params = append(o.Params, refParam{Name: pm.str("name"), In: pm.str("in"), Type: v.label, Notes: v.notes,
			Required: pm.bool("required"), Description: markdown(desc)})
	}

	// Request body.
	if rb, _ := b.deref(op.get("requestBody")).(*omap); rb != nil {
		content := rb.obj("content")
		if cts := content.keys(); len(cts) > 0 {
			mt := content.obj(cts[0])
			v := b.schema(mt.get("schema"), 0, nil)
			o.Body = &refBody{ContentType: strings.Join(cts, ", "), Required: rb.bool("required"), Type: v.label, Notes: v.notes, Fields: v.fields,
				Description: markdown(rb.str("description")), Example: example(mt, cts[0])}
		}
	}

	// Responses, by status.
	resps := op.obj("responses")
	codes := resps.keys()
	sort.Strings(codes)
	for _, code := range codes {
		rm, _ := b.deref(resps.get(code)).(*omap)
		if rm == nil {
			continue
		}
		r := refResponse{Status: code, Description: markdown(rm.str("description")), Class: "s" + code[:1]}
		if n, err := strconv.Atoi(code); err == nil {
			r.StatusText = http.StatusText(n)
		}
		hs := rm.obj("headers")
		for _, name := range hs.keys() {
			r.Headers = append(r.Headers, b.header(name, hs.get(name)))
		}
		content := rm.obj("content")
		if cts := content.keys(); len(cts) > 0 {
			r.ContentType = strings.Join(cts, ", ")
			mt := content.obj(cts[0])
			sm, _ := mt.get("schema").(*omap)
			switch {
			case sm != nil && sm.str("$ref") == "#/components/schemas/Problem":
				r.Problem = true
			case code >= "400" && sm != nil && sm.str("$ref") != "":
				// Error documents are described once, under Schemas.
				r.Type = b.schema(sm, maxSchemaDepth, nil).label
			default:
				v := b.schema(mt.get("schema"), 0, nil)
				r.Type, r.Notes, r.Fields = v.label, v.notes, v.fields
			}
			if strings.HasPrefix(code, "2") {
				r.Example = example(mt, cts[0])
			}
		}
		o.Responses = append(o.Responses, r)
	}
	o.Curl = curl(o)
	return o
}

func (b *refBuilder) header(name string, h any) refHeader {
	hm, _ := b.deref(h).(*omap)
	v := b.schema(hm.get("schema"), 0, nil)
	return refHeader{Name: name, Required: hm.bool("required"), Type: v.label, Description: markdown(hm.str("description"))}
}

func (b *refBuilder) schemaDef(name string) refSchemaDef {
	s := b.root.(*omap).obj("components").obj("schemas").obj(name)
	ref := "#/components/schemas/" + name
	v := b.schema(s, 0, []string{ref})
	return refSchemaDef{Name: name, ID: "schema-" + slug(name), Type: v.label, Notes: v.notes, Description: markdown(s.str("description")), Fields: v.fields}
}

// schemaView is a schema as the page shows it: a type label, constraints,
// and nested fields.
type schemaView struct {
	label  template.HTML
	notes  []string
	fields []refField
	desc   string
}

const maxSchemaDepth = 6

// schema describes s. stack holds the $refs being expanded (no cycles).
func (b *refBuilder) schema(s any, depth int, stack []string) schemaView {
	m, _ := s.(*omap)
	if m == nil {
		if bv, ok := s.(bool); ok && !bv {
			return schemaView{label: "nothing"}
		}
		return schemaView{label: "any"}
	}
	if r := m.str("$ref"); r != "" {
		name := r[strings.LastIndex(r, "/")+1:]
		link := template.HTML(`<a href="#schema-` + html.EscapeString(slug(name)) + `">` + html.EscapeString(name) + `</a>`)
		if slices.Contains(stack, r) || depth >= maxSchemaDepth {
			return schemaView{label: link}
		}
		v := b.schema(b.deref(m), depth, append(stack, r))
		base := string(v.label)
		if base == "object" || base == "any" {
			v.label = link
		} else {
			v.label = link + " " + template.HTML(`<span class="base">`) + v.label + template.HTML(`</span>`)
		}
		return v
	}

	v := schemaView{desc: m.str("description")}
	var types []string
	switch t := m.get("type").(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				types = append(types, s)
			}
		}
	}
	nonNull := slices.DeleteFunc(slices.Clone(types), func(s string) bool { return s == "null" })
	nullable := len(nonNull) < len(types)

	var label string
	switch {
	case len(nonNull) == 1 && nonNull[0] == "array":
		items := b.schema(m.get("items"), depth+1, stack)
		v.fields = items.fields
		v.notes = append(v.notes, items.notes...)
		label = "array of " + string(items.label)
	case len(nonNull) > 0:
		label = html.EscapeString(strings.Join(nonNull, " | "))
	case m.has("properties") || m.has("additionalProperties"):
		label = "object"
	case m.has("allOf"), m.has("oneOf"), m.has("anyOf"):
		label = ""
	case m.has("const"):
		label = jsonKindOf(m.get("const"))
	default:
		label = "any"
	}
	if f := m.str("format"); f != "" {
		label += ` <span class="fmt">(` + html.EscapeString(f) + `)</span>`
	}

	// Objects: properties in document order, then additionalProperties.
	if m.has("properties") || m.has("allOf") {
		parts := []*omap{m}
		for _, sub := range m.arr("allOf") {
			if sm, _ := b.deref(sub).(*omap); sm != nil {
				parts = append(parts, sm)
			}
		}
		for _, part := range parts {
			var required []string
			for _, r := range part.arr("required") {
				if s, ok := r.(string); ok {
					required = append(required, s)
				}
			}
			props := part.obj("properties")
			for _, name := range props.keys() {
				pv := b.schema(props.get(name), depth+1, stack)
				desc := props.obj(name).str("description")
				if desc == "" {
					desc = pv.desc
				}
				v.fields = append(v.fields, refField{Name: name, Type: pv.label, Notes: pv.notes, Required: slices.Contains(required, name),
					Description: markdown(desc), Fields: pv.fields})
			}
		}
		if label == "" {
			label = "object"
		}
	}
	if ap, ok := m.get("additionalProperties").(*omap); ok {
		pv := b.schema(ap, depth+1, stack)
		label = "object"
		v.fields = append(v.fields, refField{Name: "‹name›", Type: pv.label, Notes: pv.notes, Description: markdown(pv.desc), Fields: pv.fields})
		v.notes = append(v.notes, "a map: any number of names")
	}
	for _, kw := range []string{"oneOf", "anyOf"} {
		if names, ok := requiredOnly(m.arr(kw)); ok {
			// {"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}: a note, not a type.
			what := "exactly one of "
			if kw == "anyOf" {
				what = "at least one of "
			}
			v.notes = append(v.notes, what+strings.Join(names, ", "))
			continue
		}
		if alts := m.arr(kw); len(alts) > 0 {
			var ls []string
			for _, a := range alts {
				ls = append(ls, string(b.schema(a, depth+1, stack).label))
			}
			if label != "" {
				label += " "
			}
			label += strings.ReplaceAll(kw, "Of", " of") + ": " + strings.Join(ls, " | ")
		}
	}
	if nullable {
		label += " | null"
	}
	v.label = template.HTML(label)

	// Constraints.
	if c, ok := m.m["const"]; ok {
		v.notes = append(v.notes, "always "+jsonText(c))
	}
	if e := m.arr("enum"); len(e) > 0 {
		var vs []string
		for _, x := range e {
			vs = append(vs, jsonText(x))
		}
		v.notes = append(v.notes, "one of "+strings.Join(vs, ", "))
	}
	lo, hasLo := m.m["minimum"]
	hi, hasHi := m.m["maximum"]
	switch {
	case hasLo && hasHi:
		v.notes = append(v.notes, jsonText(lo)+" to "+jsonText(hi))
	case hasLo:
		v.notes = append(v.notes, "≥ "+jsonText(lo))
	case hasHi:
		v.notes = append(v.notes, "≤ "+jsonText(hi))
	}
	minL, hasMinL := m.m["minLength"]
	maxL, hasMaxL := m.m["maxLength"]
	switch {
	case hasMinL && hasMaxL:
		v.notes = append(v.notes, jsonText(minL)+" to "+jsonText(maxL)+" characters")
	case hasMaxL:
		v.notes = append(v.notes, "at most "+jsonText(maxL)+" characters")
	case hasMinL:
		v.notes = append(v.notes, "at least "+jsonText(minL)+" characters")
	}
	if p := m.str("pattern"); p != "" && len(p) <= 24 { // long ones are explained by the description
		v.notes = append(v.notes, "matches "+p)
	}
	if d, ok := m.m["default"]; ok {
		v.notes = append(v.notes, "default "+jsonText(d))
	}
	if ex := m.arr("examples"); len(ex) > 0 {
		v.notes = append(v.notes, "e.g. "+jsonText(ex[0]))
	}
	return v
}

// requiredOnly reports whether every alternative only requires fields, and
// lists them.
func requiredOnly(alts []any) ([]string, bool) {
	if len(alts) == 0 {
		return nil, false
	}
	var names []string
	for _, a := range alts {
		am, _ := a.(*omap)
		if am == nil || len(am.keys()) != 1 || !am.has("required") {
			return nil, false
		}
		var req []string
		for _, r := range am.arr("required") {
			if s, ok := r.(string); ok {
				req = append(req, s)
			}
		}
		names = append(names, strings.Join(req, " + "))
	}
	return names, true
}

// deref follows a local $ref ("#/components/…").
func (b *refBuilder) deref(v any) any {
	for range 10 {
		m, _ := v.(*omap)
		r := m.str("$ref")
		if r == "" {
			return v
		}
		v = pointer(b.root, r)
	}
	return v
}

// pointer resolves a local JSON pointer reference ("#/a/b~1c").
func pointer(root any, ref string) any {
	p, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil
	}
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	cur := root
	for _, tok := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case *omap:
			cur = c.get(tok)
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

func schemeLabel(s *omap) string {
	switch {
	case s.str("type") == "http" && strings.EqualFold(s.str("scheme"), "bearer"):
		return "Authorization: Bearer"
	case s.str("type") == "http" && strings.EqualFold(s.str("scheme"), "basic"):
		return "HTTP Basic"
	case s.str("type") == "apiKey":
		return s.str("name") + " " + s.str("in")
	case s.str("type") == "oauth2":
		return "OAuth2"
	}
	return s.str("type")
}

// example returns the media type's example, formatted for the content type.
func example(mt *omap, contentType string) string {
	ex, ok := mt.m["example"]
	if !ok {
		exs := mt.obj("examples")
		if ks := exs.keys(); len(ks) > 0 {
			ex, ok = exs.obj(ks[0]).m["value"]
		}
	}
	if !ok {
		return ""
	}
	if s, isStr := ex.(string); isStr {
		return s
	}
	if contentType == "application/x-www-form-urlencoded" {
		if m, _ := ex.(*omap); m != nil {
			var parts []string
			for _, k := range m.keys() {
				parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(jsonScalar(m.get(k))))
			}
			return strings.Join(parts, "&")
		}
	}
	return jsonIndent(ex)
}

// curl builds a copy-and-paste example request.
func curl(o refOp) string {
	var lines []string
	first := "curl"
	if o.Method != "GET" {
		first += " -X " + o.Method
	}
	lines = append(lines, first+` "$ARREARS_URL`+o.Path+`"`)
	switch {
	case o.Public:
	case slices.Contains(o.Auth, "HTTP Basic"):
		lines = append(lines, `-u "$ARREARS_KEY_ID:$ARREARS_KEY"`)
	default:
		lines = append(lines, `-H "Authorization: Bearer $ARREARS_KEY"`)
	}
	for _, p := range o.Params {
		if p.In == "header" && p.Name == HeaderIdempotencyKey {
			lines = append(lines, `-H "Idempotency-Key: $(uuidgen)"`)
		}
	}
	if o.Body != nil && o.Body.Example != "" {
		switch {
		case strings.Contains(o.Body.ContentType, "json"):
			var compact bytes.Buffer
			if json.Compact(&compact, []byte(o.Body.Example)) == nil {
				lines = append(lines, `-H "Content-Type: application/json"`, "-d '"+compact.String()+"'")
			}
		case strings.Contains(o.Body.ContentType, "x-www-form-urlencoded"):
			form := o.Body.Example
			if slices.Contains(o.Auth, "HTTP Basic") {
				form = "grant_type=client_credentials"
			}
			lines = append(lines, "-d '"+form+"'")
		}
	}
	return strings.Join(lines, " \\\n     ")
}

// splitGuides cuts a Markdown description at its "## " headings: the text
// before the first one, and one section per heading.
func splitGuides(md string) (template.HTML, []refGuide) {
	var intro string
	var guides []refGuide
	var cur *refGuide
	var body []string
	flush := func() {
		if cur == nil {
			intro = strings.Join(body, "\n")
		} else {
			cur.Body = markdown(strings.Join(body, "\n"))
			guides = append(guides, *cur)
		}
		body = nil
	}
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if title, ok := strings.CutPrefix(line, "## "); ok && !inFence {
			flush()
			cur = &refGuide{ID: slug(title), Title: title}
			continue
		}
		body = append(body, line)
	}
	flush()
	return markdown(intro), guides
}

var (
	mdCode = regexp.MustCompile("`([^`]+)`")
	mdBold = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	mdLink = regexp.MustCompile(`\[([^\]]+)\]\(([^)\s]+)\)`)
)

// markdown renders the small Markdown subset the document's descriptions
// use: paragraphs, "- " lists, fenced code blocks, `code`, **bold** and
// [links](url). Text is escaped first, so the result is safe HTML.
func markdown(md string) template.HTML {
	var out strings.Builder
	var para []string
	inList := false
	closePara := func() {
		if len(para) > 0 {
			out.WriteString("<p>" + inline(strings.Join(para, " ")) + "</p>\n")
			para = nil
		}
	}
	closeList := func() {
		if inList {
			out.WriteString("</ul>\n")
			inList = false
		}
	}
	lines := strings.Split(strings.TrimSpace(md), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			closePara()
			closeList()
			lang := strings.TrimPrefix(trimmed, "```")
			var code []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				code = append(code, lines[i])
			}
			class := ""
			if lang != "" {
				class = ` class="lang-` + html.EscapeString(lang) + `"`
			}
			out.WriteString("<pre><code" + class + ">" + html.EscapeString(strings.Join(code, "\n")) + "</code></pre>\n")
		case trimmed == "":
			closePara()
			closeList()
		case strings.HasPrefix(trimmed, "- "):
			closePara()
			if !inList {
				out.WriteString("<ul>\n")
				inList = true
			}
			out.WriteString("<li>" + inline(strings.TrimPrefix(trimmed, "- ")) + "</li>\n")
		case strings.HasPrefix(trimmed, "### "):
			closePara()
			closeList()
			out.WriteString("<h4>" + inline(strings.TrimPrefix(trimmed, "### ")) + "</h4>\n")
		default:
			if inList && (strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "\t")) {
				// continuation of a list item: rare; append as its own line
				out.WriteString("<li class=\"cont\">" + inline(trimmed) + "</li>\n")
				continue
			}
			closeList()
			para = append(para, trimmed)
		}
	}
	closePara()
	closeList()
	return template.HTML(out.String())
}

func inline(s string) string {
	// Split on code spans first, so their content is left alone.
	var out strings.Builder
	last := 0
	for _, m := range mdCode.FindAllStringSubmatchIndex(s, -1) {
		out.WriteString(inlineText(s[last:m[0]]))
		out.WriteString("<code>" + html.EscapeString(s[m[2]:m[3]]) + "</code>")
		last = m[1]
	}
	out.WriteString(inlineText(s[last:]))
	return out.String()
}

func inlineText(s string) string {
	s = html.EscapeString(s)
	s = mdBold.ReplaceAllString(s, "<strong>$1</strong>")
	return mdLink.ReplaceAllStringFunc(s, func(m string) string {
		sub := mdLink.FindStringSubmatch(m)
		href := sub[2]
		if !strings.HasPrefix(href, "#") && !strings.HasPrefix(href, "/") && !strings.HasPrefix(href, "https://") && !strings.HasPrefix(href, "http://") {
			return sub[1]
		}
		return `<a href="` + href + `">` + sub[1] + `</a>`
	})
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

func jsonText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	b, _ := json.Marshal(toPlain(v))
	return string(b)
}

func jsonScalar(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return jsonText(v)
}

func jsonKindOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	case []any:
		return "array"
	}
	return "object"
}

func jsonIndent(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(toPlain(v))
	return strings.TrimRight(buf.String(), "\n")
}

// ---- order-preserving JSON ----

// omap is a JSON object that remembers its key order (a reference page
// lists fields in the order the document gives them).
type omap struct {
	order []string
	m     map[string]any
}

// orderedObject marshals an omap in its order.
type orderedObject struct{ *omap }

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range o.order {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		vb, err := json.Marshal(toPlain(o.m[k]))
		if err != nil {
			return nil, err
		}
		buf.Write(vb)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func toPlain(v any) any {
	switch x := v.(type) {
	case *omap:
		return orderedObject{x}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toPlain(e)
		}
		return out
	}
	return v
}

func (o *omap) get(k string) any {
	if o == nil {
		return nil
	}
	return o.m[k]
}

func (o *omap) has(k string) bool {
	if o == nil {
		return false
	}
	_, ok := o.m[k]
	return ok
}

func (o *omap) obj(k string) *omap {
	m, _ := o.get(k).(*omap)
	return m
}

func (o *omap) arr(k string) []any {
	a, _ := o.get(k).([]any)
	return a
}

func (o *omap) str(k string) string {
	s, _ := o.get(k).(string)
	return s
}

func (o *omap) bool(k string) bool {
	b, _ := o.get(k).(bool)
	return b
}

func (o *omap) keys() []string {
	if o == nil {
		return nil
	}
	return o.order
}

// decodeOrdered parses JSON into *omap, []any, string, json.Number, bool
// and nil.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &omap{m: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := o.m[k]; !dup {
					o.order = append(o.order, k)
				}
				o.m[k] = v
			}
			_, err := dec.Token() // }
			return o, err
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token() // ]
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil
	}
}
