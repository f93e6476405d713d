package eventstore

// Export and import of the event store as NDJSON ("arrears events export",
// "arrears events import"), for auditors and for moving an installation.
//
// File format (version 1), one JSON object per line, every line ending in
// "\n":
//
//	{"format":"arrears-events","version":1,"record":"header","exported_at":…,"events":N, …}
//	{"record":"tenant",…}            full exports only: the tenants rows
//	{"record":"api_key",…}           full exports only, unless left out: the keys, SHA-256 of the secret only
//	{"record":"stream_reference",…}  full exports only: the creditor references
//	{"record":"event",…}             every event, in the global order (tx_id, position)
//	{"record":"trailer","events":N,…,"sha256":…}
//
// The trailer's sha256 is the SHA-256 of every line before it (their bytes,
// newlines included), so a truncated or spliced file is refused. Each event
// line carries its hash and its predecessor's (prev_hash, absent for a
// stream's first version), so every line's hash can be recomputed on its
// own and the lines of a stream checked to link up. Like the hash chains in
// the database, this detects changes, but not a forger who also recomputes
// every later hash of the stream and the checksum: it is not a signature.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// ExportFormat and ExportVersion identify an events export (its header).
const (
	ExportFormat  = "arrears-events"
	ExportVersion = 1
)

// exportTimeLayout is how every time is written: UTC, microseconds (what
// PostgreSQL stores and what enters the hash).
const exportTimeLayout = recordedAtLayout

// maxImportLine bounds one line of an import file (an event's data is
// bounded by the API's body limit, far below).
const maxImportLine = 64 << 20

// ExportOptions selects what Export writes.
type ExportOptions struct {
	// Since, if set, exports only events recorded at or after it. Recording
	// times are the appenders' clocks, not the global order: for gap-free
	// incremental exports use AfterPosition.
	Since time.Time
	// AfterPosition, if > 0, exports only the events after the event at
	// this position in the global order (tx_id, position): an export with
	// AfterPosition = the previous export's last position misses nothing.
	AfterPosition int64
	// TenantID, if set, exports only this tenant's events and rows.
	TenantID string
	// WithoutKeys leaves the API keys out of a full export (the imported
	// installation then has tenants but no keys: create them with
	// "arrears keys").
	WithoutKeys bool
	// Settle is how long Export first waits for the events committed before
	// it started to fall below the read horizon (other transactions on the
	// PostgreSQL cluster hold it back while they run): default 10s,
	// negative not at all. After it, Export exports below the horizon it has
	// and reports the committed events it left out.
	Settle time.Duration
	// PageSize is the number of events read per query (default 1000).
	PageSize int
	// Progress, if set, is called with the events written so far and the
	// number the export will write, after every page.
	Progress func(done, total int64)
}

// Partial reports whether the options select less than a tenant's (or the
// installation's) whole history: such an export cannot be imported.
func (o ExportOptions) Partial() bool { return !o.Since.IsZero() || o.AfterPosition > 0 }

// ExportHeader is the first line of an export.
type ExportHeader struct {
	Format        string     `json:"format"`
	Version       int        `json:"version"`
	Record        string     `json:"record"` // "header"
	ExportedAt    string     `json:"exported_at"`
	Since         *time.Time `json:"since,omitempty"`
	AfterPosition int64      `json:"after_position,omitempty"`
	Tenant        string     `json:"tenant,omitempty"`
	WithoutKeys   bool       `json:"without_keys,omitempty"`
	// Horizon is the transaction-id horizon the export read below: every
	// event of an older transaction, none of a newer one.
	Horizon int64 `json:"horizon"`
	Events  int64 `json:"events"` // the number of event lines that follow
}

// Partial reports whether the export holds less than a whole history.
func (h ExportHeader) Partial() bool { return h.Since != nil || h.AfterPosition > 0 }

// ExportTrailer is the last line of an export.
type ExportTrailer struct {
	Record           string `json:"record"` // "trailer"
	Events           int64  `json:"events"`
	Tenants          int64  `json:"tenants"`
	APIKeys          int64  `json:"api_keys"`
	StreamReferences int64  `json:"stream_references"`
	LastPosition     int64  `json:"last_position,omitempty"` // the last event's position in the exporting installation
	SHA256           string `json:"sha256"`                  // hex SHA-256 of every line before this one
}

// ExportSummary is what Export wrote.
type ExportSummary struct {
	Header  ExportHeader
	Trailer ExportTrailer
	// LeftOut counts the selected events that were committed but not yet
	// below the horizon when the export ended (older transactions were
	// still running): they are not in the file.
	LeftOut int64
}

