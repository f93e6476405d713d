package eventstore

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/arrears/arrears/domain"
)

// Read calls fn with the current state of c's aggregate and its version
// (0: the stream has no event): the fold of every event of the stream
// committed before Read was called — as fresh as Load, which it replaces
// on hot read paths — and possibly of some committed since. c.Decide is
// not used; c.New must make the aggregate type c.StreamType always has.
//
// It costs one query, for the events after the version of a cached state
// of the aggregate, and applies only those: O(new events), not O(stream).
// It takes no stream lock and never waits for a command in flight. Cached
// states are shared by concurrent readers and only ever hold committed
// states: readers catch one up under its write lock, and fn runs under its
// read lock, so fn sees no half-applied event and races with no writer.
// Commands never touch them: Execute decides on aggregates of its own cache
// (an aggregate moves from there to here when it is first read, without a
// copy; the next command on it folds from the start once).
//
// fn must only read agg, must not keep it (or anything in it that events
// change in place) after it returns, and must not call Read on the same
// stream. A state that came from Execute's cache was folded from the
// events as decided, not as read back: raw JSON in it (e.g. a meta
// object) may have its keys in the order they were sent rather than in
// jsonb's.
func (s *Store) Read(ctx context.Context, c Command, fn func(agg domain.Aggregate, version int64) error) error {
	return s.read(ctx, c, func(e *readEntry) error { return fn(e.agg, e.version) })
}

// ReadDerived is Read for a value derived from the aggregate's state (a
// view of it, say): derive runs as Read's fn, but only if the cached state
// is at another version, or key is another, than when the value kept with
// it was derived; otherwise that value is returned as it is. The cached
// state keeps one value (the last derived). key must name everything the
// value depends on besides the state (e.g. the date a balance is as of,
// and the caller's mode if derive checks it). The value is shared by every
// caller: it must not be modified. An error of derive is returned, not
// kept.
func (s *Store) ReadDerived(ctx context.Context, c Command, key string, derive func(agg domain.Aggregate, version int64) (any, error)) (any, error) {
	var val any
	err := s.read(ctx, c, func(e *readEntry) error {
		if d := e.derived.Load(); d != nil && d.version == e.version && d.key == key {
			val = d.val
			return nil
		}
		var err error
		if val, err = derive(e.agg, e.version); err != nil {
			return err
		}
		// Concurrent readers may derive it too, from the same state: any
		// of their values will do.
		e.derived.Store(&derived{version: e.version, key: key, val: val})
		return nil
	})
	return val, err
}

// read catches c's cached state up and calls fn with it, under its read
// lock.
func (s *Store) read(ctx context.Context, c Command, fn func(e *readEntry) error) error {
	for attempt := 1; ; attempt++ {
		e := s.reads.entry(c, s.cache)
		from := e.at.Load()
		evs, err := readAfter(ctx, s, c.TenantID, c.StreamID, from)
		if err != nil {
			return err
		}
		switch {
		case len(evs) > 0:
			if err := e.catchUp(from, evs); err != nil {
				s.reads.drop(c, e)
				if err == errDiscarded && attempt < 3 {
					continue // another reader's catch-up failed: start afresh
				}
				return fmt.Errorf("eventstore: read %s: %w", c.StreamID, err)
			}
			s.reads.reweigh(c, e)
		case from == 0:
			// No such stream (yet): not kept, or reads of ids that do not
			// exist would fill the cache.
			s.reads.drop(c, e)
		}
		e.mu.RLock()
		if e.broken {
			e.mu.RUnlock()
			if attempt < 3 {
				continue
			}
			return fmt.Errorf("eventstore: read %s: %w", c.StreamID, errDiscarded)
		}
		// e.version ≥ from + len(evs): another reader may have caught it
		// up further since, to a later committed state.
		err = fn(e)
		e.mu.RUnlock()
		return err
	}
}

// errDiscarded: a cached state a concurrent reader failed to catch up.
var errDiscarded = fmt.Errorf("cached state discarded")

// rawEvent is what folding needs of an event.
type rawEvent struct {
	version int64
	typ     string
	data    []byte
}

// readAfter reads a stream's events after version from, in order.
func readAfter(ctx context.Context, s *Store, tenantID, streamID string, from int64) ([]rawEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT stream_version, type, data FROM events
		WHERE tenant_id = $1 AND stream_id = $2 AND stream_version > $3 ORDER BY stream_version`, tenantID, streamID, from)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read %s: %w", streamID, err)
	}
	defer rows.Close()
	var evs []rawEvent
	for rows.Next() {
		var ev rawEvent
		if err := rows.Scan(&ev.version, &ev.typ, &ev.data); err != nil {
			return nil, fmt.Errorf("eventstore: read %s: %w", streamID, err)
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: read %s: %w", streamID, err)
	}
	return evs, nil
}

// readCache keeps the aggregates Read folded (bounded as Execute's cache),
// least recently read out.
type readCache struct {
	mu  sync.Mutex
	lru *lru[*readEntry]
}

// readEntry is one cached aggregate of Read: always a committed state of
// it, the fold of the stream's first version events.
type readEntry struct {
	mu      sync.RWMutex // held exclusively to apply events, shared to read
	agg     domain.Aggregate
	version int64
	broken  bool         // an apply failed part way: the state is discarded
	at      atomic.Int64 // version, readable without mu

	derived atomic.Pointer[derived] // ReadDerived's value
}

// derived is a value ReadDerived derived from a readEntry's state.
type derived struct {
	version int64
	key     string
	val     any
}

func newReadCache(maxItems int, maxEvents int64) *readCache {
	return &readCache{lru: newLRU[*readEntry](maxItems, maxEvents)}
}

// readKey is cacheKey with the stream type: an entry is of the aggregate
// type of its stream type.
func readKey(c Command) string { return c.TenantID + "/" + c.StreamType + "/" + c.StreamID }

// entry returns c's cached entry, or makes one: from Execute's cache if it
// holds c's aggregate (taken out of it: Execute's next command on the
// stream folds it from the start), or empty.
func (rc *readCache) entry(c Command, from *aggregateCache) *readEntry {
	key := readKey(c)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if e, ok := rc.lru.get(key); ok {
		return e
	}
	e := &readEntry{agg: c.New()}
	if agg, v, ok := from.take(c); ok {
		if reflect.TypeOf(agg) == reflect.TypeOf(e.agg) {
			e.agg, e.version = agg, v
			e.at.Store(v)
		} else {
			from.put(c, agg, v) // not of this stream type: leave it
		}
	}
	rc.lru.put(key, e, e.version)
	return e
}

// catchUp applies evs, the stream's events after version from (at least
// one), to e, skipping those another reader applied meanwhile.
func (e *readEntry) catchUp(from int64, evs []rawEvent) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.broken {
		return errDiscarded
	}
	for i, ev := range evs {
		if ev.version != from+1+int64(i) {
			e.broken = true
			return fmt.Errorf("version %d after %d: a gap in the stream", ev.version, from+int64(i))
		}
		if ev.version <= e.version {
			continue
		}
		if err := e.agg.Apply(ev.typ, ev.data); err != nil {
			e.broken = true
			return err
		}
		e.version = ev.version
		e.at.Store(ev.version)
	}
	return nil
}

// reweigh records e's version as its weight (it grew), possibly evicting
// others.
func (rc *readCache) reweigh(c Command, e *readEntry) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.lru.reweigh(readKey(c), e, e.at.Load())
}

// drop removes e from the cache if it is still c's entry.
func (rc *readCache) drop(c Command, e *readEntry) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.lru.remove(readKey(c), e)
}
