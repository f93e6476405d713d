package api_test

// Accounts, ledger entries, balances and payments: a walkthrough, a batch
// of 10,000 entries, bad input and the payment state machine.

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type account struct {
	ID          string   `json:"id"`
	Reference   string   `json:"reference"`
	Currency    string   `json:"currency"`
	DebtorIDs   []string `json:"debtor_ids"`
	Invoiced    string   `json:"invoiced"`
	Fees        string   `json:"fees"`
	Paid        string   `json:"paid"`
	Refunded    string   `json:"refunded"`
	Outstanding string   `json:"outstanding"`
	Version     int64    `json:"version"`
	Position    int64    `json:"-"`
}

type allocation struct {
	Reference string `json:"reference"`
	Amount    string `json:"amount"`
}

type payment struct {
	ID             string       `json:"id"`
	AccountID      string       `json:"account_id"`
	Amount         string       `json:"amount"`
	Currency       string       `json:"currency"`
	Status         string       `json:"status"`
	Allocations    []allocation `json:"allocations"`
	ReversalReason string       `json:"reversal_reason"`
	Position       int64        `json:"-"`
}

type balance struct {
	Currency    string            `json:"currency"`
	AsOf        string            `json:"as_of"`
	Invoiced    string            `json:"invoiced"`
	Fees        string            `json:"fees"`
	Paid        string            `json:"paid"`
	Refunded    string            `json:"refunded"`
	Outstanding string            `json:"outstanding"`
	Overdue     string            `json:"overdue"`
	DaysPastDue int               `json:"days_past_due"`
	Aging       map[string]string `json:"aging"`
}

type batchPosted struct {
	Posted   int    `json:"posted"`
	Position *int64 `json:"position"`
}

func (e *env) createAccount(t *testing.T, secret string, body any, query ...string) account {
	t.Helper()
	path := "/v1/accounts"
	if len(query) > 0 {
		path += "?" + query[0]
	}
	r := e.post(t, secret, path, body)
	require.Equal(t, http.StatusCreated, r.Status, "create account: %s", r.Body)
	var a account
	r.decode(t, &a)
	a.Position = r.position(t)
	require.Equal(t, "/v1/accounts/"+a.ID, r.Header.Get("Location"))
	return a
}

func (e *env) postEntries(t *testing.T, secret string, entries ...map[string]any) batchPosted {
	t.Helper()
	r := e.post(t, secret, "/v1/ledger-entries/batch", map[string]any{"entries": entries})
	require.Equal(t, http.StatusCreated, r.Status, "post entries: %s", r.Body)
	var b batchPosted
	r.decode(t, &b)
	return b
}

func (e *env) createPayment(t *testing.T, secret, accountID string, body any) payment {
	t.Helper()
	r := e.post(t, secret, "/v1/accounts/"+accountID+"/payments", body)
	require.Equal(t, http.StatusCreated, r.Status, "create payment: %s", r.Body)
	var p payment
	r.decode(t, &p)
	p.Position = r.position(t)
	return p
}

func (e *env) balance(t *testing.T, secret, accountID, asOf string) balance {
	t.Helper()
	r := e.get(t, secret, "/v1/accounts/"+accountID+"/balance?as_of="+asOf)
	require.Equal(t, http.StatusOK, r.Status, "balance: %s", r.Body)
	var b balance
	r.decode(t, &b)
	return b
}

// paymentAction posts a payment transition, waiting for the ledger
// projection to reach pos (the payment's creation) first.
func (e *env) paymentAction(t *testing.T, secret, id, action string, pos int64, body any) *response {
	t.Helper()
	return e.post(t, secret, fmt.Sprintf("/v1/payments/%s/%s?min_position=%d", id, action, pos), body)
}

