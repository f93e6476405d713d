package api_test

// Disputes: opening on an account or a claim, validation naming fields,
// 404 for what the caller cannot see, the claim view's disputed flag,
// resolve and withdraw with 409s naming the state, list filters and
// pagination, idempotent replays, tenant and mode isolation, scopes.

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

type disputeJSON struct {
	Object      string         `json:"object"`
	ID          string         `json:"id"`
	AccountID   string         `json:"account_id"`
	ClaimID     string         `json:"claim_id"`
	DebtorIDs   []string       `json:"debtor_ids"`
	Reason      string         `json:"reason"`
	Description string         `json:"description"`
	Reference   string         `json:"reference"`
	Meta        map[string]any `json:"meta"`
	Status      string         `json:"status"`
	Outcome     *string        `json:"outcome"`
	Note        string         `json:"note"`
	OpenedAt    time.Time      `json:"opened_at"`
	ClosedAt    *time.Time     `json:"closed_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	Version     int64          `json:"version"`
	Position    int64          `json:"-"`
}

func (e *env) openDispute(t *testing.T, secret string, body any, header ...string) disputeJSON {
	t.Helper()
	r := e.post(t, secret, "/v1/disputes", body, header...)
	require.Equal(t, http.StatusCreated, r.Status, "open dispute: %s", r.Body)
	var d disputeJSON
	r.decode(t, &d)
	d.Position = r.position(t)
	require.Equal(t, "/v1/disputes/"+d.ID, r.Header.Get("Location"))
	return d
}

func (e *env) disputeAction(t *testing.T, secret, id, action string, body any, status int) (disputeJSON, *response) {
	t.Helper()
	r := e.post(t, secret, "/v1/disputes/"+id+"/"+action, body)
	require.Equal(t, status, r.Status, "%s: %s", action, r.Body)
	var d disputeJSON
	if status == http.StatusOK {
		r.decode(t, &d)
		d.Position = r.position(t)
	}
	return d, r
}

func (e *env) disputeIDs(t *testing.T, secret, query string) []string {
	t.Helper()
	ids, _ := walk(t, e, secret, "/v1/disputes?"+query, func(d disputeJSON) string { return d.ID })
	if ids == nil {
		ids = []string{}
	}
	return ids
}

func TestDisputes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Disputes")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	other := e.key(t, e.tenant(t, "Other").ID, eventstore.NewKey{Name: "other"})
	d1 := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Dis", "last_name": "Puter"})
	d2 := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Sec", "last_name": "Ond"})
	a := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "reference": "ACC-DA", "debtor_ids": []string{d1.ID}}, fmt.Sprintf("min_position=%d", d2.Position))
	b := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "reference": "ACC-DB", "debtor_ids": []string{d2.ID}})
	claim := func(ref, account string) claimJSON {
		return e.createClaim(t, k.Secret, map[string]any{"reference": ref, "account_id": account, "amount": "50", "original_due_date": dayAfterToday(-5)})
	}
	c1, c2, c3 := claim("DC-1", a.ID), claim("DC-2", a.ID), claim("DC-3", b.ID)
	testAcct := e.createAccount(t, test.Secret, map[string]any{"currency": "EUR", "reference": "ACC-DA"})
	testClaim := e.createClaim(t, test.Secret, map[string]any{"reference": "DC-1", "account_id": testAcct.ID, "amount": "5", "original_due_date": dayAfterToday(0)})
	otherAcct := e.createAccount(t, other.Secret, map[string]any{"currency": "EUR"})
	opened := func() int { return e.count(t, `SELECT count(*) FROM events WHERE type = 'dispute.opened'`) }

	// Invalid requests name their fields and record nothing.
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"no target", map[string]any{"reason": "other"}, "account_id"},
		{"two targets", map[string]any{"account_id": a.ID, "claim_id": c1.ID, "reason": "other"}, "claim_id"},
		{"id and reference", map[string]any{"account_id": a.ID, "account_reference": "ACC-DA", "reason": "other"}, "account_reference"},
		{"no reason", map[string]any{"account_id": a.ID}, "reason"},
		{"unknown reason", map[string]any{"account_id": a.ID, "reason": "angry"}, "reason"},
		{"long description", map[string]any{"account_id": a.ID, "reason": "other", "description": strings.Repeat("x", 2001)}, "description"},
		{"long reference", map[string]any{"account_id": a.ID, "reason": "other", "reference": strings.Repeat("x", 201)}, "reference"},
		{"meta not an object", map[string]any{"account_id": a.ID, "reason": "other", "meta": []int{1}}, "meta"},
		{"wrong type", map[string]any{"account_id": 7, "reason": "other"}, "account_id"},
		{"unknown field", map[string]any{"account_id": a.ID, "reason": "other", "amount": "1"}, "amount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireInvalid(t, e.post(t, k.Secret, "/v1/disputes", tc.body), tc.field)
		})
	}
	// What the caller cannot see is 404, whatever the rest of the body.
	for _, tc := range []struct {
		name   string
		secret string
		body   map[string]any
	}{
		{"missing account", k.Secret, map[string]any{"account_id": e.freshID(a.ID)}},
		{"not an account id", k.Secret, map[string]any{"account_id": c1.ID}},
		{"missing reference", k.Secret, map[string]any{"account_reference": "ACC-NONE"}},
		{"missing claim", k.Secret, map[string]any{"claim_id": e.freshID(c1.ID)}},
		{"live account, test key", test.Secret, map[string]any{"account_id": a.ID}},
		{"live claim, test key", test.Secret, map[string]any{"claim_id": c1.ID}},
		{"test account, live key", k.Secret, map[string]any{"account_id": testAcct.ID}},
		{"test claim, live key", k.Secret, map[string]any{"claim_id": testClaim.ID}},
		{"another tenant's account", k.Secret, map[string]any{"account_id": otherAcct.ID}},
		{"another tenant's claim", other.Secret, map[string]any{"claim_id": c1.ID}},
		{"another tenant's reference", other.Secret, map[string]any{"account_reference": "ACC-DA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, reason := range []string{"other", "angry"} {
				body := map[string]any{"reason": reason}
				for f, v := range tc.body {
					body[f] = v
				}
				requireProblem(t, e.post(t, tc.secret, "/v1/disputes", body), http.StatusNotFound, "not-found", "")
			}
		})
	}
	require.Zero(t, opened())

	// On one claim: its account is the claim's, the debtors the account's.
	d := e.openDispute(t, k.Secret, map[string]any{"claim_id": c1.ID, "reason": "already_paid", "description": " Paid in cash ",
		"reference": "DSP-1", "meta": map[string]any{"channel": "phone"}}, "Idempotency-Key", "dsp-1")
	require.True(t, strings.HasPrefix(d.ID, "dsp_"), d.ID)
	require.Equal(t, disputeJSON{Object: "dispute", ID: d.ID, AccountID: a.ID, ClaimID: c1.ID, DebtorIDs: []string{d1.ID}, Reason: "already_paid",
		Description: "Paid in cash", Reference: "DSP-1", Meta: map[string]any{"channel": "phone"}, Status: "open", OpenedAt: d.OpenedAt,
		UpdatedAt: d.OpenedAt, Version: 1, Position: d.Position}, d)
	replay := e.post(t, k.Secret, "/v1/disputes", map[string]any{"claim_id": c1.ID, "reason": "already_paid", "description": " Paid in cash ",
		"reference": "DSP-1", "meta": map[string]any{"channel": "phone"}}, "Idempotency-Key", "dsp-1")
	require.Equal(t, http.StatusCreated, replay.Status)
	require.Equal(t, "true", replay.Header.Get("Idempotent-Replayed"))
	require.Equal(t, 1, opened())
	// Its reference is unique per tenant and mode.
	requireProblem(t, e.post(t, k.Secret, "/v1/disputes", map[string]any{"account_id": b.ID, "reason": "other", "reference": "DSP-1"}),
		http.StatusConflict, "conflict", "duplicate_reference")
	require.Equal(t, 1, opened())
	got := e.get(t, k.Secret, fmt.Sprintf("/v1/disputes/%s?min_position=%d", d.ID, d.Position))
	require.Equal(t, http.StatusOK, got.Status, "%s", got.Body)
	var read disputeJSON
	got.decode(t, &read)
	read.Position = d.Position
	require.Equal(t, d, read, "the read model shows what the write answered")

	// The claim it is on shows disputed; its account's other claims do not.
	require.True(t, e.claimState(t, k.Secret, c1.ID, d.Position).Disputed)
	require.False(t, e.claimState(t, k.Secret, c2.ID, d.Position).Disputed)
	require.False(t, e.claimState(t, k.Secret, c3.ID, d.Position).Disputed)
	// Claim writes answer it too.
	_, r := e.claimAction(t, k.Secret, c1.ID, "pause", nil, http.StatusOK)
	var paused claimCollection
	r.decode(t, &paused)
	require.True(t, paused.Disputed)
	require.Equal(t, "paused", paused.Status)

	// On a whole account (by reference): every claim of it.
	whole := e.openDispute(t, k.Secret, map[string]any{"account_reference": "ACC-DB", "reason": "not_mine"})
	require.Equal(t, []string{b.ID, "", "not_mine"}, []string{whole.AccountID, whole.ClaimID, whole.Reason})
	require.Equal(t, []string{d2.ID}, whole.DebtorIDs)
	require.Nil(t, whole.Meta)
	require.True(t, e.claimState(t, k.Secret, c3.ID, whole.Position).Disputed)
	late := claim("DC-4", b.ID)
	require.True(t, e.claimState(t, k.Secret, late.ID, late.Position).Disputed, "a claim created on a disputed account")
	var debited claimCollection
	e.post(t, k.Secret, "/v1/claims/"+late.ID+"/debit", map[string]any{"amount": "1"}).decode(t, &debited)
	require.True(t, debited.Disputed)

	// Resolve: the outcome is checked; a closed dispute takes no transition.
	_, r = e.disputeAction(t, k.Secret, d.ID, "resolve", map[string]any{"outcome": "won"}, http.StatusUnprocessableEntity)
	requireInvalid(t, r, "outcome")
	_, r = e.disputeAction(t, k.Secret, d.ID, "resolve", map[string]any{"note": "x"}, http.StatusUnprocessableEntity)
	requireInvalid(t, r, "outcome")
	_, r = e.disputeAction(t, k.Secret, d.ID, "resolve", map[string]any{"outcome": "upheld", "note": strings.Repeat("x", 2001)}, http.StatusUnprocessableEntity)
	requireInvalid(t, r, "note")
	res, _ := e.disputeAction(t, k.Secret, d.ID, "resolve", map[string]any{"outcome": "upheld", "note": "Cash receipt found"}, http.StatusOK)
	require.Equal(t, "resolved", res.Status)
	require.Equal(t, "upheld", *res.Outcome)
	require.Equal(t, "Cash receipt found", res.Note)
	require.NotNil(t, res.ClosedAt)
	require.Equal(t, int64(2), res.Version)
	for _, a := range []struct {
		action string
		body   any
	}{{"resolve", map[string]any{"outcome": "rejected"}}, {"withdraw", nil}} {
		_, r := e.disputeAction(t, k.Secret, d.ID, a.action, a.body, http.StatusConflict)
		require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition").Detail, "is resolved", a.action)
	}
	require.False(t, e.claimState(t, k.Secret, c1.ID, res.Position).Disputed, "resolved: no longer disputed")
	// Withdraw (no body): the account's claims are no longer disputed.
	wd, _ := e.disputeAction(t, k.Secret, whole.ID, "withdraw", nil, http.StatusOK)
	require.Equal(t, "withdrawn", wd.Status)
	require.Nil(t, wd.Outcome)
	_, r = e.disputeAction(t, k.Secret, whole.ID, "withdraw", map[string]any{"note": "again"}, http.StatusConflict)
	require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition").Detail, "is withdrawn")
	require.False(t, e.claimState(t, k.Secret, c3.ID, wd.Position).Disputed)
	require.False(t, e.claimState(t, k.Secret, late.ID, wd.Position).Disputed)

	// The debtors are those of the account when the dispute opened.
	onA := e.openDispute(t, k.Secret, map[string]any{"account_id": a.ID, "reason": "quality", "reference": "DSP-3"})
	require.True(t, e.claimState(t, k.Secret, c2.ID, onA.Position).Disputed, "an account dispute covers every claim of it")
	added := e.post(t, k.Secret, "/v1/accounts/"+a.ID+"/debtors", map[string]any{"debtor_id": d2.ID})
	require.Equal(t, http.StatusCreated, added.Status, "%s", added.Body)
	onC2 := e.openDispute(t, k.Secret, map[string]any{"claim_id": c2.ID, "reason": "duplicate"})
	require.Equal(t, []string{d1.ID}, onA.DebtorIDs)
	require.ElementsMatch(t, []string{d1.ID, d2.ID}, onC2.DebtorIDs)
	tst := e.openDispute(t, test.Secret, map[string]any{"claim_id": testClaim.ID, "reason": "other", "reference": "DSP-1"}) // same reference, other mode

	// Lists: filters combine; pages by id.
	w := fmt.Sprintf("min_position=%d&", onC2.Position)
	all := []string{d.ID, whole.ID, onA.ID, onC2.ID}
	for q, want := range map[string][]string{
		"":                                  {d.ID, whole.ID, onA.ID, onC2.ID},
		"status=open":                       {onA.ID, onC2.ID},
		"status=resolved,withdrawn":         {d.ID, whole.ID},
		"status=withdrawn":                  {whole.ID},
		"debtor_id=" + d1.ID:                {d.ID, onA.ID, onC2.ID},
		"debtor_id=" + d2.ID:                {whole.ID, onC2.ID},
		"account_id=" + a.ID:                {d.ID, onA.ID, onC2.ID},
		"claim_id=" + c1.ID:                 {d.ID},
		"claim_id=" + c3.ID:                 {},
		"reference=DSP-3":                   {onA.ID},
		"status=open&account_id=" + a.ID:    {onA.ID, onC2.ID},
		"status=open&debtor_id=" + d2.ID:    {onC2.ID},
		"limit=1":                           all,
		"limit=3&status=open,resolved":      {d.ID, onA.ID, onC2.ID},
		"account_id=" + e.freshID(a.ID):     {},
		"debtor_id=" + e.freshID(d1.ID):     {},
		"status=open&claim_id=" + c1.ID:     {},
		"status=resolved&claim_id=" + c1.ID: {d.ID},
	} {
		require.Equal(t, want, e.disputeIDs(t, k.Secret, w+q), "?%s", q)
	}
	var page struct {
		Data       []disputeJSON `json:"data"`
		NextCursor *string       `json:"next_cursor"`
	}
	e.get(t, k.Secret, "/v1/disputes?limit=3&"+w).decode(t, &page)
	require.Len(t, page.Data, 3)
	require.NotNil(t, page.NextCursor)
	requireInvalid(t, e.get(t, k.Secret, "/v1/disputes?status=closed"), "query:status")
	requireInvalid(t, e.get(t, k.Secret, "/v1/disputes?limit=0"), "query:limit")
	// Modes and tenants see only their own.
	require.Equal(t, []string{tst.ID}, e.disputeIDs(t, test.Secret, fmt.Sprintf("min_position=%d", tst.Position)))
	require.Equal(t, []string{}, e.disputeIDs(t, other.Secret, fmt.Sprintf("min_position=%d", tst.Position)))
	for _, a := range []struct{ secret, id string }{{test.Secret, d.ID}, {other.Secret, d.ID}, {k.Secret, tst.ID}, {k.Secret, e.freshID(d.ID)}} {
		requireProblem(t, e.get(t, a.secret, "/v1/disputes/"+a.id), http.StatusNotFound, "not-found", "")
		requireProblem(t, e.post(t, a.secret, "/v1/disputes/"+a.id+"/resolve", "not json"), http.StatusNotFound, "not-found", "")
		requireProblem(t, e.post(t, a.secret, "/v1/disputes/"+a.id+"/withdraw", map[string]any{"note": "x"}), http.StatusNotFound, "not-found", "")
	}
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type IN ('dispute.resolved', 'dispute.withdrawn') AND stream_id = $1`, d.ID))
}

