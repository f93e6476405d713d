package api_test

// The debtors resource: create, read (through the debtors projection),
// list, search, update; validation, duplicate references, modes and
// Idempotency-Key replays.

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type debtor struct {
	Object      string          `json:"object"`
	ID          string          `json:"id"`
	Reference   string          `json:"reference"`
	Type        string          `json:"type"`
	FirstName   string          `json:"first_name"`
	LastName    string          `json:"last_name"`
	CompanyName string          `json:"company_name"`
	Name        string          `json:"name"`
	Email       string          `json:"email"`
	Phone       string          `json:"phone"`
	BirthDate   *string         `json:"birth_date"`
	Address     *domain.Address `json:"address"`
	Locale      string          `json:"locale"`
	Meta        map[string]any  `json:"meta"`
	CreatedAt   string          `json:"created_at"`
	UpdatedAt   string          `json:"updated_at"`
	Version     int64           `json:"version"`
	Position    int64           `json:"-"` // of the write that answered it
}

// createDebtor creates a debtor through the API.
func (e *env) createDebtor(t *testing.T, secret string, body any, header ...string) debtor {
	t.Helper()
	r := e.post(t, secret, "/v1/debtors", body, header...)
	require.Equal(t, http.StatusCreated, r.Status, "create debtor: %s", r.Body)
	var d debtor
	r.decode(t, &d)
	d.Position = r.position(t)
	require.Equal(t, "/v1/debtors/"+d.ID, r.Header.Get("Location"))
	return d
}

func (e *env) patch(t *testing.T, secret, path string, body any, header ...string) *response {
	t.Helper()
	return e.send(t, req{Method: http.MethodPatch, Path: path, Auth: secret, Body: body, Header: header})
}

func (e *env) debtorList(t *testing.T, secret, query string) ([]debtor, *string) {
	t.Helper()
	r := e.get(t, secret, "/v1/debtors?"+query)
	require.Equal(t, http.StatusOK, r.Status, "list: %s", r.Body)
	var l struct {
		Data       []debtor `json:"data"`
		NextCursor *string  `json:"next_cursor"`
	}
	r.decode(t, &l)
	return l.Data, l.NextCursor
}