// The lines of an export. Hashes are hex; times are exportTimeLayout.
type (
	tenantLine struct {
		Record    string `json:"record"` // "tenant"
		ID        string `json:"id"`
		Name      string `json:"name"`
		CreatedAt string `json:"created_at"`
	}
	apiKeyLine struct {
		Record     string   `json:"record"` // "api_key"
		ID         string   `json:"id"`
		TenantID   string   `json:"tenant_id"`
		Name       string   `json:"name"`
		Prefix     string   `json:"prefix"`
		SecretHash string   `json:"secret_hash"` // SHA-256 of the secret: never the secret
		Mode       string   `json:"mode"`
		Scopes     []string `json:"scopes"`
		ReadOnly   bool     `json:"read_only"`
		CreatedAt  string   `json:"created_at"`
		ExpiresAt  *string  `json:"expires_at"`
		RevokedAt  *string  `json:"revoked_at"`
		LastUsedAt *string  `json:"last_used_at"`
	}
	referenceLine struct {
		Record     string `json:"record"` // "stream_reference"
		TenantID   string `json:"tenant_id"`
		Sandbox    bool   `json:"sandbox"`
		StreamType string `json:"stream_type"`
		Reference  string `json:"reference"`
		StreamID   string `json:"stream_id"`
	}
	eventLine struct {
		Record        string          `json:"record"`   // "event"
		Position      int64           `json:"position"` // informational: reassigned on import
		ID            string          `json:"id"`
		TenantID      string          `json:"tenant_id"`
		StreamType    string          `json:"stream_type"`
		StreamID      string          `json:"stream_id"`
		StreamVersion int64           `json:"stream_version"`
		Type          string          `json:"type"`
		SchemaVersion int             `json:"schema_version"`
		Data          json.RawMessage `json:"data"`
		Metadata      json.RawMessage `json:"metadata"`
		RecordedAt    string          `json:"recorded_at"`
		PrevHash      string          `json:"prev_hash,omitempty"`
		Hash          string          `json:"hash"`
	}
)

// lineWriter writes JSON lines, hashing and counting them.
type lineWriter struct {
	w   *bufio.Writer
	sum hash.Hash
	buf bytes.Buffer
	enc *json.Encoder
}

func newLineWriter(w io.Writer) *lineWriter {
	lw := &lineWriter{w: bufio.NewWriterSize(w, 256<<10), sum: sha256.New()}
	lw.enc = json.NewEncoder(&lw.buf)
	lw.enc.SetEscapeHTML(false)
	return lw
}

// line writes v as one line ("\n" included), part of the trailer's hash.
func (lw *lineWriter) line(v any) error {
	lw.buf.Reset()
	if err := lw.enc.Encode(v); err != nil { // Encode appends the "\n"
		return err
	}
	lw.sum.Write(lw.buf.Bytes())
	_, err := lw.w.Write(lw.buf.Bytes())
	return err
}

func formatTime(t time.Time) string { return t.UTC().Format(exportTimeLayout) }

func formatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := formatTime(*t)
	return &s
}

