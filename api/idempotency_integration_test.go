package api_test

// Idempotency-Key.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// inFlightAnswers counts the 409 idempotency_in_progress answers seen.
var inFlightAnswers atomic.Int64

// sendUntilSettled sends r until the answer is not 409
// idempotency_in_progress (a concurrent duplicate still in flight).
func (e *env) sendUntilSettled(r req) (*response, error) {
	deadline := time.Now().Add(20 * time.Second)
	for try := 0; ; try++ {
		if try > 0 {
			inFlightAnswers.Add(1)
		}
		res, err := e.trySend(r)
		if err != nil {
			return nil, err
		}
		if res.Status != http.StatusConflict {
			return res, nil
		}
		var p problem
		if err := json.Unmarshal(res.Body, &p); err != nil || p.Reason != "idempotency_in_progress" {
			return nil, fmt.Errorf("409 that is not idempotency_in_progress: %s", res.Body)
		}
		if time.Now().After(deadline) {
			return nil, errors.New("still in flight after 20 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestIdempotencyThousandRequests: 1,000 distinct creations, each sent three
// times (every third one three times at once), create exactly 1,000 keys;
// the first answer carries the secret, every replay is the same response
// without it.
func TestIdempotencyThousandRequests(t *testing.T) {
	t.Parallel()
	const n, sends, parallel = 1000, 3, 32
	e := newEnv(t, envOptions{maxConns: 24})
	ten := e.tenant(t, "Idempotency")
	caller := e.key(t, ten.ID, eventstore.NewKey{Name: "caller"})
	other := e.tenant(t, "Bystander") // its counts must not move
	e.key(t, other.ID, eventstore.NewKey{Name: "bystander"})

	responses := make([][]*response, n)
	for i := range responses {
		responses[i] = make([]*response, sends)
	}
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var failed sync.Once
	fail := func(err error) { failed.Do(func() { t.Errorf("request: %v", err) }) }
	request := func(i int) req {
		return req{Method: http.MethodPost, Path: "/v1/api-keys", Auth: caller.Secret,
			Body:   fmt.Sprintf(`{"name":"idem-%04d"}`, i),
			Header: []string{"Idempotency-Key", fmt.Sprintf("idem-%s-%04d", ten.ID, i)}}
	}
	for i := range n {
		if i%3 == 0 {
			// Three at once, released together.
			start := make(chan struct{})
			for s := range sends {
				slots <- struct{}{}
				wg.Go(func() {
					defer func() { <-slots }()
					<-start
					r, err := e.sendUntilSettled(request(i))
					if err != nil {
						fail(err)
					}
					responses[i][s] = r
				})
			}
			close(start)
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			for s := range sends {
				r, err := e.sendUntilSettled(request(i))
				if err != nil {
					fail(err)
					return
				}
				responses[i][s] = r
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	t.Logf("%d answers 409 idempotency_in_progress (retried)", inFlightAnswers.Load())

	var secrets []string
	for i, rs := range responses {
		var original *response
		var replays []*response
		for _, r := range rs {
			require.NotNil(t, r)
			require.Equal(t, http.StatusCreated, r.Status, "request %d: %s", i, r.Body)
			if r.Header.Get("Idempotent-Replayed") == "true" {
				replays = append(replays, r)
			} else {
				require.Nil(t, original, "request %d: two original responses", i)
				original = r
			}
		}
		require.NotNil(t, original, "request %d: no original response", i)
		require.Len(t, replays, sends-1)
		var first map[string]any
		require.NoError(t, json.Unmarshal(original.Body, &first))
		secret, _ := first["secret"].(string)
		require.True(t, strings.HasPrefix(secret, "sk_live_"), "request %d: first response has no secret: %s", i, original.Body)
		require.Equal(t, fmt.Sprintf("idem-%04d", i), first["name"])
		secrets = append(secrets, secret)
		want := maps.Clone(first)
		delete(want, "secret")
		want["secret_withheld"] = true
		for _, r := range replays {
			require.Equal(t, replays[0].Body, r.Body, "request %d: replays differ", i)
			var got map[string]any
			require.NoError(t, json.Unmarshal(r.Body, &got))
			require.Equal(t, want, got, "request %d: replay is not the original without its secret", i)
			for _, h := range []string{"Content-Type", "Location", "Arrears-Position"} {
				require.Equal(t, original.Header.Get(h), r.Header.Get(h), "request %d: replayed %s", i, h)
			}
		}
		require.Equal(t, "/v1/api-keys/"+first["id"].(string), original.Header.Get("Location"))
	}

	require.Equal(t, n, e.count(t, `SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND name LIKE 'idem-%'`, ten.ID))
	require.Equal(t, n+1, e.count(t, `SELECT count(*) FROM api_keys WHERE tenant_id = $1`, ten.ID))
	require.Equal(t, n+1, e.count(t, `SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'api_key.created'`, ten.ID))
	require.Equal(t, n, e.count(t, `SELECT count(DISTINCT data->>'name') FROM events WHERE tenant_id = $1 AND type = 'api_key.created' AND data->>'name' LIKE 'idem-%'`, ten.ID))
	require.Equal(t, n, e.count(t, `SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1 AND state = 'complete' AND response_status = 201`, ten.ID))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM api_keys WHERE tenant_id = $1`, other.ID))
	e.requireNoSecrets(t, append(secrets, caller.Secret))
}

// idempotencyHash is the request hash api/idempotency.go stores.
func idempotencyHash(method, requestURI string, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", method, requestURI)
	h.Write(body)
	return h.Sum(nil)
}

func TestIdempotencySemantics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	ten := e.tenant(t, "Idempotency semantics")
	live := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	other := e.tenant(t, "Other")
	otherKey := e.key(t, other.ID, eventstore.NewKey{Name: "other"})
	keysNamed := func(name string) int {
		return e.count(t, `SELECT count(*) FROM api_keys WHERE name = $1`, name)
	}

	t.Run("same key, different request", func(t *testing.T) {
		require.Equal(t, http.StatusCreated, e.post(t, live.Secret, "/v1/api-keys", map[string]any{"name": "reuse a"}, "Idempotency-Key", "reuse").Status)
		p := requireInvalid(t, e.post(t, live.Secret, "/v1/api-keys", map[string]any{"name": "reuse b"}, "Idempotency-Key", "reuse"), "header:Idempotency-Key")
		require.Equal(t, "idempotency_key_reused", p.Reason)
		// Another method and path, same key.
		r := e.delete(t, live.Secret, "/v1/api-keys/"+live.ID, "Idempotency-Key", "reuse")
		require.Equal(t, "idempotency_key_reused", requireInvalid(t, r, "header:Idempotency-Key").Reason)
		// The same request still replays.
		r = e.post(t, live.Secret, "/v1/api-keys", map[string]any{"name": "reuse a"}, "Idempotency-Key", "reuse")
		require.Equal(t, http.StatusCreated, r.Status)
		require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))
		require.Equal(t, 1, keysNamed("reuse a"))
		require.Zero(t, keysNamed("reuse b"))
		e.requireActive(t, live)
	})

	t.Run("in flight, then taken over", func(t *testing.T) {
		body := []byte(`{"name":"in flight"}`)
		_, err := e.pool.Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, key, request_hash, method, path, state, locked_until, expires_at)
			VALUES ($1, $2, $3, 'POST', '/v1/api-keys', 'in_flight', now() + interval '1 minute', now() + interval '1 day')`,
			ten.ID, "live:flight", idempotencyHash(http.MethodPost, "/v1/api-keys", body))
		require.NoError(t, err)
		for range 2 {
			r := e.post(t, live.Secret, "/v1/api-keys", body, "Idempotency-Key", "flight")
			requireProblem(t, r, http.StatusConflict, "conflict", "idempotency_in_progress")
		}
		require.Zero(t, keysNamed("in flight"))
		// A different request with the key in flight is still a reuse.
		r := e.post(t, live.Secret, "/v1/api-keys", `{"name":"in flight 2"}`, "Idempotency-Key", "flight")
		require.Equal(t, "idempotency_key_reused", requireInvalid(t, r, "header:Idempotency-Key").Reason)

		// The holder crashed: once its lock lapses, the request runs.
		_, err = e.pool.Exec(ctx, `UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE tenant_id = $1 AND key = 'live:flight'`, ten.ID)
		require.NoError(t, err)
		r = e.post(t, live.Secret, "/v1/api-keys", body, "Idempotency-Key", "flight")
		require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
		require.Empty(t, r.Header.Get("Idempotent-Replayed"))
		require.Contains(t, r.object(t), "secret")
		r = e.post(t, live.Secret, "/v1/api-keys", body, "Idempotency-Key", "flight")
		require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))
		require.Equal(t, 1, keysNamed("in flight"))
	})

	t.Run("a lapsed lock of another request is not taken over", func(t *testing.T) {
		_, err := e.pool.Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, key, request_hash, method, path, state, locked_until, expires_at)
			VALUES ($1, $2, $3, 'POST', '/v1/api-keys', 'in_flight', now() - interval '1 minute', now() + interval '1 day')`,
			ten.ID, "live:lapsed", idempotencyHash(http.MethodPost, "/v1/api-keys", []byte(`{"name":"first"}`)))
		require.NoError(t, err)
		r := e.post(t, live.Secret, "/v1/api-keys", `{"name":"second"}`, "Idempotency-Key", "lapsed")
		require.Equal(t, "idempotency_key_reused", requireInvalid(t, r, "header:Idempotency-Key").Reason)
	})

	t.Run("modes and tenants are independent", func(t *testing.T) {
		body := map[string]any{"name": "independent"}
		var ids []string
		for _, k := range []apiKey{live, test, otherKey} {
			r := e.post(t, k.Secret, "/v1/api-keys", body, "Idempotency-Key", "independent")
			require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
			require.Empty(t, r.Header.Get("Idempotent-Replayed"))
			o := r.object(t)
			require.Contains(t, o, "secret")
			require.Equal(t, string(k.Mode), o["mode"])
			ids = append(ids, o["id"].(string))
		}
		require.Len(t, ids, 3)
		require.NotEqual(t, ids[0], ids[1])
		require.Equal(t, 3, keysNamed("independent"))
		// Each replays its own.
		for i, k := range []apiKey{live, test, otherKey} {
			r := e.post(t, k.Secret, "/v1/api-keys", body, "Idempotency-Key", "independent")
			require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))
			require.Equal(t, ids[i], r.object(t)["id"])
		}
	})

	t.Run("validation failures are stored and replayed", func(t *testing.T) {
		body := map[string]any{"name": "bad", "scopes": []string{"nope"}}
		first := e.post(t, live.Secret, "/v1/api-keys", body, "Idempotency-Key", "invalid-once")
		requireInvalid(t, first, "scopes[0]")
		again := e.post(t, live.Secret, "/v1/api-keys", body, "Idempotency-Key", "invalid-once")
		requireInvalid(t, again, "scopes[0]")
		require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
		require.Equal(t, first.Body, again.Body)
		require.Zero(t, keysNamed("bad"))
	})

	t.Run("DELETE replays", func(t *testing.T) {
		k := e.key(t, ten.ID, eventstore.NewKey{Name: "to revoke"})
		first := e.delete(t, live.Secret, "/v1/api-keys/"+k.ID, "Idempotency-Key", "revoke-1")
		require.Equal(t, http.StatusOK, first.Status, "body: %s", first.Body)
		again := e.delete(t, live.Secret, "/v1/api-keys/"+k.ID, "Idempotency-Key", "revoke-1")
		require.Equal(t, http.StatusOK, again.Status)
		require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
		require.Equal(t, first.Body, again.Body)
		require.Equal(t, first.Header.Get("Arrears-Position"), again.Header.Get("Arrears-Position"))
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'api_key.revoked'`, k.ID))
	})

	t.Run("invalid Idempotency-Key", func(t *testing.T) {
		for _, key := range []string{"has space", strings.Repeat("k", 256), "tab\tkey"} {
			r := e.post(t, live.Secret, "/v1/api-keys", map[string]any{"name": "bad key"}, "Idempotency-Key", key)
			requireInvalid(t, r, "header:Idempotency-Key")
		}
		require.Zero(t, keysNamed("bad key"))
		for _, n := range []int{1, 201, 255} { // the documented range, beyond request ids' 200
			r := e.post(t, live.Secret, "/v1/api-keys", map[string]any{"name": "long key"}, "Idempotency-Key", strings.Repeat("k", n))
			require.Equal(t, http.StatusCreated, r.Status, "%d-character key: %s", n, r.Body)
		}
	})

	t.Run("ignored on reads", func(t *testing.T) {
		for range 2 {
			r := e.send(t, req{Method: http.MethodGet, Path: "/v1/api-keys", Auth: live.Secret, Header: []string{"Idempotency-Key", "read"}})
			require.Equal(t, http.StatusOK, r.Status)
			require.Empty(t, r.Header.Get("Idempotent-Replayed"))
		}
		require.Zero(t, e.count(t, `SELECT count(*) FROM idempotency_keys WHERE key LIKE '%:read'`))
	})

	t.Run("no Idempotency-Key, no dedup", func(t *testing.T) {
		for range 2 {
			require.Equal(t, http.StatusCreated, e.post(t, live.Secret, "/v1/api-keys", map[string]any{"name": "twice"}).Status)
		}
		require.Equal(t, 2, keysNamed("twice"))
	})
}

