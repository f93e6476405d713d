package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// maxAttributeKey bounds an attribute's key (a product's reference, a
// score's type, a mandate's id): it is also a URL path segment.
const maxAttributeKey = 200

// AttributeList describes one of an account's keyed attribute lists —
// products by reference, scores by type, mandates by id — for the commands
// that add, replace and remove a single item. Each records account.updated
// with the whole new list, computed from the account's current state.
type AttributeList[T any] struct {
	Name string // the list: "products"
	Item string // one item: "product"
	Key  string // the key field: "reference"

	keyOf  func(T) string
	metaOf func(T) json.RawMessage
	same   func(T, T) bool
	get    func(*Account) []T
	update func([]T) AccountUpdated
}

// ProductList, ScoreList and MandateList are the account's keyed attribute
// lists.
var (
	ProductList = AttributeList[Product]{Name: "products", Item: "product", Key: "reference",
		keyOf: func(p Product) string { return p.Reference }, metaOf: func(p Product) json.RawMessage { return p.Meta },
		same: Product.same, get: func(a *Account) []Product { return a.Products },
		update: func(l []Product) AccountUpdated { return AccountUpdated{Products: &l} }}
	ScoreList = AttributeList[Score]{Name: "scores", Item: "score", Key: "type",
		keyOf: func(s Score) string { return s.Type }, metaOf: func(s Score) json.RawMessage { return s.Meta },
		same: Score.same, get: func(a *Account) []Score { return a.Scores },
		update: func(l []Score) AccountUpdated { return AccountUpdated{Scores: &l} }}
	MandateList = AttributeList[Mandate]{Name: "mandates", Item: "mandate", Key: "id",
		keyOf: func(m Mandate) string { return m.ID }, metaOf: func(m Mandate) json.RawMessage { return m.Meta },
		same: Mandate.same, get: func(a *Account) []Mandate { return a.Mandates },
		update: func(l []Mandate) AccountUpdated { return AccountUpdated{Mandates: &l} }}
)

func (p Product) same(o Product) bool {
	return p.Reference == o.Reference && p.Type == o.Type && p.Name == o.Name && p.Code == o.Code &&
		p.PaymentReference == o.PaymentReference && jsonEqual(p.Meta, o.Meta)
}

func (s Score) same(o Score) bool {
	return s.Type == o.Type && s.Value.Equal(o.Value) && s.Provider == o.Provider && jsonEqual(s.Meta, o.Meta)
}

func (m Mandate) same(o Mandate) bool {
	return m.ID == o.ID && m.Type == o.Type && m.Reference == o.Reference && jsonEqual(m.Meta, o.Meta)
}

// KeyOf returns item's key.
func (l AttributeList[T]) KeyOf(item T) string { return l.keyOf(item) }

// Items returns a copy of the account's list, [] for none.
func (l AttributeList[T]) Items(a *Account) []T { return *nonNilList(l.get(a)) }

// Find returns the item with key.
func (l AttributeList[T]) Find(a *Account, key string) (T, bool) {
	i := l.index(a, key)
	if i < 0 {
		var zero T
		return zero, false
	}
	return l.get(a)[i], true
}

func (l AttributeList[T]) index(a *Account, key string) int {
	return slices.IndexFunc(l.get(a), func(it T) bool { return l.keyOf(it) == key })
}

// check validates one item: its key is required and at most 200
// characters; its meta, if any, a JSON object. Fields are named as in the
// item ("reference", "meta").
func (l AttributeList[T]) check(item T) []FieldError {
	var fe []FieldError
	switch k := l.keyOf(item); {
	case k == "":
		fe = append(fe, FieldError{Field: l.Key, Error: "is required"})
	case len(k) > maxAttributeKey:
		fe = append(fe, FieldError{Field: l.Key, Error: fmt.Sprintf("must be at most %d characters", maxAttributeKey)})
	}
	if m := l.metaOf(item); len(m) > 0 && (m[0] != '{' || !json.Valid(m)) {
		fe = append(fe, FieldError{Field: "meta", Error: "must be a JSON object"})
	}
	return fe
}

