package api_test

// Account attributes: PATCH /v1/accounts/{id}, the debtors, products,
// scores and mandates sub-resources, and the filters of GET /v1/accounts.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// accountEvents counts the events of account id (of any type).
func (e *env) accountEvents(t *testing.T, id string) int {
	t.Helper()
	return e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1`, id)
}

// readAccount reads account id from the read model once it has the write at
// pos.
func (e *env) readAccount(t *testing.T, secret, id string, pos int64) map[string]any {
	t.Helper()
	r := e.get(t, secret, fmt.Sprintf("/v1/accounts/%s?min_position=%d", id, pos))
	require.Equal(t, http.StatusOK, r.Status, "read account: %s", r.Body)
	return r.object(t)
}

// requireNoWrite requires r to be a 200 that recorded nothing.
func requireNoWrite(t *testing.T, r *response) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Empty(t, r.Header.Get(api.HeaderPosition), "a change to nothing recorded something: %s", r.Body)
}

// listData is the data of a list response.
func listData(t *testing.T, r *response) []any {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "list: %s", r.Body)
	o := r.object(t)
	require.Nil(t, o["next_cursor"])
	data, ok := o["data"].([]any)
	require.True(t, ok, "%s", r.Body)
	return data
}

func TestAccountPatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Account patch")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	other := e.key(t, e.tenant(t, "Other").ID, eventstore.NewKey{Name: "other"})

	d1 := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Erika", "last_name": "Mustermann"})
	d2 := e.createDebtor(t, k.Secret, map[string]any{"company_name": "ACME GmbH", "type": "legal"})
	dTest := e.createDebtor(t, test.Secret, map[string]any{"first_name": "Tess", "last_name": "Test"})
	acct := e.createAccount(t, k.Secret, map[string]any{"reference": "LOAN-P", "currency": "EUR", "debtor_ids": []string{d1.ID},
		"products": []map[string]any{{"reference": "P1", "name": "Loan"}}, "meta": map[string]any{"crm": "7", "keep": true}})
	e.postEntries(t, k.Secret, map[string]any{"account_id": acct.ID, "reference": "INV-1", "kind": "invoice", "amount": "120.00", "due_date": "2026-01-01"})
	path := "/v1/accounts/" + acct.ID
	updates := func() int {
		return e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'account.updated'`, acct.ID)
	}

	// meta is replaced whole, like a debtor's: "keep" goes.
	r := e.patch(t, k.Secret, path, map[string]any{"meta": map[string]any{"crm": "8"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	got := r.object(t)
	require.Equal(t, map[string]any{"crm": "8"}, got["meta"])
	require.Equal(t, "open", got["status"])
	require.Equal(t, "120.00", got["outstanding"])
	require.EqualValues(t, 3, got["version"])
	require.Equal(t, 1, updates())
	pos := r.position(t)
	require.Equal(t, got, e.readAccount(t, k.Secret, acct.ID, pos), "the read model shows what PATCH answered")
	var data map[string]any
	require.NoError(t, e.pool.QueryRow(t.Context(), `SELECT data FROM events WHERE position = $1`, pos).Scan(&data))
	require.ElementsMatch(t, []string{"meta", "at"}, mapKeys(data), "the event carries only what changed")

	// The lists, each replaced whole.
	lists := map[string]any{
		"debtor_ids": []string{d2.ID, d1.ID},
		"products":   []map[string]any{{"reference": "P2", "type": "card", "code": "C-1"}},
		"scores":     []map[string]any{{"type": "risk", "value": "0.50", "provider": "schufa"}, {"type": "collect", "value": 7}},
		"mandates":   []map[string]any{{"id": "M1", "type": "sepa_core", "reference": "DE98ZZZ09999999999", "meta": map[string]any{"signed": "2025-01-01"}}},
	}
	r = e.patch(t, k.Secret, path, lists)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	got = r.object(t)
	require.Equal(t, []any{d2.ID, d1.ID}, got["debtor_ids"])
	require.Equal(t, []any{map[string]any{"reference": "P2", "type": "card", "code": "C-1"}}, got["products"])
	require.Equal(t, []any{map[string]any{"type": "risk", "value": "0.5", "provider": "schufa"}, map[string]any{"type": "collect", "value": "7"}}, got["scores"])
	require.Equal(t, []any{map[string]any{"id": "M1", "type": "sepa_core", "reference": "DE98ZZZ09999999999", "meta": map[string]any{"signed": "2025-01-01"}}}, got["mandates"])
	require.Equal(t, map[string]any{"crm": "8"}, got["meta"], "absent: unchanged")
	require.Equal(t, 2, updates())
	pos = r.position(t)
	require.Equal(t, got, e.readAccount(t, k.Secret, acct.ID, pos))
	lr := e.get(t, k.Secret, fmt.Sprintf("/v1/accounts?debtor_id=%s&min_position=%d", d2.ID, pos))
	require.Len(t, listData(t, lr), 1)

	// Changes to nothing record nothing and answer the account as it is.
	events := e.accountEvents(t, acct.ID)
	for name, body := range map[string]any{
		"empty":           map[string]any{},
		"same lists":      lists,
		"same, respelt":   map[string]any{"scores": []map[string]any{{"type": "risk", "value": 0.5, "provider": "schufa"}, {"type": "collect", "value": "7.00"}}},
		"same meta":       map[string]any{"meta": map[string]any{"crm": "8"}},
		"same reference":  map[string]any{"reference": "LOAN-P", "currency": "EUR"},
		"null lists":      `{"products":null,"debtor_ids":null}`,
		"same everything": map[string]any{"reference": " LOAN-P ", "meta": map[string]any{"crm": "8"}, "debtor_ids": []string{d2.ID, d1.ID}},
	} {
		r := e.patch(t, k.Secret, path, body)
		requireNoWrite(t, r)
		require.Equal(t, got, r.object(t), name)
	}
	require.Equal(t, events, e.accountEvents(t, acct.ID))

	// Bad input changes nothing.
	for _, c := range []struct {
		name   string
		body   any
		fields []string
	}{
		{"reference", map[string]any{"reference": "LOAN-Q"}, []string{"reference"}},
		{"currency", map[string]any{"currency": "USD"}, []string{"currency"}},
		{"both, with a change", map[string]any{"reference": "", "currency": "USD", "meta": map[string]any{"x": 1}}, []string{"reference", "currency"}},
		{"unknown debtor", map[string]any{"debtor_ids": []string{d1.ID, e.freshID(d1.ID)}}, []string{"debtor_ids[1]"}},
		{"other mode's debtor", map[string]any{"debtor_ids": []string{dTest.ID}}, []string{"debtor_ids[0]"}},
		{"debtor twice", map[string]any{"debtor_ids": []string{d1.ID, d1.ID}}, []string{"debtor_ids[1]"}},
		{"reference and a debtor", map[string]any{"reference": "X", "debtor_ids": []string{"nope"}}, []string{"reference", "debtor_ids[0]"}},
		{"product twice", map[string]any{"products": []map[string]any{{"reference": "P"}, {"reference": "P"}}}, []string{"products[1].reference"}},
		{"score without type", map[string]any{"scores": []map[string]any{{"value": "1"}}}, []string{"scores[0].type"}},
		{"mandate meta", map[string]any{"mandates": []map[string]any{{"id": "M", "meta": "x"}}}, []string{"mandates[0].meta"}},
		{"meta not an object", map[string]any{"meta": []int{1}}, []string{"meta"}},
		{"meta null", `{"meta":null}`, []string{"meta"}},
		{"unknown field", map[string]any{"status": "settled"}, []string{"status"}},
		{"unknown product field", map[string]any{"products": []map[string]any{{"reference": "P", "price": 1}}}, []string{"price"}},
		{"no body", "", []string{"body"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := requireInvalid(t, e.patch(t, k.Secret, path, c.body), c.fields[0])
			var fields []string
			for _, fe := range p.Errors {
				fields = append(fields, fe.Field)
			}
			require.ElementsMatch(t, c.fields, fields, "%+v", p.Errors)
		})
	}
	require.Equal(t, events, e.accountEvents(t, acct.ID))

	// A missing account is 404 whatever the body: none, another mode's,
	// another tenant's, and an id that is no account's.
	testAcct := e.createAccount(t, test.Secret, map[string]any{"currency": "EUR"})
	for _, c := range []struct{ secret, id string }{
		{k.Secret, e.freshID(acct.ID)}, {k.Secret, testAcct.ID}, {test.Secret, acct.ID}, {other.Secret, acct.ID}, {k.Secret, d1.ID}, {k.Secret, "nope"},
	} {
		for _, body := range []any{map[string]any{"meta": map[string]any{"x": 1}}, map[string]any{"reference": "other"}, "{", ""} {
			requireProblem(t, e.patch(t, c.secret, "/v1/accounts/"+c.id, body), http.StatusNotFound, "not-found", "")
		}
	}
	require.Equal(t, events, e.accountEvents(t, acct.ID))
	require.Equal(t, 1, e.accountEvents(t, testAcct.ID))
}

func mapKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestAccountDebtorsSubresource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Account debtors")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	other := e.key(t, e.tenant(t, "Other").ID, eventstore.NewKey{Name: "other"})

	d1 := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Erika", "last_name": "Mustermann", "email": "erika@example.com"})
	d2 := e.createDebtor(t, k.Secret, map[string]any{"company_name": "ACME GmbH", "type": "legal"})
	dTest := e.createDebtor(t, test.Secret, map[string]any{"first_name": "Tess", "last_name": "Test"})
	dOther := e.createDebtor(t, other.Secret, map[string]any{"first_name": "Otto", "last_name": "Other"})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "debtor_ids": []string{d1.ID}})
	path := "/v1/accounts/" + acct.ID + "/debtors"
	// A debtor as the debtors read model shows it.
	readDebtor := func(id string, pos int64) map[string]any {
		r := e.get(t, k.Secret, fmt.Sprintf("/v1/debtors/%s?min_position=%d", id, pos))
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		return r.object(t)
	}
	debtorIDs := func(data []any) []string {
		out := []string{}
		for _, d := range data {
			out = append(out, d.(map[string]any)["id"].(string))
		}
		return out
	}

	data := listData(t, e.get(t, k.Secret, path))
	require.Equal(t, []any{readDebtor(d1.ID, d2.Position)}, data, "full debtor objects, as GET /v1/debtors/{id} shows them")

	// Add: 201, then 200 without an event.
	r := e.post(t, k.Secret, path, map[string]any{"debtor_id": d2.ID})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	require.Equal(t, readDebtor(d2.ID, d2.Position), r.object(t))
	added := r.position(t)
	events := e.accountEvents(t, acct.ID)
	r = e.post(t, k.Secret, path, map[string]any{"debtor_id": d2.ID})
	requireNoWrite(t, r)
	require.Equal(t, d2.ID, r.object(t)["id"])
	require.Equal(t, events, e.accountEvents(t, acct.ID))
	require.Equal(t, []string{d1.ID, d2.ID}, debtorIDs(listData(t, e.get(t, k.Secret, path))), "read right after the write, no min_position")

	// Not debtors of this tenant and mode, or no debtor at all.
	for name, body := range map[string]any{
		"unknown":       map[string]any{"debtor_id": e.freshID(d1.ID)},
		"another mode":  map[string]any{"debtor_id": dTest.ID},
		"other tenant":  map[string]any{"debtor_id": dOther.ID},
		"an account id": map[string]any{"debtor_id": acct.ID},
		"missing":       map[string]any{},
		"blank":         map[string]any{"debtor_id": " "},
	} {
		requireInvalid(t, e.post(t, k.Secret, path, body), "debtor_id")
		require.Equal(t, events, e.accountEvents(t, acct.ID), name)
	}
	requireInvalid(t, e.post(t, k.Secret, path, map[string]any{"debtor_ids": []string{d1.ID}}), "debtor_ids")

	// The read model follows.
	lr := e.get(t, k.Secret, fmt.Sprintf("/v1/accounts?debtor_id=%s&min_position=%d", d2.ID, added))
	require.Len(t, listData(t, lr), 1)
	require.Equal(t, []any{d1.ID, d2.ID}, e.readAccount(t, k.Secret, acct.ID, added)["debtor_ids"])

	// Remove: the debtor stays a debtor, just not of this account.
	r = e.delete(t, k.Secret, path+"/"+d1.ID)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, d1.ID, r.object(t)["id"])
	removed := r.position(t)
	requireProblem(t, e.delete(t, k.Secret, path+"/"+d1.ID), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.delete(t, k.Secret, path+"/"+dOther.ID), http.StatusNotFound, "not-found", "")
	require.Equal(t, []string{d2.ID}, debtorIDs(listData(t, e.get(t, k.Secret, path))))
	require.Equal(t, []any{d2.ID}, e.readAccount(t, k.Secret, acct.ID, removed)["debtor_ids"])
	lr = e.get(t, k.Secret, fmt.Sprintf("/v1/accounts?debtor_id=%s&min_position=%d", d1.ID, removed))
	require.Empty(t, listData(t, lr))
	require.Equal(t, http.StatusOK, e.get(t, k.Secret, "/v1/debtors/"+d1.ID).Status)
	r = e.delete(t, k.Secret, path+"/"+d2.ID)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Empty(t, listData(t, e.get(t, k.Secret, path)))
	require.Equal(t, []any{}, e.readAccount(t, k.Secret, acct.ID, r.position(t))["debtor_ids"])

	// Other modes and tenants see no account.
	for _, secret := range []string{test.Secret, other.Secret} {
		requireProblem(t, e.get(t, secret, path), http.StatusNotFound, "not-found", "")
		requireProblem(t, e.post(t, secret, path, map[string]any{"debtor_id": dTest.ID}), http.StatusNotFound, "not-found", "")
		requireProblem(t, e.delete(t, secret, path+"/"+d2.ID), http.StatusNotFound, "not-found", "")
	}
}

