package eventstore

import "container/list"

// lru is a map bounded by its number of entries and by their total weight
// (for the aggregate caches: the events folded into each aggregate, which
// is what its memory grows with), the least recently used going first. It
// is not safe for concurrent use: its owner locks.
type lru[V comparable] struct {
	maxItems  int
	maxWeight int64
	weight    int64
	order     *list.List // front: most recently used
	items     map[string]*list.Element
}

type lruItem[V comparable] struct {
	key    string
	val    V
	weight int64
}

func newLRU[V comparable](maxItems int, maxWeight int64) *lru[V] {
	return &lru[V]{maxItems: maxItems, maxWeight: maxWeight, order: list.New(), items: map[string]*list.Element{}}
}

// get returns key's value and marks it used.
func (l *lru[V]) get(key string) (v V, ok bool) {
	el, ok := l.items[key]
	if !ok {
		return v, false
	}
	l.order.MoveToFront(el)
	return el.Value.(*lruItem[V]).val, true
}

// take removes key's value and returns it.
func (l *lru[V]) take(key string) (v V, ok bool) {
	el, ok := l.items[key]
	if !ok {
		return v, false
	}
	l.unlink(el)
	return el.Value.(*lruItem[V]).val, true
}

// put sets key's value, of the given weight, as the most recently used,
// and evicts the least recently used beyond the bounds. A value heavier
// than the whole bound is not kept (nor is what key had).
func (l *lru[V]) put(key string, v V, weight int64) {
	if el, ok := l.items[key]; ok {
		l.unlink(el)
	}
	if weight > l.maxWeight || l.maxItems < 1 {
		return
	}
	l.items[key] = l.order.PushFront(&lruItem[V]{key: key, val: v, weight: weight})
	l.weight += weight
	l.evict()
}

// reweigh sets the weight of key's value, if it is still v, and marks it
// used.
func (l *lru[V]) reweigh(key string, v V, weight int64) {
	el, ok := l.items[key]
	if !ok || el.Value.(*lruItem[V]).val != v {
		return
	}
	if weight > l.maxWeight {
		l.unlink(el)
		return
	}
	it := el.Value.(*lruItem[V])
	l.weight += weight - it.weight
	it.weight = weight
	l.order.MoveToFront(el)
	l.evict()
}

// remove removes key if its value is still v.
func (l *lru[V]) remove(key string, v V) {
	if el, ok := l.items[key]; ok && el.Value.(*lruItem[V]).val == v {
		l.unlink(el)
	}
}

func (l *lru[V]) len() int { return l.order.Len() }

func (l *lru[V]) evict() {
	for l.order.Len() > l.maxItems || l.weight > l.maxWeight {
		l.unlink(l.order.Back())
	}
}

func (l *lru[V]) unlink(el *list.Element) {
	it := el.Value.(*lruItem[V])
	l.order.Remove(el)
	delete(l.items, it.key)
	l.weight -= it.weight
}
