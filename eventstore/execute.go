package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// Command is one aggregate's part of a command: its stream, how to make the
// empty aggregate, and the decision taken on its current state.
type Command struct {
	TenantID   string
	StreamType string
	StreamID   string
	New        func() domain.Aggregate
	// Decide runs on the aggregate's current state and returns its new
	// events (none: nothing to do). It may change agg as it goes: agg is
	// discarded if the command does not commit.
	Decide func(agg domain.Aggregate) ([]domain.NewEvent, error)
	// Reference, with Sandbox, is claimed in stream_references for a new
	// stream: the creditor's reference is unique per tenant and mode.
	Reference string
	Sandbox   bool
}

// On is the Command on stream id (of streamType) of tenantID, whose empty
// aggregate newAgg makes: decide gets it in its current state.
func On[A domain.Aggregate](tenantID, streamType, id string, newAgg func(tenantID, id string) A, decide func(A) ([]domain.NewEvent, error)) Command {
	return Command{TenantID: tenantID, StreamType: streamType, StreamID: id,
		New:    func() domain.Aggregate { return newAgg(tenantID, id) },
		Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(A)) }}
}

// maxAttempts bounds re-deciding after losing an optimistic-concurrency race
// (another process appended to the stream in between).
const maxAttempts = 5

// Execute runs commands atomically: each aggregate is loaded, decided on,
// and all their events appended in ONE transaction, together with whatever
// then writes in it (e.g. an idempotent response). Writers of a stream are
// serialised — in this process by a lock per stream, across processes by a
// transaction-scoped advisory lock — and aggregates are cached: the locks
// and catching every aggregate up (and reading the stream heads the append
// continues) take one round trip however many streams the commands touch,
// not a reload each. A version
// conflict (a writer that bypassed Execute) reloads and decides again, at
// most 5 times. If several commands are invalid, the error lists every
// problem.
func (s *Store) Execute(ctx context.Context, meta domain.Metadata, cmds []Command, then func(tx pgx.Tx, events []domain.Event) error) ([]domain.Event, error) {
	unlock := s.locks.lock(cmds)
	defer unlock()
	for attempt := 1; ; attempt++ {
		evs, err := s.execute(ctx, meta, cmds, then)
		var vc *domain.VersionConflictError
		if err == nil || !errors.As(err, &vc) || attempt == maxAttempts {
			return evs, err
		}
		t := time.NewTimer(time.Duration(rand.IntN(10*attempt)+1) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Store) execute(ctx context.Context, meta domain.Metadata, cmds []Command, then func(tx pgx.Tx, events []domain.Event) error) ([]domain.Event, error) {
	var recorded []domain.Event
	versions := make([]int64, len(cmds))
	aggs := make([]domain.Aggregate, len(cmds))
	clean := make([]bool, len(cmds)) // decided nothing and changed nothing
	counts := map[string]int64{}
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		// Serialise writers of these streams across processes: a
		// transaction-scoped advisory lock per stream, in one global order.
		// Taking it assigns no transaction id, so the loads below still
		// happen before this transaction's first write (AppendTx's
		// ordering invariant). The lock and the load go in one round trip:
		// the load runs once the lock is held, on its own snapshot.
		keys := make([]string, 0, len(cmds))
		for _, c := range cmds {
			keys = append(keys, cacheKey(c))
		}
		sort.Strings(keys)
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k ORDER BY k`, keys)
		ld := s.cache.queueLoad(b, cmds)
		br := tx.SendBatch(ctx, b) // on this transaction's connection: never a second one
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("eventstore: lock streams: %w", err)
		}
		loaded, lv, heads, err := ld.read(br)
		if err != nil {
			br.Close()
			return err
		}
		if err := br.Close(); err != nil {
			return fmt.Errorf("eventstore: load: %w", err)
		}
		appends := make([]StreamAppend, 0, len(cmds))
		var problems []error
		for i, c := range cmds {
			agg, v := loaded[i], lv[i]
			aggs[i], versions[i] = agg, v
			before := agg.AppliedEvents()
			evs, err := c.Decide(agg)
			clean[i] = len(evs) == 0 && agg.AppliedEvents() == before
			if err != nil {
				problems = append(problems, err)
				continue
			}
			if len(evs) > 0 {
				appends = append(appends, StreamAppend{TenantID: c.TenantID, StreamType: c.StreamType, StreamID: c.StreamID, ExpectedVersion: v, Events: evs})
				counts[cacheKey(c)] = int64(len(evs))
			}
		}
		if len(problems) > 0 {
			return mergeProblems(problems)
		}
		if len(appends) > 0 {
			var err error
			// As AppendTx, with the heads the load just read.
			if recorded, err = s.appendKnown(ctx, tx, meta, appends, heads); err != nil {
				return err
			}
		}
		for i, c := range cmds {
			if c.Reference == "" || versions[i] != 0 {
				continue
			}
			if err := claimReference(ctx, tx, c); err != nil {
				return err
			}
		}
		if then != nil {
			return then(tx, recorded)
		}
		return nil
	})
	if err != nil {
		for i, c := range cmds {
			if clean[i] && aggs[i] != nil {
				s.cache.put(c, aggs[i], versions[i]) // refused without change: still current
			} else {
				s.cache.forget(c) // deciding may have changed it
			}
		}
		return nil, err
	}
	for i, c := range cmds {
		if aggs[i] != nil {
			s.cache.put(c, aggs[i], versions[i]+counts[cacheKey(c)])
		}
	}
	return recorded, nil
}

func claimReference(ctx context.Context, tx pgx.Tx, c Command) error {
	var owner string
	err := tx.QueryRow(ctx, `INSERT INTO stream_references (tenant_id, sandbox, stream_type, reference, stream_id)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING stream_id`,
		c.TenantID, c.Sandbox, c.StreamType, c.Reference, c.StreamID).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		// Taken, possibly by a transaction that committed while we waited:
		// a new statement sees it.
		err = tx.QueryRow(ctx, `SELECT stream_id FROM stream_references WHERE tenant_id = $1 AND sandbox = $2 AND stream_type = $3 AND reference = $4`,
			c.TenantID, c.Sandbox, c.StreamType, c.Reference).Scan(&owner)
	}
	if err != nil {
		return fmt.Errorf("eventstore: claim reference: %w", err)
	}
	if owner != c.StreamID {
		return &domain.Error{Code: domain.ECONFLICT, Reason: "duplicate_reference",
			Message: fmt.Sprintf("the %s reference %q is already used by %s", c.StreamType, c.Reference, owner),
			Fields:  []domain.FieldError{{Field: "reference", Error: "already used by " + owner}}}
	}
	return nil
}

// StreamByReference returns the stream a creditor reference names.
func (s *Store) StreamByReference(ctx context.Context, tenantID string, sandbox bool, streamType, reference string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT stream_id FROM stream_references WHERE tenant_id = $1 AND sandbox = $2 AND stream_type = $3 AND reference = $4`,
		tenantID, sandbox, streamType, reference).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", domain.Errorf(domain.ENOTFOUND, "no %s with reference %q", streamType, reference)
	}
	if err != nil {
		return "", fmt.Errorf("eventstore: reference: %w", err)
	}
	return id, nil
}