// TestEveryWriteRouteHonoursIdempotencyKey: every write route the router has
// replays a request sent again with the same Idempotency-Key.
func TestEveryWriteRouteHonoursIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Every write")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "k"})
	target := e.key(t, ten.ID, eventstore.NewKey{Name: "target"})
	dbt := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Walk", "last_name": "Target"})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	e.postEntries(t, k.Secret, map[string]any{"account_id": acct.ID, "reference": "INV-1", "kind": "invoice", "amount": "1000.00", "due_date": "2026-01-01"})
	pay := map[string]payment{}
	for _, action := range []string{"complete", "fail", "refund", "chargeback"} {
		status := "pending"
		if action == "refund" || action == "chargeback" {
			status = "completed"
		}
		pay[action] = e.createPayment(t, k.Secret, acct.ID, map[string]any{"amount": "1.00", "status": status})
	}
	// The payment transitions find the payment in the ledger read model.
	r := e.get(t, k.Secret, fmt.Sprintf("/v1/payments/%s?min_position=%d", pay["chargeback"].ID, pay["chargeback"].Position))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	// Each resource's target and a body its writes take.
	type write struct{ id, body string }
	writes := map[string]write{
		"/v1/api-keys":                 {target.ID, `{"name":"walk"}`},
		"/v1/debtors":                  {dbt.ID, `{"first_name":"Walk","last_name":"Er"}`},
		"/v1/accounts":                 {acct.ID, `{"currency":"EUR","meta":{"walk":true}}`}, // POST creates, PATCH changes meta
		"/v1/accounts/{id}/payments":   {acct.ID, `{"amount":"1.00"}`},
		"/v1/ledger-entries/batch":     {"", fmt.Sprintf(`{"entries":[{"account_id":%q,"reference":"WALK","kind":"fee","amount":"1.00"}]}`, acct.ID)},
		"/v1/payments/{id}/complete":   {pay["complete"].ID, `{}`},
		"/v1/payments/{id}/fail":       {pay["fail"].ID, `{"reason":"walk"}`},
		"/v1/payments/{id}/refund":     {pay["refund"].ID, `{"reason":"walk"}`},
		"/v1/payments/{id}/chargeback": {pay["chargeback"].ID, ``},

		// {ref} is INV-1.
		"/v1/accounts/{id}/ledger-entries/{ref}/amend": {acct.ID, `{"amount":"999.00","reason":"walk"}`},
	}
	// The account attributes: each route with a second parameter names its
	// own item, so the order of the walk does not matter.
	dbt2 := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Walk", "last_name": "Second"})
	attrs := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "debtor_ids": []string{dbt.ID},
		"products": []map[string]any{{"reference": "P-PATCH"}, {"reference": "P-DEL"}},
		"scores":   []map[string]any{{"type": "S-PATCH", "value": "1"}, {"type": "S-DEL", "value": "1"}},
		"mandates": []map[string]any{{"id": "M-PATCH"}, {"id": "M-DEL"}}})
	for pattern, w := range map[string]write{
		"/v1/accounts/{id}/debtors":               {attrs.ID, fmt.Sprintf(`{"debtor_id":%q}`, dbt2.ID)},
		"/v1/accounts/{id}/debtors/{debtor_id}":   {attrs.ID, ``},
		"/v1/accounts/{id}/products":              {attrs.ID, `{"reference":"P-NEW"}`},
		"/v1/accounts/{id}/products/{reference}":  {attrs.ID, `{"name":"walk"}`},
		"/v1/accounts/{id}/scores":                {attrs.ID, `{"type":"S-NEW","value":"2"}`},
		"/v1/accounts/{id}/scores/{type}":         {attrs.ID, `{"value":"3"}`},
		"/v1/accounts/{id}/mandates":              {attrs.ID, `{"id":"M-NEW"}`},
		"/v1/accounts/{id}/mandates/{mandate_id}": {attrs.ID, `{"type":"walk"}`},
	} {
		writes[pattern] = w
	}
	// Claims: each action on a claim in a status that allows it; POST
	// /v1/claims creates, PATCH /v1/claims/{id} takes its own body.
	newClaim := func(ref string) string {
		r := e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": ref, "amount": "100.00", "currency": "EUR", "original_due_date": "2026-01-01"})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		return r.object(t)["id"].(string)
	}
	paused, resolved := newClaim("WALK-PAUSED"), newClaim("WALK-RESOLVED")
	require.Equal(t, http.StatusOK, e.post(t, k.Secret, "/v1/claims/"+paused+"/pause", map[string]any{}).Status)
	require.Equal(t, http.StatusOK, e.post(t, k.Secret, "/v1/claims/"+resolved+"/resolve", map[string]any{"resolution": "sold"}).Status)
	for pattern, w := range map[string]write{
		"/v1/claims":               {newClaim("WALK-PATCH"), `{"reference":"WALK-NEW","amount":"1.00","currency":"EUR","original_due_date":"2026-01-01"}`},
		"/v1/claims/import":        {"", `{"claims":[{"reference":"WALK-IMPORT","amount":"1.00","currency":"EUR","original_due_date":"2026-01-01"}]}`},
		"/v1/claims/{id}/resolve":  {newClaim("WALK-RESOLVE"), `{"resolution":"paid"}`},
		"/v1/claims/{id}/credit":   {newClaim("WALK-CREDIT"), `{"amount":"1.00"}`},
		"/v1/claims/{id}/debit":    {newClaim("WALK-DEBIT"), `{"amount":"1.00"}`},
		"/v1/claims/{id}/pause":    {newClaim("WALK-PAUSE"), `{"reason":"walk"}`},
		"/v1/claims/{id}/resume":   {paused, ``},
		"/v1/claims/{id}/stop":     {newClaim("WALK-STOP"), `{"reason":"walk"}`},
		"/v1/claims/{id}/recreate": {resolved, `{"amount":"5.00","original_due_date":"2026-02-01"}`},
	} {
		writes[pattern] = w
	}
	// Campaigns: one per action, in a status that allows it; an enrollment
	// to cancel, and a claim to enroll (due in the future: a journey with
	// every step past completes at once).
	dueLater := func(ref string) string {
		r := e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": ref, "amount": "100.00", "currency": "EUR", "original_due_date": "2030-01-01"})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		return r.object(t)["id"].(string)
	}
	newCampaign := func() string {
		r := e.post(t, k.Secret, "/v1/campaigns", map[string]any{"name": "Walk", "type": "collection", "steps": []map[string]any{{"day_offset": 0, "action": "email"}}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		return r.object(t)["id"].(string)
	}
	pausedCmp, enrollCmp := newCampaign(), newCampaign()
	require.Equal(t, http.StatusOK, e.post(t, k.Secret, "/v1/campaigns/"+pausedCmp+"/pause", nil).Status)
	r = e.post(t, k.Secret, "/v1/campaigns/"+enrollCmp+"/enrollments", map[string]any{"claim_ids": []string{dueLater("WALK-ENROLLED")}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	var enrolled struct {
		Data []struct {
			Enrollment struct {
				ID string `json:"id"`
			} `json:"enrollment"`
		} `json:"data"`
	}
	r.decode(t, &enrolled)
	for pattern, w := range map[string]write{
		"/v1/campaigns":                                  {"", `{"name":"Walk new","type":"reminder","steps":[{"day_offset":-1,"action":"email"}]}`},
		"/v1/campaigns/{id}/pause":                       {newCampaign(), `{"reason":"walk"}`},
		"/v1/campaigns/{id}/resume":                      {pausedCmp, ``},
		"/v1/campaigns/{id}/complete":                    {newCampaign(), `{"reason":"walk"}`},
		"/v1/campaigns/{id}/enrollments":                 {enrollCmp, fmt.Sprintf(`{"claim_ids":[%q]}`, dueLater("WALK-ENROLL"))},
		"/v1/campaigns/{id}/enrollments/{enrollment_id}": {enrollCmp, ``},
	} {
		writes[pattern] = w
	}
	// Promises to pay, disputes (one to resolve, one to withdraw) and
	// triggers (named walk: see exactPaths).
	openDispute := func() string {
		r := e.post(t, k.Secret, "/v1/disputes", map[string]any{"account_id": acct.ID, "reason": "other"})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		return r.object(t)["id"].(string)
	}
	for pattern, w := range map[string]write{
		"/v1/claims/{id}/promises":   {newClaim("WALK-PROMISE"), fmt.Sprintf(`{"amount":"1.00","due_date":%q}`, domain.DateOf(time.Now().AddDate(0, 0, 7)))},
		"/v1/disputes":               {"", fmt.Sprintf(`{"account_id":%q,"reason":"other"}`, acct.ID)},
		"/v1/disputes/{id}/resolve":  {openDispute(), `{"outcome":"upheld"}`},
		"/v1/disputes/{id}/withdraw": {openDispute(), `{"note":"walk"}`},
		"/v1/triggers/{name}":        {"", fmt.Sprintf(`{"claim_ids":[%q],"payload":{"walk":true}}`, newClaim("WALK-TRIGGER"))},
	} {
		writes[pattern] = w
	}
	// Webhook endpoints: one to delete, one for everything else, and a
	// delivery (a test ping) to redeliver.
	hookDel := e.createWebhookEndpoint(t, k.Secret, map[string]any{"url": "https://hooks.example.com/walk-delete"})
	hook := e.createWebhookEndpoint(t, k.Secret, map[string]any{"url": "https://hooks.example.com/walk"})
	r = e.post(t, k.Secret, "/v1/webhook-endpoints/"+hook.ID+"/test", nil)
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	for pattern, w := range map[string]write{
		"/v1/webhook-endpoints":                    {hook.ID, `{"url":"https://hooks.example.com/walk-new"}`}, // POST creates, PATCH changes the URL
		"/v1/webhook-endpoints/{id}/rotate-secret": {hook.ID, `{"overlap_seconds":60}`},
		"/v1/webhook-endpoints/{id}/test":          {hook.ID, ``},
		"/v1/webhook-endpoints/{id}/replay":        {hook.ID, `{"from":"2026-01-01T00:00:00Z"}`},
		"/v1/webhook-deliveries/{id}/redeliver":    {r.object(t)["id"].(string), ``},
	} {
		writes[pattern] = w
	}
	bodies := map[route]string{{http.MethodPatch, "/v1/claims/{id}"}: `{"portfolio_reference":"walk"}`}
	attrPath := "/v1/accounts/" + attrs.ID
	exactPaths := map[route]string{
		{http.MethodDelete, "/v1/accounts/{id}/debtors/{debtor_id}"}:   attrPath + "/debtors/" + dbt.ID,
		{http.MethodPatch, "/v1/accounts/{id}/products/{reference}"}:   attrPath + "/products/P-PATCH",
		{http.MethodDelete, "/v1/accounts/{id}/products/{reference}"}:  attrPath + "/products/P-DEL",
		{http.MethodPatch, "/v1/accounts/{id}/scores/{type}"}:          attrPath + "/scores/S-PATCH",
		{http.MethodDelete, "/v1/accounts/{id}/scores/{type}"}:         attrPath + "/scores/S-DEL",
		{http.MethodPatch, "/v1/accounts/{id}/mandates/{mandate_id}"}:  attrPath + "/mandates/M-PATCH",
		{http.MethodDelete, "/v1/accounts/{id}/mandates/{mandate_id}"}: attrPath + "/mandates/M-DEL",
	}
	exactPaths[route{http.MethodPost, "/v1/triggers/{name}"}] = "/v1/triggers/walk"
	exactPaths[route{http.MethodDelete, "/v1/webhook-endpoints/{id}"}] = "/v1/webhook-endpoints/" + hookDel.ID
	exactPaths[route{http.MethodDelete, "/v1/campaigns/{id}/enrollments/{enrollment_id}"}] = "/v1/campaigns/" + enrollCmp + "/enrollments/" + enrolled.Data[0].Enrollment.ID
	n := 0
	for _, rt := range e.routes(t) {
		if !isWrite(rt.Method) || !strings.HasPrefix(rt.Pattern, "/v1/") || rt.Pattern == "/v1/oauth2/token" {
			continue
		}
		n++
		wr, ok := writes[strings.TrimSuffix(rt.Pattern, "/{id}")]
		require.True(t, ok, "%s %s: add its resource to the table", rt.Method, rt.Pattern)
		r := req{Method: rt.Method, Path: strings.ReplaceAll(strings.ReplaceAll(rt.Pattern, "{id}", wr.id), "{ref}", "INV-1"), Auth: k.Secret,
			Body: wr.body, Header: []string{"Idempotency-Key", "walk " + rt.Method + " " + rt.Pattern}}
		r.Header[1] = strings.ReplaceAll(r.Header[1], " ", "_")
		if path, ok := exactPaths[rt]; ok {
			r.Path = path
		}
		if b, ok := bodies[rt]; ok {
			r.Body = b
		}
		first := e.send(t, r)
		require.Less(t, first.Status, 300, "%s %s: %s", rt.Method, rt.Pattern, first.Body)
		require.Empty(t, first.Header.Get("Idempotent-Replayed"))
		again := e.send(t, r)
		require.Equal(t, first.Status, again.Status, "%s %s: %s", rt.Method, rt.Pattern, again.Body)
		require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"), "%s %s is not idempotent", rt.Method, rt.Pattern)
	}
	require.GreaterOrEqual(t, n, 2)
}
