package workers

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/arrears/arrears/projections"
)

// DecodeCache holds the events the projectors of one process decoded
// lately, so that each relayed message is decoded once, not once per
// projection: decoding the CloudEvent JSON was the largest part of the
// projectors' CPU time (every projector consumes every message). It is
// direct-mapped by stream sequence — the projectors read the same
// consecutive sequences, close behind each other — and an entry is only
// used for a message of the same stream and sequence that carries the same
// event id (Nats-Msg-Id), so a recreated or restored stream whose
// sequences name other messages is never served stale events. Events are
// shared between projectors and must not be modified. Safe for concurrent
// use; the zero value is not: use NewDecodeCache.
type DecodeCache struct {
	mu    sync.Mutex
	slots []decodedSlot
}

type decodedSlot struct {
	stream string
	seq    uint64
	s      projections.Sequenced
}

// NewDecodeCache returns a cache of size decoded events (at least 1).
func NewDecodeCache(size int) *DecodeCache {
	return &DecodeCache{slots: make([]decodedSlot, max(size, 1))}
}

// defaultDecodeCache is the size of the cache Projectors shares: twice
// the messages of 16 fetches of the default batch size.
const defaultDecodeCache = 16_384

// Decode decodes a fetched batch, using and filling the cache (nil: no
// cache). A message that does not decode is reported through bad and left
// out of the result.
func (c *DecodeCache) Decode(msgs []jetstream.Msg, bad func(error)) []projections.Sequenced {
	type key struct {
		stream, id string
		seq        uint64
	}
	keys := make([]key, len(msgs))
	for i, m := range msgs {
		if md, err := m.Metadata(); err == nil {
			keys[i] = key{md.Stream, m.Headers().Get(jetstream.MsgIDHeader), md.Sequence.Stream}
		}
	}
	decoded := make([]projections.Sequenced, len(msgs))
	ok := make([]bool, len(msgs))
	hits := 0
	if c != nil {
		c.mu.Lock()
		for i, k := range keys {
			if sl := &c.slots[k.seq%uint64(len(c.slots))]; k.id != "" && sl.seq == k.seq && sl.stream == k.stream && sl.s.Event.ID == k.id {
				decoded[i], ok[i] = sl.s, true
				hits++
			}
		}
		c.mu.Unlock()
	}
	for i, m := range msgs {
		if ok[i] {
			continue
		}
		s, err := decode(m)
		if err != nil {
			bad(err)
			continue
		}
		decoded[i], ok[i] = s, true
	}
	out := make([]projections.Sequenced, 0, len(msgs))
	if c != nil && hits < len(msgs) {
		c.mu.Lock()
		for i, k := range keys {
			if ok[i] && k.id != "" && k.id == decoded[i].Event.ID {
				c.slots[k.seq%uint64(len(c.slots))] = decodedSlot{stream: k.stream, seq: k.seq, s: decoded[i]}
			}
		}
		c.mu.Unlock()
	}
	for i := range msgs {
		if ok[i] {
			out = append(out, decoded[i])
		}
	}
	return out
}
