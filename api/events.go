package api

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// eventView is a recorded event as GET /v1/events shows it: the stored
// event with its metadata and hash, nothing derived.
type eventView struct {
	Object        string            `json:"object"`
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	SchemaVersion int               `json:"schema_version"`
	StreamType    string            `json:"stream_type"`
	StreamID      string            `json:"stream_id"`
	StreamVersion int64             `json:"stream_version"`
	Position      int64             `json:"position"`
	RecordedAt    time.Time         `json:"recorded_at"`
	Data          json.RawMessage   `json:"data"`
	Metadata      eventMetadataView `json:"metadata"`
	Hash          string            `json:"hash"` // hex SHA-256, chained per stream

	at domain.Checkpoint // its place in the global order: the list's sort key
}

// eventMetadataView is domain.Metadata with every field present.
type eventMetadataView struct {
	Actor          string `json:"actor"` // API key id, or "system:<worker>"
	RequestID      string `json:"request_id"`
	IdempotencyKey string `json:"idempotency_key"`
	CausationID    string `json:"causation_id"`
	CorrelationID  string `json:"correlation_id"`
	Sandbox        bool   `json:"sandbox"`
}

const eventViewColumns = `tx_id::text::bigint, position, id, stream_type, stream_id, stream_version, type, schema_version,
	data, metadata, recorded_at, hash`

// eventModeSQL is an event's mode: the sandbox flag of the metadata it was
// recorded with — the mode of the key (or tool) that wrote it, which is the
// mode of its stream, since a key only ever writes to streams of its own
// mode. Read from the event itself, in the same row: consistent with every
// write (stream_heads.sandbox is a projection of the same flag, later, and
// only of each stream's last event).
const eventModeSQL = `coalesce((metadata->>'sandbox')::boolean, false)`

// scanEventView scans a row of eventViewColumns.
func scanEventView(row rowScanner) (eventView, error) {
	v := eventView{Object: "event"}
	var schema int32
	var meta, hash []byte
	if err := row.Scan(&v.at.TxID, &v.at.Position, &v.ID, &v.StreamType, &v.StreamID, &v.StreamVersion, &v.Type, &schema,
		&v.Data, &meta, &v.RecordedAt, &hash); err != nil {
		return v, err
	}
	var m domain.Metadata
	if err := json.Unmarshal(meta, &m); err != nil {
		return v, fmt.Errorf("event %s: metadata: %w", v.ID, err)
	}
	v.Metadata = eventMetadataView{Actor: m.Actor, RequestID: m.RequestID, IdempotencyKey: m.IdempotencyKey,
		CausationID: m.CausationID, CorrelationID: m.CorrelationID, Sandbox: m.Sandbox}
	v.SchemaVersion, v.Position, v.RecordedAt, v.Hash = int(schema), v.at.Position, v.RecordedAt.UTC(), hex.EncodeToString(hash)
	return v, nil
}

// eventQuery is what GET /v1/events selects, as parsed from the query.
type eventQuery struct {
	types         []string // SQL LIKE patterns (nil: every type)
	streamID      string
	accountID     string
	debtorID      string
	from, to      *time.Time
	afterPosition int64 // 0: from the beginning
}

// eventTypePattern is one item of ?type=: an event type, or a prefix of
// one ending in *.
var eventTypePattern = regexp.MustCompile(`^[A-Za-z0-9_.\-]*\*?$`)

// likeEscaper escapes what LIKE treats specially (its escape character is
// the backslash).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// parseEventQuery reads GET /v1/events' filters: type (comma-separated,
// each exact or a prefix ending in *), stream_id, account_id, debtor_id,
// from and to (RFC 3339, on recorded_at: from inclusive, to exclusive) and
// after_position.
func parseEventQuery(r *http.Request) (eventQuery, error) {
	f := &queryFilters{r: r}
	q := eventQuery{streamID: f.text("stream_id"), accountID: f.text("account_id"), debtorID: f.text("debtor_id")}
	if v := f.text("type"); v != "" {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" || !eventTypePattern.MatchString(t) {
				f.fe = append(f.fe, domain.FieldError{Field: "query:type",
					Error: "must be comma-separated event types, each exact (payment.completed) or a prefix ending in * (payment.*)"})
				q.types = nil
				break
			}
			if prefix, ok := strings.CutSuffix(t, "*"); ok {
				q.types = append(q.types, likeEscaper.Replace(prefix)+"%")
			} else {
				q.types = append(q.types, likeEscaper.Replace(t))
			}
		}
	}
	q.from, q.to = f.timestamp("from"), f.timestamp("to")
	if q.from != nil && q.to != nil && !q.to.After(*q.from) {
		f.fe = append(f.fe, domain.FieldError{Field: "query:to", Error: "must be after from"})
	}
	q.afterPosition = f.position("after_position")
	return q, f.err("event")
}

