package api_test

// The auditors' surface: GET /v1/events (filters, pages, the ndjson
// stream, metadata, isolation), GET /v1/events/{id}, an account's history
// with effects and running balance, and the balance at a point in time.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/api/spectest"
	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type auditEvent struct {
	Object        string          `json:"object"`
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	StreamType    string          `json:"stream_type"`
	StreamID      string          `json:"stream_id"`
	StreamVersion int64           `json:"stream_version"`
	Position      int64           `json:"position"`
	RecordedAt    time.Time       `json:"recorded_at"`
	Data          json.RawMessage `json:"data"`
	Metadata      struct {
		Actor          string `json:"actor"`
		RequestID      string `json:"request_id"`
		IdempotencyKey string `json:"idempotency_key"`
		CausationID    string `json:"causation_id"`
		CorrelationID  string `json:"correlation_id"`
		Sandbox        bool   `json:"sandbox"`
	} `json:"metadata"`
	Hash string `json:"hash"`
}

// events pages through GET /v1/events?query (200 a page).
func (e *env) events(t *testing.T, secret, query string) []auditEvent {
	t.Helper()
	return listAll[auditEvent](t, e, secret, "/v1/events?"+query, 200)
}

// ndjson GETs /v1/events?query as newline-delimited JSON and returns its
// lines.
func (e *env) ndjson(t *testing.T, secret, query string) [][]byte {
	t.Helper()
	r := e.send(t, req{Method: http.MethodGet, Path: "/v1/events?" + query, Auth: secret, Header: []string{"Accept", "application/x-ndjson"}})
	require.Equal(t, http.StatusOK, r.Status, "ndjson: %s", r.Body)
	require.Equal(t, "application/x-ndjson", r.Header.Get("Content-Type"))
	var lines [][]byte
	for line := range bytes.Lines(r.Body) {
		require.True(t, bytes.HasSuffix(line, []byte("\n")), "every line ends in a newline")
		lines = append(lines, bytes.TrimSuffix(line, []byte("\n")))
	}
	return lines
}

