// Package eventstore is arrears' PostgreSQL event store: append-only events
// with optimistic concurrency per stream, atomic batches across streams, a
// gap-free global read order, and a per-stream SHA-256 hash chain.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arrears/arrears/domain"
)

// StreamAppend is the events to append to one stream, and the version the
// caller saw when it decided them: 0 for a stream that must not exist yet.
type StreamAppend struct {
	TenantID        string
	StreamType      string
	StreamID        string
	ExpectedVersion int64
	Events          []domain.NewEvent
}

// Store is the PostgreSQL event store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	ids  *domain.IDGenerator
	now  func() time.Time

	mu       sync.Mutex
	onAppend []func()

	locks streamLocks     // serialises commands per stream in this process
	cache *aggregateCache // recently used aggregates, for Execute
	reads *readCache      // recently read aggregates, for Read

	cacheAggregates int   // bounds of each cache: WithCacheLimits
	cacheEvents     int64 //
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that stamps recorded_at (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Default bounds of each of the store's two aggregate caches (Execute's and
// Read's). An aggregate's memory grows with its history — about 0.75 KB
// per event for an account of invoices — so the cache is bounded by the
// events folded into its aggregates as well as by their number: about
// 1.5 GB at most per cache, which holds the 1,000,000-entry benchmark's
// accounts whole (an LRU cycled through more than it holds would miss on
// every batch).
const (
	DefaultCacheAggregates = 10_000
	DefaultCacheEvents     = 2_000_000
)

// WithCacheLimits bounds each of the store's two aggregate caches to at
// most aggregates aggregates holding at most events events in all (an
// aggregate of more events than that is not cached). Zero disables them:
// every Execute and Read then folds from the start.
func WithCacheLimits(aggregates int, events int64) Option {
	return func(s *Store) { s.cacheAggregates, s.cacheEvents = aggregates, events }
}

// New returns a Store over pool.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, ids: domain.NewIDGenerator(nil), now: time.Now,
		cacheAggregates: DefaultCacheAggregates, cacheEvents: DefaultCacheEvents}
	for _, o := range opts {
		o(s)
	}
	s.cache = newAggregateCache(s.cacheAggregates, s.cacheEvents)
	s.reads = newReadCache(s.cacheAggregates, s.cacheEvents)
	return s
}

// Pool returns the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// OnAppend registers fn to be called after every committed Append in this
// process (the relay uses it to wake up at once instead of polling). fn must
// not block.
func (s *Store) OnAppend(fn func()) {
	s.mu.Lock()
	s.onAppend = append(s.onAppend, fn)
	s.mu.Unlock()
}

// Notify calls the OnAppend hooks; AppendTx callers call it after committing.
func (s *Store) Notify() {
	s.mu.Lock()
	hooks := s.onAppend
	s.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}

// Append records the events of every StreamAppend atomically: all of them or
// none. A stream whose head is not at ExpectedVersion fails the whole batch
// with a *domain.VersionConflictError. meta is recorded on every event.
//
// It takes one or two round trips: the heads of existing streams are read
// (committed data, before any write), then one INSERT statement — atomic on
// its own — writes the batch. A writer that raced us to a version loses on
// the unique index.
func (s *Store) Append(ctx context.Context, meta domain.Metadata, appends ...StreamAppend) ([]domain.Event, error) {
	events, err := s.appendWith(ctx, s.pool, meta, appends)
	if err != nil {
		return nil, err
	}
	s.Notify()
	return events, nil
}

// AppendTx is Append inside the caller's transaction, for writes that must
// commit atomically with the events. The caller commits and then calls
// Notify.
//
// Ordering invariant: every read the caller based ExpectedVersion on must have
// happened before the transaction's first write (which assigns its xid), and
// AppendTx should be that first write. The global order is (xid, position),
// so this is what makes a stream's events appear in version order in it.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, meta domain.Metadata, appends ...StreamAppend) ([]domain.Event, error) {
	return s.appendWith(ctx, tx, meta, appends)
}

// querier is what appendWith needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (s *Store) appendWith(ctx context.Context, q querier, meta domain.Metadata, appends []StreamAppend) ([]domain.Event, error) {
	return s.appendKnown(ctx, q, meta, appends, nil)
}