// Export writes the event store to w as NDJSON (see the package's export
// format): a header, for a full export the tenants, API keys (hashed
// secrets only) and stream references, every selected event in the
// gap-free global order (tx_id, position), and a trailer with the counts
// and a SHA-256 of the lines. It reads, page by page in constant memory,
// every event below the read horizon taken when it starts (the horizon
// ReadAll uses), so the export is a consistent prefix of the global order
// even while events are being appended.
func (s *Store) Export(ctx context.Context, w io.Writer, opts ExportOptions) (ExportSummary, error) {
	var sum ExportSummary
	fail := func(err error) (ExportSummary, error) { return sum, fmt.Errorf("eventstore: export: %w", err) }
	if !opts.Since.IsZero() && opts.AfterPosition > 0 {
		return fail(errors.New("since and after-position exclude each other"))
	}
	if opts.AfterPosition < 0 {
		return fail(fmt.Errorf("after-position must be ≥ 0, got %d", opts.AfterPosition))
	}
	pageSize := opts.PageSize
	if pageSize <= 0 {
		pageSize = 1000
	}

	h := ExportHeader{Format: ExportFormat, Version: ExportVersion, Record: "header", ExportedAt: formatTime(s.now()),
		AfterPosition: opts.AfterPosition, Tenant: opts.TenantID, WithoutKeys: opts.WithoutKeys}
	var since *time.Time
	if !opts.Since.IsZero() {
		t := opts.Since.UTC()
		since, h.Since = &t, &t
	}
	if opts.Settle >= 0 {
		settle := opts.Settle
		if settle == 0 {
			settle = 10 * time.Second
		}
		last, err := s.LastTxID(ctx)
		if err != nil {
			return fail(err)
		}
		sctx, cancel := context.WithTimeout(ctx, settle)
		err = s.AwaitVisible(sctx, last)
		cancel()
		if err != nil && ctx.Err() != nil {
			return fail(ctx.Err())
		} // else: export below the horizon there is, and report what it left out
	}
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&h.Horizon); err != nil {
		return fail(fmt.Errorf("read horizon: %w", err))
	}
	var after domain.Checkpoint
	if opts.AfterPosition > 0 {
		after.Position = opts.AfterPosition
		err := s.pool.QueryRow(ctx, `SELECT tx_id::text::bigint FROM events WHERE position = $1`, opts.AfterPosition).Scan(&after.TxID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fail(fmt.Errorf("no event has position %d", opts.AfterPosition))
		}
		if err != nil {
			return fail(fmt.Errorf("after-position: %w", err))
		}
	}
	const selection = `(e.tx_id, e.position) > ($1::bigint::text::xid8, $2::bigint)
		  AND e.tx_id < $3::bigint::text::xid8
		  AND ($4::text = '' OR e.tenant_id = $4)
		  AND ($5::timestamptz IS NULL OR e.recorded_at >= $5)`
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events e WHERE `+selection,
		after.TxID, after.Position, h.Horizon, opts.TenantID, since).Scan(&h.Events); err != nil {
		return fail(fmt.Errorf("count: %w", err))
	}

	lw := newLineWriter(w)
	if err := lw.line(h); err != nil {
		return fail(err)
	}
	tr := ExportTrailer{Record: "trailer"}
	if !opts.Partial() {
		if err := s.exportRows(ctx, lw, h, opts, &tr); err != nil {
			return fail(err)
		}
	}

	if opts.Progress != nil {
		opts.Progress(0, h.Events)
	}
	for {
		n, last, err := s.exportPage(ctx, lw, `SELECT e.position, e.tx_id::text::bigint, e.id, e.tenant_id, e.stream_type, e.stream_id,
		       e.stream_version, e.type, e.schema_version, e.data::text, e.metadata::text, e.recorded_at, e.hash, p.hash
		FROM events e
		LEFT JOIN events p ON p.tenant_id = e.tenant_id AND p.stream_id = e.stream_id AND p.stream_version = e.stream_version - 1
		WHERE `+selection+`
		ORDER BY e.tx_id, e.position
		LIMIT $6`, after.TxID, after.Position, h.Horizon, opts.TenantID, since, pageSize)
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			break
		}
		tr.Events += int64(n)
		tr.LastPosition, after = last.Position, last
		if opts.Progress != nil {
			opts.Progress(tr.Events, h.Events)
		}
		if n < pageSize {
			break
		}
	}
	if tr.Events != h.Events {
		// Cannot happen: nothing below the horizon changes. Refuse to write a
		// trailer that would make a wrong file look complete.
		return fail(fmt.Errorf("read %d events, counted %d", tr.Events, h.Events))
	}
	tr.SHA256 = hex.EncodeToString(lw.sum.Sum(nil))
	if err := lw.line(tr); err != nil {
		return fail(err)
	}
	if err := lw.w.Flush(); err != nil {
		return fail(err)
	}
	sum.Header, sum.Trailer = h, tr
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events e
		WHERE (e.tx_id, e.position) > ($1::bigint::text::xid8, $2::bigint)
		  AND e.tx_id >= $3::bigint::text::xid8
		  AND ($4::text = '' OR e.tenant_id = $4)
		  AND ($5::timestamptz IS NULL OR e.recorded_at >= $5)`,
		after.TxID, after.Position, h.Horizon, opts.TenantID, since).Scan(&sum.LeftOut); err != nil {
		return fail(fmt.Errorf("count the events left out: %w", err))
	}
	return sum, nil
}

