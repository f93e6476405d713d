package api_test

// Custom triggers: one event per target in one transaction, the same
// trigger id on each, visible in the event API; problems named by field
// and index, all or nothing; idempotent replays; scopes after the targets;
// tenant and mode isolation.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type triggerJSON struct {
	Object string `json:"object"`
	ID     string `json:"id"`
	Name   string `json:"name"`
	Events []struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		StreamType string `json:"stream_type"`
		StreamID   string `json:"stream_id"`
		Position   int64  `json:"position"`
	} `json:"events"`
}

// eventJSONLite is what the trigger tests read of an event.
type eventJSONLite struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	StreamID string `json:"stream_id"`
	Position int64  `json:"position"`
	Data     struct {
		TriggerID string          `json:"trigger_id"`
		Name      string          `json:"name"`
		Payload   json.RawMessage `json:"payload"`
	} `json:"data"`
}

// triggeredEvents lists the events of type typ (claim.triggered,
// account.triggered) through GET /v1/events, after position pos.
func (e *env) triggeredEvents(t *testing.T, secret, typ string, pos int64) []eventJSONLite {
	t.Helper()
	var evs []eventJSONLite
	next := e.listPage(t, secret, fmt.Sprintf("/v1/events?type=%s&min_position=%d&limit=200", typ, pos), &evs)
	require.Nil(t, next, "one page")
	return evs
}