// appendKnown is appendWith given the heads of some streams (by cacheKey),
// read in the same transaction: those are not read again.
func (s *Store) appendKnown(ctx context.Context, q querier, meta domain.Metadata, appends []StreamAppend, known map[string]streamHead) ([]domain.Event, error) {
	if err := validate(appends); err != nil {
		return nil, fmt.Errorf("eventstore: append: %w", err)
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("eventstore: append: metadata: %w", err)
	}
	metaCanon, err := canonicalJSON(metaJSON) // once: the same for every event
	if err != nil {
		return nil, fmt.Errorf("eventstore: append: metadata: %w", err)
	}

	prev, err := s.heads(ctx, q, appends, known)
	if err != nil {
		return nil, err
	}

	n := 0
	for _, a := range appends {
		n += len(a.Events)
	}
	now := recordedAt(s.now())
	events := make([]domain.Event, 0, n)
	cols := struct {
		id, tenant, stype, sid, typ, data []string
		version                           []int64
		schema                            []int32
		hash                              [][]byte
	}{}
	for _, a := range appends {
		h := prev[a.StreamID]
		for i, ne := range a.Events {
			e := domain.Event{
				ID:            s.ids.New(domain.PrefixEvent, now),
				TenantID:      a.TenantID,
				StreamType:    a.StreamType,
				StreamID:      a.StreamID,
				StreamVersion: a.ExpectedVersion + int64(i) + 1,
				Type:          ne.Type,
				SchemaVersion: max(ne.SchemaVersion, 1),
				Data:          ne.Data,
				Metadata:      meta,
				RecordedAt:    now,
			}
			cd, err := canonicalJSON(ne.Data)
			if err != nil {
				return nil, domain.Invalid("invalid append", domain.FieldError{Field: fmt.Sprintf("events[%s v%d].data", a.StreamID, e.StreamVersion), Error: err.Error()})
			}
			h = chainHash(h, &e, cd, metaCanon)
			e.Hash = h
			events = append(events, e)
			cols.id = append(cols.id, e.ID)
			cols.tenant = append(cols.tenant, e.TenantID)
			cols.stype = append(cols.stype, e.StreamType)
			cols.sid = append(cols.sid, e.StreamID)
			cols.version = append(cols.version, e.StreamVersion)
			cols.typ = append(cols.typ, e.Type)
			cols.schema = append(cols.schema, int32(e.SchemaVersion))
			cols.data = append(cols.data, string(ne.Data))
			cols.hash = append(cols.hash, h)
		}
	}

	rows, err := q.Query(ctx, `
		INSERT INTO events (id, tenant_id, stream_type, stream_id, stream_version, type,
		                    schema_version, data, metadata, recorded_at, hash)
		SELECT id, tenant_id, stream_type, stream_id, stream_version, type,
		       schema_version, data::jsonb, $9::jsonb, $10, hash
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
		            $6::text[], $7::int[], $8::text[], $11::bytea[])
		     AS t(id, tenant_id, stream_type, stream_id, stream_version, type, schema_version, data, hash)
		RETURNING id, position, tx_id::text::bigint`,
		cols.id, cols.tenant, cols.stype, cols.sid, cols.version, cols.typ, cols.schema, cols.data,
		string(metaJSON), now, cols.hash)
	if err != nil {
		return nil, classify(fmt.Errorf("eventstore: append: %w", err), appends)
	}
	byID := make(map[string]int, len(events))
	for i := range events {
		byID[events[i].ID] = i
	}
	for rows.Next() {
		var id string
		var pos, xid int64
		if err := rows.Scan(&id, &pos, &xid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("eventstore: append: scan: %w", err)
		}
		i := byID[id]
		events[i].Position, events[i].TxID = pos, xid
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("eventstore: append: %w", err), appends)
	}
	return events, nil
}

// heads returns the hash of each stream's head at its expected version, and
// fails with a version conflict if a stream is not (yet) at that version.
// Heads known at the expected version are not read again.
func (s *Store) heads(ctx context.Context, q querier, appends []StreamAppend, known map[string]streamHead) (map[string][]byte, error) {
	prev := make(map[string][]byte, len(appends))
	types := make(map[string]string, len(appends))
	var tenants, streams []string
	var versions []int64
	for _, a := range appends {
		if h, ok := known[a.TenantID+"/"+a.StreamID]; ok && a.ExpectedVersion > 0 && h.version == a.ExpectedVersion {
			prev[a.StreamID], types[a.StreamID] = h.hash, h.typ
		} else if a.ExpectedVersion > 0 {
			tenants = append(tenants, a.TenantID)
			streams = append(streams, a.StreamID)
			versions = append(versions, a.ExpectedVersion)
		}
	}
	if len(streams) > 0 {
		if err := readHeads(ctx, q, tenants, streams, versions, prev, types); err != nil {
			return nil, err
		}
	}
	for _, a := range appends {
		if a.ExpectedVersion == 0 {
			continue
		}
		typ, ok := types[a.StreamID]
		if !ok {
			return nil, &domain.VersionConflictError{TenantID: a.TenantID, StreamID: a.StreamID, ExpectedVersion: a.ExpectedVersion}
		}
		if typ != a.StreamType {
			return nil, domain.Errorf(domain.EINVALID, "eventstore: append: stream %s is a %s stream, not %s", a.StreamID, typ, a.StreamType)
		}
	}
	return prev, nil
}