// exportPage writes one page of events and returns how many and the last
// one's checkpoint.
func (s *Store) exportPage(ctx context.Context, lw *lineWriter, sql string, args ...any) (int, domain.Checkpoint, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return 0, domain.Checkpoint{}, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var (
		n          int
		last       domain.Checkpoint
		l          eventLine
		data, meta string
		recorded   time.Time
		sum, prev  []byte
		schema     int32
	)
	l.Record = "event"
	for rows.Next() {
		if err := rows.Scan(&l.Position, &last.TxID, &l.ID, &l.TenantID, &l.StreamType, &l.StreamID, &l.StreamVersion,
			&l.Type, &schema, &data, &meta, &recorded, &sum, &prev); err != nil {
			return 0, last, fmt.Errorf("read events: %w", err)
		}
		last.Position = l.Position
		l.SchemaVersion = int(schema)
		l.Data, l.Metadata = json.RawMessage(data), json.RawMessage(meta)
		l.RecordedAt = formatTime(recorded)
		l.Hash, l.PrevHash = hex.EncodeToString(sum), ""
		if prev != nil {
			l.PrevHash = hex.EncodeToString(prev)
		}
		if err := lw.line(&l); err != nil {
			return 0, last, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, last, fmt.Errorf("read events: %w", err)
	}
	return n, last, nil
}

// exportRows writes the command-side rows a working installation needs
// besides its events: tenants, API keys and stream references. Rows whose
// creating event is not below the export's horizon are left out, so the
// rows match the events exported.
func (s *Store) exportRows(ctx context.Context, lw *lineWriter, h ExportHeader, opts ExportOptions, tr *ExportTrailer) error {
	const newer = `SELECT 1 FROM events e WHERE e.tenant_id = %s AND e.stream_id = %s AND e.stream_version = 1
		AND e.tx_id >= $2::bigint::text::xid8`
	rows, err := s.pool.Query(ctx, `SELECT id, name, created_at FROM tenants t
		WHERE ($1::text = '' OR id = $1) AND NOT EXISTS (`+fmt.Sprintf(newer, "t.id", "t.id")+`)
		ORDER BY created_at, id`, opts.TenantID, h.Horizon)
	if err != nil {
		return fmt.Errorf("read tenants: %w", err)
	}
	l := tenantLine{Record: "tenant"}
	var created time.Time
	_, err = pgx.ForEachRow(rows, []any{&l.ID, &l.Name, &created}, func() error {
		l.CreatedAt = formatTime(created)
		tr.Tenants++
		return lw.line(&l)
	})
	if err != nil {
		return fmt.Errorf("tenants: %w", err)
	}

	if !opts.WithoutKeys {
		rows, err = s.pool.Query(ctx, `SELECT id, tenant_id, name, prefix, secret_hash, mode, scopes, read_only,
			       created_at, expires_at, revoked_at, last_used_at
			FROM api_keys k
			WHERE ($1::text = '' OR tenant_id = $1) AND NOT EXISTS (`+fmt.Sprintf(newer, "k.tenant_id", "k.id")+`)
			ORDER BY created_at, id`, opts.TenantID, h.Horizon)
		if err != nil {
			return fmt.Errorf("read API keys: %w", err)
		}
		k := apiKeyLine{Record: "api_key"}
		var secretHash []byte
		var expires, revoked, used *time.Time
		_, err = pgx.ForEachRow(rows, []any{&k.ID, &k.TenantID, &k.Name, &k.Prefix, &secretHash, &k.Mode, &k.Scopes, &k.ReadOnly,
			&created, &expires, &revoked, &used}, func() error {
			k.SecretHash = hex.EncodeToString(secretHash)
			k.CreatedAt = formatTime(created)
			k.ExpiresAt, k.RevokedAt, k.LastUsedAt = formatTimePtr(expires), formatTimePtr(revoked), formatTimePtr(used)
			if k.Scopes == nil {
				k.Scopes = []string{}
			}
			tr.APIKeys++
			return lw.line(&k)
		})
		if err != nil {
			return fmt.Errorf("API keys: %w", err)
		}
	}

	rows, err = s.pool.Query(ctx, `SELECT tenant_id, sandbox, stream_type, reference, stream_id
		FROM stream_references r
		WHERE ($1::text = '' OR tenant_id = $1) AND NOT EXISTS (`+fmt.Sprintf(newer, "r.tenant_id", "r.stream_id")+`)
		ORDER BY tenant_id, sandbox, stream_type, reference`, opts.TenantID, h.Horizon)
	if err != nil {
		return fmt.Errorf("read stream references: %w", err)
	}
	r := referenceLine{Record: "stream_reference"}
	_, err = pgx.ForEachRow(rows, []any{&r.TenantID, &r.Sandbox, &r.StreamType, &r.Reference, &r.StreamID}, func() error {
		tr.StreamReferences++
		return lw.line(&r)
	})
	if err != nil {
		return fmt.Errorf("stream references: %w", err)
	}
	return nil
}

// ImportSummary is what Import recorded.
type ImportSummary struct {
	Header           ExportHeader
	Events           int64
	Tenants          int64
	APIKeys          int64
	StreamReferences int64
	// TxID is the importing transaction: every imported event has it (pass
	// it to AwaitVisible before reading them with ReadAll).
	TxID int64
}

// importRecord is any line after the header: the union of the line types.
type importRecord struct {
	eventLine // events; tenants, API keys and references use Record, ID, TenantID, StreamType, StreamID

	// tenants, API keys, references
	Name       string   `json:"name"`
	CreatedAt  string   `json:"created_at"`
	Prefix     string   `json:"prefix"`
	SecretHash string   `json:"secret_hash"`
	Mode       string   `json:"mode"`
	Scopes     []string `json:"scopes"`
	ReadOnly   bool     `json:"read_only"`
	ExpiresAt  *string  `json:"expires_at"`
	RevokedAt  *string  `json:"revoked_at"`
	LastUsedAt *string  `json:"last_used_at"`
	Sandbox    bool     `json:"sandbox"`
	Reference  string   `json:"reference"`

	// trailer
	Events           int64  `json:"events"`
	Tenants          int64  `json:"tenants"`
	APIKeys          int64  `json:"api_keys"`
	StreamReferences int64  `json:"stream_references"`
	SHA256           string `json:"sha256"`
}

// pendingEvent is an event line checked on its own, waiting for its batch.
type pendingEvent struct {
	line       int64
	e          domain.Event
	data, meta string
	prev       []byte
}

// importBatch is how many events Import checks against their predecessors
// and inserts at a time.
const importBatch = 2000

// Import loads an export written by Export into an EMPTY event store: it
// refuses a database that has events (or tenants, keys or references), and
// a partial export (since / after-position). Every event keeps its id,
// stream, version, type, data, metadata, recording time and hash; positions
// are reassigned in the file's order, which is the source's global order.
//
// Every line is checked as it is read: each event's hash is recomputed with
// the canonical hash and must equal the file's, and must continue its
// stream's chain (prev_hash = the hash of the stream's previous version,
// versions without gaps); the trailer must follow the last line with the
// right counts and SHA-256. Any problem refuses the whole file naming the
// line (and stream and version), and NOTHING is imported: everything
// happens in one transaction, which commits only after the trailer checked
// and the tenants, keys and references matched the events that record them.
// A key's secret hash is in no event, so only the trailer's (unkeyed)
// checksum covers it: import exports from trusted hands, or leave keys out.
// Memory stays constant: events are checked and inserted in batches.
//
// progress, if set, is called with the events imported so far and the
// header's count. Read models are left empty: rebuild the projections.
func (s *Store) Import(ctx context.Context, r io.Reader, progress func(done, total int64)) (ImportSummary, error) {
	var sum ImportSummary
	br := bufio.NewReaderSize(r, 256<<10)
	im := &importer{s: s, br: br, sum: sha256.New(), progress: progress}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		im.tx = tx
		return im.run(ctx, &sum)
	})
	if err != nil {
		return ImportSummary{}, fmt.Errorf("eventstore: import: %w", err)
	}
	s.Notify()
	return sum, nil
}

