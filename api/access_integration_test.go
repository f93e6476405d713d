package api_test

// Tenant isolation, scopes, read-only keys and modes.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// requireSameAsMissing requires that asking (method, pattern) for foreignID
// answers exactly like asking for a well-formed id nothing has: same status,
// same headers but X-Request-Id and Date, same body but request_id (and the
// id itself, which the detail quotes).
func (e *env) requireSameAsMissing(t *testing.T, secret, method, pattern, foreignID string) {
	t.Helper()
	missing := e.freshID(foreignID)
	require.Len(t, missing, len(foreignID))
	ask := func(id string) (int, http.Header, string) {
		r := e.send(t, req{Method: method, Path: strings.Replace(pattern, "{id}", id, 1), Auth: secret})
		h := r.Header.Clone()
		h.Del("X-Request-Id")
		h.Del("Date")
		body := strings.ReplaceAll(string(r.Body), `"request_id":"`+r.Header.Get("X-Request-Id")+`"`, `"request_id":"…"`)
		return r.Status, h, strings.ReplaceAll(body, id, "{id}")
	}
	ms, mh, mb := ask(missing)
	require.Equal(t, http.StatusNotFound, ms, "%s %s for a missing id: %s", method, pattern, mb)
	fs, fh, fb := ask(foreignID)
	what := fmt.Sprintf("%s %s with another tenant's or mode's id %s", method, pattern, foreignID)
	require.Equal(t, ms, fs, "%s: status", what)
	require.Equal(t, mh, fh, "%s: headers", what)
	require.Equal(t, mb, fb, "%s: body", what)
}