// attributeCase is one of the keyed attribute lists, with bodies for each
// step of TestAccountAttributeSubresources.
type attributeCase struct {
	list, item, key string
	value           string         // the new item's key
	add, same       map[string]any // a new item; the same item, spelt otherwise
	want            map[string]any // how the account shows it
	conflicting     map[string]any // the same key, other content
	patch           map[string]any
	patched         map[string]any // how the account shows it after patch
	invalid         map[string]map[string]any
}

func TestAccountAttributeSubresources(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Account attributes")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	other := e.key(t, e.tenant(t, "Other").ID, eventstore.NewKey{Name: "other"})

	cases := []attributeCase{
		{
			list: "products", item: "product", key: "reference", value: "2024/001 50%",
			add:         map[string]any{"reference": "2024/001 50%", "name": "Loan", "meta": map[string]any{"a": 1}},
			same:        map[string]any{"reference": "2024/001 50%", "name": "Loan", "type": "", "meta": map[string]any{"a": 1.0}},
			want:        map[string]any{"reference": "2024/001 50%", "name": "Loan", "meta": map[string]any{"a": float64(1)}},
			conflicting: map[string]any{"reference": "2024/001 50%", "name": "Card"},
			patch:       map[string]any{"code": "L-1", "meta": map[string]any{"b": 2}},
			patched:     map[string]any{"reference": "2024/001 50%", "name": "Loan", "code": "L-1", "meta": map[string]any{"b": float64(2)}},
			invalid: map[string]map[string]any{
				"reference": {"name": "no reference"},
				"meta":      {"reference": "X", "meta": "not an object"},
				"price":     {"reference": "X", "price": 1},
			},
		},
		{
			list: "scores", item: "score", key: "type", value: "risk",
			add:         map[string]any{"type": "risk", "value": "0.75", "provider": "schufa"},
			same:        map[string]any{"type": "risk", "value": 0.750, "provider": "schufa"},
			want:        map[string]any{"type": "risk", "value": "0.75", "provider": "schufa"},
			conflicting: map[string]any{"type": "risk", "value": "0.8", "provider": "schufa"},
			patch:       map[string]any{"value": 0.5},
			patched:     map[string]any{"type": "risk", "value": "0.5", "provider": "schufa"},
			invalid: map[string]map[string]any{
				"type":  {"value": "1"},
				"value": {"type": "X"},
				"meta":  {"type": "X", "value": "1", "meta": []int{1}},
			},
		},
		{
			list: "mandates", item: "mandate", key: "id", value: "MD-1",
			add:         map[string]any{"id": "MD-1", "type": "sepa_core"},
			same:        map[string]any{"id": "MD-1", "type": "sepa_core", "meta": map[string]any{}},
			want:        map[string]any{"id": "MD-1", "type": "sepa_core"},
			conflicting: map[string]any{"id": "MD-1", "type": "sepa_b2b"},
			patch:       map[string]any{"reference": "DE98ZZZ09999999999", "id": "MD-1"},
			patched:     map[string]any{"id": "MD-1", "type": "sepa_core", "reference": "DE98ZZZ09999999999"},
			invalid: map[string]map[string]any{
				"id":   {"type": "sepa_core"},
				"meta": {"id": "X", "meta": 1},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.list, func(t *testing.T) {
			t.Parallel()
			acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
			base := "/v1/accounts/" + acct.ID + "/" + c.list
			itemPath := base + "/" + url.PathEscape(c.value)
			require.Empty(t, listData(t, e.get(t, k.Secret, base)))

			// Add: 201 with its Location; the same again 200 and no event; other
			// content 409.
			r := e.post(t, k.Secret, base, c.add)
			require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
			require.Equal(t, c.want, r.object(t))
			require.Equal(t, itemPath, r.Header.Get("Location"))
			pos := r.position(t)
			events := e.accountEvents(t, acct.ID)
			require.Equal(t, 2, events)
			for _, body := range []map[string]any{c.add, c.same} {
				r = e.post(t, k.Secret, base, body)
				requireNoWrite(t, r)
				require.Equal(t, c.want, r.object(t))
			}
			p := requireProblem(t, e.post(t, k.Secret, base, c.conflicting), http.StatusConflict, "conflict", c.item+"_exists")
			require.Equal(t, c.key, p.Errors[0].Field)
			for field, body := range c.invalid {
				requireInvalid(t, e.post(t, k.Secret, base, body), field)
			}
			require.Equal(t, events, e.accountEvents(t, acct.ID))
			require.Equal(t, []any{c.want}, listData(t, e.get(t, k.Secret, base)), "read right after the write, no min_position")
			require.Equal(t, []any{c.want}, e.readAccount(t, k.Secret, acct.ID, pos)[c.list])

			// Patch: changes what it sets; the same again records nothing; the
			// key cannot change; a missing item is 404.
			r = e.patch(t, k.Secret, itemPath, c.patch)
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			require.Equal(t, c.patched, r.object(t))
			pos = r.position(t)
			events++
			r = e.patch(t, k.Secret, itemPath, c.patch)
			requireNoWrite(t, r)
			require.Equal(t, c.patched, r.object(t))
			requireInvalid(t, e.patch(t, k.Secret, itemPath, map[string]any{c.key: "other"}), c.key)
			requireInvalid(t, e.patch(t, k.Secret, itemPath, map[string]any{"meta": "x"}), "meta")
			requireInvalid(t, e.patch(t, k.Secret, itemPath, map[string]any{"nope": 1}), "nope")
			requireProblem(t, e.patch(t, k.Secret, base+"/missing", c.patch), http.StatusNotFound, "not-found", "")
			require.Equal(t, events, e.accountEvents(t, acct.ID))
			require.Equal(t, []any{c.patched}, listData(t, e.get(t, k.Secret, base)))
			require.Equal(t, []any{c.patched}, e.readAccount(t, k.Secret, acct.ID, pos)[c.list])

			// A second item keeps the order of the list.
			second := map[string]any{c.key: "second"}
			if c.list == "scores" {
				second["value"] = "1"
			}
			require.Equal(t, http.StatusCreated, e.post(t, k.Secret, base, second).Status)
			data := listData(t, e.get(t, k.Secret, base))
			require.Len(t, data, 2)
			require.Equal(t, c.patched, data[0])
			require.Equal(t, "second", data[1].(map[string]any)[c.key])

			// Other modes and tenants see no account.
			for _, secret := range []string{test.Secret, other.Secret} {
				requireProblem(t, e.get(t, secret, base), http.StatusNotFound, "not-found", "")
				requireProblem(t, e.post(t, secret, base, c.add), http.StatusNotFound, "not-found", "")
				requireProblem(t, e.patch(t, secret, itemPath, c.patch), http.StatusNotFound, "not-found", "")
				requireProblem(t, e.delete(t, secret, itemPath), http.StatusNotFound, "not-found", "")
			}

			// Delete: answers the item; again 404.
			r = e.delete(t, k.Secret, itemPath)
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			require.Equal(t, c.patched, r.object(t))
			pos = r.position(t)
			requireProblem(t, e.delete(t, k.Secret, itemPath), http.StatusNotFound, "not-found", "")
			data = listData(t, e.get(t, k.Secret, base))
			require.Len(t, data, 1)
			require.Equal(t, "second", data[0].(map[string]any)[c.key])
			r = e.delete(t, k.Secret, base+"/second")
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			require.Empty(t, listData(t, e.get(t, k.Secret, base)))
			require.Equal(t, []any{}, e.readAccount(t, k.Secret, acct.ID, r.position(t))[c.list], "an emptied list reads [] in the read model")
		})
	}
}

// TestAccountAttributesConcurrentAdds: adds to one account at once all
// land, each decided on the state the one before left.
func TestAccountAttributesConcurrentAdds(t *testing.T) {
	t.Parallel()
	const n = 16
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Concurrent attributes")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	base := "/v1/accounts/" + acct.ID
	var wg sync.WaitGroup
	statuses := make([]int, 2*n)
	for i := range n {
		wg.Go(func() {
			r, err := e.trySend(req{Method: http.MethodPost, Path: base + "/products", Auth: k.Secret, Body: map[string]any{"reference": fmt.Sprintf("P-%02d", i)}})
			if err == nil {
				statuses[i] = r.Status
			}
		})
		wg.Go(func() {
			r, err := e.trySend(req{Method: http.MethodPost, Path: base + "/mandates", Auth: k.Secret, Body: map[string]any{"id": fmt.Sprintf("M-%02d", i)}})
			if err == nil {
				statuses[n+i] = r.Status
			}
		})
	}
	wg.Wait()
	for i, s := range statuses {
		require.Equal(t, http.StatusCreated, s, "request %d", i)
	}
	var refs, mandates []string
	for _, p := range listData(t, e.get(t, k.Secret, base+"/products")) {
		refs = append(refs, p.(map[string]any)["reference"].(string))
	}
	for _, m := range listData(t, e.get(t, k.Secret, base+"/mandates")) {
		mandates = append(mandates, m.(map[string]any)["id"].(string))
	}
	slices.Sort(refs)
	slices.Sort(mandates)
	var wantRefs, wantMandates []string
	for i := range n {
		wantRefs, wantMandates = append(wantRefs, fmt.Sprintf("P-%02d", i)), append(wantMandates, fmt.Sprintf("M-%02d", i))
	}
	require.Equal(t, wantRefs, refs)
	require.Equal(t, wantMandates, mandates)
	require.Equal(t, 1+2*n, e.accountEvents(t, acct.ID))
}

func TestAccountListFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Account filters")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})

	open := func(ref string) string {
		return e.createAccount(t, k.Secret, map[string]any{"reference": ref, "currency": "EUR"}).ID
	}
	const past, future = "2020-01-01", "2999-01-01"
	overdue := open("FLT-OPEN-OVERDUE") // 100.00 due in the past
	notDue := open("FLT-OPEN-FUTURE")   // 50.00 due in the future
	paid := open("flt-settled")         // 30.00 due in the past, paid
	credit := open("FLT-CREDIT")        // −20.00
	empty := open("FLT-EMPTY")          // nothing
	fee := open("FLT-FEE")              // a 10.00 fee due in the past
	adjustment := open("FLT-ADJ")       // a 15.00 positive adjustment due in the past
	partly := open("FLT-PARTLY")        // 100.00 due in the past, 40.00 paid
	dueToday := open("FLT-DUE-TODAY")   // 70.00 due today: not overdue yet
	today := time.Now().UTC().Format(time.DateOnly)
	testAcct := e.createAccount(t, test.Secret, map[string]any{"reference": "FLT-OPEN-TEST", "currency": "EUR"}).ID
	entry := func(acct, ref, kind, amount, due string) map[string]any {
		m := map[string]any{"account_id": acct, "reference": ref, "kind": kind, "amount": amount}
		if due != "" {
			m["due_date"] = due
		}
		return m
	}
	posted := e.postEntries(t, k.Secret,
		entry(overdue, "I", "invoice", "100.00", past),
		entry(notDue, "I", "invoice", "50.00", future),
		entry(paid, "I", "invoice", "30.00", past),
		entry(paid, "P", "payment", "30.00", ""),
		entry(credit, "A", "adjustment", "-20.00", ""),
		entry(fee, "F", "fee", "10.00", past),
		entry(adjustment, "A", "adjustment", "15.00", past),
		entry(partly, "I", "invoice", "100.00", past),
		entry(partly, "P", "payment", "40.00", ""),
		entry(dueToday, "I", "invoice", "70.00", today),
	)
	e.postEntries(t, test.Secret, entry(testAcct, "I", "invoice", "100.00", past))
	wait := *posted.Position
	list := func(query string) []string {
		t.Helper()
		var out []string
		cursor := ""
		for range 20 {
			r := e.get(t, k.Secret, fmt.Sprintf("/v1/accounts?%s&limit=2&min_position=%d%s", query, wait, cursor))
			require.Equal(t, http.StatusOK, r.Status, "%s: %s", query, r.Body)
			var l struct {
				Data []struct {
					ID     string `json:"id"`
					Status string `json:"status"`
				} `json:"data"`
				NextCursor *string `json:"next_cursor"`
			}
			r.decode(t, &l)
			for _, a := range l.Data {
				out = append(out, a.ID)
			}
			if l.NextCursor == nil {
				return out
			}
			cursor = "&cursor=" + *l.NextCursor
		}
		t.Fatalf("%s: too many pages", query)
		return nil
	}
	sorted := func(ids ...string) []string {
		out := slices.Clone(ids)
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", sorted(overdue, notDue, paid, credit, empty, fee, adjustment, partly, dueToday)},
		{"status=open", sorted(overdue, notDue, fee, adjustment, partly, dueToday)},
		{"status=settled", sorted(paid, empty)},
		{"status=in_credit", sorted(credit)},
		{"overdue_only=true", sorted(overdue, fee, adjustment, partly)},
		{"overdue_only=false", sorted(overdue, notDue, paid, credit, empty, fee, adjustment, partly, dueToday)},
		{"overdue_only=true&status=settled", nil},
		{"amount_min=50", sorted(overdue, notDue, partly, dueToday)},
		{"amount_min=50.01", sorted(overdue, partly, dueToday)},
		{"amount_max=0", sorted(paid, credit, empty)},
		{"amount_min=10&amount_max=50", sorted(notDue, fee, adjustment)},
		{"amount_min=-20&amount_max=-20.00", sorted(credit)},
		{"search=flt-open", sorted(overdue, notDue)},
		{"search=SETTLED", sorted(paid)},
		{"search=" + empty, sorted(empty)},
		{"search=" + empty[:len(empty)-1], nil}, // an id matches only exactly
		{"search=nothing-like-it", nil},
		{"search=flt&overdue_only=true&amount_max=60", sorted(fee, adjustment, partly)},
		{"reference=FLT-FEE&status=open", sorted(fee)},
	} {
		t.Run(c.query, func(t *testing.T) {
			if c.query == "overdue_only=true" && time.Now().UTC().Format(time.DateOnly) != today {
				t.Skip("midnight (UTC) passed: the entry due today is overdue now")
			}
			require.Equal(t, c.want, list(c.query))
		})
	}

	// Each account's status, on the account itself.
	for id, want := range map[string]string{overdue: "open", paid: "settled", credit: "in_credit", empty: "settled"} {
		require.Equal(t, want, e.readAccount(t, k.Secret, id, wait)["status"], id)
	}

	for _, c := range []struct{ query, field string }{
		{"status=closed", "query:status"},
		{"status=OPEN", "query:status"},
		{"overdue_only=yes", "query:overdue_only"},
		{"amount_min=abc", "query:amount_min"},
		{"amount_min=1e3", "query:amount_min"},
		{"amount_max=1,5", "query:amount_max"},
		{"amount_min=10&amount_max=5", "query:amount_max"},
	} {
		requireInvalid(t, e.get(t, k.Secret, "/v1/accounts?"+c.query), c.field)
	}
}