type importer struct {
	s        *Store
	tx       pgx.Tx
	br       *bufio.Reader
	sum      hash.Hash
	line     int64 // lines read
	progress func(done, total int64)
	batch    []pendingEvent
}

// next returns the next line (with its "\n"), or io.EOF at the end.
func (im *importer) next() ([]byte, error) {
	var b []byte
	for {
		chunk, err := im.br.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > maxImportLine {
			return nil, fmt.Errorf("line %d: longer than %d bytes", im.line+1, maxImportLine)
		}
		switch {
		case err == nil:
			im.line++
			return b, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(b) > 0:
			im.line++
			return b, nil // a last line without "\n"
		default:
			return nil, err
		}
	}
}

func (im *importer) run(ctx context.Context, sum *ImportSummary) error {
	tx := im.tx
	// No one appends while we import, and a second import waits for this
	// one and then finds the database not empty.
	if _, err := tx.Exec(ctx, `LOCK TABLE events, tenants, api_keys, stream_references IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	var events, tenants, keys, refs int64
	if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1) e),
		(SELECT count(*) FROM tenants), (SELECT count(*) FROM api_keys), (SELECT count(*) FROM stream_references)`).
		Scan(&events, &tenants, &keys, &refs); err != nil {
		return fmt.Errorf("check empty: %w", err)
	}
	if events+tenants+keys+refs > 0 {
		return fmt.Errorf("the database is not empty (it has events, tenants, API keys or stream references): " +
			"import only into a fresh installation's database")
	}

	b, err := im.next()
	if errors.Is(err, io.EOF) {
		return errors.New("empty input: not an arrears events export")
	}
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	h := &sum.Header
	if err := json.Unmarshal(b, h); err != nil || h.Format != ExportFormat {
		return fmt.Errorf("line 1: not an arrears events export (want a header with \"format\":%q)", ExportFormat)
	}
	if h.Version != ExportVersion {
		return fmt.Errorf("line 1: export format version %d; this arrears reads version %d", h.Version, ExportVersion)
	}
	if h.Partial() {
		return fmt.Errorf("line 1: a partial export (since / after-position) cannot be imported: import needs a full export")
	}
	im.sum.Write(b)
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&sum.TxID); err != nil {
		return fmt.Errorf("transaction id: %w", err)
	}
	if im.progress != nil {
		im.progress(0, h.Events)
	}

	im.batch = make([]pendingEvent, 0, importBatch)
	var rec importRecord
	for {
		b, err := im.next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("truncated: no trailer after line %d", im.line)
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		rec = importRecord{}
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("line %d: %w", im.line, err)
		}
		if rec.Record == "trailer" {
			if err := im.flush(ctx, sum); err != nil {
				return err
			}
			if err := im.finish(&rec, b, sum); err != nil {
				return err
			}
			return im.checkRows(ctx)
		}
		im.sum.Write(b)
		switch rec.Record {
		case "event":
			pe, err := im.check(&rec)
			if err != nil {
				return fmt.Errorf("line %d: %w", im.line, err)
			}
			im.batch = append(im.batch, pe)
			if len(im.batch) == importBatch {
				if err := im.flush(ctx, sum); err != nil {
					return err
				}
			}
		case "tenant", "api_key", "stream_reference":
			if sum.Events > 0 || len(im.batch) > 0 {
				return fmt.Errorf("line %d: a %s after the events", im.line, rec.Record)
			}
			if err := im.row(ctx, &rec, sum); err != nil {
				return fmt.Errorf("line %d: %s: %w", im.line, rec.Record, err)
			}
		default:
			return fmt.Errorf("line %d: unknown record %q", im.line, rec.Record)
		}
	}
}

