package eventstore

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// CacheSizes returns how many aggregates and events Execute's cache and
// Read's cache of s hold (for the external tests).
func CacheSizes(s *Store) (execAggs int, execEvents int64, readAggs int, readEvents int64) {
	s.cache.mu.Lock()
	execAggs, execEvents = s.cache.lru.len(), s.cache.lru.weight
	s.cache.mu.Unlock()
	s.reads.mu.Lock()
	readAggs, readEvents = s.reads.lru.len(), s.reads.lru.weight
	s.reads.mu.Unlock()
	return
}

// TestLRUBounds: the least recently used go first, by count and by weight;
// what weighs more than the whole bound is not kept; reweigh (a use) and
// remove act only on the value they name.
func TestLRUBounds(t *testing.T) {
	l := newLRU[*int](3, 100)
	v := func(n int) *int { return &n }
	a, b, c, d := v(1), v(2), v(3), v(4)
	keys := func() (ks []string) {
		for el := l.order.Front(); el != nil; el = el.Next() {
			ks = append(ks, el.Value.(*lruItem[*int]).key)
		}
		return ks
	}
	l.put("a", a, 10)
	l.put("b", b, 20)
	l.put("c", c, 30)
	assert.Equal(t, []string{"c", "b", "a"}, keys())
	assert.EqualValues(t, 60, l.weight)
	got, ok := l.get("a") // a is now the most recent
	assert.True(t, ok)
	assert.Same(t, a, got)
	l.put("d", d, 5) // by count: b goes
	assert.Equal(t, []string{"d", "a", "c"}, keys())
	assert.EqualValues(t, 45, l.weight)

	l.put("b", b, 70) // by weight: 115 > 100, c (30) goes
	assert.Equal(t, []string{"b", "d", "a"}, keys())
	assert.EqualValues(t, 85, l.weight)

	l.reweigh("d", a, 50) // not d's value: nothing
	assert.Equal(t, []string{"b", "d", "a"}, keys())
	assert.EqualValues(t, 85, l.weight)
	l.reweigh("d", d, 40) // d is used: 120 > 100, a and b go
	assert.Equal(t, []string{"d"}, keys())
	assert.EqualValues(t, 40, l.weight)

	l.put("big", a, 101) // heavier than the bound: not kept
	_, ok = l.get("big")
	assert.False(t, ok)
	l.put("d", d, 101) // nor is what the key had
	assert.Empty(t, keys())
	assert.EqualValues(t, 0, l.weight)

	l.put("x", a, 1)
	l.remove("x", b) // not x's value
	assert.Equal(t, []string{"x"}, keys())
	got, ok = l.take("x")
	assert.True(t, ok)
	assert.Same(t, a, got)
	assert.Empty(t, keys())
	assert.EqualValues(t, 0, l.weight)

	off := newLRU[*int](0, 0) // WithCacheLimits(0, 0): nothing is kept
	off.put("a", a, 0)
	assert.Equal(t, 0, off.len())
}