// mergeProblems combines the errors of several commands: every field
// error, conflict winning over invalid; any other error wins outright.
func mergeProblems(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	merged := &domain.Error{Code: domain.EINVALID, Message: "invalid command: nothing was changed"}
	for _, err := range errs {
		var de *domain.Error
		if !errors.As(err, &de) || (de.Code != domain.EINVALID && de.Code != domain.ECONFLICT) {
			return err
		}
		if de.Code == domain.ECONFLICT {
			merged.Code, merged.Message = domain.ECONFLICT, de.Message
		}
		merged.Fields = append(merged.Fields, de.Fields...)
	}
	return merged
}

// streamLocks serialises commands on the same stream within this process:
// one mutex per stream in use (not a fixed set of stripes, which two
// batches of hundreds of streams would nearly always share, serialising
// batches of disjoint streams).
type streamLocks struct {
	mu sync.Mutex
	m  map[string]*streamLock
}

type streamLock struct {
	mu   sync.Mutex
	refs int // holders and waiters; the entry goes with the last
}

func (l *streamLocks) lock(cmds []Command) (unlock func()) {
	keys := make([]string, 0, len(cmds))
	seen := make(map[string]bool, len(cmds))
	for _, c := range cmds {
		if k := cacheKey(c); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // one global order: no deadlock between batches
	locks := make([]*streamLock, len(keys))
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*streamLock{}
	}
	for i, k := range keys {
		sl := l.m[k]
		if sl == nil {
			sl = &streamLock{}
			l.m[k] = sl
		}
		sl.refs++
		locks[i] = sl
	}
	l.mu.Unlock()
	for _, sl := range locks {
		sl.mu.Lock()
	}
	return func() {
		for j := len(locks) - 1; j >= 0; j-- {
			locks[j].mu.Unlock()
		}
		l.mu.Lock()
		for i, sl := range locks {
			if sl.refs--; sl.refs == 0 {
				delete(l.m, keys[i])
			}
		}
		l.mu.Unlock()
	}
}