func ids(ds []debtor) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func TestDebtorsLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Debtors")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})

	created := e.createDebtor(t, k.Secret, map[string]any{
		"reference": " CUST-1 ", "first_name": "Erika", "last_name": "Mustermann", "email": "erika@example.com",
		"phone": "+49 30 1234567", "birth_date": "1980-04-01", "locale": "de-DE", "meta": map[string]any{"crm": "42"},
		"address": map[string]any{"line1": "Hauptstraße 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
	})
	require.True(t, domain.HasPrefix(created.ID, domain.PrefixDebtor), created.ID)
	require.Equal(t, "debtor", created.Object)
	require.Equal(t, "CUST-1", created.Reference)
	require.Equal(t, "natural", created.Type)
	require.Equal(t, "Erika Mustermann", created.Name)
	require.Equal(t, int64(1), created.Version)
	require.Equal(t, "1980-04-01", *created.BirthDate)
	require.Equal(t, "Berlin", created.Address.City)

	// Read your write.
	r := e.get(t, k.Secret, fmt.Sprintf("/v1/debtors/%s?min_position=%d", created.ID, created.Position))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var got debtor
	r.decode(t, &got)
	got.Position = created.Position
	require.Equal(t, created, got)

	legal := e.createDebtor(t, k.Secret, map[string]any{"type": "legal", "company_name": "Acme GmbH", "email": "billing@acme.example"})
	require.Equal(t, "Acme GmbH", legal.Name)
	require.Nil(t, legal.BirthDate)
	require.Nil(t, legal.Address)
	require.Nil(t, legal.Meta)
	third := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Max", "last_name": "Power", "reference": "CUST-3"})

	wait := fmt.Sprintf("min_position=%d", third.Position)
	all, next := e.debtorList(t, k.Secret, wait)
	require.Equal(t, []string{created.ID, legal.ID, third.ID}, ids(all))
	require.Nil(t, next)

	// Pagination by id.
	page1, next := e.debtorList(t, k.Secret, wait+"&limit=2")
	require.Equal(t, []string{created.ID, legal.ID}, ids(page1))
	require.NotNil(t, next)
	page2, next := e.debtorList(t, k.Secret, wait+"&limit=2&cursor="+url.QueryEscape(*next))
	require.Equal(t, []string{third.ID}, ids(page2))
	require.Nil(t, next)

	// Filters.
	byRef, _ := e.debtorList(t, k.Secret, wait+"&reference=CUST-3")
	require.Equal(t, []string{third.ID}, ids(byRef))
	none, _ := e.debtorList(t, k.Secret, wait+"&reference=CUST")
	require.Empty(t, none)
	for q, want := range map[string][]string{
		"acme":       {legal.ID},
		"ERIKA":      {created.ID},
		"example":    {created.ID, legal.ID},
		"max power":  {third.ID},
		"nobody":     {},
		"100%_":      {},
		"mustermann": {created.ID},
	} {
		found, _ := e.debtorList(t, k.Secret, wait+"&search="+url.QueryEscape(q))
		require.Equal(t, want, ids(found), "search %q", q)
	}

	// Patch: only the fields given change.
	r = e.patch(t, k.Secret, "/v1/debtors/"+created.ID, map[string]any{"email": "erika.m@example.com", "address": map[string]any{"city": "Hamburg", "country": "DE"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var patched debtor
	r.decode(t, &patched)
	pos := r.position(t)
	require.Equal(t, "erika.m@example.com", patched.Email)
	require.Equal(t, "Hamburg", patched.Address.City)
	require.Empty(t, patched.Address.Line1)
	require.Equal(t, "Erika", patched.FirstName)
	require.Equal(t, int64(2), patched.Version)
	require.Equal(t, created.CreatedAt, patched.CreatedAt)
	r = e.get(t, k.Secret, fmt.Sprintf("/v1/debtors/%s?min_position=%d", created.ID, pos))
	require.Equal(t, http.StatusOK, r.Status)
	got = debtor{}
	r.decode(t, &got)
	got.Position = 0
	require.Equal(t, patched, got)

	// No change: no event, no position.
	before := e.count(t, `SELECT count(*) FROM events`)
	r = e.patch(t, k.Secret, "/v1/debtors/"+created.ID, map[string]any{"email": "erika.m@example.com", "reference": "CUST-1"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Empty(t, r.Header.Get("Arrears-Position"))
	got = debtor{}
	r.decode(t, &got)
	require.Equal(t, int64(2), got.Version)
	require.Equal(t, before, e.count(t, `SELECT count(*) FROM events`))

	// The reference cannot be changed; invalid results are refused.
	requireInvalid(t, e.patch(t, k.Secret, "/v1/debtors/"+created.ID, map[string]any{"reference": "OTHER"}), "reference")
	requireInvalid(t, e.patch(t, k.Secret, "/v1/debtors/"+legal.ID, map[string]any{"company_name": " "}), "company_name")
	requireInvalid(t, e.patch(t, k.Secret, "/v1/debtors/"+created.ID, map[string]any{"nickname": "E"}), "nickname")
	require.Equal(t, before, e.count(t, `SELECT count(*) FROM events`))

	// Missing debtors.
	missing := e.freshID(created.ID)
	requireProblem(t, e.get(t, k.Secret, "/v1/debtors/"+missing), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.patch(t, k.Secret, "/v1/debtors/"+missing, map[string]any{"email": "x@example.com"}), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.patch(t, k.Secret, "/v1/debtors/"+k.ID, map[string]any{"email": "x@example.com"}), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.patch(t, k.Secret, "/v1/debtors/"+missing, map[string]any{"nickname": "x"}), http.StatusNotFound, "not-found", "")
	require.Equal(t, before, e.count(t, `SELECT count(*) FROM events`))
}

func TestDebtorValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Debtor validation")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"natural without names", map[string]any{"email": "a@example.com"}, "first_name"},
		{"natural without last name", map[string]any{"first_name": "A"}, "last_name"},
		{"legal without company_name", map[string]any{"type": "legal", "first_name": "A", "last_name": "B"}, "company_name"},
		{"unknown type", map[string]any{"type": "robot", "first_name": "A", "last_name": "B"}, "type"},
		{"bad email", map[string]any{"first_name": "A", "last_name": "B", "email": "not an email"}, "email"},
		{"bad phone", map[string]any{"first_name": "A", "last_name": "B", "phone": "call me"}, "phone"},
		{"bad birth date", map[string]any{"first_name": "A", "last_name": "B", "birth_date": "1980-13-01"}, "birth_date"},
		{"bad country", map[string]any{"first_name": "A", "last_name": "B", "address": map[string]any{"country": "DEU"}}, "address.country"},
		{"meta not an object", map[string]any{"first_name": "A", "last_name": "B", "meta": []int{1}}, "meta"},
		{"unknown field", map[string]any{"first_name": "A", "last_name": "B", "nickname": "C"}, "nickname"},
		{"wrong type", map[string]any{"first_name": 5, "last_name": "B"}, "first_name"},
		{"wrong type of type", map[string]any{"type": true, "first_name": "A", "last_name": "B"}, "type"},
		{"empty body", "", "body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			requireInvalid(t, e.post(t, k.Secret, "/v1/debtors", c.body), c.field)
		})
	}
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE stream_type = 'debtor'`))
}

func TestDebtorDuplicateReference(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Debtor references")
	live := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	body := map[string]any{"reference": "CUST-1", "first_name": "A", "last_name": "B"}
	first := e.createDebtor(t, live.Secret, body)
	p := requireProblem(t, e.post(t, live.Secret, "/v1/debtors", body), http.StatusConflict, "conflict", "duplicate_reference")
	require.Len(t, p.Errors, 1)
	require.Equal(t, "reference", p.Errors[0].Field)
	require.Contains(t, p.Errors[0].Error, first.ID)
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type = 'debtor.created'`))
	// References are per mode: a test key may use it.
	e.createDebtor(t, test.Secret, body)
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM events WHERE type = 'debtor.created'`))
}

func TestDebtorModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Debtor modes")
	live := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	ld := e.createDebtor(t, live.Secret, map[string]any{"first_name": "Live", "last_name": "One"})
	td := e.createDebtor(t, test.Secret, map[string]any{"first_name": "Test", "last_name": "One"})
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND (data->>'sandbox')::boolean`, td.ID))
	wait := fmt.Sprintf("?min_position=%d", max(ld.Position, td.Position))
	require.Equal(t, http.StatusOK, e.get(t, live.Secret, "/v1/debtors/"+ld.ID+wait).Status)
	require.Equal(t, http.StatusOK, e.get(t, test.Secret, "/v1/debtors/"+td.ID+wait).Status)
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM debtors WHERE id = $1 AND sandbox`, td.ID))

	liveList, _ := e.debtorList(t, live.Secret, wait[1:])
	require.Equal(t, []string{ld.ID}, ids(liveList))
	testList, _ := e.debtorList(t, test.Secret, wait[1:])
	require.Equal(t, []string{td.ID}, ids(testList))

	e.requireSameAsMissing(t, live.Secret, http.MethodGet, "/v1/debtors/{id}"+wait, td.ID)
	e.requireSameAsMissing(t, test.Secret, http.MethodGet, "/v1/debtors/{id}"+wait, ld.ID)
	r := e.patch(t, live.Secret, "/v1/debtors/"+td.ID, map[string]any{"first_name": "Hijack"})
	requireProblem(t, r, http.StatusNotFound, "not-found", "")
	r = e.patch(t, test.Secret, "/v1/debtors/"+ld.ID, map[string]any{"first_name": "Hijack"})
	requireProblem(t, r, http.StatusNotFound, "not-found", "")
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE type = 'debtor.updated'`))
}

func TestDebtorIdempotentReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Debtor replay")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	body := map[string]any{"reference": "R-1", "type": "legal", "company_name": "Acme", "meta": map[string]any{"a": 1}}
	first := e.post(t, k.Secret, "/v1/debtors", body, "Idempotency-Key", "create-acme")
	require.Equal(t, http.StatusCreated, first.Status, "%s", first.Body)
	again := e.post(t, k.Secret, "/v1/debtors", body, "Idempotency-Key", "create-acme")
	require.Equal(t, http.StatusCreated, again.Status, "%s", again.Body)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, string(first.Body), string(again.Body))
	for _, h := range []string{"Location", "Arrears-Position"} {
		require.Equal(t, first.Header.Get(h), again.Header.Get(h), h)
	}
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type = 'debtor.created'`))

	id := first.object(t)["id"].(string)
	p1 := e.patch(t, k.Secret, "/v1/debtors/"+id, map[string]any{"company_name": "Acme AG"}, "Idempotency-Key", "rename")
	require.Equal(t, http.StatusOK, p1.Status, "%s", p1.Body)
	p2 := e.patch(t, k.Secret, "/v1/debtors/"+id, map[string]any{"company_name": "Acme AG"}, "Idempotency-Key", "rename")
	require.Equal(t, string(p1.Body), string(p2.Body))
	require.Equal(t, p1.Header.Get("Arrears-Position"), p2.Header.Get("Arrears-Position"))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type = 'debtor.updated'`))
}
