package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// decode reads the request body strictly into v: JSON only, no unknown
// fields, no trailing data, every type error named by field.
func decode(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return domain.Invalid("request body required", domain.FieldError{Field: "body", Error: "must be a JSON object"})
	}
	return decodeBytes(body, v)
}

// decodeOptional is decode for a body that may be absent (or only white
// space): then v keeps its zero value.
func decodeOptional(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return err
	}
	return decodeBytes(body, v)
}

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, domain.Invalid(fmt.Sprintf("request body larger than %d bytes", mbe.Limit), domain.FieldError{Field: "body", Error: "too large"})
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	return body, nil
}

func decodeBytes(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if field := failingField(body, v); field != "" {
			return domain.Invalid("invalid field", domain.FieldError{Field: field, Error: fieldMessage(err)})
		}
		return jsonError(err)
	}
	if dec.More() {
		return domain.Invalid("request body has data after the JSON value", domain.FieldError{Field: "body", Error: "must be one JSON object"})
	}
	return nil
}

// failingField finds, for an error that encoding/json does not attribute to
// a field (a field type's own UnmarshalJSON refused the value, as time.Time
// does), the top-level field of the struct v whose value fails to decode.
func failingField(body []byte, v any) string {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return ""
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return ""
	}
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		val, ok := raw[name]
		if !ok {
			continue
		}
		err := json.Unmarshal(val, reflect.New(f.Type).Interface())
		if err != nil && !errors.As(err, &typ) && !errors.As(err, &syn) {
			return name
		}
	}
	return ""
}

func fieldMessage(err error) string {
	var pe *time.ParseError
	if errors.As(err, &pe) || strings.Contains(err.Error(), "Time.UnmarshalJSON") {
		return "must be an RFC 3339 timestamp, e.g. 2026-12-31T23:59:59Z"
	}
	return "invalid value: " + err.Error()
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return domain.Invalid("malformed JSON", domain.FieldError{Field: "body", Error: fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())})
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return domain.Invalid("invalid field type", domain.FieldError{Field: field, Error: "must be " + jsonKind(typ.Type.Kind().String())})
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return domain.Invalid("malformed JSON", domain.FieldError{Field: "body", Error: "unexpected end of JSON"})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return domain.Invalid("unknown field", domain.FieldError{Field: name, Error: "unknown field"})
	}
	return domain.Invalid("malformed JSON", domain.FieldError{Field: "body", Error: err.Error()})
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "ptr":
		return "a value of the documented type"
	}
	return "a number"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// readOne answers GET of one resource from a read-model table: it waits
// for ?min_position= on projection, selects the row of the caller's tenant
// and mode by the {id} URL parameter, and answers 404 — the same for a
// missing and another tenant's — if there is none.
func readOne[T any](s *Server, w http.ResponseWriter, r *http.Request, projection, what, columns, table string, scan func(rowScanner) (T, error)) {
	if err := s.awaitPosition(r, projection); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	v, err := scan(s.store.Pool().QueryRow(r.Context(), `SELECT `+columns+` FROM `+table+` WHERE tenant_id = $1 AND sandbox = $2 AND id = $3`,
		p.TenantID, p.Sandbox(), id))
	if err != nil {
		writeError(w, r, notFound(err, what+" "+id))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeJSONType(w http.ResponseWriter, code int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func itoa(i int) string { return strconv.Itoa(i) }

// notFound maps "no rows" to a not-found error naming what, and passes any
// other error through.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Errorf(domain.ENOTFOUND, "%s not found", what)
	}
	return err
}

// optionalReason decodes an optional {"reason": "…"} body (pause, stop,
// complete, cancel): the reason, trimmed, and the body's problem if any.
func optionalReason(r *http.Request) (string, error) {
	var in struct {
		Reason string `json:"reason"`
	}
	err := decodeOptional(r, &in)
	return strings.TrimSpace(in.Reason), err
}