func TestTriggers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Triggers")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	other := e.key(t, e.tenant(t, "Other").ID, eventstore.NewKey{Name: "other"})
	a1 := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "reference": "ACC-T1"})
	a2 := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "reference": "ACC-T2"})
	mk := func(secret, ref string) claimJSON {
		return e.createClaim(t, secret, map[string]any{"reference": ref, "amount": "10", "currency": "EUR", "original_due_date": dayAfterToday(0)})
	}
	c1, c2, c3 := mk(k.Secret, "TC-1"), mk(k.Secret, "TC-2"), mk(k.Secret, "TC-3")
	testClaim := mk(test.Secret, "TC-1")
	otherClaim := mk(other.Secret, "TC-9")
	otherAcct := e.createAccount(t, other.Secret, map[string]any{"currency": "EUR"})
	triggered := func() int {
		return e.count(t, `SELECT count(*) FROM events WHERE type IN ('claim.triggered', 'account.triggered')`)
	}

	// Every problem is named by its field (and index); nothing is recorded.
	many := make([]string, 501)
	for i := range many {
		many[i] = c1.ID
	}
	for _, tc := range []struct {
		name, trigger string
		body          any
		fields        []string
	}{
		{"upper-case name", "Letter", map[string]any{"claim_ids": []string{c1.ID}}, []string{"name"}},
		{"name too long", strings.Repeat("a", 65), map[string]any{"claim_ids": []string{c1.ID}}, []string{"name"}},
		{"name starting with a dot", ".letter", map[string]any{"claim_ids": []string{c1.ID}}, []string{"name"}},
		{"no target", "letter", map[string]any{}, []string{"claim_ids"}},
		{"empty lists", "letter", map[string]any{"claim_ids": []string{}, "account_ids": []string{}}, []string{"claim_ids"}},
		{"more than 500 targets", "letter", map[string]any{"claim_ids": many}, []string{"claim_ids"}},
		{"payload not an object", "letter", map[string]any{"claim_ids": []string{c1.ID}, "payload": []int{1}}, []string{"payload"}},
		{"payload a string", "letter", map[string]any{"claim_ids": []string{c1.ID}, "payload": "x"}, []string{"payload"}},
		{"name and payload", "Letter", map[string]any{"claim_ids": []string{c1.ID}, "payload": 1}, []string{"name", "payload"}},
		{"ids not an array", "letter", map[string]any{"claim_ids": c1.ID}, []string{"claim_ids"}},
		{"unknown field", "letter", map[string]any{"claim_ids": []string{c1.ID}, "debtor_ids": []string{"x"}}, []string{"debtor_ids"}},
		{"empty id", "letter", map[string]any{"claim_ids": []string{c1.ID, " "}}, []string{"claim_ids[1]"}},
		{"missing claim, all or nothing", "letter", map[string]any{"claim_ids": []string{c1.ID, e.freshID(c1.ID)}}, []string{"claim_ids[1]"}},
		{"not a claim id", "letter", map[string]any{"claim_ids": []string{a1.ID}}, []string{"claim_ids[0]"}},
		{"missing account", "letter", map[string]any{"claim_ids": []string{c1.ID}, "account_ids": []string{a1.ID, e.freshID(a1.ID)}}, []string{"account_ids[1]"}},
		{"missing references", "letter", map[string]any{"claim_references": []string{"TC-2", "NOPE"}, "account_references": []string{"NOPE"}},
			[]string{"claim_references[1]", "account_references[0]"}},
		{"named twice", "letter", map[string]any{"claim_ids": []string{c1.ID, c2.ID, c1.ID}}, []string{"claim_ids[2]"}},
		{"by id and by reference", "letter", map[string]any{"claim_ids": []string{c1.ID}, "claim_references": []string{"TC-1"}}, []string{"claim_references[0]"}},
		{"another mode's claim", "letter", map[string]any{"claim_ids": []string{c1.ID, testClaim.ID}}, []string{"claim_ids[1]"}},
		{"another tenant's claim and account", "letter", map[string]any{"claim_ids": []string{otherClaim.ID}, "account_ids": []string{a1.ID, otherAcct.ID}},
			[]string{"claim_ids[0]", "account_ids[1]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, k.Secret, "/v1/triggers/"+tc.trigger, tc.body)
			p := requireInvalid(t, r, tc.fields[0])
			var got []string
			for _, fe := range p.Errors {
				got = append(got, fe.Field)
			}
			require.ElementsMatch(t, tc.fields, got, "%s", r.Body)
		})
	}
	require.Zero(t, triggered())

	// By ids and references, in one transaction, replayed by its key.
	body := map[string]any{"claim_ids": []string{c1.ID, c2.ID}, "claim_references": []string{"TC-3"}, "account_ids": []string{a1.ID},
		"account_references": []string{"ACC-T2"}, "payload": map[string]any{"letter": "L-42", "returned": true}}
	r := e.post(t, k.Secret, "/v1/triggers/letter.returned", body, "Idempotency-Key", "trg-1")
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	var trg triggerJSON
	r.decode(t, &trg)
	require.Equal(t, "trigger", trg.Object)
	require.True(t, strings.HasPrefix(trg.ID, "trg_"), trg.ID)
	require.Equal(t, "letter.returned", trg.Name)
	type ev struct{ typ, stream string }
	var evs []ev
	for _, x := range trg.Events {
		evs = append(evs, ev{x.Type, x.StreamID})
		require.Equal(t, strings.TrimSuffix(x.Type, ".triggered"), x.StreamType)
	}
	require.Equal(t, []ev{{"claim.triggered", c1.ID}, {"claim.triggered", c2.ID}, {"claim.triggered", c3.ID},
		{"account.triggered", a1.ID}, {"account.triggered", a2.ID}}, evs, "one event per target, in the request's order")
	pos := r.position(t)
	require.Equal(t, trg.Events[len(trg.Events)-1].Position, pos)
	require.Equal(t, 1, e.count(t, `SELECT count(DISTINCT tx_id) FROM events WHERE data->>'trigger_id' = $1`, trg.ID), "one transaction")
	again := e.post(t, k.Secret, "/v1/triggers/letter.returned", body, "Idempotency-Key", "trg-1")
	require.Equal(t, http.StatusCreated, again.Status)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(r.Body), string(again.Body))
	require.Equal(t, 5, triggered())

	// The event API shows exactly one event per target, with the trigger.
	for typ, want := range map[string][]string{"claim.triggered": {c1.ID, c2.ID, c3.ID}, "account.triggered": {a1.ID, a2.ID}} {
		listed := e.triggeredEvents(t, k.Secret, typ, pos)
		var streams []string
		for _, x := range listed {
			streams = append(streams, x.StreamID)
			require.Equal(t, typ, x.Type)
			require.Equal(t, trg.ID, x.Data.TriggerID)
			require.Equal(t, "letter.returned", x.Data.Name)
			require.JSONEq(t, `{"letter":"L-42","returned":true}`, string(x.Data.Payload))
		}
		require.Equal(t, want, streams, typ)
	}

	// Another call is another trigger; a payload is optional. The test
	// key triggers its own sandbox claims only; another tenant sees none.
	r = e.post(t, k.Secret, "/v1/triggers/letter.returned", map[string]any{"claim_ids": []string{c1.ID}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	var trg2 triggerJSON
	r.decode(t, &trg2)
	require.NotEqual(t, trg.ID, trg2.ID)
	listed := e.triggeredEvents(t, k.Secret, "claim.triggered", r.position(t))
	require.Len(t, listed, 4)
	require.Empty(t, listed[3].Data.Payload)
	r = e.post(t, test.Secret, "/v1/triggers/sandbox-1", map[string]any{"claim_references": []string{"TC-1"}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	var trg3 triggerJSON
	r.decode(t, &trg3)
	require.Len(t, trg3.Events, 1)
	require.Equal(t, testClaim.ID, trg3.Events[0].StreamID, "the test key's TC-1 is its sandbox claim")
	require.Len(t, e.triggeredEvents(t, test.Secret, "claim.triggered", r.position(t)), 1)
	require.Empty(t, e.triggeredEvents(t, other.Secret, "claim.triggered", r.position(t)))
	require.Equal(t, 7, triggered())
}

// TestTriggerScopes: naming claims needs claims:write, naming accounts
// accounts:write; checked before the body is validated or an
// Idempotency-Key is looked at.
func TestTriggerScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Trigger scopes")
	full := e.key(t, ten.ID, eventstore.NewKey{Name: "full"})
	acct := e.createAccount(t, full.Secret, map[string]any{"currency": "EUR", "reference": "ACC-S"})
	c := e.createClaim(t, full.Secret, map[string]any{"reference": "TS-1", "account_id": acct.ID, "amount": "10", "original_due_date": dayAfterToday(0)})
	claims := map[string]any{"claim_ids": []string{c.ID}}
	accounts := map[string]any{"account_references": []string{"ACC-S"}}
	both := map[string]any{"claim_references": []string{"TS-1"}, "account_ids": []string{acct.ID}}
	const created, denied, invalid = http.StatusCreated, http.StatusForbidden, http.StatusUnprocessableEntity
	for i, tc := range []struct {
		scopes  []string
		body    any
		want    int
		missing string // the scope a 403 names
	}{
		{[]string{"claims:write"}, claims, created, ""},
		{[]string{"claims:write"}, accounts, denied, "accounts:write"},
		{[]string{"claims:write"}, both, denied, "accounts:write"},
		{[]string{"accounts:write"}, accounts, created, ""},
		{[]string{"accounts:write"}, claims, denied, "claims:write"},
		{[]string{"claims:write", "accounts:write"}, both, created, ""},
		{[]string{"claims:read", "accounts:read"}, claims, denied, "claims:write"},
		{[]string{"events:read"}, map[string]any{}, denied, "claims:write"},
		{[]string{"events:read"}, "not json", denied, "claims:write"},
		{[]string{"accounts:write"}, map[string]any{}, invalid, ""}, // may trigger something: the body is checked
		{[]string{"claims:write"}, map[string]any{"claim_ids": "x"}, invalid, ""},
		{[]string{"accounts:write"}, map[string]any{"claim_ids": "x"}, denied, "claims:write"}, // names claims, badly
	} {
		t.Run(fmt.Sprintf("%v %v", tc.scopes, tc.body), func(t *testing.T) {
			k := e.key(t, ten.ID, eventstore.NewKey{Name: "scoped", Scopes: tc.scopes})
			before := e.count(t, `SELECT count(*) FROM events WHERE type LIKE '%.triggered'`)
			r := e.post(t, k.Secret, "/v1/triggers/scope-check", tc.body, "Idempotency-Key", fmt.Sprintf("scope-%d", i))
			switch tc.want {
			case denied:
				p := requireProblem(t, r, denied, "forbidden", "missing_scope")
				require.Contains(t, p.Detail, tc.missing)
				require.Equal(t, before, e.count(t, `SELECT count(*) FROM events WHERE type LIKE '%.triggered'`))
			case invalid:
				r.problem(t, invalid)
			default:
				require.Equal(t, tc.want, r.Status, "%s", r.Body)
			}
		})
	}
	// A key without the scope never sees the replay of another key's trigger.
	r := e.post(t, full.Secret, "/v1/triggers/shared", both, "Idempotency-Key", "shared")
	require.Equal(t, created, r.Status, "%s", r.Body)
	claimsOnly := e.key(t, ten.ID, eventstore.NewKey{Name: "claims only", Scopes: []string{"claims:write"}})
	r = e.post(t, claimsOnly.Secret, "/v1/triggers/shared", both, "Idempotency-Key", "shared")
	requireProblem(t, r, denied, "forbidden", "missing_scope")
	require.Empty(t, r.Header.Get("Idempotent-Replayed"))
	ro := e.key(t, ten.ID, eventstore.NewKey{Name: "read-only", ReadOnly: true})
	requireProblem(t, e.post(t, ro.Secret, "/v1/triggers/shared", both, "Idempotency-Key", "shared"), denied, "forbidden", "read_only_key")
}