func TestMoneyWalkthrough(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Money")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})

	d := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Erika", "last_name": "Mustermann"})
	acct := e.createAccount(t, k.Secret, map[string]any{"reference": "LOAN-1", "currency": "EUR", "debtor_ids": []string{d.ID},
		"products": []map[string]any{{"reference": "P1", "name": "Loan"}}, "meta": map[string]any{"crm": "7"}}, fmt.Sprintf("min_position=%d", d.Position))
	require.True(t, domain.HasPrefix(acct.ID, domain.PrefixAccount), acct.ID)
	require.Equal(t, "EUR", acct.Currency)
	require.Equal(t, []string{d.ID}, acct.DebtorIDs)
	require.Equal(t, "0.00", acct.Outstanding)

	// An unknown debtor, a duplicate reference.
	requireInvalid(t, e.post(t, k.Secret, "/v1/accounts", map[string]any{"currency": "EUR", "debtor_ids": []string{d.ID, e.freshID(d.ID)}}), "debtor_ids[1]")
	p := requireProblem(t, e.post(t, k.Secret, "/v1/accounts", map[string]any{"reference": "LOAN-1", "currency": "EUR"}), http.StatusConflict, "conflict", "duplicate_reference")
	require.Equal(t, "reference", p.Errors[0].Field)

	entries := []map[string]any{
		{"account_reference": "LOAN-1", "reference": "INV-1", "kind": "invoice", "amount": "100.00", "due_date": "2026-01-01", "product_reference": "P1"},
		{"account_id": acct.ID, "reference": "FEE-1", "kind": "fee", "amount": "5.5", "due_date": "2026-03-01", "target_reference": "INV-1", "fee_type": "dunning"},
	}
	posted := e.postEntries(t, k.Secret, entries...)
	require.Equal(t, 2, posted.Posted)
	require.NotNil(t, posted.Position)
	again := e.postEntries(t, k.Secret, entries...)
	require.Equal(t, 0, again.Posted)
	require.Nil(t, again.Position)

	pay := e.createPayment(t, k.Secret, acct.ID, map[string]any{"amount": "30.00", "reference": "PAY-1", "method": "bank_transfer"})
	require.True(t, domain.HasPrefix(pay.ID, domain.PrefixPayment), pay.ID)
	require.Equal(t, "completed", pay.Status)
	require.Equal(t, []allocation{{"INV-1", "30.00"}}, pay.Allocations)
	requireInvalid(t, e.post(t, k.Secret, "/v1/accounts/"+acct.ID+"/payments", map[string]any{"amount": "1000.00"}), "amount")

	b := e.balance(t, k.Secret, acct.ID, "2026-02-15")
	require.Equal(t, "EUR", b.Currency)
	require.Equal(t, "100.00", b.Invoiced)
	require.Equal(t, "5.50", b.Fees)
	require.Equal(t, "30.00", b.Paid)
	require.Equal(t, "75.50", b.Outstanding)
	require.Equal(t, "70.00", b.Overdue)
	require.Equal(t, 45, b.DaysPastDue)
	require.Equal(t, "70.00", b.Aging["days_31_60"])
	require.Equal(t, "5.50", b.Aging["current"])
	requireInvalid(t, e.get(t, k.Secret, "/v1/accounts/"+acct.ID+"/balance?as_of=2026-02-30"), "query:as_of")

	// The read models.
	r := e.get(t, k.Secret, fmt.Sprintf("/v1/accounts/%s?min_position=%d", acct.ID, pay.Position))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var got account
	r.decode(t, &got)
	require.Equal(t, "75.50", got.Outstanding)
	require.Equal(t, "30.00", got.Paid)
	require.Equal(t, "5.50", got.Fees)
	r = e.get(t, k.Secret, fmt.Sprintf("/v1/accounts?debtor_id=%s&min_position=%d", d.ID, pay.Position))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Contains(t, string(r.Body), acct.ID)
	r = e.get(t, k.Secret, fmt.Sprintf("/v1/accounts?reference=NONE&min_position=%d", pay.Position))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.NotContains(t, string(r.Body), acct.ID)
	r = e.get(t, k.Secret, fmt.Sprintf("/v1/payments/%s?min_position=%d", pay.ID, pay.Position))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var gotPay payment
	r.decode(t, &gotPay)
	gotPay.Position = pay.Position
	require.Equal(t, pay, gotPay)

	// Refund: what it paid is owed again.
	r = e.paymentAction(t, k.Secret, pay.ID, "refund", pay.Position, map[string]any{"reason": "customer asked"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var refunded payment
	r.decode(t, &refunded)
	require.Equal(t, "refunded", refunded.Status)
	require.Equal(t, "customer asked", refunded.ReversalReason)
	b = e.balance(t, k.Secret, acct.ID, "2026-02-15")
	require.Equal(t, "105.50", b.Outstanding)
	require.Equal(t, "30.00", b.Refunded)
	require.Equal(t, "100.00", b.Aging["days_31_60"])
}

func TestPaymentStateMachine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Payment states")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	e.postEntries(t, k.Secret, map[string]any{"account_id": acct.ID, "reference": "INV-1", "kind": "invoice", "amount": "50.00", "due_date": "2026-01-01"})

	pending := e.createPayment(t, k.Secret, acct.ID, map[string]any{"amount": "20.00", "status": "pending"})
	require.Equal(t, "pending", pending.Status)
	require.Empty(t, pending.Allocations)
	// Pending payments are reserved: only 30.00 is left.
	requireInvalid(t, e.post(t, k.Secret, "/v1/accounts/"+acct.ID+"/payments", map[string]any{"amount": "30.01"}), "amount")
	requireProblem(t, e.paymentAction(t, k.Secret, pending.ID, "refund", pending.Position, nil), http.StatusConflict, "conflict", "invalid_transition")
	r := e.paymentAction(t, k.Secret, pending.ID, "complete", pending.Position, nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var done payment
	r.decode(t, &done)
	require.Equal(t, "completed", done.Status)
	require.Equal(t, []allocation{{"INV-1", "20.00"}}, done.Allocations)
	for _, action := range []string{"complete", "fail"} {
		requireProblem(t, e.paymentAction(t, k.Secret, pending.ID, action, pending.Position, nil), http.StatusConflict, "conflict", "invalid_transition")
	}
	r = e.paymentAction(t, k.Secret, pending.ID, "chargeback", pending.Position, map[string]any{"reason": "bank"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "charged_back", r.object(t)["status"])
	requireProblem(t, e.paymentAction(t, k.Secret, pending.ID, "refund", pending.Position, nil), http.StatusConflict, "conflict", "invalid_transition")

	failing := e.createPayment(t, k.Secret, acct.ID, map[string]any{"amount": "10.00", "status": "processing"})
	r = e.paymentAction(t, k.Secret, failing.ID, "fail", failing.Position, map[string]any{"reason": "insufficient funds"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "failed", r.object(t)["status"])
	requireInvalid(t, e.paymentAction(t, k.Secret, failing.ID, "fail", failing.Position, map[string]any{"why": "x"}), "why")
	requireProblem(t, e.paymentAction(t, k.Secret, e.freshID(failing.ID), "complete", failing.Position, nil), http.StatusNotFound, "not-found", "")
	b := e.balance(t, k.Secret, acct.ID, "2026-01-01")
	require.Equal(t, "50.00", b.Outstanding)
}

func TestLedgerBatchOf10000(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Big batch")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "reference": "BIG"})
	entries := make([]map[string]any, 10_000)
	for i := range entries {
		entries[i] = map[string]any{"account_id": acct.ID, "reference": fmt.Sprintf("INV-%05d", i), "kind": "invoice", "amount": "1.00", "due_date": "2026-01-01"}
		if i%2 == 1 {
			delete(entries[i], "account_id")
			entries[i]["account_reference"] = "BIG"
		}
	}
	entries[7777]["amount"] = "1.001"
	p := requireInvalid(t, e.post(t, k.Secret, "/v1/ledger-entries/batch", map[string]any{"entries": entries}), "entries[7777].amount")
	require.Len(t, p.Errors, 1)
	require.Zero(t, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND type <> 'account.opened'`, acct.ID))

	entries[7777]["amount"] = "1.00"
	posted := e.postEntries(t, k.Secret, entries...)
	require.Equal(t, 10_000, posted.Posted)
	b := e.balance(t, k.Secret, acct.ID, "2026-01-01")
	require.Equal(t, "10000.00", b.Invoiced)

	tooMany := append(entries, map[string]any{"account_id": acct.ID, "reference": "ONE-MORE", "kind": "invoice", "amount": "1.00", "due_date": "2026-01-01"})
	requireInvalid(t, e.post(t, k.Secret, "/v1/ledger-entries/batch", map[string]any{"entries": tooMany}), "entries")
}

func TestLedgerBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ten := e.tenant(t, "Bad money")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	other := e.tenant(t, "Other")
	ok := e.key(t, other.ID, eventstore.NewKey{Name: "other"})
	eur := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "reference": "EUR-1"})
	jpy := e.createAccount(t, k.Secret, map[string]any{"currency": "JPY"})
	foreign := e.createAccount(t, ok.Secret, map[string]any{"currency": "EUR", "reference": "FOREIGN"})
	e.postEntries(t, k.Secret, map[string]any{"account_id": eur.ID, "reference": "INV-1", "kind": "invoice", "amount": "10.00", "due_date": "2026-01-01"},
		map[string]any{"account_id": jpy.ID, "reference": "INV-1", "kind": "invoice", "amount": "1000", "due_date": "2026-01-01"})
	before := e.count(t, `SELECT count(*) FROM events`)

	requireInvalid(t, e.post(t, k.Secret, "/v1/accounts", map[string]any{"currency": "EURO"}), "currency")
	requireInvalid(t, e.post(t, k.Secret, "/v1/accounts", map[string]any{}), "currency")
	entry := func(over map[string]any) map[string]any {
		m := map[string]any{"account_id": eur.ID, "reference": "NEW", "kind": "invoice", "amount": "1.00", "due_date": "2026-01-01"}
		for k, v := range over {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	cases := []struct {
		name  string
		entry map[string]any
		field string
	}{
		{"EUR precision", entry(map[string]any{"amount": "1.001"}), "entries[1].amount"},
		{"JPY precision", entry(map[string]any{"account_id": jpy.ID, "amount": "1.5"}), "entries[1].amount"},
		{"not a decimal", entry(map[string]any{"amount": "1e3"}), "entries[1].amount"},
		{"negative", entry(map[string]any{"amount": "-5.00"}), "entries[1].amount"},
		{"no amount", entry(map[string]any{"amount": nil}), "entries[1].amount"},
		{"unknown account", entry(map[string]any{"account_id": e.freshID(eur.ID)}), "entries[1].account_id"},
		{"another tenant's account", entry(map[string]any{"account_id": foreign.ID}), "entries[1].account_id"},
		{"not an account id", entry(map[string]any{"account_id": "dbt_x"}), "entries[1].account_id"},
		{"unknown reference", entry(map[string]any{"account_id": nil, "account_reference": "FOREIGN"}), "entries[1].account_reference"},
		{"no account", entry(map[string]any{"account_id": nil}), "entries[1].account_id"},
		{"both", entry(map[string]any{"account_reference": "EUR-1"}), "entries[1].account_id"},
		{"bad kind", entry(map[string]any{"kind": "gift"}), "entries[1].kind"},
		{"invoice without due date", entry(map[string]any{"due_date": nil}), "entries[1].due_date"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			good := map[string]any{"account_id": eur.ID, "reference": "GOOD", "kind": "invoice", "amount": "2.00", "due_date": "2026-01-01"}
			requireInvalid(t, e.post(t, k.Secret, "/v1/ledger-entries/batch", map[string]any{"entries": []any{good, c.entry}}), c.field)
		})
	}
	requireInvalid(t, e.post(t, k.Secret, "/v1/ledger-entries/batch", map[string]any{"entries": []any{}}), "entries")

	// The same reference with other content.
	p := requireProblem(t, e.post(t, k.Secret, "/v1/ledger-entries/batch", map[string]any{"entries": []any{
		entry(map[string]any{"reference": "OK-2"}), entry(map[string]any{"reference": "INV-1", "amount": "9.00"})}}), http.StatusConflict, "conflict", "")
	require.Equal(t, "entries[1].reference", p.Errors[0].Field)
	require.Equal(t, before, e.count(t, `SELECT count(*) FROM events`))

	// Payments refuse bad amounts too; a missing account is 404 whatever the body.
	for _, amount := range []string{"0", "-1.00", "1.001", "abc"} {
		requireInvalid(t, e.post(t, k.Secret, "/v1/accounts/"+eur.ID+"/payments", map[string]any{"amount": amount}), "amount")
	}
	requireInvalid(t, e.post(t, k.Secret, "/v1/accounts/"+jpy.ID+"/payments", map[string]any{"amount": "1.5"}), "amount")
	requireProblem(t, e.post(t, k.Secret, "/v1/accounts/"+foreign.ID+"/payments", map[string]any{"nonsense": true}), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, "/v1/accounts/"+foreign.ID+"/balance"), http.StatusNotFound, "not-found", "")
	require.Equal(t, before, e.count(t, `SELECT count(*) FROM events`))
}