// finish checks the trailer and that nothing follows it.
func (im *importer) finish(tr *importRecord, b []byte, sum *ImportSummary) error {
	trailerLine := im.line
	if got := hex.EncodeToString(im.sum.Sum(nil)); tr.SHA256 != got {
		return fmt.Errorf("line %d: trailer: the lines' SHA-256 is %s, the trailer says %q: the file was altered", trailerLine, got, tr.SHA256)
	}
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"events", sum.Events, tr.Events},
		{"tenants", sum.Tenants, tr.Tenants},
		{"API keys", sum.APIKeys, tr.APIKeys},
		{"stream references", sum.StreamReferences, tr.StreamReferences},
	} {
		if c.got != c.want {
			return fmt.Errorf("line %d: trailer: %d %s read, the trailer says %d", trailerLine, c.got, c.what, c.want)
		}
	}
	if sum.Events != sum.Header.Events {
		return fmt.Errorf("line %d: trailer: %d events read, the header says %d", trailerLine, sum.Events, sum.Header.Events)
	}
	for {
		extra, err := im.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if len(bytes.TrimSpace(extra)) > 0 {
			return fmt.Errorf("line %d: data after the trailer (line %d)", im.line, trailerLine)
		}
	}
}

// checkRows checks the imported tenants, API keys and references against
// the imported (hash-verified) events that record them: every tenant has
// its tenant.created, every key its api_key.created with the same tenant,
// name, prefix, mode, scopes and read-only flag, and is revoked if an
// api_key.revoked says so; every reference names a stream of its type. A
// key's secret hash is in no event: only the trailer's checksum covers it.
func (im *importer) checkRows(ctx context.Context) error {
	for _, c := range []struct{ what, sql string }{
		{"tenant %s has no matching tenant.created event", `
			SELECT t.id FROM tenants t WHERE NOT EXISTS (
				SELECT 1 FROM events e WHERE e.tenant_id = t.id AND e.stream_id = t.id AND e.stream_version = 1
				  AND e.type = 'tenant.created' AND e.data->>'name' = t.name)
			LIMIT 1`},
		{"API key %s has no matching api_key.created event", `
			SELECT k.id FROM api_keys k WHERE NOT EXISTS (
				SELECT 1 FROM events e WHERE e.tenant_id = k.tenant_id AND e.stream_id = k.id AND e.stream_version = 1
				  AND e.type = 'api_key.created' AND e.data->>'name' = k.name AND e.data->>'prefix' = k.prefix
				  AND e.data->>'mode' = k.mode AND e.data->'scopes' = to_jsonb(k.scopes)
				  AND (e.data->'read_only')::boolean = k.read_only)
			LIMIT 1`},
		{"API key %s is not revoked but its api_key.revoked event is in the file", `
			SELECT k.id FROM api_keys k WHERE k.revoked_at IS NULL AND EXISTS (
				SELECT 1 FROM events e WHERE e.tenant_id = k.tenant_id AND e.stream_id = k.id AND e.type = 'api_key.revoked')
			LIMIT 1`},
		{"stream reference to %s names no stream of its type", `
			SELECT r.stream_id FROM stream_references r WHERE NOT EXISTS (
				SELECT 1 FROM events e WHERE e.tenant_id = r.tenant_id AND e.stream_id = r.stream_id AND e.stream_version = 1
				  AND e.stream_type = r.stream_type)
			LIMIT 1`},
	} {
		var id string
		err := im.tx.QueryRow(ctx, c.sql).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check rows against events: %w", err)
		}
		return fmt.Errorf(c.what, id)
	}
	return nil
}