// TestCrossTenantEveryResourceRoute: a key of tenant A asking for tenant B's
// existing resource gets exactly the answer to a missing id, on every route
// that takes an {id}; the table below must cover every such route the router
// has.
func TestCrossTenantEveryResourceRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	a, b := e.tenant(t, "Tenant A"), e.tenant(t, "Tenant B")
	aKey := e.key(t, a.ID, eventstore.NewKey{Name: "a"})
	bKey := e.key(t, b.ID, eventstore.NewKey{Name: "b"})
	bTest := e.key(t, b.ID, eventstore.NewKey{Name: "b test", Mode: domain.ModeTest})
	victim := e.key(t, b.ID, eventstore.NewKey{Name: "victim", Scopes: []string{"events:read"}})
	victimTest := e.key(t, b.ID, eventstore.NewKey{Name: "victim test", Mode: domain.ModeTest})
	// A has resources of its own, so "not found" is not just "A has nothing".
	e.key(t, a.ID, eventstore.NewKey{Name: "a other"})

	// B's resources, each with a key of B that sees it.
	type foreign struct{ id, owner string }
	keysOfB := []foreign{{victim.ID, bKey.Secret}, {bKey.ID, bKey.Secret}, {victimTest.ID, bTest.Secret}}
	streamsOfB := []foreign{{victim.ID, bKey.Secret}, {b.ID, bKey.Secret}, {victimTest.ID, bTest.Secret}}
	debtorOfB := e.createDebtor(t, bKey.Secret, map[string]any{"first_name": "Bea", "last_name": "B"})
	debtorOfBTest := e.createDebtor(t, bTest.Secret, map[string]any{"first_name": "Tess", "last_name": "B"})
	debtorsOfB := []foreign{{debtorOfB.ID, bKey.Secret}, {debtorOfBTest.ID, bTest.Secret}}
	accountsOfB, paymentsOfB := []foreign{}, []foreign{}
	var paid int64
	for _, owner := range []string{bKey.Secret, bTest.Secret} {
		acct := e.createAccount(t, owner, map[string]any{"currency": "EUR"})
		e.postEntries(t, owner, map[string]any{"account_id": acct.ID, "reference": "INV-1", "kind": "invoice", "amount": "100.00", "due_date": "2026-01-01"})
		pay := e.createPayment(t, owner, acct.ID, map[string]any{"amount": "10.00", "status": "pending"})
		accountsOfB = append(accountsOfB, foreign{acct.ID, owner})
		paymentsOfB = append(paymentsOfB, foreign{pay.ID, owner})
		paid = pay.Position
	}
	// A statement of B's: a debtor of B on an account with an invoice.
	stmtAcct := e.createAccount(t, bKey.Secret, map[string]any{"currency": "EUR", "debtor_ids": []string{debtorOfB.ID}},
		fmt.Sprintf("min_position=%d", debtorOfB.Position))
	stmtPosted := e.postEntries(t, bKey.Secret, map[string]any{"account_id": stmtAcct.ID, "reference": "INV-S", "kind": "invoice", "amount": "1.00", "due_date": "2026-01-01"})
	stmtID := domain.StatementID(debtorOfB.ID, time.Now().UTC().Format("2006-01"), "EUR")
	r := e.get(t, bKey.Secret, fmt.Sprintf("/v1/statements/%s?min_position=%d", stmtID, *stmtPosted.Position))
	if r.Status == http.StatusNotFound { // the month turned between the post and now
		stmtID = domain.StatementID(debtorOfB.ID, time.Now().UTC().AddDate(0, -1, 0).Format("2006-01"), "EUR")
		r = e.get(t, bKey.Secret, "/v1/statements/"+stmtID)
	}
	require.Equal(t, http.StatusOK, r.Status, "B's statement: %s", r.Body)
	statementsOfB := []foreign{{stmtID, bKey.Secret}}
	// Events of B's, live and test: each account's account.opened.
	eventsOfB := []foreign{}
	for _, f := range accountsOfB {
		var id string
		require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT id FROM events WHERE stream_id = $1 AND stream_version = 1`, f.id).Scan(&id))
		eventsOfB = append(eventsOfB, foreign{id, f.owner})
	}
	// Claims of B's, live and test (on implicit accounts).
	claimsOfB := []foreign{}
	for i, owner := range []string{bKey.Secret, bTest.Secret} {
		r := e.post(t, owner, "/v1/claims", map[string]any{"reference": fmt.Sprintf("CLM-B-%d", i), "amount": "10.00", "currency": "EUR", "original_due_date": "2026-01-01"})
		require.Equal(t, http.StatusCreated, r.Status, "B's claim: %s", r.Body)
		claimsOfB = append(claimsOfB, foreign{r.object(t)["id"].(string), owner})
	}
	// Disputes of B's, live and test: one on each of B's claims.
	disputesOfB := []foreign{}
	var disputed int64
	for _, c := range claimsOfB {
		r := e.post(t, c.owner, "/v1/disputes", map[string]any{"claim_id": c.id, "reason": "other"})
		require.Equal(t, http.StatusCreated, r.Status, "B's dispute: %s", r.Body)
		disputesOfB = append(disputesOfB, foreign{r.object(t)["id"].(string), c.owner})
		disputed = max(disputed, r.position(t))
	}
	// Campaigns of B's, live and test; the live one enrolls B's live claim.
	campaignsOfB := []foreign{}
	var campaigned int64
	for _, owner := range []string{bKey.Secret, bTest.Secret} {
		r := e.post(t, owner, "/v1/campaigns", map[string]any{"name": "B's", "type": "collection", "steps": []map[string]any{{"day_offset": 3650, "action": "email"}}})
		require.Equal(t, http.StatusCreated, r.Status, "B's campaign: %s", r.Body)
		campaignsOfB = append(campaignsOfB, foreign{r.object(t)["id"].(string), owner})
		campaigned = max(campaigned, r.position(t))
	}
	r = e.post(t, bKey.Secret, "/v1/campaigns/"+campaignsOfB[0].id+"/enrollments", map[string]any{"claim_ids": []string{claimsOfB[0].id}})
	// Webhook endpoints of B's, live and test, each with a delivery (webhooks_integration_test.go).
	hooksOfB, hookDeliveriesOfB := webhooksOfB[foreign](t, e, bKey.Secret, bTest.Secret)
	require.Equal(t, http.StatusCreated, r.Status, "B's enrollment: %s", r.Body)
	table := map[route][]foreign{
		// Claims, and a debtor's accounts and claims.
		{http.MethodGet, "/v1/claims/{id}"}:           claimsOfB,
		{http.MethodPatch, "/v1/claims/{id}"}:         claimsOfB,
		{http.MethodPost, "/v1/claims/{id}/resolve"}:  claimsOfB,
		{http.MethodPost, "/v1/claims/{id}/credit"}:   claimsOfB,
		{http.MethodPost, "/v1/claims/{id}/debit"}:    claimsOfB,
		{http.MethodPost, "/v1/claims/{id}/pause"}:    claimsOfB,
		{http.MethodPost, "/v1/claims/{id}/resume"}:   claimsOfB,
		{http.MethodPost, "/v1/claims/{id}/stop"}:     claimsOfB,
		{http.MethodPost, "/v1/claims/{id}/recreate"}: claimsOfB,
		{http.MethodGet, "/v1/debtors/{id}/claims"}:   debtorsOfB,

		// Promises to pay, and disputes (on B's claims).
		{http.MethodGet, "/v1/claims/{id}/promises"}:    claimsOfB,
		{http.MethodPost, "/v1/claims/{id}/promises"}:   claimsOfB,
		{http.MethodGet, "/v1/disputes/{id}"}:           disputesOfB,
		{http.MethodPost, "/v1/disputes/{id}/resolve"}:  disputesOfB,
		{http.MethodPost, "/v1/disputes/{id}/withdraw"}: disputesOfB,

		{http.MethodGet, "/v1/accounts/{id}"}:             accountsOfB,
		{http.MethodGet, "/v1/accounts/{id}/balance"}:     accountsOfB,
		{http.MethodGet, "/v1/accounts/{id}/history"}:     accountsOfB,
		{http.MethodGet, "/v1/events/{id}"}:               eventsOfB,
		{http.MethodPost, "/v1/accounts/{id}/payments"}:   accountsOfB,
		{http.MethodGet, "/v1/payments/{id}"}:             paymentsOfB,
		{http.MethodPost, "/v1/payments/{id}/complete"}:   paymentsOfB,
		{http.MethodPost, "/v1/payments/{id}/fail"}:       paymentsOfB,
		{http.MethodPost, "/v1/payments/{id}/refund"}:     paymentsOfB,
		{http.MethodPost, "/v1/payments/{id}/chargeback"}: paymentsOfB,
		{http.MethodGet, "/v1/api-keys/{id}"}:             keysOfB,
		{http.MethodDelete, "/v1/api-keys/{id}"}:          keysOfB,
		{http.MethodGet, "/v1/streams/{id}"}:              streamsOfB,
		{http.MethodGet, "/v1/debtors/{id}"}:              debtorsOfB,
		{http.MethodPatch, "/v1/debtors/{id}"}:            debtorsOfB,

		// The account's attributes (the second parameter stays a literal:
		// the account is what is missing).
		{http.MethodPatch, "/v1/accounts/{id}"}:                        accountsOfB,
		{http.MethodGet, "/v1/accounts/{id}/debtors"}:                  accountsOfB,
		{http.MethodPost, "/v1/accounts/{id}/debtors"}:                 accountsOfB,
		{http.MethodDelete, "/v1/accounts/{id}/debtors/{debtor_id}"}:   accountsOfB,
		{http.MethodGet, "/v1/accounts/{id}/products"}:                 accountsOfB,
		{http.MethodPost, "/v1/accounts/{id}/products"}:                accountsOfB,
		{http.MethodPatch, "/v1/accounts/{id}/products/{reference}"}:   accountsOfB,
		{http.MethodDelete, "/v1/accounts/{id}/products/{reference}"}:  accountsOfB,
		{http.MethodGet, "/v1/accounts/{id}/scores"}:                   accountsOfB,
		{http.MethodPost, "/v1/accounts/{id}/scores"}:                  accountsOfB,
		{http.MethodPatch, "/v1/accounts/{id}/scores/{type}"}:          accountsOfB,
		{http.MethodDelete, "/v1/accounts/{id}/scores/{type}"}:         accountsOfB,
		{http.MethodGet, "/v1/accounts/{id}/mandates"}:                 accountsOfB,
		{http.MethodPost, "/v1/accounts/{id}/mandates"}:                accountsOfB,
		{http.MethodPatch, "/v1/accounts/{id}/mandates/{mandate_id}"}:  accountsOfB,
		{http.MethodDelete, "/v1/accounts/{id}/mandates/{mandate_id}"}: accountsOfB,

		// Ledger entries and payment lists; {ref} is INV-1, which B's accounts have.
		{http.MethodGet, "/v1/accounts/{id}/payments"}:                    accountsOfB,
		{http.MethodGet, "/v1/accounts/{id}/ledger-entries"}:              accountsOfB,
		{http.MethodGet, "/v1/accounts/{id}/ledger-entries/{ref}"}:        accountsOfB,
		{http.MethodPost, "/v1/accounts/{id}/ledger-entries/{ref}/amend"}: accountsOfB,

		// Statements of B's debtor (a debtor of B's live account).
		{http.MethodGet, "/v1/statements/{id}"}: statementsOfB,

		// Campaigns (the enrollment id stays a literal: the campaign is what
		// is missing).
		{http.MethodGet, "/v1/campaigns/{id}"}:                                campaignsOfB,
		{http.MethodPost, "/v1/campaigns/{id}/pause"}:                         campaignsOfB,
		{http.MethodPost, "/v1/campaigns/{id}/resume"}:                        campaignsOfB,
		{http.MethodPost, "/v1/campaigns/{id}/complete"}:                      campaignsOfB,
		{http.MethodGet, "/v1/campaigns/{id}/enrollments"}:                    campaignsOfB,
		{http.MethodPost, "/v1/campaigns/{id}/enrollments"}:                   campaignsOfB,
		{http.MethodGet, "/v1/campaigns/{id}/enrollments/{enrollment_id}"}:    campaignsOfB,
		{http.MethodDelete, "/v1/campaigns/{id}/enrollments/{enrollment_id}"}: campaignsOfB,

		// Webhook endpoints and deliveries.
		{http.MethodGet, "/v1/webhook-endpoints/{id}"}:                hooksOfB,
		{http.MethodPatch, "/v1/webhook-endpoints/{id}"}:              hooksOfB,
		{http.MethodDelete, "/v1/webhook-endpoints/{id}"}:             hooksOfB,
		{http.MethodPost, "/v1/webhook-endpoints/{id}/rotate-secret"}: hooksOfB,
		{http.MethodPost, "/v1/webhook-endpoints/{id}/test"}:          hooksOfB,
		{http.MethodPost, "/v1/webhook-endpoints/{id}/replay"}:        hooksOfB,
		{http.MethodGet, "/v1/webhook-endpoints/{id}/deliveries"}:     hooksOfB,
		{http.MethodPost, "/v1/webhook-deliveries/{id}/redeliver"}:    hookDeliveriesOfB,
	}
	for _, r := range e.routes(t) {
		if strings.Contains(r.Pattern, "{id}") {
			require.Contains(t, table, r, "route %s %s takes an {id} but has no cross-tenant case here: add one", r.Method, r.Pattern)
		}
	}

	// B sees each of them (the stream heads are projected: read B's writes).
	wait := fmt.Sprintf("?min_position=%d", victimTest.Position)
	for _, f := range keysOfB {
		require.Equal(t, http.StatusOK, e.get(t, f.owner, "/v1/api-keys/"+f.id).Status)
	}
	for _, f := range streamsOfB {
		r := e.get(t, f.owner, "/v1/streams/"+f.id+wait)
		require.Equal(t, http.StatusOK, r.Status, "B's stream %s: %s", f.id, r.Body)
	}
	for _, f := range debtorsOfB {
		r := e.get(t, f.owner, fmt.Sprintf("/v1/debtors/%s?min_position=%d", f.id, debtorOfBTest.Position))
		require.Equal(t, http.StatusOK, r.Status, "B's debtor %s: %s", f.id, r.Body)
	}

	for _, f := range accountsOfB {
		r := e.get(t, f.owner, fmt.Sprintf("/v1/accounts/%s?min_position=%d", f.id, paid))
		require.Equal(t, http.StatusOK, r.Status, "B's account %s: %s", f.id, r.Body)
		require.Equal(t, http.StatusOK, e.get(t, f.owner, "/v1/accounts/"+f.id+"/balance").Status)
		require.Equal(t, http.StatusOK, e.get(t, f.owner, "/v1/accounts/"+f.id+"/history").Status)
	}
	for _, f := range eventsOfB {
		require.Equal(t, http.StatusOK, e.get(t, f.owner, "/v1/events/"+f.id).Status, "B's event %s", f.id)
	}
	for _, f := range paymentsOfB {
		r := e.get(t, f.owner, fmt.Sprintf("/v1/payments/%s?min_position=%d", f.id, paid))
		require.Equal(t, http.StatusOK, r.Status, "B's payment %s: %s", f.id, r.Body)
	}
	for _, f := range disputesOfB {
		r := e.get(t, f.owner, fmt.Sprintf("/v1/disputes/%s?min_position=%d", f.id, disputed))
		require.Equal(t, http.StatusOK, r.Status, "B's dispute %s: %s", f.id, r.Body)
	}
	for _, f := range campaignsOfB {
		r := e.get(t, f.owner, fmt.Sprintf("/v1/campaigns/%s?min_position=%d", f.id, campaigned))
		require.Equal(t, http.StatusOK, r.Status, "B's campaign %s: %s", f.id, r.Body)
	}

	for rt, ids := range table {
		for _, f := range ids {
			t.Run(rt.Method+" "+rt.Pattern+" "+f.id, func(t *testing.T) {
				e.requireSameAsMissing(t, aKey.Secret, rt.Method, strings.ReplaceAll(rt.Pattern, "{ref}", "INV-1"), f.id)
			})
		}
	}
	// A's DELETEs changed nothing.
	for _, k := range []apiKey{bKey, bTest, victim, victimTest} {
		e.requireActive(t, k)
	}
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE type = 'api_key.revoked'`))
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE type = 'debtor.updated'`))
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE type = 'account.updated'`))
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM events WHERE type LIKE 'claim.%'`), "only B's claim.created")
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM events WHERE type LIKE 'payment.%'`))
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM events WHERE type LIKE 'dispute.%'`), "only B's dispute.opened")
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM events WHERE type LIKE 'campaign.%'`), "only B's campaign.created")
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE type LIKE 'enrollment.%'`), "only B's enrollment.created")
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM events WHERE type LIKE 'webhook_endpoint.%'`), "only B's webhook_endpoint.created")
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM webhook_deliveries`), "only B's test pings")
}

// TestScopes: each route needs its scope, a write scope implies read, and an
// empty scope list is full access.
func TestScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Scopes")
	target := e.key(t, ten.ID, eventstore.NewKey{Name: "target"})
	keys := map[string]apiKey{}
	for _, sc := range []string{"keys:read", "keys:write", "events:read", "events:write", "accounts:write", ""} {
		var scopes []string
		if sc != "" {
			scopes = []string{sc}
		}
		keys[sc] = e.key(t, ten.ID, eventstore.NewKey{Name: "scope " + sc, Scopes: scopes})
	}
	stream := fmt.Sprintf("/v1/streams/%s?min_position=%d", target.ID, target.Position)
	const ok, denied = http.StatusOK, http.StatusForbidden
	cases := []struct {
		scope        string
		method, path string
		want         int
	}{
		{"keys:read", http.MethodGet, "/v1/api-keys", ok},
		{"keys:read", http.MethodGet, "/v1/api-keys/" + target.ID, ok},
		{"keys:read", http.MethodPost, "/v1/api-keys", denied},
		{"keys:read", http.MethodDelete, "/v1/api-keys/" + target.ID, denied},
		{"keys:read", http.MethodGet, stream, denied},
		{"keys:write", http.MethodGet, "/v1/api-keys", ok}, // write implies read
		{"keys:write", http.MethodGet, "/v1/api-keys/" + target.ID, ok},
		{"keys:write", http.MethodGet, stream, denied},
		{"events:read", http.MethodGet, stream, ok},
		{"events:read", http.MethodGet, "/v1/api-keys", denied},
		{"events:read", http.MethodGet, "/v1/api-keys/" + target.ID, denied},
		{"events:read", http.MethodPost, "/v1/api-keys", denied},
		{"events:read", http.MethodDelete, "/v1/api-keys/" + target.ID, denied},
		{"events:write", http.MethodGet, stream, ok}, // write implies read
		{"events:write", http.MethodGet, "/v1/api-keys", denied},
		{"events:write", http.MethodPost, "/v1/api-keys", denied},
		{"accounts:write", http.MethodGet, stream, denied},
		{"accounts:write", http.MethodGet, "/v1/api-keys", denied},
		{"accounts:write", http.MethodDelete, "/v1/api-keys/" + target.ID, denied},
		{"", http.MethodGet, "/v1/api-keys", ok}, // no scopes: full access
		{"", http.MethodGet, stream, ok},
	}
	for _, sc := range []string{"keys:read", "keys:write", "events:read", "events:write", "accounts:write", ""} {
		cases = append(cases, struct {
			scope        string
			method, path string
			want         int
		}{sc, http.MethodGet, "/v1/organization", ok}) // any valid key
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %s %s", c.scope, c.method, c.path), func(t *testing.T) {
			var body any
			if c.method == http.MethodPost {
				body = map[string]any{"name": "nope"}
			}
			r := e.send(t, req{Method: c.method, Path: c.path, Auth: keys[c.scope].Secret, Body: body})
			if c.want == denied {
				p := requireProblem(t, r, http.StatusForbidden, "forbidden", "missing_scope")
				resource, _, _ := strings.Cut(strings.TrimPrefix(c.path, "/v1/"), "/")
				require.Contains(t, p.Detail, map[string]string{"api-keys": "keys", "streams": "events"}[resource])
				return
			}
			require.Equal(t, c.want, r.Status, "body: %s", r.Body)
		})
	}
	require.Zero(t, e.count(t, `SELECT count(*) FROM api_keys WHERE name = 'nope'`))
	e.requireActive(t, target)
}

// TestReadOnlyKeys: a read_only key refuses every write route the router has
// (403 read_only_key) whatever its scopes, and still reads.
func TestReadOnlyKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Read-only")
	target := e.key(t, ten.ID, eventstore.NewKey{Name: "target"})
	var all []string
	for _, res := range domain.Resources {
		all = append(all, res+":write")
	}
	roKeys := map[string]apiKey{
		"no scopes":         e.key(t, ten.ID, eventstore.NewKey{Name: "ro", ReadOnly: true}),
		"every write scope": e.key(t, ten.ID, eventstore.NewKey{Name: "ro scoped", ReadOnly: true, Scopes: all}),
	}
	var writes []route
	for _, r := range e.routes(t) {
		if isWrite(r.Method) && strings.HasPrefix(r.Pattern, "/v1/") && r.Pattern != "/v1/oauth2/token" {
			writes = append(writes, r)
		}
	}
	require.Contains(t, writes, route{http.MethodPost, "/v1/api-keys"})
	require.Contains(t, writes, route{http.MethodDelete, "/v1/api-keys/{id}"})
	for name, k := range roKeys {
		for _, w := range writes {
			t.Run(name+" "+w.Method+" "+w.Pattern, func(t *testing.T) {
				r := e.send(t, req{Method: w.Method, Path: strings.ReplaceAll(w.Pattern, "{id}", target.ID), Auth: k.Secret,
					Body: map[string]any{"name": "ro made this"}})
				requireProblem(t, r, http.StatusForbidden, "forbidden", "read_only_key")
			})
		}
		t.Run(name+" reads", func(t *testing.T) {
			require.Equal(t, http.StatusOK, e.get(t, k.Secret, "/v1/api-keys/"+target.ID).Status)
			require.Equal(t, http.StatusOK, e.get(t, k.Secret, fmt.Sprintf("/v1/streams/%s?min_position=%d", target.ID, target.Position)).Status)
		})
	}
	require.Zero(t, e.count(t, `SELECT count(*) FROM api_keys WHERE name = 'ro made this'`))
	e.requireActive(t, target)
}

// TestNoScopeEscalation: a scoped key can only create keys within its own
// scopes; created keys keep the creator's read-only flag.
func TestNoScopeEscalation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Escalation")
	scoped := e.key(t, ten.ID, eventstore.NewKey{Name: "scoped", Scopes: []string{"keys:write", "events:read"}})
	full := e.key(t, ten.ID, eventstore.NewKey{Name: "full"})

	refused := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"full access (scopes omitted)", map[string]any{"name": "x"}, "scopes"},
		{"full access (scopes empty)", map[string]any{"name": "x", "scopes": []string{}}, "scopes"},
		{"scope not held", map[string]any{"name": "x", "scopes": []string{"events:write"}}, "scopes[0]"},
		{"one scope of two not held", map[string]any{"name": "x", "scopes": []string{"keys:read", "accounts:read"}}, "scopes[1]"},
		{"unknown resource", map[string]any{"name": "x", "scopes": []string{"bogus:read"}}, "scopes[0]"},
		{"unknown action", map[string]any{"name": "x", "scopes": []string{"keys:admin"}}, "scopes[0]"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			p := requireInvalid(t, e.post(t, scoped.Secret, "/v1/api-keys", c.body), c.field)
			require.True(t, strings.HasPrefix(p.Errors[0].Field, "scopes"), "errors: %+v", p.Errors)
		})
	}
	require.Zero(t, e.count(t, `SELECT count(*) FROM api_keys WHERE name = 'x'`))

	t.Run("within its scopes", func(t *testing.T) {
		for _, scopes := range [][]string{{"keys:read"}, {"keys:write"}, {"events:read", "keys:write"}} {
			k := e.createKey(t, scoped.Secret, map[string]any{"name": "within", "scopes": scopes})
			require.Equal(t, scopes, k.Scopes)
			org := e.get(t, k.Secret, "/v1/organization").object(t)
			require.ElementsMatch(t, scopes, org["key"].(map[string]any)["scopes"])
		}
	})
	t.Run("a full-access key can create any key", func(t *testing.T) {
		k := e.createKey(t, full.Secret, map[string]any{"name": "any", "scopes": []string{"payments:write"}, "read_only": true})
		require.Equal(t, []string{"payments:write"}, k.Scopes)
		require.True(t, k.ReadOnly)
		k = e.createKey(t, full.Secret, map[string]any{"name": "any"})
		require.Empty(t, k.Scopes)
	})
}

// TestScopesApplyBeforeIdempotencyReplay: Idempotency-Key records are shared
// by the keys of a tenant and mode, so a replay must not let a key without
// the route's scope (or a read-only key) see a write's stored response, and
// a refused request must not poison the key for an allowed one.
func TestScopesApplyBeforeIdempotencyReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Replay scopes")
	full := e.key(t, ten.ID, eventstore.NewKey{Name: "full"})
	reader := e.key(t, ten.ID, eventstore.NewKey{Name: "reader", Scopes: []string{"events:read"}})
	ro := e.key(t, ten.ID, eventstore.NewKey{Name: "ro", ReadOnly: true})
	body := map[string]any{"name": "made by full"}

	created := e.post(t, full.Secret, "/v1/api-keys", body, "Idempotency-Key", "shared-1")
	require.Equal(t, http.StatusCreated, created.Status)

	r := e.post(t, reader.Secret, "/v1/api-keys", body, "Idempotency-Key", "shared-1")
	requireProblem(t, r, http.StatusForbidden, "forbidden", "missing_scope")
	require.Empty(t, r.Header.Get("Idempotent-Replayed"))
	r = e.post(t, ro.Secret, "/v1/api-keys", body, "Idempotency-Key", "shared-1")
	requireProblem(t, r, http.StatusForbidden, "forbidden", "read_only_key")

	// A refusal is not stored for the tenant's other keys.
	r = e.post(t, reader.Secret, "/v1/api-keys", map[string]any{"name": "second"}, "Idempotency-Key", "shared-2")
	requireProblem(t, r, http.StatusForbidden, "forbidden", "missing_scope")
	r = e.post(t, full.Secret, "/v1/api-keys", map[string]any{"name": "second"}, "Idempotency-Key", "shared-2")
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	require.Empty(t, r.Header.Get("Idempotent-Replayed"))
}

// TestModes: test keys see only sandbox data and live keys only live data;
// a test key creates test keys.
func TestModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Modes")
	live := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	require.True(t, strings.HasPrefix(live.Secret, "sk_live_"))
	require.True(t, strings.HasPrefix(test.Secret, "sk_test_"))

	liveMade := e.createKey(t, live.Secret, map[string]any{"name": "made live"})
	testMade := e.createKey(t, test.Secret, map[string]any{"name": "made test"})
	require.Equal(t, domain.ModeLive, liveMade.Mode)
	require.True(t, strings.HasPrefix(liveMade.Secret, "sk_live_") && strings.HasPrefix(liveMade.Prefix, "sk_live_"))
	require.Equal(t, domain.ModeTest, testMade.Mode)
	require.True(t, strings.HasPrefix(testMade.Secret, "sk_test_") && strings.HasPrefix(testMade.Prefix, "sk_test_"))
	org := e.get(t, testMade.Secret, "/v1/organization").object(t)
	require.Equal(t, "test", org["mode"])
	org = e.get(t, liveMade.Secret, "/v1/organization").object(t)
	require.Equal(t, "live", org["mode"])

	listed := func(secret string) []string {
		var l struct {
			Data []domain.APIKey `json:"data"`
		}
		e.get(t, secret, "/v1/api-keys").decode(t, &l)
		var ids []string
		for _, k := range l.Data {
			ids = append(ids, k.ID)
		}
		return ids
	}
	require.ElementsMatch(t, []string{live.ID, liveMade.ID}, listed(live.Secret))
	require.ElementsMatch(t, []string{test.ID, testMade.ID}, listed(test.Secret))

	wait := fmt.Sprintf("?min_position=%d", max(liveMade.Position, testMade.Position))
	sides := []struct {
		name        string
		own, other  apiKey // a key of the mode, and one of the other mode
		ownResource []string
		otherRes    []string
	}{
		{"test key", test, live, []string{testMade.ID, test.ID}, []string{liveMade.ID, live.ID}},
		{"live key", live, test, []string{liveMade.ID, live.ID}, []string{testMade.ID, test.ID}},
	}
	for _, s := range sides {
		t.Run(s.name, func(t *testing.T) {
			for _, id := range s.ownResource {
				require.Equal(t, http.StatusOK, e.get(t, s.own.Secret, "/v1/api-keys/"+id).Status)
				r := e.get(t, s.own.Secret, "/v1/streams/"+id+wait)
				require.Equal(t, http.StatusOK, r.Status, "own stream: %s", r.Body)
			}
			for _, id := range s.otherRes {
				e.requireSameAsMissing(t, s.own.Secret, http.MethodGet, "/v1/api-keys/{id}", id)
				e.requireSameAsMissing(t, s.own.Secret, http.MethodDelete, "/v1/api-keys/{id}", id)
				e.requireSameAsMissing(t, s.own.Secret, http.MethodGet, "/v1/streams/{id}"+wait, id)
			}
		})
	}
	// The tenant's own stream is live data.
	require.Equal(t, http.StatusOK, e.get(t, live.Secret, "/v1/streams/"+ten.ID+wait).Status)
	e.requireSameAsMissing(t, test.Secret, http.MethodGet, "/v1/streams/{id}"+wait, ten.ID)
	for _, k := range []apiKey{live, test, liveMade, testMade} {
		e.requireActive(t, k)
	}
}