func eventIDs(evs []auditEvent) []string {
	out := []string{}
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

func filterEvents(evs []auditEvent, keep func(auditEvent) bool) []string {
	out := []string{}
	for _, ev := range evs {
		if keep(ev) {
			out = append(out, ev.ID)
		}
	}
	return out
}

// storedEventIDs is the oracle: the tenant's events of a mode, in the
// global order, straight from the table.
func (e *env) storedEventIDs(t *testing.T, tenantID string, sandbox bool) []string {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT id FROM events
		WHERE tenant_id = $1 AND coalesce((metadata->>'sandbox')::boolean, false) = $2 ORDER BY tx_id, position`, tenantID, sandbox)
	require.NoError(t, err)
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		out = append(out, id)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestEventsFilters drives a tenant's live and test modes and another
// tenant, then checks each filter of GET /v1/events against the full list,
// the list against the table, the metadata of a write, and isolation.
func TestEventsFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten, other := e.tenant(t, "Auditors"), e.tenant(t, "Other")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	kt := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	ko := e.key(t, other.ID, eventstore.NewKey{Name: "other"})
	accountsOnly := e.key(t, ten.ID, eventstore.NewKey{Name: "accounts", Scopes: []string{"accounts:read"}})
	eventsOnly := e.key(t, ten.ID, eventstore.NewKey{Name: "auditor", Scopes: []string{"events:read"}})

	d := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Ada", "last_name": "Audit"})
	a1 := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "debtor_ids": []string{d.ID}}, fmt.Sprintf("min_position=%d", d.Position))
	a2 := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	e.postEntries(t, k.Secret,
		map[string]any{"account_id": a1.ID, "reference": "INV-1", "kind": "invoice", "amount": "100.00", "due_date": "2026-01-01"},
		map[string]any{"account_id": a2.ID, "reference": "INV-2", "kind": "invoice", "amount": "50.00", "due_date": "2026-01-01"})
	payRes := e.post(t, k.Secret, "/v1/accounts/"+a1.ID+"/payments", map[string]any{"amount": "30.00"}, "Idempotency-Key", "audit-pay-1")
	require.Equal(t, http.StatusCreated, payRes.Status, "payment: %s", payRes.Body)
	// The other mode and the other tenant write too.
	at := e.createAccount(t, kt.Secret, map[string]any{"currency": "EUR"})
	e.postEntries(t, kt.Secret, map[string]any{"account_id": at.ID, "reference": "INV-T", "kind": "invoice", "amount": "1.00", "due_date": "2026-01-01"})
	ao := e.createAccount(t, ko.Secret, map[string]any{"currency": "EUR"})
	last := e.postEntries(t, ko.Secret, map[string]any{"account_id": ao.ID, "reference": "INV-O", "kind": "invoice", "amount": "1.00", "due_date": "2026-01-01"})
	wait := fmt.Sprintf("min_position=%d", *last.Position)

	full := e.events(t, k.Secret, wait)
	require.Equal(t, e.storedEventIDs(t, ten.ID, false), eventIDs(full), "the live list is the tenant's live events in the global order")
	for i := 1; i < len(full); i++ { // one writer at a time: positions grow along the order
		require.Less(t, full[i-1].Position, full[i].Position)
	}
	testList := e.events(t, kt.Secret, wait)
	require.Equal(t, e.storedEventIDs(t, ten.ID, true), eventIDs(testList))
	otherList := e.events(t, ko.Secret, wait)
	require.Equal(t, e.storedEventIDs(t, other.ID, false), eventIDs(otherList))
	// Never another mode's or tenant's event.
	for _, ev := range full {
		require.False(t, ev.Metadata.Sandbox, "%s", ev.ID)
		require.NotEqual(t, at.ID, ev.StreamID)
		require.NotEqual(t, ao.ID, ev.StreamID)
		require.NotEqual(t, kt.ID, ev.StreamID)
	}
	require.Contains(t, filterEvents(testList, func(ev auditEvent) bool { return ev.StreamID == at.ID }), testList[len(testList)-1].ID)
	for _, ev := range testList {
		require.True(t, ev.Metadata.Sandbox, "%s", ev.ID)
		require.NotContains(t, eventIDs(full), ev.ID)
		require.NotContains(t, eventIDs(otherList), ev.ID)
	}
	for _, ev := range otherList {
		require.NotContains(t, eventIDs(full), ev.ID)
	}
	require.Equal(t, eventIDs(full), eventIDs(e.events(t, eventsOnly.Secret, wait)), "events:read is enough")
	requireProblem(t, e.get(t, accountsOnly.Secret, "/v1/events"), http.StatusForbidden, "forbidden", "missing_scope")

	// Metadata: the key and Idempotency-Key of the write that caused it.
	paid := filterEvents(full, func(ev auditEvent) bool { return ev.Metadata.IdempotencyKey == "audit-pay-1" })
	require.Len(t, paid, 2)
	for _, ev := range full {
		if ev.Metadata.IdempotencyKey != "audit-pay-1" {
			continue
		}
		require.Contains(t, []string{"payment.recorded", "payment.completed"}, ev.Type)
		require.Equal(t, a1.ID, ev.StreamID)
		require.Equal(t, "account", ev.StreamType)
		require.Equal(t, k.ID, ev.Metadata.Actor)
		require.Equal(t, payRes.Header.Get(api.HeaderRequestID), ev.Metadata.RequestID)
		require.Equal(t, "event", ev.Object)
		require.Equal(t, 1, ev.SchemaVersion)
	}
	require.Equal(t, payRes.position(t), full[slices.IndexFunc(full, func(ev auditEvent) bool { return ev.Type == "payment.completed" })].Position)
	for _, ev := range testList {
		if ev.StreamID == at.ID {
			require.Equal(t, kt.ID, ev.Metadata.Actor)
		}
	}
	// Data and hash are the stored ones.
	for _, ev := range full {
		var hash string
		var data []byte
		require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT encode(hash, 'hex'), data FROM events WHERE id = $1`, ev.ID).Scan(&hash, &data))
		require.Equal(t, hash, ev.Hash)
		require.JSONEq(t, string(data), string(ev.Data))
	}

	// One event by id: as listed; another mode's or tenant's is not found.
	for _, ev := range full {
		r := e.get(t, k.Secret, "/v1/events/"+ev.ID)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		var got auditEvent
		r.decode(t, &got)
		require.Equal(t, ev, got)
	}
	requireProblem(t, e.get(t, kt.Secret, "/v1/events/"+full[0].ID), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, ko.Secret, "/v1/events/"+full[0].ID), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, "/v1/events/"+testList[0].ID), http.StatusNotFound, "not-found", "")

	list := func(query string) []string { return eventIDs(e.events(t, k.Secret, wait+"&"+query)) }
	ofType := func(types ...string) func(auditEvent) bool {
		return func(ev auditEvent) bool { return slices.Contains(types, ev.Type) }
	}

	// type: exact, wildcard, a list of both, everything.
	require.Equal(t, []string{paid[1]}, list("type=payment.completed"))
	require.Equal(t, paid, list("type=payment.*"))
	want := filterEvents(full, ofType("account.opened", "ledger_entry.posted", "debtor.created"))
	require.Len(t, want, 5)
	require.Equal(t, want, list("type="+url.QueryEscape("account.opened, ledger_entry.*,debtor.created")))
	require.Equal(t, eventIDs(full), list("type=*"))
	require.Equal(t, filterEvents(full, ofType("api_key.created")), list("type=api_key.created"))
	require.Len(t, filterEvents(full, ofType("api_key.created")), 3, "the live keys'")
	require.Empty(t, list("type=ledger_entr_.posted"), "_ is not a wildcard")
	require.Empty(t, list("type=payment"), "exact means exact")
	require.Empty(t, list("type=nothing.*"))
	for _, bad := range []string{"pay*ment", "*.completed", "payment.completed,", "a%25b"} {
		requireInvalid(t, e.get(t, k.Secret, "/v1/events?type="+bad), "query:type")
	}

	// stream_id, account_id, debtor_id.
	require.Equal(t, filterEvents(full, func(ev auditEvent) bool { return ev.StreamID == d.ID }), list("stream_id="+d.ID))
	require.Len(t, list("stream_id="+d.ID), 1)
	a1Events := filterEvents(full, func(ev auditEvent) bool { return ev.StreamID == a1.ID })
	require.Len(t, a1Events, 4) // opened, INV-1, payment recorded and completed
	require.Equal(t, a1Events, list("account_id="+a1.ID))
	require.Equal(t, a1Events, list("stream_id="+a1.ID+"&account_id="+a1.ID))
	require.Empty(t, list("stream_id="+a2.ID+"&account_id="+a1.ID))
	require.Empty(t, list("account_id="+d.ID), "account_id names accounts only")
	require.Empty(t, list("account_id="+at.ID), "another mode's account")
	require.Empty(t, list("account_id="+ao.ID), "another tenant's account")
	require.Equal(t, filterEvents(full, func(ev auditEvent) bool { return ev.StreamID == d.ID || ev.StreamID == a1.ID }), list("debtor_id="+d.ID))
	require.Len(t, list("debtor_id="+d.ID), 5)
	require.Equal(t, paid, list("debtor_id="+d.ID+"&type=payment.*"))
	require.Empty(t, list("debtor_id="+e.freshID(d.ID)))

	// from (inclusive) and to (exclusive) on recorded_at.
	mid := full[len(full)/2].RecordedAt
	ts := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339Nano)) }
	from := filterEvents(full, func(ev auditEvent) bool { return !ev.RecordedAt.Before(mid) })
	to := filterEvents(full, func(ev auditEvent) bool { return ev.RecordedAt.Before(mid) })
	require.NotEmpty(t, from)
	require.NotEmpty(t, to)
	require.Equal(t, from, list("from="+ts(mid)))
	require.Equal(t, to, list("to="+ts(mid)))
	require.Equal(t, eventIDs(full), append(list("to="+ts(mid)), list("from="+ts(mid))...))
	require.Equal(t, filterEvents(full, func(ev auditEvent) bool { return ev.RecordedAt.Equal(mid) }),
		list("from="+ts(mid)+"&to="+ts(mid.Add(time.Microsecond))))
	inParis := mid.In(time.FixedZone("CET", 3600))
	require.Equal(t, from, list("from="+ts(inParis)), "any offset")
	requireInvalid(t, e.get(t, k.Secret, "/v1/events?from=yesterday"), "query:from")
	requireInvalid(t, e.get(t, k.Secret, "/v1/events?from=2026-01-01"), "query:from")
	requireInvalid(t, e.get(t, k.Secret, "/v1/events?to=2026-13-01T00:00:00Z"), "query:to")
	requireInvalid(t, e.get(t, k.Secret, "/v1/events?from="+ts(mid)+"&to="+ts(mid)), "query:to")

	// after_position: after that event in the order.
	for _, i := range []int{0, 3, len(full) - 2, len(full) - 1} {
		require.Equal(t, eventIDs(full[i+1:]), list(fmt.Sprintf("after_position=%d", full[i].Position)))
	}
	require.Equal(t, eventIDs(full), list("after_position=0"))
	recorded := full[slices.IndexFunc(full, func(ev auditEvent) bool { return ev.ID == paid[0] })]
	require.Equal(t, paid[1:], list(fmt.Sprintf("type=payment.*&after_position=%d", recorded.Position)), "with other filters")
	require.Empty(t, list("after_position=999999999"))
	for _, bad := range []string{"-1", "x", "1.5"} {
		requireInvalid(t, e.get(t, k.Secret, "/v1/events?after_position="+bad), "query:after_position")
	}
	requireInvalid(t, e.get(t, k.Secret, "/v1/events?cursor=bm9wZQ"), "query:cursor")
	requireInvalid(t, e.get(t, k.Secret, "/v1/events?min_position=x"), "query:min_position")
}