// aggregateCache keeps recently used aggregates for Execute, bounded by
// count and by the events folded into them (an aggregate's memory grows with
// its history; see WithCacheLimits), least recently used out. Correctness
// never depends on it: a cached aggregate is caught up with the events after
// its version before use, and any conflict discards it. Only committed
// states are in it: an aggregate is taken out while a command decides on it
// and put back, at its new version, once the command committed (or
// refused without changing it).
type aggregateCache struct {
	mu  sync.Mutex
	lru *lru[*cached]
}

type cached struct {
	agg     domain.Aggregate
	version int64
}

func newAggregateCache(maxItems int, maxEvents int64) *aggregateCache {
	return &aggregateCache{lru: newLRU[*cached](maxItems, maxEvents)}
}

func cacheKey(c Command) string { return c.TenantID + "/" + c.StreamID } // tenant ids never contain "/"

// loading is the load of every command's aggregate, queued in a batch:
// one query however many streams the commands touch.
type loading struct {
	cmds     []Command
	aggs     []domain.Aggregate
	versions []int64
}

// queueLoad queues the load of the aggregate of each command at its
// stream's current version (called under the streams' locks): cached
// aggregates are caught up from their version, the others read from the
// start. Entries are taken out of the cache while in use.
func (ac *aggregateCache) queueLoad(b *pgx.Batch, cmds []Command) *loading {
	l := &loading{cmds: cmds, aggs: make([]domain.Aggregate, len(cmds)), versions: make([]int64, len(cmds))}
	tenants, streams := make([]string, len(cmds)), make([]string, len(cmds))
	ac.mu.Lock()
	for i, c := range cmds {
		if e, ok := ac.lru.take(cacheKey(c)); ok {
			l.aggs[i], l.versions[i] = e.agg, e.version
		}
		tenants[i], streams[i] = c.TenantID, c.StreamID
	}
	ac.mu.Unlock()
	for i, c := range cmds {
		if l.aggs[i] == nil {
			l.aggs[i] = c.New()
		}
	}
	// The events after each version, and the one at it (the head a cached
	// aggregate is at: its hash continues the chain).
	b.Queue(`
		SELECT k.n, e.stream_version, e.stream_type, e.hash,
			CASE WHEN e.stream_version > k.v THEN e.type END, CASE WHEN e.stream_version > k.v THEN e.data END
		FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS k (t, s, v, n)
		JOIN events e ON e.tenant_id = k.t AND e.stream_id = k.s AND e.stream_version >= k.v
		ORDER BY k.n, e.stream_version`, tenants, streams, slices.Clone(l.versions))
	return l
}

// read folds the queued load's result into the aggregates and returns
// them, their versions and their streams' heads.
func (l *loading) read(br pgx.BatchResults) ([]domain.Aggregate, []int64, map[string]streamHead, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("eventstore: load: %w", err)
	}
	defer rows.Close()
	heads := make(map[string]streamHead, len(l.cmds))
	for rows.Next() {
		var n, version int64
		var stype string
		var hash []byte
		var typ *string
		var data []byte
		if err := rows.Scan(&n, &version, &stype, &hash, &typ, &data); err != nil {
			return nil, nil, nil, fmt.Errorf("eventstore: load: %w", err)
		}
		i := n - 1
		if version > l.versions[i] {
			if err := l.aggs[i].Apply(*typ, data); err != nil {
				return nil, nil, nil, fmt.Errorf("eventstore: load %s: %w", l.cmds[i].StreamID, err)
			}
			l.versions[i] = version
		}
		heads[cacheKey(l.cmds[i])] = streamHead{version: version, typ: stype, hash: hash}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("eventstore: load: %w", err)
	}
	return l.aggs, l.versions, heads, nil
}

func (ac *aggregateCache) put(c Command, agg domain.Aggregate, version int64) {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	ac.lru.put(cacheKey(c), &cached{agg: agg, version: version}, version)
}

func (ac *aggregateCache) forget(c Command) {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	ac.lru.take(cacheKey(c))
}

// take takes c's aggregate out of the cache, as a command does: the caller
// owns it (Read moves an aggregate it has not cached yet to its own cache).
func (ac *aggregateCache) take(c Command) (domain.Aggregate, int64, bool) {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if e, ok := ac.lru.take(cacheKey(c)); ok {
		return e.agg, e.version, true
	}
	return nil, 0, false
}
