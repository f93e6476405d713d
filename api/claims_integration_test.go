package api_test

// Claims: the life cycle through HTTP, the implicit account, the import
// upsert, list filters, a debtor's claims and mode/tenant isolation.

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type claimJSON struct {
	ID                 string  `json:"id"`
	Reference          string  `json:"reference"`
	AccountID          string  `json:"account_id"`
	PrimaryDebtorID    string  `json:"primary_debtor_id"`
	Amount             string  `json:"amount"`
	OriginalAmount     string  `json:"original_amount"`
	Credits            string  `json:"credits"`
	Debits             string  `json:"debits"`
	Currency           string  `json:"currency"`
	TotalFees          string  `json:"total_fees"`
	OriginalDueDate    string  `json:"original_due_date"`
	CurrentDueDate     string  `json:"current_due_date"`
	DaysPastDue        int     `json:"days_past_due"`
	PortfolioReference string  `json:"portfolio_reference"`
	Status             string  `json:"status"`
	Resolution         *string `json:"resolution"`
	Recreations        int     `json:"recreations"`
	Version            int64   `json:"version"`
	Overdue            []int   `json:"overdue_thresholds"`
	Position           int64   `json:"-"`
	Scores             []any   `json:"scores"`
}

func (e *env) createClaim(t *testing.T, secret string, body map[string]any) claimJSON {
	t.Helper()
	r := e.post(t, secret, "/v1/claims", body)
	require.Equal(t, http.StatusCreated, r.Status, "create claim: %s", r.Body)
	var c claimJSON
	r.decode(t, &c)
	c.Position = r.position(t)
	require.Equal(t, "/v1/claims/"+c.ID, r.Header.Get("Location"))
	return c
}

func (e *env) claimAction(t *testing.T, secret, id, action string, body any, status int) (claimJSON, *response) {
	t.Helper()
	r := e.post(t, secret, "/v1/claims/"+id+"/"+action, body)
	require.Equal(t, status, r.Status, "%s: %s", action, r.Body)
	var c claimJSON
	if status == http.StatusOK {
		r.decode(t, &c)
		if h := r.Header.Get("Arrears-Position"); h != "" {
			c.Position = r.position(t)
		}
	}
	return c, r
}

func (e *env) getClaim(t *testing.T, secret, id string, pos int64) claimJSON {
	t.Helper()
	r := e.get(t, secret, fmt.Sprintf("/v1/claims/%s?min_position=%d", id, pos))
	require.Equal(t, http.StatusOK, r.Status, "get claim: %s", r.Body)
	var c claimJSON
	r.decode(t, &c)
	return c
}

func (e *env) claimRefs(t *testing.T, secret, query string) []string {
	t.Helper()
	r := e.get(t, secret, "/v1/claims?"+query)
	require.Equal(t, http.StatusOK, r.Status, "list claims %s: %s", query, r.Body)
	var l struct {
		Data []claimJSON `json:"data"`
	}
	r.decode(t, &l)
	out := []string{}
	for _, c := range l.Data {
		out = append(out, c.Reference)
	}
	return out
}

func TestClaimLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Claims")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	dbt := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Cla", "last_name": "Im"})

	// Without an account: an implicit account in the claim's currency, with
	// the primary debtor, in the same transaction.
	past := domain.DateOf(time.Now().AddDate(0, 0, -10))
	c := e.createClaim(t, k.Secret, map[string]any{"reference": "CLM-1", "amount": "100.50", "currency": "EUR", "total_fees": "5",
		"original_due_date": string(past), "primary_debtor_id": dbt.ID, "portfolio_reference": "PF-1"})
	require.Equal(t, "open", c.Status)
	require.Equal(t, "100.50", c.Amount)
	require.Equal(t, "5.00", c.TotalFees)
	require.Equal(t, string(past), c.CurrentDueDate)
	require.Equal(t, 10, c.DaysPastDue)
	require.NotEmpty(t, c.AccountID)
	r := e.get(t, k.Secret, fmt.Sprintf("/v1/accounts/%s?min_position=%d", c.AccountID, c.Position))
	require.Equal(t, http.StatusOK, r.Status, "implicit account: %s", r.Body)
	var acct account
	r.decode(t, &acct)
	require.Equal(t, "EUR", acct.Currency)
	require.Equal(t, []string{dbt.ID}, acct.DebtorIDs)
	require.Equal(t, 1, e.count(t, `SELECT count(DISTINCT tx_id) FROM events WHERE stream_id IN ($1, $2)`, c.ID, c.AccountID), "one transaction")
	got := e.getClaim(t, k.Secret, c.ID, c.Position)
	require.Equal(t, c, claimJSON{ID: got.ID, Reference: got.Reference, AccountID: got.AccountID, PrimaryDebtorID: got.PrimaryDebtorID, Amount: got.Amount,
		OriginalAmount: got.OriginalAmount, Credits: got.Credits, Debits: got.Debits, Currency: got.Currency, TotalFees: got.TotalFees,
		OriginalDueDate: got.OriginalDueDate, CurrentDueDate: got.CurrentDueDate, DaysPastDue: got.DaysPastDue, PortfolioReference: got.PortfolioReference,
		Status: got.Status, Resolution: got.Resolution, Recreations: got.Recreations, Version: got.Version, Overdue: got.Overdue, Position: c.Position, Scores: got.Scores},
		"the read model shows what the write answered")

	// On an existing account, by id and by reference; the currency must be the account's.
	usd := e.createAccount(t, k.Secret, map[string]any{"currency": "USD", "reference": "ACC-USD"})
	c2 := e.createClaim(t, k.Secret, map[string]any{"reference": "CLM-2", "account_id": usd.ID, "amount": "20", "original_due_date": "2030-01-01"})
	require.Equal(t, "USD", c2.Currency)
	require.Equal(t, usd.ID, c2.AccountID)
	require.Equal(t, 0, c2.DaysPastDue)
	c3 := e.createClaim(t, k.Secret, map[string]any{"reference": "CLM-3", "account_reference": "ACC-USD", "amount": "30", "currency": "USD", "original_due_date": "2030-01-01"})
	require.Equal(t, usd.ID, c3.AccountID)
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": "CLM-X", "account_id": usd.ID, "amount": "1", "currency": "EUR", "original_due_date": "2030-01-01"}), "currency")
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": "CLM-X", "account_id": e.freshID(usd.ID), "amount": "1", "original_due_date": "2030-01-01"}), "account_id")
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": "CLM-X", "account_reference": "nope", "amount": "1", "original_due_date": "2030-01-01"}), "account_reference")
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": "CLM-X", "currency": "EUR", "amount": "1", "original_due_date": "2030-01-01", "primary_debtor_id": e.freshID(dbt.ID)}), "primary_debtor_id")
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": "CLM-X", "currency": "EUR", "amount": "1.001", "original_due_date": "2030-01-01"}), "amount")
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": "CLM-X", "currency": "EUR", "amount": "1"}), "original_due_date")
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": "CLM-X", "currency": "EUR", "amount": "1", "original_due_date": "2030-13-01"}), "original_due_date")
	requireProblem(t, e.post(t, k.Secret, "/v1/claims", map[string]any{"reference": "CLM-1", "currency": "EUR", "amount": "1", "original_due_date": "2030-01-01"}),
		http.StatusConflict, "conflict", "duplicate_reference")
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE data->'claim'->>'reference' = 'CLM-X'`))
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM events WHERE type = 'account.opened'`), "the duplicate opened no implicit account")

	// Update, debit, credit to zero: resolved as paid.
	u := e.patch(t, k.Secret, "/v1/claims/"+c.ID, map[string]any{"portfolio_reference": "PF-2", "total_fees": "7.5"})
	require.Equal(t, http.StatusOK, u.Status, "%s", u.Body)
	again := e.patch(t, k.Secret, "/v1/claims/"+c.ID, map[string]any{"portfolio_reference": "PF-2"})
	require.Equal(t, http.StatusOK, again.Status)
	require.Empty(t, again.Header.Get("Arrears-Position"), "a change to nothing records nothing")
	d, _ := e.claimAction(t, k.Secret, c.ID, "debit", map[string]any{"amount": "9.50", "reason": "interest"}, http.StatusOK)
	require.Equal(t, "110.00", d.Amount)
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims/"+c.ID+"/credit", map[string]any{"amount": "110.01"}), "amount")
	p, _ := e.claimAction(t, k.Secret, c.ID, "pause", nil, http.StatusOK)
	require.Equal(t, "paused", p.Status)
	_, r = e.claimAction(t, k.Secret, c.ID, "pause", nil, http.StatusConflict)
	pr := requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition")
	require.Contains(t, pr.Detail, "is paused")
	paid, _ := e.claimAction(t, k.Secret, c.ID, "credit", map[string]any{"amount": "110", "reason": "settled"}, http.StatusOK)
	require.Equal(t, "resolved", paid.Status)
	require.Equal(t, "paid", *paid.Resolution)
	require.Equal(t, "0.00", paid.Amount)
	require.Equal(t, 0, paid.DaysPastDue)
	got = e.getClaim(t, k.Secret, c.ID, paid.Position)
	require.Equal(t, "resolved", got.Status)
	require.Equal(t, "110.00", got.Credits)
	require.Equal(t, "9.50", got.Debits)
	require.Equal(t, "PF-2", got.PortfolioReference)
	require.Equal(t, "7.50", got.TotalFees)

	// Forbidden transitions name the state.
	for _, a := range []struct {
		action string
		body   any
	}{{"resume", nil}, {"pause", nil}, {"stop", nil}, {"debit", map[string]any{"amount": "1"}}, {"resolve", map[string]any{"resolution": "sold"}}} {
		_, r := e.claimAction(t, k.Secret, c.ID, a.action, a.body, http.StatusConflict)
		pr := requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition")
		require.Contains(t, pr.Detail, "is resolved", a.action)
	}
	requireProblem(t, e.patch(t, k.Secret, "/v1/claims/"+c.ID, map[string]any{"portfolio_reference": "PF-3"}), http.StatusConflict, "conflict", "invalid_transition")

	// Recreate reopens it with new content; reference and account stay.
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims/"+c.ID+"/recreate", map[string]any{"reference": "OTHER", "amount": "1", "original_due_date": "2030-01-01"}), "reference")
	rc, _ := e.claimAction(t, k.Secret, c.ID, "recreate", map[string]any{"amount": "60", "original_due_date": "2030-01-01"}, http.StatusOK)
	require.Equal(t, "open", rc.Status)
	require.Nil(t, rc.Resolution)
	require.Equal(t, "60.00", rc.Amount)
	require.Equal(t, "0.00", rc.Credits)
	require.Equal(t, 1, rc.Recreations)
	require.Equal(t, "CLM-1", rc.Reference)
	require.Equal(t, c.AccountID, rc.AccountID)
	_, r = e.claimAction(t, k.Secret, c.ID, "recreate", map[string]any{"amount": "60", "original_due_date": "2030-01-01"}, http.StatusConflict)
	require.Contains(t, requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition").Detail, "is open")

	// Resolve, stop, resume.
	rs, _ := e.claimAction(t, k.Secret, c2.ID, "resolve", map[string]any{"resolution": "sold", "reason": "agency"}, http.StatusOK)
	require.Equal(t, "sold", *rs.Resolution)
	requireInvalid(t, e.post(t, k.Secret, "/v1/claims/"+c3.ID+"/resolve", map[string]any{"resolution": "lost"}), "resolution")
	e.claimAction(t, k.Secret, c3.ID, "pause", map[string]any{"reason": "dispute"}, http.StatusOK)
	rsm, _ := e.claimAction(t, k.Secret, c3.ID, "resume", nil, http.StatusOK)
	require.Equal(t, "open", rsm.Status)
	st, _ := e.claimAction(t, k.Secret, c3.ID, "stop", map[string]any{"reason": "deceased"}, http.StatusOK)
	require.Equal(t, "stopped", st.Status)
	e.claimAction(t, k.Secret, c3.ID, "resume", nil, http.StatusConflict)

	// A missing claim is 404 whatever the body.
	requireProblem(t, e.post(t, k.Secret, "/v1/claims/"+e.freshID(c.ID)+"/credit", "not json"), http.StatusNotFound, "not-found", "")
}

func TestClaimImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Claims import")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "reference": "ACC-1"})
	item := func(ref, amount string, extra ...any) map[string]any {
		m := map[string]any{"reference": ref, "amount": amount, "currency": "EUR", "original_due_date": "2030-01-01", "account_reference": "ACC-1"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i].(string)] = extra[i+1]
		}
		return m
	}
	type result struct {
		Created, Updated, Unchanged int
		Data                        []struct {
			Index   int       `json:"index"`
			Outcome string    `json:"outcome"`
			Claim   claimJSON `json:"claim"`
		}
	}
	imp := func(items ...map[string]any) (result, *response) {
		r := e.post(t, k.Secret, "/v1/claims/import", map[string]any{"claims": items})
		var res result
		if r.Status == http.StatusOK {
			r.decode(t, &res)
		}
		return res, r
	}
	res, r := imp(item("I-1", "10"), item("I-2", "20", "portfolio_reference", "PF-A"), item("I-3", "30", "account_reference", nil, "account_id", acct.ID))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, 3, res.Created)
	pos := r.position(t)
	for i, d := range res.Data {
		require.Equal(t, i, d.Index)
		require.Equal(t, "created", d.Outcome)
		require.Equal(t, acct.ID, d.Claim.AccountID)
	}
	events := e.count(t, `SELECT count(*) FROM events`)

	// The same content again: nothing changes.
	res, r = imp(item("I-1", "10"), item("I-2", "20", "portfolio_reference", "PF-A"))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, 2, res.Unchanged)
	require.Empty(t, r.Header.Get("Arrears-Position"))
	require.Equal(t, events, e.count(t, `SELECT count(*) FROM events`))

	// Updates what PATCH changes, creates the new one.
	res, r = imp(item("I-1", "10", "portfolio_reference", "PF-B", "total_fees", "2"), item("I-2", "20"), item("I-4", "40"))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, []int{1, 1, 1}, []int{res.Created, res.Updated, res.Unchanged})
	require.Equal(t, "updated", res.Data[0].Outcome)
	require.Equal(t, "PF-B", res.Data[0].Claim.PortfolioReference)
	require.Equal(t, "unchanged", res.Data[1].Outcome)
	require.Equal(t, "created", res.Data[2].Outcome)
	pos = r.position(t)
	got := e.getClaim(t, k.Secret, res.Data[0].Claim.ID, pos)
	require.Equal(t, "PF-B", got.PortfolioReference)
	require.Equal(t, "2.00", got.TotalFees)
	events = e.count(t, `SELECT count(*) FROM events`)

	// One bad claim: nothing changes, and every problem is named by index.
	_, r = imp(item("I-5", "50"), item("I-1", "10", "portfolio_reference", "PF-C"), item("I-6", "1.001"), item("I-7", "70", "account_reference", "NOPE"))
	p := requireInvalid(t, r, "claims[2].amount")
	requireInvalid(t, r, "claims[3].account_reference")
	require.Len(t, p.Errors, 2, "%s", r.Body)
	_, r = imp(item("I-5", "50"), item("I-6", "1.001"))
	requireInvalid(t, r, "claims[1].amount")
	_, r = imp(item("I-5", "50"), item("I-5", "50"))
	requireInvalid(t, r, "claims[1].reference")
	// What an import cannot change is a conflict naming the field.
	_, r = imp(item("I-8", "80"), item("I-2", "21"))
	p = requireProblem(t, r, http.StatusConflict, "conflict", "claim_conflict")
	require.Equal(t, "claims[1].amount", p.Errors[0].Field)
	require.Equal(t, events, e.count(t, `SELECT count(*) FROM events`), "a refused import changes nothing")
	require.Equal(t, []string{"I-1", "I-2", "I-3", "I-4"}, sortedStrings(e.claimRefs(t, k.Secret, fmt.Sprintf("min_position=%d", pos))))

	// A resolved claim imported unchanged is a no-op; changed, a 409.
	c4 := res.Data[2].Claim
	e.claimAction(t, k.Secret, c4.ID, "resolve", map[string]any{"resolution": "discarded"}, http.StatusOK)
	res, r = imp(item("I-4", "40"))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, 1, res.Unchanged)
	_, r = imp(item("I-4", "40", "portfolio_reference", "X"))
	requireProblem(t, r, http.StatusConflict, "conflict", "invalid_transition")

	// Limits.
	many := make([]map[string]any, 501)
	for i := range many {
		many[i] = item(fmt.Sprintf("M-%d", i), "1")
	}
	_, r = imp(many...)
	requireInvalid(t, r, "claims")
	_, r = imp()
	requireInvalid(t, r, "claims")
}