// TestEventsPaginationEqualsStream: more than two stream pages' worth of
// events, paged through with cursors and streamed as ndjson, give the same
// events in the same order as the table.
func TestEventsPaginationEqualsStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Streamed")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	kt := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	const perAccount = 1100
	var accounts []string
	var last int64
	for range 2 {
		a := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
		accounts = append(accounts, a.ID)
		entries := make([]map[string]any, perAccount)
		for i := range entries {
			entries[i] = map[string]any{"account_id": a.ID, "reference": fmt.Sprintf("INV-%04d", i), "kind": "invoice", "amount": "1.00", "due_date": "2026-01-01"}
		}
		last = *e.postEntries(t, k.Secret, entries...).Position
	}
	at := e.createAccount(t, kt.Secret, map[string]any{"currency": "EUR"})
	wait := fmt.Sprintf("min_position=%d", max(last, at.Position))

	stored := e.storedEventIDs(t, ten.ID, false)
	require.Greater(t, len(stored), 2*1000, "more than two stream pages")
	lines := e.ndjson(t, k.Secret, wait)
	require.Len(t, lines, len(stored))
	var streamed []auditEvent
	for _, l := range lines {
		var ev auditEvent
		require.NoError(t, json.Unmarshal(l, &ev))
		streamed = append(streamed, ev)
	}
	require.Equal(t, stored, eventIDs(streamed), "the stream is the whole selection in the global order")
	for i := 1; i < len(streamed); i++ {
		require.Less(t, streamed[i-1].Position, streamed[i].Position)
	}

	paged := listAll[json.RawMessage](t, e, k.Secret, "/v1/events?"+wait, 200)
	require.Len(t, paged, len(lines))
	for i := range paged {
		require.JSONEq(t, string(lines[i]), string(paged[i]), "event %d", i)
	}

	// Filters apply to the stream; limit and cursor do not.
	require.Len(t, e.ndjson(t, k.Secret, wait+"&type=ledger_entry.posted&account_id="+accounts[1]), perAccount)
	require.Len(t, e.ndjson(t, k.Secret, wait+"&type=account.opened"), 2)
	require.Len(t, e.ndjson(t, k.Secret, wait+"&limit=1&cursor=x"), len(lines))
	require.Empty(t, e.ndjson(t, k.Secret, wait+"&type=nothing.here"))
	tail := e.ndjson(t, k.Secret, fmt.Sprintf("%s&after_position=%d", wait, streamed[1500].Position))
	require.Len(t, tail, len(lines)-1501)
	require.JSONEq(t, string(lines[1501]), string(tail[0]))
	testLines := e.ndjson(t, kt.Secret, wait)
	require.Len(t, testLines, len(e.storedEventIDs(t, ten.ID, true)))
	for _, l := range testLines {
		require.Contains(t, string(l), `"sandbox":true`)
	}
	// Bad filters are refused before the stream starts.
	r := e.send(t, req{Method: http.MethodGet, Path: "/v1/events?from=nope", Auth: k.Secret, Header: []string{"Accept", "application/x-ndjson"}})
	requireInvalid(t, r, "query:from")
	// A client that prefers JSON pages (q=0 for ndjson) gets them.
	r = e.send(t, req{Method: http.MethodGet, Path: "/v1/events?limit=1&" + wait, Auth: k.Secret, Header: []string{"Accept", "application/x-ndjson;q=0, application/json"}})
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
}

