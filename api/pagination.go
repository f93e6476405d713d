package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// Pagination limits.
const (
	defaultLimit = 50
	maxLimit     = 200
)

// page is a parsed list request: at most limit items after the cursor's key.
type page struct {
	Limit int
	After string // sort key of the last item of the previous page ("" = start)
}

// cursor is the opaque cursor's content. Versioned so its format can change.
type cursor struct {
	V     int    `json:"v"`
	After string `json:"a"`
}

// parsePage reads ?limit= (1..200, default 50) and ?cursor=.
func parsePage(r *http.Request) (page, error) {
	p := page{Limit: defaultLimit}
	var fe []domain.FieldError
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			fe = append(fe, domain.FieldError{Field: "query:limit", Error: "must be an integer from 1 to 200"})
		}
		p.Limit = n
	}
	if v := r.URL.Query().Get("cursor"); v != "" {
		var c cursor
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err != nil || c.V != 1 || c.After == "" {
			fe = append(fe, domain.FieldError{Field: "query:cursor", Error: "is not a cursor this API returned"})
		}
		p.After = c.After
	}
	if len(fe) > 0 {
		return p, domain.Invalid("invalid pagination", fe...)
	}
	return p, nil
}

// list is the envelope of every list response.
type list[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// newList builds a page from items fetched with limit+1 (the extra item only
// tells that there is more); key gives an item's sort key.
func newList[T any](items []T, limit int, key func(T) string) list[T] {
	l := list[T]{Data: items}
	if l.Data == nil {
		l.Data = []T{}
	}
	if len(items) > limit {
		l.Data = items[:limit]
		b, _ := json.Marshal(cursor{V: 1, After: key(items[limit-1])})
		c := base64.RawURLEncoding.EncodeToString(b)
		l.NextCursor = &c
	}
	return l
}

// startList begins a list request: it parses the page, then the filters
// (parse, if any), then waits for ?min_position= on projections; on the
// first error it answers it and returns false.
func (s *Server) startList(w http.ResponseWriter, r *http.Request, parse func() error, projections ...string) (page, bool) {
	pg, err := parsePage(r)
	if err == nil && parse != nil {
		err = parse()
	}
	if err == nil {
		err = s.awaitPosition(r, projections...)
	}
	if err != nil {
		writeError(w, r, err)
		return pg, false
	}
	return pg, true
}

// collect scans every row of a list query (rows and err as Query returned
// them) with scan, closing rows.
func collect[T any](rows pgx.Rows, err error, scan func(rowScanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
}