// TestDisputeScopes: disputes:read reads, disputes:write writes; claims and
// accounts scopes give no access to disputes.
func TestDisputeScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Dispute scopes")
	full := e.key(t, ten.ID, eventstore.NewKey{Name: "full"})
	acct := e.createAccount(t, full.Secret, map[string]any{"currency": "EUR"})
	open := func() string {
		return e.openDispute(t, full.Secret, map[string]any{"account_id": acct.ID, "reason": "other"}).ID
	}
	first := e.openDispute(t, full.Secret, map[string]any{"account_id": acct.ID, "reason": "other"})
	target, wait := first.ID, fmt.Sprintf("?min_position=%d", first.Position)
	const ok, created, denied = http.StatusOK, http.StatusCreated, http.StatusForbidden
	for _, tc := range []struct {
		scope        string
		method, path string
		body         any
		want         int
	}{
		{"disputes:read", http.MethodGet, "/v1/disputes" + wait, nil, ok},
		{"disputes:read", http.MethodGet, "/v1/disputes/" + target + wait, nil, ok},
		{"disputes:read", http.MethodPost, "/v1/disputes", map[string]any{"account_id": acct.ID, "reason": "other"}, denied},
		{"disputes:read", http.MethodPost, "/v1/disputes/" + target + "/resolve", map[string]any{"outcome": "upheld"}, denied},
		{"disputes:read", http.MethodPost, "/v1/disputes/" + target + "/withdraw", nil, denied},
		{"disputes:write", http.MethodGet, "/v1/disputes", nil, ok},
		{"disputes:write", http.MethodPost, "/v1/disputes", map[string]any{"account_id": acct.ID, "reason": "other"}, created},
		{"disputes:write", http.MethodPost, "/v1/disputes/" + open() + "/resolve", map[string]any{"outcome": "upheld"}, ok},
		{"disputes:write", http.MethodPost, "/v1/disputes/" + open() + "/withdraw", nil, ok},
		{"claims:write", http.MethodGet, "/v1/disputes", nil, denied},
		{"claims:write", http.MethodGet, "/v1/disputes/" + target, nil, denied},
		{"claims:write", http.MethodPost, "/v1/disputes", map[string]any{"account_id": acct.ID, "reason": "other"}, denied},
		{"accounts:write", http.MethodPost, "/v1/disputes/" + target + "/withdraw", nil, denied},
		{"disputes:read", http.MethodGet, "/v1/claims", nil, denied},
	} {
		t.Run(fmt.Sprintf("%s %s %s", tc.scope, tc.method, tc.path), func(t *testing.T) {
			k := e.key(t, ten.ID, eventstore.NewKey{Name: tc.scope, Scopes: []string{tc.scope}})
			r := e.send(t, req{Method: tc.method, Path: tc.path, Auth: k.Secret, Body: tc.body})
			if tc.want == denied {
				p := requireProblem(t, r, denied, "forbidden", "missing_scope")
				resource, _, _ := strings.Cut(strings.TrimPrefix(tc.path, "/v1/"), "/")
				require.Contains(t, p.Detail, resource+":")
				return
			}
			require.Equal(t, tc.want, r.Status, "%s", r.Body)
		})
	}
	// Refused writes changed nothing: target is still open.
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND type <> 'dispute.opened'`, target))
}