// validate checks a whole list: every item, and that no key appears twice.
// Fields are named "<list>[i].<field>".
func (l AttributeList[T]) validate(items []T) []FieldError {
	var fe []FieldError
	seen := map[string]bool{}
	for i, it := range items {
		prefix := fmt.Sprintf("%s[%d].", l.Name, i)
		for _, e := range l.check(it) {
			fe = append(fe, FieldError{Field: prefix + e.Field, Error: e.Error})
		}
		if k := l.keyOf(it); k != "" && seen[k] {
			fe = append(fe, FieldError{Field: prefix + l.Key, Error: "appears twice"})
		}
		seen[l.keyOf(it)] = true
	}
	return fe
}

func (l AttributeList[T]) notFound(a *Account, key string) error {
	return Errorf(ENOTFOUND, "%s %s not found on account %s", l.Item, key, a.ID)
}

// Add appends item to the account's list. An item of the same key already
// there is a no-op if it is the same, a conflict (reason "<item>_exists")
// otherwise. created reports whether the item was added.
func (l AttributeList[T]) Add(a *Account, item T, at time.Time) (created bool, _ []NewEvent, _ error) {
	if err := a.mustBeOpen(); err != nil {
		return false, nil, err
	}
	if fe := l.check(item); len(fe) > 0 {
		return false, nil, Invalid("invalid "+l.Item, fe...)
	}
	key := l.keyOf(item)
	if prev, ok := l.Find(a, key); ok {
		if l.same(prev, item) {
			return false, nil, nil
		}
		return false, nil, &Error{Code: ECONFLICT, Reason: l.Item + "_exists",
			Message: fmt.Sprintf("account %s already has %s %s with different content; change it with PATCH", a.ID, l.Item, key),
			Fields:  []FieldError{{Field: l.Key, Error: "already on the account with different content"}}}
	}
	evs, err := a.Update(l.update(append(l.Items(a), item)), at)
	return err == nil, evs, err
}

// Replace replaces the item with key by item, which must keep the key. The
// same item again records nothing.
func (l AttributeList[T]) Replace(a *Account, key string, item T, at time.Time) ([]NewEvent, error) {
	if err := a.mustBeOpen(); err != nil {
		return nil, err
	}
	i := l.index(a, key)
	if i < 0 {
		return nil, l.notFound(a, key)
	}
	if l.keyOf(item) != key {
		return nil, Invalid("invalid "+l.Item, FieldError{Field: l.Key, Error: "cannot be changed"})
	}
	if fe := l.check(item); len(fe) > 0 {
		return nil, Invalid("invalid "+l.Item, fe...)
	}
	items := l.Items(a)
	items[i] = item
	return a.Update(l.update(items), at)
}

// Remove removes the item with key and returns it.
func (l AttributeList[T]) Remove(a *Account, key string, at time.Time) (T, []NewEvent, error) {
	var zero T
	if err := a.mustBeOpen(); err != nil {
		return zero, nil, err
	}
	i := l.index(a, key)
	if i < 0 {
		return zero, nil, l.notFound(a, key)
	}
	items := l.Items(a)
	removed := items[i]
	evs, err := a.Update(l.update(slices.Delete(items, i, i+1)), at)
	return removed, evs, err
}

// AddDebtor adds debtor id to the account's debtors (the caller checks that
// it is a debtor of the tenant and mode). A debtor already there is a
// no-op: added reports whether it was added.
func (a *Account) AddDebtor(id string, at time.Time) (added bool, _ []NewEvent, _ error) {
	if err := a.mustBeOpen(); err != nil {
		return false, nil, err
	}
	if id == "" {
		return false, nil, Invalid("invalid debtor", FieldError{Field: "debtor_id", Error: "is required"})
	}
	if slices.Contains(a.DebtorIDs, id) {
		return false, nil, nil
	}
	ids := append(slices.Clone(a.DebtorIDs), id)
	evs, err := a.Update(AccountUpdated{DebtorIDs: &ids}, at)
	return err == nil, evs, err
}

// RemoveDebtor removes debtor id from the account's debtors.
func (a *Account) RemoveDebtor(id string, at time.Time) ([]NewEvent, error) {
	if err := a.mustBeOpen(); err != nil {
		return nil, err
	}
	i := slices.Index(a.DebtorIDs, id)
	if i < 0 {
		return nil, Errorf(ENOTFOUND, "debtor %s is not a debtor of account %s", id, a.ID)
	}
	ids := slices.Delete(slices.Clone(a.DebtorIDs), i, i+1)
	return a.Update(AccountUpdated{DebtorIDs: &ids}, at)
}
