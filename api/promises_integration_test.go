package api_test

// Promises to pay: validation naming fields, one active promise per claim,
// kept by credits, cancelled by a resolution, the claim view's
// active_promise, idempotent replays, tenant and mode isolation.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type promiseJSON struct {
	Object    string     `json:"object"`
	ID        string     `json:"id"`
	ClaimID   string     `json:"claim_id"`
	Amount    string     `json:"amount"`
	Currency  string     `json:"currency"`
	DueDate   string     `json:"due_date"`
	Status    string     `json:"status"`
	Progress  string     `json:"progress"`
	Reason    string     `json:"reason"`
	MadeAt    time.Time  `json:"made_at"`
	DecidedAt *time.Time `json:"decided_at"`
}

// claimCollection is what the claim view shows of promises and disputes.
type claimCollection struct {
	ID            string       `json:"id"`
	Status        string       `json:"status"`
	Amount        string       `json:"amount"`
	ActivePromise *promiseJSON `json:"active_promise"`
	Disputed      bool         `json:"disputed"`
}

// dayAfterToday is the server clock's UTC date n days from now.
func dayAfterToday(n int) string { return string(domain.DateOf(time.Now().AddDate(0, 0, n))) }

func (e *env) makePromise(t *testing.T, secret, claimID string, body any, header ...string) (promiseJSON, *response) {
	t.Helper()
	r := e.post(t, secret, "/v1/claims/"+claimID+"/promises", body, header...)
	require.Equal(t, http.StatusCreated, r.Status, "make promise: %s", r.Body)
	var p promiseJSON
	r.decode(t, &p)
	return p, r
}

func (e *env) promises(t *testing.T, secret, claimID string, pos int64) []promiseJSON {
	t.Helper()
	r := e.get(t, secret, fmt.Sprintf("/v1/claims/%s/promises?min_position=%d", claimID, pos))
	require.Equal(t, http.StatusOK, r.Status, "list promises: %s", r.Body)
	var l struct {
		Data       []promiseJSON `json:"data"`
		NextCursor *string       `json:"next_cursor"`
	}
	r.decode(t, &l)
	require.Nil(t, l.NextCursor)
	return l.Data
}

// claimState reads the claim view (after position pos).
func (e *env) claimState(t *testing.T, secret, id string, pos int64) claimCollection {
	t.Helper()
	r := e.get(t, secret, fmt.Sprintf("/v1/claims/%s?min_position=%d", id, pos))
	require.Equal(t, http.StatusOK, r.Status, "get claim: %s", r.Body)
	var c claimCollection
	r.decode(t, &c)
	return c
}