type historyEntry struct {
	Object string `json:"object"`
	Event  struct {
		ID         string          `json:"id"`
		Type       string          `json:"type"`
		Version    int64           `json:"version"`
		Position   int64           `json:"position"`
		RecordedAt time.Time       `json:"recorded_at"`
		Data       json.RawMessage `json:"data"`
	} `json:"event"`
	Effect       string `json:"effect"`
	BalanceAfter string `json:"balance_after"`
	Currency     string `json:"currency"`
}

// TestHistoryEffectsAndRunningBalance: invoice, fee, payment, refund and
// amendment, each with its exact effect and the balance after it, on every
// page size.
func TestHistoryEffectsAndRunningBalance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "History")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	kt := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})

	a := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	e.postEntries(t, k.Secret, map[string]any{"account_id": a.ID, "reference": "INV-1", "kind": "invoice", "amount": "100.00", "due_date": "2026-01-01"})
	e.postEntries(t, k.Secret, map[string]any{"account_id": a.ID, "reference": "FEE-1", "kind": "fee", "amount": "5.50", "target_reference": "INV-1"})
	pay := e.createPayment(t, k.Secret, a.ID, map[string]any{"amount": "30.00"})
	pending := e.createPayment(t, k.Secret, a.ID, map[string]any{"amount": "10.00", "status": "pending"})
	r := e.paymentAction(t, k.Secret, pay.ID, "refund", pay.Position, map[string]any{"reason": "goodwill"})
	require.Equal(t, http.StatusOK, r.Status, "refund: %s", r.Body)
	r = e.post(t, k.Secret, "/v1/accounts/"+a.ID+"/ledger-entries/INV-1/amend", map[string]any{"amount": "90.00", "reason": "price corrected"})
	require.Equal(t, http.StatusOK, r.Status, "amend: %s", r.Body)
	r = e.paymentAction(t, k.Secret, pending.ID, "complete", pending.Position, nil)
	require.Equal(t, http.StatusOK, r.Status, "complete: %s", r.Body)

	want := []struct{ typ, effect, after string }{
		{"account.opened", "0.00", "0.00"},
		{"ledger_entry.posted", "100.00", "100.00"},
		{"ledger_entry.posted", "5.50", "105.50"},
		{"payment.recorded", "0.00", "105.50"},
		{"payment.completed", "-30.00", "75.50"},
		{"payment.recorded", "0.00", "75.50"}, // pending: reserves, owes no less
		{"payment.refunded", "30.00", "105.50"},
		{"ledger_entry.amended", "-10.00", "95.50"},
		{"payment.completed", "-10.00", "85.50"},
	}
	for _, limit := range []int{1, 2, 4, 200} {
		hist := listAll[historyEntry](t, e, k.Secret, "/v1/accounts/"+a.ID+"/history?", limit)
		require.Len(t, hist, len(want), "limit %d", limit)
		sum := decimal.Zero
		for i, h := range hist {
			require.Equal(t, "account_history_entry", h.Object)
			require.Equal(t, want[i].typ, h.Event.Type, "event %d", i+1)
			require.Equal(t, want[i].effect, h.Effect, "effect of %s (v%d)", h.Event.Type, h.Event.Version)
			require.Equal(t, want[i].after, h.BalanceAfter, "balance after %s (v%d)", h.Event.Type, h.Event.Version)
			require.Equal(t, "EUR", h.Currency)
			require.Equal(t, int64(i+1), h.Event.Version)
			sum = sum.Add(decimal.RequireFromString(h.Effect))
		}
		require.Equal(t, "85.5", sum.String())
	}
	// As the event store has them.
	hist := listAll[historyEntry](t, e, k.Secret, "/v1/accounts/"+a.ID+"/history?", 200)
	stored, err := e.store.ReadStream(context.Background(), ten.ID, a.ID, 0)
	require.NoError(t, err)
	require.Len(t, stored, len(hist))
	for i, ev := range stored {
		require.Equal(t, ev.ID, hist[i].Event.ID)
		require.Equal(t, ev.Position, hist[i].Event.Position)
		require.True(t, ev.RecordedAt.Equal(hist[i].Event.RecordedAt))
		require.JSONEq(t, string(ev.Data), string(hist[i].Event.Data))
	}
	// The running balance ends at the balance.
	require.Equal(t, hist[len(hist)-1].BalanceAfter, e.balance(t, k.Secret, a.ID, "2026-11-30").Outstanding)

	requireProblem(t, e.get(t, kt.Secret, "/v1/accounts/"+a.ID+"/history"), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, "/v1/accounts/"+e.freshID(a.ID)+"/history"), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, "/v1/accounts/nope/history"), http.StatusNotFound, "not-found", "")
	requireInvalid(t, e.get(t, k.Secret, "/v1/accounts/"+a.ID+"/history?cursor=bm9wZQ"), "query:cursor")
	requireInvalid(t, e.get(t, k.Secret, "/v1/accounts/"+a.ID+"/history?limit=0"), "query:limit")
}