// readHeads reads the hash and type of the given streams' events at the
// given versions into prev and types.
func readHeads(ctx context.Context, q querier, tenants, streams []string, versions []int64, prev map[string][]byte, types map[string]string) error {
	rows, err := q.Query(ctx, `
		SELECT e.stream_id, e.stream_type, e.hash
		FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(tenant_id, stream_id, stream_version)
		JOIN events e USING (tenant_id, stream_id, stream_version)`, tenants, streams, versions)
	if err != nil {
		return fmt.Errorf("eventstore: append: read heads: %w", err)
	}
	for rows.Next() {
		var id, typ string
		var h []byte
		if err := rows.Scan(&id, &typ, &h); err != nil {
			rows.Close()
			return fmt.Errorf("eventstore: append: read heads: %w", err)
		}
		prev[id], types[id] = h, typ
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("eventstore: append: read heads: %w", err)
	}
	return nil
}

var keyDetail = regexp.MustCompile(`=\(([^,]*), ([^,]*), (\d+)\)`)

// classify turns a unique violation on (tenant_id, stream_id, stream_version)
// into a *domain.VersionConflictError naming the stream.
func classify(err error, appends []StreamAppend) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" || pgErr.ConstraintName != "events_stream_version_key" {
		return err
	}
	vc := &domain.VersionConflictError{}
	if m := keyDetail.FindStringSubmatch(pgErr.Detail); m != nil {
		vc.TenantID, vc.StreamID = m[1], m[2]
		v, _ := strconv.ParseInt(m[3], 10, 64)
		for _, a := range appends {
			if a.StreamID == vc.StreamID && a.TenantID == vc.TenantID {
				vc.ExpectedVersion = a.ExpectedVersion
			}
		}
		if vc.ExpectedVersion == 0 && v > 1 {
			vc.ExpectedVersion = v - 1
		}
	}
	return fmt.Errorf("%w (%w)", vc, err)
}

func validate(appends []StreamAppend) error {
	if len(appends) == 0 {
		return domain.Errorf(domain.EINVALID, "nothing to append")
	}
	seen := make(map[string]bool, len(appends))
	for i, a := range appends {
		field := func(f string) string { return fmt.Sprintf("appends[%d].%s", i, f) }
		var fe []domain.FieldError
		if !isToken(a.TenantID, true) {
			fe = append(fe, domain.FieldError{Field: field("tenant_id"), Error: "must be letters, digits, '_' or '-'"})
		}
		if !isToken(a.StreamType, false) {
			fe = append(fe, domain.FieldError{Field: field("stream_type"), Error: "must be lower-case letters, digits or '_'"})
		}
		if a.StreamID == "" || len(a.StreamID) > 200 {
			fe = append(fe, domain.FieldError{Field: field("stream_id"), Error: "must be 1 to 200 characters"})
		}
		if a.ExpectedVersion < 0 {
			fe = append(fe, domain.FieldError{Field: field("expected_version"), Error: "must be ≥ 0"})
		}
		if len(a.Events) == 0 {
			fe = append(fe, domain.FieldError{Field: field("events"), Error: "must not be empty"})
		}
		k := a.TenantID + "\x00" + a.StreamID
		if seen[k] {
			fe = append(fe, domain.FieldError{Field: field("stream_id"), Error: "appears twice in one batch; merge the events"})
		}
		seen[k] = true
		for j, e := range a.Events {
			if !isEventType(e.Type) {
				fe = append(fe, domain.FieldError{Field: fmt.Sprintf("appends[%d].events[%d].type", i, j), Error: "must be dot-separated lower-case tokens, e.g. claim.resolved"})
			}
			if len(e.Data) == 0 || e.Data[0] != '{' || !json.Valid(e.Data) {
				fe = append(fe, domain.FieldError{Field: fmt.Sprintf("appends[%d].events[%d].data", i, j), Error: "must be a JSON object"})
			}
		}
		if len(fe) > 0 {
			return domain.Invalid("invalid append", fe...)
		}
	}
	return nil
}

// isToken reports whether s is usable as one NATS subject token.
func isToken(s string, upper bool) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case upper && (c >= 'A' && c <= 'Z' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func isEventType(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if !isToken(s[start:i], false) {
				return false
			}
			start = i + 1
		}
	}
	return true
}