func parseHash(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("not a hex SHA-256: %q", s)
	}
	return b, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, err
	}
	if t != t.Truncate(time.Microsecond) {
		return t, fmt.Errorf("%s: more precise than microseconds", s)
	}
	return t.UTC(), nil
}

func parseTimePtr(s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := parseTime(*s)
	return &t, err
}

// check validates an event line on its own and recomputes its hash from
// its prev_hash; chaining to its predecessor is checked with its batch.
func (im *importer) check(rec *importRecord) (pendingEvent, error) {
	pe := pendingEvent{line: im.line}
	e := &pe.e
	*e = domain.Event{ID: rec.ID, TenantID: rec.TenantID, StreamType: rec.StreamType, StreamID: rec.StreamID,
		StreamVersion: rec.StreamVersion, Type: rec.Type, SchemaVersion: rec.SchemaVersion}
	where := fmt.Sprintf("event %s (tenant %s, stream %s, version %d)", rec.ID, rec.TenantID, rec.StreamID, rec.StreamVersion)
	switch {
	case rec.ID == "" || len(rec.ID) > 200:
		return pe, fmt.Errorf("%s: id must be 1 to 200 characters", where)
	case !isToken(rec.TenantID, true):
		return pe, fmt.Errorf("%s: invalid tenant_id", where)
	case !isToken(rec.StreamType, false):
		return pe, fmt.Errorf("%s: invalid stream_type", where)
	case rec.StreamID == "" || len(rec.StreamID) > 200:
		return pe, fmt.Errorf("%s: stream_id must be 1 to 200 characters", where)
	case rec.StreamVersion < 1:
		return pe, fmt.Errorf("%s: stream_version must be ≥ 1", where)
	case !isEventType(rec.Type):
		return pe, fmt.Errorf("%s: invalid type %q", where, rec.Type)
	case rec.SchemaVersion < 1:
		return pe, fmt.Errorf("%s: schema_version must be ≥ 1", where)
	case len(rec.Data) == 0 || rec.Data[0] != '{':
		return pe, fmt.Errorf("%s: data must be a JSON object", where)
	case len(rec.Metadata) == 0 || rec.Metadata[0] != '{':
		return pe, fmt.Errorf("%s: metadata must be a JSON object", where)
	}
	var err error
	if e.RecordedAt, err = parseTime(rec.RecordedAt); err != nil {
		return pe, fmt.Errorf("%s: recorded_at: %w", where, err)
	}
	if e.Hash, err = parseHash(rec.Hash); err != nil {
		return pe, fmt.Errorf("%s: hash: %w", where, err)
	}
	switch {
	case rec.StreamVersion == 1 && rec.PrevHash != "":
		return pe, fmt.Errorf("%s: a stream's first event has no prev_hash", where)
	case rec.StreamVersion > 1:
		if pe.prev, err = parseHash(rec.PrevHash); err != nil {
			return pe, fmt.Errorf("%s: prev_hash: %w", where, err)
		}
	}
	cd, err := canonicalJSON(rec.Data)
	if err != nil {
		return pe, fmt.Errorf("%s: data: %w", where, err)
	}
	cm, err := canonicalJSON(rec.Metadata)
	if err != nil {
		return pe, fmt.Errorf("%s: metadata: %w", where, err)
	}
	if !bytes.Equal(chainHash(pe.prev, e, cd, cm), e.Hash) {
		return pe, fmt.Errorf("%s: hash mismatch: the event was altered", where)
	}
	pe.data, pe.meta = string(rec.Data), string(rec.Metadata)
	return pe, nil
}

type streamKey struct{ tenant, stream string }

type streamHead struct {
	version int64
	typ     string
	hash    []byte
}