// TestPointInTimeBalance is the test: the balance at a timestamp
// equals the balance the live API returned at that moment. After each
// write it captures GET balance, a timestamp taken right after the
// response, and the write's Arrears-Position; afterwards as_of=<timestamp>
// and as_of_position=<position> must answer exactly what was captured.
func TestPointInTimeBalance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Point in time")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	kt := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})

	type capture struct {
		what     string
		at       time.Time
		position int64
		balance  map[string]any
	}
	var captures []capture
	var acct string
	capt := func(what string, position int64) {
		t.Helper()
		r := e.get(t, k.Secret, "/v1/accounts/"+acct+"/balance")
		at := time.Now()
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", what, r.Body)
		captures = append(captures, capture{what, at, position, r.object(t)})
	}

	beforeAll := time.Now()
	a := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	acct = a.ID
	capt("opened", a.Position)
	posted := e.postEntries(t, k.Secret, map[string]any{"account_id": acct, "reference": "INV-1", "kind": "invoice", "amount": "100.00", "due_date": "2026-01-01"})
	capt("invoice overdue", *posted.Position)
	posted = e.postEntries(t, k.Secret, map[string]any{"account_id": acct, "reference": "INV-2", "kind": "invoice", "amount": "40.00",
		"due_date": time.Now().UTC().AddDate(0, 0, 20).Format(time.DateOnly)})
	capt("invoice current", *posted.Position)
	posted = e.postEntries(t, k.Secret, map[string]any{"account_id": acct, "reference": "FEE-1", "kind": "fee", "amount": "7.25", "target_reference": "INV-1"})
	capt("fee", *posted.Position)
	pay := e.createPayment(t, k.Secret, acct, map[string]any{"amount": "60.00"})
	capt("payment", pay.Position)
	r := e.post(t, k.Secret, "/v1/accounts/"+acct+"/ledger-entries/INV-2/amend", map[string]any{"amount": "45.00", "reason": "late fee included"})
	require.Equal(t, http.StatusOK, r.Status, "amend: %s", r.Body)
	capt("amendment", r.position(t))
	r = e.paymentAction(t, k.Secret, pay.ID, "refund", pay.Position, map[string]any{"reason": "returned"})
	require.Equal(t, http.StatusOK, r.Status, "refund: %s", r.Body)
	capt("refund", r.position(t))
	// Another account's write moves the clock and the positions on, not this balance.
	other := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	capt("another account opened", other.Position)

	distinct := map[string]bool{}
	for _, c := range captures {
		distinct[c.balance["outstanding"].(string)+"/"+c.balance["overdue"].(string)] = true
	}
	require.Len(t, distinct, 7, "the writes changed the balance")

	for _, c := range captures {
		r := e.get(t, k.Secret, "/v1/accounts/"+acct+"/balance?as_of="+url.QueryEscape(c.at.Format(time.RFC3339Nano)))
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", c.what, r.Body)
		require.Equal(t, c.balance, r.object(t), "as_of=%s (after %s)", c.at.Format(time.RFC3339Nano), c.what)

		r = e.get(t, k.Secret, fmt.Sprintf("/v1/accounts/%s/balance?as_of_position=%d", acct, c.position))
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", c.what, r.Body)
		require.Equal(t, c.balance, r.object(t), "as_of_position=%d (after %s)", c.position, c.what)
	}
	// The same instant in another offset.
	c := captures[3]
	r = e.get(t, k.Secret, "/v1/accounts/"+acct+"/balance?as_of="+url.QueryEscape(c.at.In(time.FixedZone("", -5*3600)).Format(time.RFC3339Nano)))
	require.Equal(t, c.balance, r.object(t))
	// The date form still means every event, aged to that date.
	r = e.get(t, k.Secret, "/v1/accounts/"+acct+"/balance?as_of=2026-01-31")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, captures[len(captures)-1].balance["outstanding"], r.object(t)["outstanding"])
	require.Equal(t, "2026-01-31", r.object(t)["as_of"])

	// Before the account was opened: not found.
	requireProblem(t, e.get(t, k.Secret, "/v1/accounts/"+acct+"/balance?as_of="+url.QueryEscape(beforeAll.Format(time.RFC3339Nano))),
		http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, fmt.Sprintf("/v1/accounts/%s/balance?as_of_position=%d", acct, a.Position-1)),
		http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, fmt.Sprintf("/v1/accounts/%s/balance?as_of_position=%d", other.ID, captures[len(captures)-2].position)),
		http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, kt.Secret, fmt.Sprintf("/v1/accounts/%s/balance?as_of_position=%d", acct, c.position)),
		http.StatusNotFound, "not-found", "")

	// Bad points in time.
	base := "/v1/accounts/" + acct + "/balance?"
	requireInvalid(t, e.get(t, k.Secret, base+"as_of="+url.QueryEscape(c.at.Format(time.RFC3339Nano))+fmt.Sprintf("&as_of_position=%d", c.position)), "query:as_of_position")
	requireInvalid(t, e.get(t, k.Secret, base+"as_of=2026-01-01&as_of_position=5"), "query:as_of_position")
	for _, bad := range []string{"yesterday", "2026-02-30", "2026-01-01T25:00:00Z", "2026-01-01 10:00:00"} {
		requireInvalid(t, e.get(t, k.Secret, base+"as_of="+url.QueryEscape(bad)), "query:as_of")
	}
	for _, bad := range []string{"0", "-3", "x"} {
		requireInvalid(t, e.get(t, k.Secret, base+"as_of_position="+bad), "query:as_of_position")
	}
	require.True(t, strings.HasPrefix(acct, "acct_"))
}