// timestamp is name as an RFC 3339 timestamp, nil if absent.
func (f *queryFilters) timestamp(name string) *time.Time {
	v := f.text(name)
	if v == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		f.fe = append(f.fe, domain.FieldError{Field: "query:" + name, Error: "must be an RFC 3339 timestamp, e.g. 2026-12-31T23:59:59Z"})
		return nil
	}
	return &t
}

// position is name as an event position (a non-negative integer), 0 if
// absent.
func (f *queryFilters) position(name string) int64 {
	v := f.text(name)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		f.fe = append(f.fe, domain.FieldError{Field: "query:" + name, Error: "must be a non-negative integer (an event's position)"})
		return 0
	}
	return n
}

// eventSelection is an eventQuery resolved against the store, once per
// request: the streams a debtor's events are on, where after_position
// starts, and the read horizon.
type eventSelection struct {
	eventQuery
	tenantID string
	sandbox  bool
	accounts []string          // debtor_id: the accounts the debtor is on
	start    domain.Checkpoint // only events after it
	none     bool              // after_position is beyond every event
	// horizon: only events of transactions older than every transaction
	// running when the request began (tx_id < horizon). Every such
	// transaction has ended, so the selection is fixed: no event can later
	// commit into it, and a cursor past an event never skips one — the
	// gap-free global order eventstore.ReadAll reads.
	horizon int64
}

// selectEvents resolves q for the caller.
func (s *Server) selectEvents(ctx context.Context, p domain.Principal, q eventQuery) (eventSelection, error) {
	sel := eventSelection{eventQuery: q, tenantID: p.TenantID, sandbox: p.Sandbox()}
	pool := s.store.Pool()
	if err := pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&sel.horizon); err != nil {
		return sel, fmt.Errorf("events: read horizon: %w", err)
	}
	if q.afterPosition > 0 {
		// After the event at that position in the global order; a position no
		// event has (a rolled-back write's) counts as just before the next
		// event, as for min_position.
		err := pool.QueryRow(ctx, `SELECT tx_id::text::bigint FROM events WHERE position >= $1 ORDER BY position LIMIT 1`,
			q.afterPosition).Scan(&sel.start.TxID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			sel.none = true
		case err != nil:
			return sel, fmt.Errorf("events: after_position: %w", err)
		}
		sel.start.Position = q.afterPosition
	}
	if q.debtorID != "" {
		rows, err := pool.Query(ctx, `SELECT id FROM accounts WHERE tenant_id = $1 AND sandbox = $2 AND debtor_ids @> ARRAY[$3]`,
			p.TenantID, p.Sandbox(), q.debtorID)
		if err != nil {
			return sel, fmt.Errorf("events: debtor's accounts: %w", err)
		}
		if sel.accounts, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return sel, fmt.Errorf("events: debtor's accounts: %w", err)
		}
	}
	return sel, nil
}

// eventPage returns up to limit events of the selection after checkpoint after
// (or after its start, whichever is later), in the global order.
func (s *Server) eventPage(ctx context.Context, sel eventSelection, after domain.Checkpoint, limit int) ([]eventView, error) {
	if sel.none {
		return nil, nil
	}
	if after.Less(sel.start) {
		after = sel.start
	}
	var debtorStreams []string
	if sel.debtorID != "" {
		debtorStreams = append([]string{sel.debtorID}, sel.accounts...)
	}
	rows, err := s.store.Pool().Query(ctx, `
		SELECT `+eventViewColumns+`
		FROM events
		WHERE tenant_id = $1 AND `+eventModeSQL+` = $2
		  AND tx_id < $3::bigint::text::xid8
		  AND (tx_id, position) > ($4::bigint::text::xid8, $5::bigint)
		  AND ($6::text[] IS NULL OR type LIKE ANY ($6))
		  AND ($7 = '' OR stream_id = $7)
		  AND ($8 = '' OR (stream_type = 'account' AND stream_id = $8))
		  AND ($9::text[] IS NULL OR stream_id = ANY ($9))
		  AND ($10::timestamptz IS NULL OR recorded_at >= $10)
		  AND ($11::timestamptz IS NULL OR recorded_at < $11)
		ORDER BY tx_id, position
		LIMIT $12`,
		sel.tenantID, sel.sandbox, sel.horizon, after.TxID, after.Position, sel.types, sel.streamID, sel.accountID,
		debtorStreams, sel.from, sel.to, limit)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (eventView, error) { return scanEventView(row) })
}

// eventCursor encodes a checkpoint as the After of a list cursor.
func eventCursor(c domain.Checkpoint) string { return fmt.Sprintf("%d.%d", c.TxID, c.Position) }