func sortedStrings(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestClaimListFiltersAndDebtorClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Claims lists")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	other := e.key(t, e.tenant(t, "Other").ID, eventstore.NewKey{Name: "other"})
	d1 := e.createDebtor(t, k.Secret, map[string]any{"first_name": "One", "last_name": "D"})
	d2 := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Two", "last_name": "D"})
	shared := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "debtor_ids": []string{d2.ID}}, fmt.Sprintf("min_position=%d", d2.Position))
	past, future := string(domain.DateOf(time.Now().AddDate(0, 0, -3))), string(domain.DateOf(time.Now().AddDate(0, 0, 3)))
	mk := func(ref string, extra map[string]any) claimJSON {
		body := map[string]any{"reference": ref, "amount": "10", "currency": "EUR", "original_due_date": future}
		for name, v := range extra {
			body[name] = v
		}
		return e.createClaim(t, k.Secret, body)
	}
	a := mk("A", map[string]any{"primary_debtor_id": d1.ID, "original_due_date": past, "portfolio_reference": "P1"})
	b := mk("B", map[string]any{"account_id": shared.ID, "portfolio_reference": "P1"})
	c := mk("C", map[string]any{"original_due_date": past})
	dd := mk("D", map[string]any{"primary_debtor_id": d2.ID, "original_due_date": past})
	e.claimAction(t, k.Secret, c.ID, "pause", nil, http.StatusOK)
	last, _ := e.claimAction(t, k.Secret, dd.ID, "stop", nil, http.StatusOK)
	tc := e.createClaim(t, test.Secret, map[string]any{"reference": "A", "amount": "10", "currency": "EUR", "original_due_date": past}) // same reference, other mode
	oc := e.createClaim(t, other.Secret, map[string]any{"reference": "A", "amount": "10", "currency": "EUR", "original_due_date": past})

	w := fmt.Sprintf("min_position=%d&", max(last.Position, tc.Position, oc.Position))
	for q, want := range map[string][]string{
		"":                          {"A", "B", "C", "D"},
		"status=open":               {"A", "B"},
		"status=paused,stopped":     {"C", "D"},
		"account_id=" + shared.ID:   {"B"},
		"debtor_id=" + d1.ID:        {"A"},
		"overdue=true":              {"A", "C"},
		"overdue=false":             {"B", "D"},
		"portfolio=P1":              {"A", "B"},
		"reference=C":               {"C"},
		"portfolio=P1&overdue=true": {"A"},
		"status=open&debtor_id=" + a.PrimaryDebtorID: {"A"},
	} {
		got := e.claimRefs(t, k.Secret, w+q)
		require.Equal(t, want, got, "?%s", q)
	}
	requireInvalid(t, e.get(t, k.Secret, "/v1/claims?status=lost"), "query:status")
	requireInvalid(t, e.get(t, k.Secret, "/v1/claims?overdue=yes"), "query:overdue")
	// Pagination by id.
	r := e.get(t, k.Secret, "/v1/claims?limit=3&"+w)
	var page struct {
		Data       []claimJSON `json:"data"`
		NextCursor *string     `json:"next_cursor"`
	}
	r.decode(t, &page)
	require.Len(t, page.Data, 3)
	require.NotNil(t, page.NextCursor)
	r = e.get(t, k.Secret, "/v1/claims?limit=3&cursor="+*page.NextCursor)
	r.decode(t, &page)
	require.Len(t, page.Data, 1)
	require.Nil(t, page.NextCursor)
	// Modes and tenants see only their own.
	require.Equal(t, []string{"A"}, e.claimRefs(t, test.Secret, w+"reference=A"))
	require.Equal(t, []string{"A"}, e.claimRefs(t, other.Secret, w+"status=open"))
	requireProblem(t, e.get(t, test.Secret, "/v1/claims/"+a.ID), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, other.Secret, "/v1/claims/"+a.ID), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.post(t, test.Secret, "/v1/claims/"+a.ID+"/pause", nil), http.StatusNotFound, "not-found", "")
	requireInvalid(t, e.post(t, test.Secret, "/v1/claims", map[string]any{"reference": "X", "account_id": shared.ID, "amount": "1", "original_due_date": past}), "account_id")

	// A debtor's accounts and claims: d2 is on the shared account (claim B)
	// and the primary debtor of D, on D's implicit account.
	r = e.get(t, k.Secret, fmt.Sprintf("/v1/debtors/%s/claims?min_position=%d", d2.ID, last.Position))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var dc struct {
		DebtorID string      `json:"debtor_id"`
		Accounts []account   `json:"accounts"`
		Claims   []claimJSON `json:"claims"`
	}
	r.decode(t, &dc)
	require.Equal(t, d2.ID, dc.DebtorID)
	var accts, refs []string
	for _, x := range dc.Accounts {
		accts = append(accts, x.ID)
	}
	for _, x := range dc.Claims {
		refs = append(refs, x.Reference)
	}
	require.ElementsMatch(t, []string{shared.ID, dd.AccountID}, accts)
	require.Equal(t, []string{"B", "D"}, sortedStrings(refs))
	r = e.get(t, k.Secret, "/v1/debtors/"+d1.ID+"/claims")
	r.decode(t, &dc)
	require.Len(t, dc.Claims, 1)
	require.Equal(t, a.ID, dc.Claims[0].ID)
	requireProblem(t, e.get(t, test.Secret, "/v1/debtors/"+d1.ID+"/claims"), http.StatusNotFound, "not-found", "")
	_ = b
}