func TestPromisesToPay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Promises")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	other := e.key(t, e.tenant(t, "Other").ID, eventstore.NewKey{Name: "other"})
	c := e.createClaim(t, k.Secret, map[string]any{"reference": "PTP-1", "amount": "100.00", "currency": "EUR", "original_due_date": dayAfterToday(-20)})
	made := func() int { return e.count(t, `SELECT count(*) FROM events WHERE type = 'claim.promise_made'`) }

	// Invalid promises name their fields and record nothing.
	for _, tc := range []struct {
		name   string
		body   any
		fields []string
	}{
		{"empty", map[string]any{}, []string{"amount", "due_date"}},
		{"no body", "", []string{"body"}},
		{"amount not a decimal", map[string]any{"amount": "ten", "due_date": dayAfterToday(1)}, []string{"amount"}},
		{"amount a number", map[string]any{"amount": 10, "due_date": dayAfterToday(1)}, []string{"amount"}},
		{"too many decimals", map[string]any{"amount": "1.001", "due_date": dayAfterToday(1)}, []string{"amount"}},
		{"zero", map[string]any{"amount": "0", "due_date": dayAfterToday(1)}, []string{"amount"}},
		{"negative", map[string]any{"amount": "-5", "due_date": dayAfterToday(1)}, []string{"amount"}},
		{"more than the claim", map[string]any{"amount": "100.01", "due_date": dayAfterToday(1)}, []string{"amount"}},
		{"not a date", map[string]any{"amount": "10", "due_date": "2030-02-30"}, []string{"due_date"}},
		{"in the past", map[string]any{"amount": "10", "due_date": dayAfterToday(-1)}, []string{"due_date"}},
		{"too far ahead", map[string]any{"amount": "10", "due_date": dayAfterToday(domain.MaxPromiseDays + 1)}, []string{"due_date"}},
		{"both bad", map[string]any{"amount": "100.01", "due_date": dayAfterToday(-1)}, []string{"amount", "due_date"}},
		{"unknown field", map[string]any{"amount": "10", "due_date": dayAfterToday(1), "note": "x"}, []string{"note"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, k.Secret, "/v1/claims/"+c.ID+"/promises", tc.body)
			p := requireInvalid(t, r, tc.fields[0])
			var got []string
			for _, fe := range p.Errors {
				got = append(got, fe.Field)
			}
			require.ElementsMatch(t, tc.fields, got, "%s", r.Body)
		})
	}
	require.Zero(t, made())

	// A promise due today, replayed with its Idempotency-Key: one event.
	p, r := e.makePromise(t, k.Secret, c.ID, map[string]any{"amount": "40.00", "due_date": dayAfterToday(0)}, "Idempotency-Key", "ptp-1")
	require.True(t, strings.HasPrefix(p.ID, "ptp_"), p.ID)
	require.Equal(t, promiseJSON{Object: "promise", ID: p.ID, ClaimID: c.ID, Amount: "40.00", Currency: "EUR", DueDate: dayAfterToday(0),
		Status: "active", Progress: "0.00", MadeAt: p.MadeAt}, p)
	pos := r.position(t)
	again := e.post(t, k.Secret, "/v1/claims/"+c.ID+"/promises", map[string]any{"amount": "40.00", "due_date": dayAfterToday(0)}, "Idempotency-Key", "ptp-1")
	require.Equal(t, http.StatusCreated, again.Status)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(r.Body), string(again.Body))
	require.Equal(t, 1, made())

	// One active promise per claim.
	r = e.post(t, k.Secret, "/v1/claims/"+c.ID+"/promises", map[string]any{"amount": "10", "due_date": dayAfterToday(3)})
	require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "promise_active").Detail, p.ID)
	require.Equal(t, 1, made())

	// The claim view shows it; the list has it.
	got := e.claimState(t, k.Secret, c.ID, pos)
	require.NotNil(t, got.ActivePromise)
	require.Equal(t, p, *got.ActivePromise)
	require.False(t, got.Disputed)
	require.Equal(t, []promiseJSON{p}, e.promises(t, k.Secret, c.ID, pos))

	// Credits count towards it; covering it keeps it.
	cr, _ := e.claimAction(t, k.Secret, c.ID, "credit", map[string]any{"amount": "15"}, http.StatusOK)
	got = e.claimState(t, k.Secret, c.ID, cr.Position)
	require.Equal(t, "active", got.ActivePromise.Status)
	require.Equal(t, "15.00", got.ActivePromise.Progress)
	cr, r = e.claimAction(t, k.Secret, c.ID, "credit", map[string]any{"amount": "25"}, http.StatusOK)
	var written claimCollection
	r.decode(t, &written)
	require.Nil(t, written.ActivePromise, "the write's answer: kept, no longer active")
	got = e.claimState(t, k.Secret, c.ID, cr.Position)
	require.Nil(t, got.ActivePromise)
	require.Equal(t, "60.00", got.Amount)
	list := e.promises(t, k.Secret, c.ID, cr.Position)
	require.Len(t, list, 1)
	require.Equal(t, "kept", list[0].Status)
	require.Equal(t, "40.00", list[0].Progress)
	require.NotNil(t, list[0].DecidedAt)
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type = 'claim.promise_kept' AND stream_id = $1`, c.ID))

	// Another promise, then a resolution other than paid cancels it.
	p2, _ := e.makePromise(t, k.Secret, c.ID, map[string]any{"amount": "60", "due_date": dayAfterToday(domain.MaxPromiseDays)})
	require.Equal(t, "60.00", p2.Amount)
	require.Equal(t, "0.00", p2.Progress)
	rs, _ := e.claimAction(t, k.Secret, c.ID, "resolve", map[string]any{"resolution": "sold"}, http.StatusOK)
	list = e.promises(t, k.Secret, c.ID, rs.Position)
	require.Equal(t, []string{p.ID, p2.ID}, []string{list[0].ID, list[1].ID}, "oldest first")
	require.Equal(t, []string{"kept", "cancelled"}, []string{list[0].Status, list[1].Status})
	require.Equal(t, "claim resolved: sold", list[1].Reason)
	require.Nil(t, e.claimState(t, k.Secret, c.ID, rs.Position).ActivePromise)

	// A resolved or stopped claim takes no promise; a paused one does.
	r = e.post(t, k.Secret, "/v1/claims/"+c.ID+"/promises", map[string]any{"amount": "1", "due_date": dayAfterToday(1)})
	require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition").Detail, "is resolved")
	stopped := e.createClaim(t, k.Secret, map[string]any{"reference": "PTP-STOP", "amount": "5", "currency": "EUR", "original_due_date": dayAfterToday(0)})
	e.claimAction(t, k.Secret, stopped.ID, "stop", nil, http.StatusOK)
	r = e.post(t, k.Secret, "/v1/claims/"+stopped.ID+"/promises", map[string]any{"amount": "1", "due_date": dayAfterToday(1)})
	require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition").Detail, "is stopped")
	jpy := e.createClaim(t, k.Secret, map[string]any{"reference": "PTP-JPY", "amount": "5000", "currency": "JPY", "original_due_date": dayAfterToday(0)})
	e.claimAction(t, k.Secret, jpy.ID, "pause", nil, http.StatusOK)
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims/"+jpy.ID+"/promises", map[string]any{"amount": "10.5", "due_date": dayAfterToday(1)}), "amount")
	pj, r := e.makePromise(t, k.Secret, jpy.ID, map[string]any{"amount": "2500", "due_date": dayAfterToday(1)})
	require.Equal(t, []string{"2500", "JPY", "0"}, []string{pj.Amount, pj.Currency, pj.Progress})
	require.Equal(t, "paused", e.claimState(t, k.Secret, jpy.ID, r.position(t)).Status)

	// Another mode's or tenant's claim, or none, is 404 whatever the body.
	tc := e.createClaim(t, test.Secret, map[string]any{"reference": "PTP-1", "amount": "10", "currency": "EUR", "original_due_date": dayAfterToday(0)})
	for _, a := range []struct {
		secret, id string
	}{{test.Secret, c.ID}, {other.Secret, c.ID}, {k.Secret, tc.ID}, {k.Secret, e.freshID(c.ID)}, {k.Secret, "nope"}} {
		requireProblem(t, e.post(t, a.secret, "/v1/claims/"+a.id+"/promises", map[string]any{"amount": "1", "due_date": dayAfterToday(1)}), http.StatusNotFound, "not-found", "")
		requireProblem(t, e.post(t, a.secret, "/v1/claims/"+a.id+"/promises", "not json"), http.StatusNotFound, "not-found", "")
		requireProblem(t, e.get(t, a.secret, fmt.Sprintf("/v1/claims/%s/promises?min_position=%d", a.id, tc.Position)), http.StatusNotFound, "not-found", "")
	}
	// The test key's own claim takes its own promise.
	pt, _ := e.makePromise(t, test.Secret, tc.ID, map[string]any{"amount": "10", "due_date": dayAfterToday(2)})
	require.Equal(t, tc.ID, pt.ClaimID)
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type = 'claim.promise_made' AND stream_id = $1`, tc.ID))
}