// TestEventsNDJSONSpec: spectest checks newline-delimited JSON line by
// line against the documented Event schema, so the stream is kept true
// like every JSON response.
func TestEventsNDJSONSpec(t *testing.T) {
	spec := spectest.Load(t)
	h := http.Header{}
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("X-Request-Id", "req_1")
	good := `{"object":"event","id":"evt_01JD7R0A1B2C3D4E5F6G7H8J9K","type":"payment.completed","schema_version":1,"stream_type":"account",` +
		`"stream_id":"acct_01JD7Q5V6Z8K3M2N4P5R6S7T8V","stream_version":4,"position":1042,"recorded_at":"2025-11-21T09:30:00.123456Z","data":{},` +
		`"metadata":{"actor":"key_1","request_id":"req_1","idempotency_key":"","causation_id":"","correlation_id":"","sandbox":false},` +
		`"hash":"9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c2e4f6a8b0d2f4e6a8c0b"}`
	for _, body := range []string{good + "\n", good + "\n" + good + "\n", ""} {
		require.Empty(t, spec.Validate("GET", "/v1/events", 200, h, []byte(body)), "%q", body)
	}
	for name, body := range map[string]string{
		"not JSON":           good + "\nnope\n",
		"undocumented field": strings.Replace(good, `"object"`, `"extra":1,"object"`, 1) + "\n",
		"missing metadata":   strings.Replace(good, `"metadata":{`, `"meta":{`, 1) + "\n",
		"a page, not a line": `{"data":[],"next_cursor":null}` + "\n",
		"bad hash on line 2": good + "\n" + strings.Replace(good, `"hash":"9f`, `"hash":"XX`, 1) + "\n",
	} {
		require.NotEmpty(t, spec.Validate("GET", "/v1/events", 200, h, []byte(body)), name)
	}
}