// flush checks the batch's events continue their streams' chains (from the
// events already imported, which this transaction sees, and from earlier
// events of the batch) and inserts them in file order.
func (im *importer) flush(ctx context.Context, sum *ImportSummary) error {
	if len(im.batch) == 0 {
		return nil
	}
	heads := make(map[streamKey]streamHead, len(im.batch))
	var tenants, streams []string
	for _, pe := range im.batch {
		k := streamKey{pe.e.TenantID, pe.e.StreamID}
		if _, seen := heads[k]; !seen {
			heads[k] = streamHead{}
			if pe.e.StreamVersion > 1 {
				tenants, streams = append(tenants, k.tenant), append(streams, k.stream)
			}
		}
	}
	if len(streams) > 0 {
		rows, err := im.tx.Query(ctx, `
			SELECT k.tenant_id, k.stream_id, h.stream_version, h.stream_type, h.hash
			FROM unnest($1::text[], $2::text[]) AS k(tenant_id, stream_id)
			JOIN LATERAL (SELECT stream_version, stream_type, hash FROM events e
			              WHERE e.tenant_id = k.tenant_id AND e.stream_id = k.stream_id
			              ORDER BY stream_version DESC LIMIT 1) h ON true`, tenants, streams)
		if err != nil {
			return fmt.Errorf("read stream heads: %w", err)
		}
		var k streamKey
		var hd streamHead
		_, err = pgx.ForEachRow(rows, []any{&k.tenant, &k.stream, &hd.version, &hd.typ, &hd.hash}, func() error {
			heads[k] = hd
			hd = streamHead{}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read stream heads: %w", err)
		}
	}

	for _, pe := range im.batch {
		e := &pe.e
		k := streamKey{e.TenantID, e.StreamID}
		hd := heads[k]
		where := fmt.Sprintf("line %d: event %s (tenant %s, stream %s, version %d)", pe.line, e.ID, e.TenantID, e.StreamID, e.StreamVersion)
		switch {
		case e.StreamVersion != hd.version+1 && hd.version == 0:
			return fmt.Errorf("%s: the stream's versions before %d are not in the file", where, e.StreamVersion)
		case e.StreamVersion != hd.version+1:
			return fmt.Errorf("%s: version %d follows %d", where, e.StreamVersion, hd.version)
		case hd.version > 0 && e.StreamType != hd.typ:
			return fmt.Errorf("%s: stream type %s, the stream's earlier events have %s", where, e.StreamType, hd.typ)
		case !bytes.Equal(pe.prev, hd.hash):
			return fmt.Errorf("%s: prev_hash is not the hash of version %d: the chain is broken", where, hd.version)
		}
		heads[k] = streamHead{version: e.StreamVersion, typ: e.StreamType, hash: e.Hash}
	}

	first, last := im.batch[0].line, im.batch[len(im.batch)-1].line
	batch := im.batch
	n, err := im.tx.CopyFrom(ctx, pgx.Identifier{"events"},
		[]string{"id", "tenant_id", "stream_type", "stream_id", "stream_version", "type", "schema_version", "data", "metadata", "recorded_at", "hash"},
		pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
			pe := &batch[i]
			e := &pe.e
			return []any{e.ID, e.TenantID, e.StreamType, e.StreamID, e.StreamVersion, e.Type, int32(e.SchemaVersion),
				pe.data, pe.meta, e.RecordedAt, e.Hash}, nil
		}))
	if err != nil {
		return fmt.Errorf("lines %d–%d: insert events: %w", first, last, err)
	}
	sum.Events += n
	clear(im.batch)
	im.batch = im.batch[:0]
	if im.progress != nil {
		im.progress(sum.Events, sum.Header.Events)
	}
	return nil
}

// row inserts a tenant, API key or stream reference line.
func (im *importer) row(ctx context.Context, rec *importRecord, sum *ImportSummary) error {
	switch rec.Record {
	case "tenant":
		created, err := parseTime(rec.CreatedAt)
		if err != nil {
			return fmt.Errorf("tenant %s: created_at: %w", rec.ID, err)
		}
		if _, err := im.tx.Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)`, rec.ID, rec.Name, created); err != nil {
			return fmt.Errorf("tenant %s: %w", rec.ID, err)
		}
		sum.Tenants++
	case "api_key":
		secretHash, err := parseHash(rec.SecretHash)
		if err != nil {
			return fmt.Errorf("key %s: secret_hash: %w", rec.ID, err)
		}
		created, err := parseTime(rec.CreatedAt)
		if err != nil {
			return fmt.Errorf("key %s: created_at: %w", rec.ID, err)
		}
		var times [3]*time.Time
		for i, s := range []*string{rec.ExpiresAt, rec.RevokedAt, rec.LastUsedAt} {
			if times[i], err = parseTimePtr(s); err != nil {
				return fmt.Errorf("key %s: %w", rec.ID, err)
			}
		}
		if rec.Scopes == nil {
			rec.Scopes = []string{}
		}
		_, err = im.tx.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, mode, scopes, read_only,
			created_at, expires_at, revoked_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			rec.ID, rec.TenantID, rec.Name, rec.Prefix, secretHash, rec.Mode, rec.Scopes, rec.ReadOnly,
			created, times[0], times[1], times[2])
		if err != nil {
			return fmt.Errorf("key %s: %w", rec.ID, err)
		}
		sum.APIKeys++
	case "stream_reference":
		_, err := im.tx.Exec(ctx, `INSERT INTO stream_references (tenant_id, sandbox, stream_type, reference, stream_id)
			VALUES ($1, $2, $3, $4, $5)`, rec.TenantID, rec.Sandbox, rec.StreamType, rec.Reference, rec.StreamID)
		if err != nil {
			return fmt.Errorf("%s reference %q: %w", rec.StreamType, rec.Reference, err)
		}
		sum.StreamReferences++
	}
	return nil
}