// parseEventCursor decodes what eventCursor encoded ("" is the start).
func parseEventCursor(after string) (domain.Checkpoint, error) {
	var c domain.Checkpoint
	if after == "" {
		return c, nil
	}
	tx, pos, ok := strings.Cut(after, ".")
	var err1, err2 error
	c.TxID, err1 = strconv.ParseInt(tx, 10, 64)
	c.Position, err2 = strconv.ParseInt(pos, 10, 64)
	if !ok || err1 != nil || err2 != nil || c.TxID < 0 || c.Position < 0 {
		return c, domain.Invalid("invalid pagination", domain.FieldError{Field: "query:cursor", Error: "is not a cursor this API returned"})
	}
	return c, nil
}

// ndjsonPage is how many events GET /v1/events reads per query when it
// streams: the most it holds in memory at once.
const ndjsonPage = 1000

// contentTypeNDJSON is newline-delimited JSON: one JSON value per line.
const contentTypeNDJSON = "application/x-ndjson"

// wantsNDJSON reports whether the request's Accept header accepts
// newline-delimited JSON.
func wantsNDJSON(r *http.Request) bool {
	for _, h := range r.Header.Values("Accept") {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != contentTypeNDJSON {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q <= 0 {
				continue
			}
			return true
		}
	}
	return false
}

// listEvents: GET /v1/events — the caller's tenant's events of its mode in
// the global order, filtered as parseEventQuery reads; a page, or with
// Accept: application/x-ndjson the whole selection, one event per line.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Accept")
	ndjson := wantsNDJSON(r)
	var pg page
	var err error
	if !ndjson { // the stream is the whole selection: limit and cursor do not apply
		pg, err = parsePage(r)
	}
	q, qerr := parseEventQuery(r)
	if err == nil {
		err = qerr
	}
	var after domain.Checkpoint
	if err == nil {
		after, err = parseEventCursor(pg.After)
	}
	if err == nil {
		err = s.awaitEvents(r, q.debtorID != "")
	}
	var sel eventSelection
	if err == nil {
		sel, err = s.selectEvents(r.Context(), principal(r), q)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if ndjson {
		s.streamEvents(w, r, sel)
		return
	}
	views, err := s.eventPage(r.Context(), sel, after, pg.Limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v eventView) string { return eventCursor(v.at) }))
}

// streamEvents writes every event of sel as newline-delimited JSON, reading
// ndjsonPage events per query (keyset, in the global order) and flushing
// after each: memory stays constant however many events there are. The
// selection is fixed by its horizon, so the pages neither overlap nor miss
// an event. A failure after the first line aborts the response, so that
// the client sees a broken stream rather than a complete-looking short one.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, sel eventSelection) {
	ctx := r.Context()
	batch, err := s.eventPage(ctx, sel, domain.Checkpoint{}, ndjsonPage)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentTypeNDJSON)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	for {
		for _, v := range batch {
			if err := enc.Encode(v); err != nil {
				return // the client went away
			}
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return // the client went away
		}
		if len(batch) < ndjsonPage {
			return
		}
		if batch, err = s.eventPage(ctx, sel, batch[len(batch)-1].at, ndjsonPage); err != nil {
			if ctx.Err() == nil {
				s.log.Error("events stream failed", "request_id", w.Header().Get(HeaderRequestID), "err", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
}

// awaitEvents implements ?min_position= for reads of the global event
// order: it waits, at most Config.WaitLimit, until the event at that
// position (for a position no event has, the next one) is below the read
// horizon, so the list includes it. With ledger, it also waits for the
// ledger read model (the accounts of debtor_id).
func (s *Server) awaitEvents(r *http.Request, ledger bool) error {
	var projections []string
	if ledger {
		projections = append(projections, "ledger")
	}
	if err := s.awaitPosition(r, projections...); err != nil { // also validates min_position
		return err
	}
	pos, _ := strconv.ParseInt(r.URL.Query().Get("min_position"), 10, 64)
	if pos <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WaitLimit)
	defer cancel()
	var tx int64
	err := s.store.Pool().QueryRow(ctx, `SELECT tx_id::text::bigint FROM events WHERE position >= $1 ORDER BY position LIMIT 1`, pos).Scan(&tx)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // no such event (yet): nothing to wait for
	}
	if err != nil {
		return err
	}
	if err := s.store.AwaitVisible(ctx, tx); err != nil {
		if ctx.Err() != nil && r.Context().Err() == nil {
			return domain.Errorf(domain.EUNAVAILABLE, "the event at position %d has not become readable within %s; retry", pos, s.cfg.WaitLimit)
		}
		return err
	}
	return nil
}

// getEvent: GET /v1/events/{id} — one event of the caller's tenant and
// mode, read from the event store (no read horizon: a committed event is
// shown at once).
func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	id := chi.URLParam(r, "id")
	v, err := scanEventView(s.store.Pool().QueryRow(r.Context(), `SELECT `+eventViewColumns+` FROM events
		WHERE id = $1 AND tenant_id = $2 AND `+eventModeSQL+` = $3`, id, p.TenantID, p.Sandbox()))
	if err != nil {
		writeError(w, r, notFound(err, "event "+id))
		return
	}
	writeJSON(w, http.StatusOK, v)
}
