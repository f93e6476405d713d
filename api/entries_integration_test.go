package api_test

// Ledger entries (list, get, amend), payment lists, and one hot account
// taking 10,000 concurrent payments.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type ledgerEntry struct {
	Object            string          `json:"object"`
	AccountID         string          `json:"account_id"`
	Reference         string          `json:"reference"`
	Kind              string          `json:"kind"`
	Amount            string          `json:"amount"`
	Currency          string          `json:"currency"`
	DueDate           *string         `json:"due_date"`
	OriginalDueDate   *string         `json:"original_due_date"`
	ProductReference  string          `json:"product_reference"`
	TargetReference   string          `json:"target_reference"`
	FeeType           string          `json:"fee_type"`
	Reason            string          `json:"reason"`
	PaymentReference  string          `json:"payment_reference"`
	Provider          string          `json:"provider"`
	Meta              json.RawMessage `json:"meta"`
	Allocations       []allocation    `json:"allocations"`
	CreditAllocations []allocation    `json:"credit_allocations"`
	Seq               int             `json:"seq"`
	PostedAt          time.Time       `json:"posted_at"`
	Paid              string          `json:"paid"`
	Remaining         string          `json:"remaining"`
	ChargedBack       string          `json:"charged_back"`
	SettledAt         *time.Time      `json:"settled_at"`
	AmendmentCount    int             `json:"amendment_count"`
}

type listedPayment struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Reference string `json:"reference"`
	Status    string `json:"status"`
	Amount    string `json:"amount"`
}

// listPage GETs one page of a list into data and returns its next cursor.
func (e *env) listPage(t *testing.T, secret, path string, data any) *string {
	t.Helper()
	r := e.get(t, secret, path)
	require.Equal(t, http.StatusOK, r.Status, "GET %s: %s", path, r.Body)
	require.Contains(t, string(r.Body), `"next_cursor":`)
	var l struct {
		Data       json.RawMessage `json:"data"`
		NextCursor *string         `json:"next_cursor"`
	}
	r.decode(t, &l)
	require.NoError(t, json.Unmarshal(l.Data, data))
	return l.NextCursor
}

// walk follows a list's cursors from path (which has a query) to the end,
// returning every item's key and the page sizes.
func walk[T any](t *testing.T, e *env, secret, path string, key func(T) string) (keys []string, sizes []int) {
	t.Helper()
	next := path
	for range 1000 {
		var items []T
		c := e.listPage(t, secret, next, &items)
		sizes = append(sizes, len(items))
		for _, it := range items {
			keys = append(keys, key(it))
		}
		if c == nil {
			return keys, sizes
		}
		next = path + "&cursor=" + url.QueryEscape(*c)
	}
	t.Fatal("no last page after 1000")
	return nil, nil
}

func entryRefs(t *testing.T, e *env, secret, path string) []string {
	t.Helper()
	refs, _ := walk(t, e, secret, path, func(v ledgerEntry) string { return v.Reference })
	if refs == nil {
		refs = []string{}
	}
	return refs
}

func paymentRefs(t *testing.T, e *env, secret, path string) []string {
	t.Helper()
	refs, _ := walk(t, e, secret, path, func(v listedPayment) string { return v.Reference })
	if refs == nil {
		refs = []string{}
	}
	return refs
}

func (e *env) entry(t *testing.T, secret, accountID, ref string, pos int64) ledgerEntry {
	t.Helper()
	r := e.get(t, secret, fmt.Sprintf("/v1/accounts/%s/ledger-entries/%s?min_position=%d", accountID, url.PathEscape(ref), pos))
	require.Equal(t, http.StatusOK, r.Status, "entry %s: %s", ref, r.Body)
	var v ledgerEntry
	r.decode(t, &v)
	return v
}

func ptrTo[T any](v T) *T { return &v }

func TestEntriesListAndGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Entries")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	sandboxed := e.createAccount(t, test.Secret, map[string]any{"currency": "EUR"})
	en := func(m map[string]any) map[string]any { m["account_id"] = acct.ID; return m }
	posted := e.postEntries(t, k.Secret,
		en(map[string]any{"reference": "INV-1", "kind": "invoice", "amount": "100.00", "due_date": "2026-01-01", "product_reference": "P1"}),
		en(map[string]any{"reference": "FEE-1", "kind": "fee", "amount": "5.00", "target_reference": "INV-1", "fee_type": "dunning"}),
		en(map[string]any{"reference": "INV-2", "kind": "invoice", "amount": "50.00", "due_date": "2026-02-01", "original_due_date": "2025-12-01"}),
		en(map[string]any{"reference": "ADJ-1", "kind": "adjustment", "amount": "-10.00", "reason": "goodwill"}),
		en(map[string]any{"reference": "PAY-1", "kind": "payment", "amount": "20.00", "payment_reference": "bank-1", "provider": "acme"}),
		en(map[string]any{"reference": "REP-1", "kind": "reporting", "amount": "7.00", "meta": map[string]any{"note": "x"}}),
		en(map[string]any{"reference": "DISC-1", "kind": "discount", "amount": "5.00", "target_reference": "INV-2"}),
		en(map[string]any{"reference": "CB-1", "kind": "chargeback", "amount": "5.00", "target_reference": "PAY-1"}),
		en(map[string]any{"reference": "INV/7", "kind": "invoice", "amount": "1.00", "due_date": "2026-03-01"}),
	)
	require.Equal(t, 9, posted.Posted)
	pos := *posted.Position
	base := fmt.Sprintf("/v1/accounts/%s/ledger-entries?min_position=%d", acct.ID, pos)
	all := []string{"INV-1", "FEE-1", "INV-2", "ADJ-1", "PAY-1", "REP-1", "DISC-1", "CB-1", "INV/7"}

	t.Run("every entry, in posting order, across pages", func(t *testing.T) {
		require.Equal(t, all, entryRefs(t, e, k.Secret, base))
		for limit, sizes := range map[int][]int{1: {1, 1, 1, 1, 1, 1, 1, 1, 1}, 3: {3, 3, 3}, 4: {4, 4, 1}, 9: {9}, 200: {9}} {
			refs, got := walk(t, e, k.Secret, fmt.Sprintf("%s&limit=%d", base, limit), func(v ledgerEntry) string { return v.Reference })
			require.Equal(t, all, refs, "limit %d", limit)
			require.Equal(t, sizes, got, "limit %d", limit)
		}
		var seqs []int
		var page []ledgerEntry
		e.listPage(t, k.Secret, base, &page)
		for _, v := range page {
			seqs = append(seqs, v.Seq)
		}
		require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, seqs)
	})

	t.Run("filters", func(t *testing.T) {
		for q, want := range map[string][]string{
			"kind=invoice":                          {"INV-1", "INV-2", "INV/7"},
			"kind=fee":                              {"FEE-1"},
			"kind=payment":                          {"PAY-1"},
			"kind=adjustment":                       {"ADJ-1"},
			"kind=chargeback":                       {"CB-1"},
			"kind=discount":                         {"DISC-1"},
			"kind=reporting":                        {"REP-1"},
			"reference=INV-2":                       {"INV-2"},
			"reference=" + url.QueryEscape("INV/7"): {"INV/7"},
			"reference=NONE":                        {},
			"kind=fee&reference=INV-1":              {},
			"kind=invoice&limit=2":                  {"INV-1", "INV-2", "INV/7"},
		} {
			require.Equal(t, want, entryRefs(t, e, k.Secret, base+"&"+q), q)
		}
	})

	t.Run("posting dates", func(t *testing.T) {
		// Entries are posted at the server's clock: move three of them, in
		// the read model, to fixed instants around midnights.
		for ref, at := range map[string]string{"INV-1": "2020-01-10T23:59:59.999999Z", "FEE-1": "2020-01-11T00:00:00Z", "INV-2": "2020-01-12T12:00:00Z"} {
			_, err := e.pool.Exec(context.Background(), `UPDATE ledger_entries SET posted_at = $3 WHERE account_id = $1 AND reference = $2`, acct.ID, ref, at)
			require.NoError(t, err)
		}
		var page []ledgerEntry
		e.listPage(t, k.Secret, base+"&kind=adjustment", &page)
		today := page[0].PostedAt.UTC().Format(time.DateOnly)
		for q, want := range map[string][]string{
			"from=2020-01-11&to=2020-01-11":  {"FEE-1"},
			"from=2020-01-10&to=2020-01-11":  {"INV-1", "FEE-1"},
			"to=2020-01-10":                  {"INV-1"},
			"to=2020-01-12":                  {"INV-1", "FEE-1", "INV-2"},
			"from=2020-01-12":                {"INV-2", "ADJ-1", "PAY-1", "REP-1", "DISC-1", "CB-1", "INV/7"},
			"from=2020-01-11&kind=invoice":   {"INV-2", "INV/7"},
			"from=" + today + "&to=" + today: {"ADJ-1", "PAY-1", "REP-1", "DISC-1", "CB-1", "INV/7"},
			"to=2020-01-09":                  {},
		} {
			require.Equal(t, want, entryRefs(t, e, k.Secret, base+"&"+q), q)
		}
	})

	t.Run("what each entry shows", func(t *testing.T) {
		inv := e.entry(t, k.Secret, acct.ID, "INV-1", pos)
		require.Equal(t, ledgerEntry{Object: "ledger_entry", AccountID: acct.ID, Reference: "INV-1", Kind: "invoice", Amount: "100.00", Currency: "EUR",
			DueDate: ptrTo("2026-01-01"), OriginalDueDate: ptrTo("2026-01-01"), ProductReference: "P1", Meta: json.RawMessage("null"),
			Allocations: []allocation{}, CreditAllocations: []allocation{}, Seq: 1, PostedAt: inv.PostedAt,
			Paid: "25.00", Remaining: "75.00", ChargedBack: "0.00"}, inv) // 10 adjusted + 20 paid − 5 charged back
		adj := e.entry(t, k.Secret, acct.ID, "ADJ-1", pos)
		posted := ptrTo(adj.PostedAt.UTC().Format(time.DateOnly)) // the batch's posting date (FEE-1's was moved above)
		require.Equal(t, posted, adj.DueDate)                     // posted without one: due when posted
		fee := e.entry(t, k.Secret, acct.ID, "FEE-1", pos)
		require.Equal(t, "dunning", fee.FeeType)
		require.Equal(t, "INV-1", fee.TargetReference)
		require.Equal(t, posted, fee.DueDate)
		require.Nil(t, fee.OriginalDueDate)
		require.Equal(t, "5.00", fee.Remaining)
		inv2 := e.entry(t, k.Secret, acct.ID, "INV-2", pos)
		require.Equal(t, ptrTo("2025-12-01"), inv2.OriginalDueDate)
		require.Equal(t, []string{"5.00", "45.00"}, []string{inv2.Paid, inv2.Remaining})
		require.Equal(t, []string{"-10.00", "0.00", "0.00", "goodwill"}, []string{adj.Amount, adj.Paid, adj.Remaining, adj.Reason})
		require.Equal(t, []allocation{{"INV-1", "10.00"}}, adj.Allocations)
		pay := e.entry(t, k.Secret, acct.ID, "PAY-1", pos)
		require.Equal(t, []allocation{{"INV-1", "20.00"}}, pay.Allocations)
		require.Equal(t, []string{"5.00", "0.00", "bank-1", "acme"}, []string{pay.ChargedBack, pay.Remaining, pay.PaymentReference, pay.Provider})
		rep := e.entry(t, k.Secret, acct.ID, "REP-1", pos)
		require.JSONEq(t, `{"note":"x"}`, string(rep.Meta))
		require.Equal(t, []string{"7.00", "0.00"}, []string{rep.Amount, rep.Remaining})
		require.Equal(t, []allocation{{"INV-2", "5.00"}}, e.entry(t, k.Secret, acct.ID, "DISC-1", pos).Allocations)
		cb := e.entry(t, k.Secret, acct.ID, "CB-1", pos)
		require.Equal(t, []allocation{{"INV-1", "5.00"}}, cb.Allocations)
		require.Equal(t, []allocation{}, cb.CreditAllocations)
		slash := e.entry(t, k.Secret, acct.ID, "INV/7", pos) // a "/" in the reference: GET …/ledger-entries/INV%2F7
		require.Equal(t, []any{"INV/7", 9}, []any{slash.Reference, slash.Seq})
	})

	t.Run("not found", func(t *testing.T) {
		for _, path := range []string{
			"/v1/accounts/" + e.freshID(acct.ID) + "/ledger-entries",
			"/v1/accounts/" + sandboxed.ID + "/ledger-entries", // another mode's
			"/v1/accounts/not-an-id/ledger-entries",
			"/v1/accounts/" + acct.ID + "/ledger-entries/NOPE",
			"/v1/accounts/" + e.freshID(acct.ID) + "/ledger-entries/INV-1",
			"/v1/accounts/" + sandboxed.ID + "/ledger-entries/INV-1",
		} {
			requireProblem(t, e.get(t, k.Secret, fmt.Sprintf("%s?min_position=%d", path, pos)), http.StatusNotFound, "not-found", "")
		}
		// The test key sees its own (empty) account.
		require.Equal(t, []string{}, entryRefs(t, e, test.Secret, fmt.Sprintf("/v1/accounts/%s/ledger-entries?min_position=%d", sandboxed.ID, pos)))
	})

	t.Run("invalid queries", func(t *testing.T) {
		cursor := base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"a":"acct_x"}`))
		for q, field := range map[string]string{
			"kind=gift":                     "query:kind",
			"kind=INVOICE":                  "query:kind",
			"from=2026-02-30":               "query:from",
			"to=yesterday":                  "query:to",
			"from=2026-02-02&to=2026-02-01": "query:to",
			"cursor=" + cursor:              "query:cursor",
			"limit=0":                       "query:limit",
		} {
			requireInvalid(t, e.get(t, k.Secret, base+"&"+q), field)
		}
	})
}

func TestEntriesAmend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Amendments")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	e.postEntries(t, k.Secret,
		map[string]any{"account_id": acct.ID, "reference": "INV-1", "kind": "invoice", "amount": "100.00", "due_date": "2026-01-01"},
		map[string]any{"account_id": acct.ID, "reference": "FEE-1", "kind": "fee", "amount": "10.00", "target_reference": "INV-1"},
		map[string]any{"account_id": acct.ID, "reference": "ADJ-1", "kind": "adjustment", "amount": "3.00"},
		map[string]any{"account_id": acct.ID, "reference": "PAY-E", "kind": "payment", "amount": "5.00"})
	e.createPayment(t, k.Secret, acct.ID, map[string]any{"amount": "25.00"})
	amend := func(ref string, body any) *response {
		return e.post(t, k.Secret, "/v1/accounts/"+acct.ID+"/ledger-entries/"+url.PathEscape(ref)+"/amend", body)
	}
	events := func() int { return e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1`, acct.ID) }
	require.Equal(t, "83.00", e.balance(t, k.Secret, acct.ID, "2026-01-01").Outstanding) // 100 + 10 + 3 − 5 − 25

	t.Run("lower an invoice", func(t *testing.T) {
		r := amend("INV-1", map[string]any{"amount": "80.00", "reason": "price corrected"})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		pos := r.position(t)
		var got ledgerEntry
		r.decode(t, &got)
		require.Equal(t, []string{"80.00", "30.00", "50.00"}, []string{got.Amount, got.Paid, got.Remaining})
		require.Equal(t, 1, got.AmendmentCount)
		require.Nil(t, got.SettledAt)
		b := e.balance(t, k.Secret, acct.ID, "2026-01-01")
		require.Equal(t, []string{"80.00", "63.00"}, []string{b.Invoiced, b.Outstanding})
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'ledger_entry.amended'
			AND data->>'reference' = 'INV-1' AND data->>'reason' = 'price corrected'
			AND (data->>'amount')::numeric = 80 AND (data->>'previous_amount')::numeric = 100`, acct.ID))
		// The read model shows what the command answered.
		read := e.get(t, k.Secret, fmt.Sprintf("/v1/accounts/%s/ledger-entries/INV-1?min_position=%d", acct.ID, pos))
		require.Equal(t, http.StatusOK, read.Status, "%s", read.Body)
		require.Equal(t, r.object(t), read.object(t))
		a := e.get(t, k.Secret, fmt.Sprintf("/v1/accounts/%s?min_position=%d", acct.ID, pos)).object(t)
		require.Equal(t, []any{"80.00", "63.00"}, []any{a["invoiced"], a["outstanding"]})
	})

	t.Run("raise a fee", func(t *testing.T) {
		r := amend("FEE-1", map[string]any{"amount": "12.5", "reason": "rate change"})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		var got ledgerEntry
		r.decode(t, &got)
		require.Equal(t, []string{"12.50", "12.50"}, []string{got.Amount, got.Remaining})
		require.Equal(t, "65.50", e.balance(t, k.Secret, acct.ID, "2026-01-01").Outstanding)
	})

	t.Run("the same amount again records nothing", func(t *testing.T) {
		before := events()
		for _, amount := range []string{"80.00", "80", "80.0"} {
			r := amend("INV-1", map[string]any{"amount": amount, "reason": "again"})
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			require.Empty(t, r.Header.Get(api.HeaderPosition))
			var got ledgerEntry
			r.decode(t, &got)
			require.Equal(t, []any{"80.00", 1}, []any{got.Amount, got.AmendmentCount})
		}
		require.Equal(t, before, events())
	})

	t.Run("refused", func(t *testing.T) {
		before := events()
		ok := map[string]any{"amount": "50.00", "reason": "r"}
		requireProblem(t, amend("NOPE", ok), http.StatusNotFound, "not-found", "")
		requireProblem(t, amend("NOPE", map[string]any{"amount": "x"}), http.StatusNotFound, "not-found", "") // whatever the body
		requireProblem(t, e.post(t, k.Secret, "/v1/accounts/"+e.freshID(acct.ID)+"/ledger-entries/INV-1/amend", ok), http.StatusNotFound, "not-found", "")
		requireProblem(t, e.post(t, k.Secret, "/v1/accounts/dbt_x/ledger-entries/INV-1/amend", ok), http.StatusNotFound, "not-found", "")
		requireProblem(t, e.post(t, test.Secret, "/v1/accounts/"+acct.ID+"/ledger-entries/INV-1/amend", ok), http.StatusNotFound, "not-found", "")
		for _, ref := range []string{"PAY-E", "ADJ-1"} {
			requireProblem(t, amend(ref, ok), http.StatusConflict, "conflict", "not_amendable")
		}
		requireProblem(t, amend("INV-1", map[string]any{"amount": "29.99", "reason": "too low"}), http.StatusConflict, "conflict", "below_paid")
		for _, c := range []struct {
			body   any
			fields []string
		}{
			{map[string]any{"amount": "80.001", "reason": "r"}, []string{"amount"}},
			{map[string]any{"amount": "1e2", "reason": "r"}, []string{"amount"}},
			{map[string]any{"amount": "0", "reason": "r"}, []string{"amount"}},
			{map[string]any{"amount": "-5.00", "reason": "r"}, []string{"amount"}},
			{map[string]any{"amount": 80, "reason": "r"}, []string{"amount"}},
			{map[string]any{"reason": "r"}, []string{"amount"}},
			{map[string]any{"amount": "50.00"}, []string{"reason"}},
			{map[string]any{"amount": "50.00", "reason": "  "}, []string{"reason"}},
			{map[string]any{"amount": "50.001"}, []string{"amount", "reason"}},
			{map[string]any{}, []string{"amount", "reason"}},
			{map[string]any{"amount": "50.00", "reason": "r", "why": "x"}, []string{"why"}},
			{"", []string{"body"}},
		} {
			for _, ref := range []string{"INV-1", "PAY-E"} { // the body is checked before the entry's kind
				p := requireInvalid(t, amend(ref, c.body), c.fields[0])
				var got []string
				for _, fe := range p.Errors {
					got = append(got, fe.Field)
				}
				require.Equal(t, c.fields, got, "%v", c.body)
			}
		}
		require.Equal(t, before, events())
	})

	t.Run("down to what is paid settles it", func(t *testing.T) {
		r := amend("INV-1", map[string]any{"amount": "30.00", "reason": "settled"})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		var got ledgerEntry
		r.decode(t, &got)
		require.Equal(t, []any{"0.00", 2}, []any{got.Remaining, got.AmendmentCount})
		require.NotNil(t, got.SettledAt)
		read := e.entry(t, k.Secret, acct.ID, "INV-1", r.position(t))
		require.Equal(t, got, read)
	})

	t.Run("not below what pending payments reserve", func(t *testing.T) {
		// Owed: 12.50 (FEE-1) + 3.00 (ADJ-1) = 15.50, of which 10.00 pending.
		e.createPayment(t, k.Secret, acct.ID, map[string]any{"amount": "10.00", "status": "pending"})
		before := events()
		requireProblem(t, amend("FEE-1", map[string]any{"amount": "2.50", "reason": "r"}), http.StatusConflict, "conflict", "payments_pending")
		require.Equal(t, before, events())
		r := amend("FEE-1", map[string]any{"amount": "7.50", "reason": "r"}) // leaves exactly 10.50
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	})
}

func TestPaymentLists(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Payment lists")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	other := e.key(t, e.tenant(t, "Other").ID, eventstore.NewKey{Name: "other"})
	d1 := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Ada", "last_name": "One"})
	d2 := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Bo", "last_name": "Two"})
	open := func(secret string, debtors ...string) account {
		if debtors == nil {
			debtors = []string{}
		}
		a := e.createAccount(t, secret, map[string]any{"currency": "EUR", "debtor_ids": debtors})
		e.postEntries(t, secret, map[string]any{"account_id": a.ID, "reference": "INV-1", "kind": "invoice", "amount": "100.00", "due_date": "2026-01-01"})
		return a
	}
	a, b := open(k.Secret, d1.ID), open(k.Secret, d2.ID)
	sandboxed, foreign := open(test.Secret), open(other.Secret)
	var last int64
	pay := func(secret, accountID, ref, amount, status, method, provider string) payment {
		p := e.createPayment(t, secret, accountID, map[string]any{"reference": ref, "amount": amount, "status": status, "method": method, "provider": provider})
		last = max(last, p.Position)
		return p
	}
	action := func(p payment, what string) {
		r := e.paymentAction(t, k.Secret, p.ID, what, p.Position, map[string]any{"reason": what})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		last = max(last, r.position(t))
	}
	pay(k.Secret, a.ID, "A-1", "10.00", "completed", "card", "stripe")
	pay(k.Secret, a.ID, "A-2", "5.00", "pending", "bank_transfer", "acme")
	action(pay(k.Secret, a.ID, "A-3", "3.00", "processing", "card", ""), "fail")
	action(pay(k.Secret, a.ID, "A-4", "4.00", "completed", "direct_debit", "stripe"), "refund")
	pay(k.Secret, b.ID, "B-1", "7.00", "completed", "card", "acme")
	action(pay(k.Secret, b.ID, "B-2", "6.00", "completed", "bank_transfer", ""), "chargeback")
	pay(test.Secret, sandboxed.ID, "T-1", "1.00", "completed", "card", "")
	pay(other.Secret, foreign.ID, "O-1", "1.00", "completed", "card", "")
	wait := fmt.Sprintf("?min_position=%d", last)
	all := []string{"A-1", "A-2", "A-3", "A-4", "B-1", "B-2"}

	t.Run("GET /v1/payments", func(t *testing.T) {
		for q, want := range map[string][]string{
			"":                                          all,
			"&account_id=" + a.ID:                       {"A-1", "A-2", "A-3", "A-4"},
			"&account_id=" + b.ID:                       {"B-1", "B-2"},
			"&account_id=" + foreign.ID:                 {},
			"&status=completed":                         {"A-1", "B-1"},
			"&status=pending":                           {"A-2"},
			"&status=processing":                        {},
			"&status=failed":                            {"A-3"},
			"&status=refunded":                          {"A-4"},
			"&status=charged_back":                      {"B-2"},
			"&method=card":                              {"A-1", "A-3", "B-1"},
			"&method=bank_transfer":                     {"A-2", "B-2"},
			"&method=direct_debit":                      {"A-4"},
			"&provider=acme":                            {"A-2", "B-1"},
			"&provider=stripe":                          {"A-1", "A-4"},
			"&reference=B-2":                            {"B-2"},
			"&reference=T-1":                            {},
			"&debtor_id=" + d1.ID:                       {"A-1", "A-2", "A-3", "A-4"},
			"&debtor_id=" + d2.ID:                       {"B-1", "B-2"},
			"&debtor_id=" + e.freshID(d1.ID):            {},
			"&account_id=" + a.ID + "&status=completed": {"A-1"},
			"&debtor_id=" + d2.ID + "&method=card":      {"B-1"},
			"&limit=4":                                  all,
		} {
			require.Equal(t, want, paymentRefs(t, e, k.Secret, "/v1/payments"+wait+q), q)
		}
		_, sizes := walk(t, e, k.Secret, "/v1/payments"+wait+"&limit=4", func(v listedPayment) string { return v.ID })
		require.Equal(t, []int{4, 2}, sizes)
		var page []listedPayment
		e.listPage(t, k.Secret, "/v1/payments"+wait+"&reference=A-4", &page)
		require.Equal(t, []listedPayment{{page[0].ID, a.ID, "A-4", "refunded", "4.00"}}, page)
		// Other modes and tenants see only their own.
		require.Equal(t, []string{"T-1"}, paymentRefs(t, e, test.Secret, "/v1/payments"+wait))
		require.Equal(t, []string{"O-1"}, paymentRefs(t, e, other.Secret, "/v1/payments"+wait))
	})

	t.Run("GET /v1/accounts/{id}/payments", func(t *testing.T) {
		path := "/v1/accounts/" + a.ID + "/payments" + wait
		for q, want := range map[string][]string{
			"":                 {"A-1", "A-2", "A-3", "A-4"},
			"&status=refunded": {"A-4"},
			"&method=card":     {"A-1", "A-3"},
			"&provider=stripe": {"A-1", "A-4"},
			"&reference=A-2":   {"A-2"},
			"&reference=B-1":   {},
			"&limit=3":         {"A-1", "A-2", "A-3", "A-4"},
		} {
			require.Equal(t, want, paymentRefs(t, e, k.Secret, path+q), q)
		}
		_, sizes := walk(t, e, k.Secret, path+"&limit=3", func(v listedPayment) string { return v.ID })
		require.Equal(t, []int{3, 1}, sizes)
		require.Equal(t, []string{"T-1"}, paymentRefs(t, e, test.Secret, "/v1/accounts/"+sandboxed.ID+"/payments"+wait))
		for _, c := range []struct{ secret, id string }{{k.Secret, e.freshID(a.ID)}, {k.Secret, sandboxed.ID}, {k.Secret, foreign.ID}, {test.Secret, a.ID}, {k.Secret, "nope"}} {
			requireProblem(t, e.get(t, c.secret, "/v1/accounts/"+c.id+"/payments"+wait), http.StatusNotFound, "not-found", "")
		}
	})

	t.Run("recorded dates", func(t *testing.T) {
		for ref, at := range map[string]string{"A-1": "2020-03-01T23:59:59.999999Z", "A-2": "2020-03-02T00:00:00Z", "B-1": "2020-03-03T10:00:00Z"} {
			_, err := e.pool.Exec(context.Background(), `UPDATE payments SET recorded_at = $2 WHERE reference = $1`, ref, at)
			require.NoError(t, err)
		}
		for q, want := range map[string][]string{
			"&from=2020-03-02&to=2020-03-02": {"A-2"},
			"&to=2020-03-02":                 {"A-1", "A-2"},
			"&from=2020-03-02&to=2020-03-03": {"A-2", "B-1"},
			"&from=2020-03-04":               {"A-3", "A-4", "B-2"},
			"&to=2020-02-29":                 {},
			"&from=2020-03-01&method=card":   {"A-1", "A-3", "B-1"},
		} {
			require.Equal(t, want, paymentRefs(t, e, k.Secret, "/v1/payments"+wait+q), q)
		}
		require.Equal(t, []string{"A-1"}, paymentRefs(t, e, k.Secret, "/v1/accounts/"+a.ID+"/payments"+wait+"&to=2020-03-01"))
	})

	t.Run("invalid queries", func(t *testing.T) {
		for _, path := range []string{"/v1/payments" + wait, "/v1/accounts/" + a.ID + "/payments" + wait} {
			for q, field := range map[string]string{
				"&status=done":                   "query:status",
				"&status=COMPLETED":              "query:status",
				"&from=2020-13-01":               "query:from",
				"&to=2020-03-01T00:00:00Z":       "query:to",
				"&from=2020-03-02&to=2020-03-01": "query:to",
				"&limit=201":                     "query:limit",
			} {
				requireInvalid(t, e.get(t, k.Secret, path+q), field)
			}
		}
	})
}

// TestHotAccount: 50 clients each record 200 payments of 1.00 at once on
// ONE account owing 9,000.00. Exactly 9,000 are recorded and 1,000 refused
// as overpayments; no update is lost: the stream holds exactly the events
// of the recorded payments, and the balance and the read models agree.
// The 10,000 requests take about 100 s under -race on a 2-core machine
// (about 65 s without): with -short, each client sends 20.
func TestHotAccount(t *testing.T) {
	t.Parallel()
	clients, perClient := 50, 200
	if testing.Short() {
		perClient = 20
	}
	owed := clients * perClient * 9 / 10 // whole hundreds, in three equal invoices
	e := newEnv(t, envOptions{projector: true, maxConns: 20, config: api.Config{WaitLimit: time.Minute}})
	ten := e.tenant(t, "Hot account")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	var entries []map[string]any
	for i := range 3 {
		entries = append(entries, map[string]any{"account_id": acct.ID, "reference": fmt.Sprintf("INV-%d", i+1), "kind": "invoice",
			"amount": fmt.Sprintf("%d.00", owed/3), "due_date": fmt.Sprintf("2026-0%d-01", i+1)})
	}
	e.postEntries(t, k.Secret, entries...)

	var created, refused atomic.Int64
	var maxPos atomic.Int64
	var failOnce sync.Once
	fail := func(format string, args ...any) { failOnce.Do(func() { t.Errorf(format, args...) }) }
	start := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			<-start
			for i := range perClient {
				r, err := e.trySend(req{Method: http.MethodPost, Path: "/v1/accounts/" + acct.ID + "/payments", Auth: k.Secret,
					Body: fmt.Sprintf(`{"amount":"1.00","reference":"HOT-%02d-%03d","status":"completed"}`, c, i)})
				if err != nil {
					fail("payment %d/%d: %v", c, i, err)
					return
				}
				switch r.Status {
				case http.StatusCreated:
					created.Add(1)
					var pos int64
					if _, err := fmt.Sscan(r.Header.Get(api.HeaderPosition), &pos); err != nil {
						fail("payment %d/%d: Arrears-Position %q", c, i, r.Header.Get(api.HeaderPosition))
					}
					for {
						cur := maxPos.Load()
						if pos <= cur || maxPos.CompareAndSwap(cur, pos) {
							break
						}
					}
				case http.StatusUnprocessableEntity:
					refused.Add(1)
					var p problem
					if err := json.Unmarshal(r.Body, &p); err != nil || len(p.Errors) != 1 || p.Errors[0].Field != "amount" ||
						!strings.Contains(p.Errors[0].Error, "exceeds what the account owes") {
						fail("payment %d/%d: refused, but not as an overpayment: %s", c, i, r.Body)
					}
				default:
					fail("payment %d/%d: %s", c, i, r)
				}
			}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d payments from %d clients on one account in %s", clients*perClient, clients, time.Since(began).Round(time.Millisecond))
	require.False(t, t.Failed())
	require.EqualValues(t, owed, created.Load())
	require.EqualValues(t, clients*perClient-owed, refused.Load())

	// The command side: every recorded payment, nothing else.
	b := e.balance(t, k.Secret, acct.ID, "2026-12-31")
	total := fmt.Sprintf("%d.00", owed)
	require.Equal(t, []string{total, total, "0.00"}, []string{b.Invoiced, b.Paid, b.Outstanding})
	version := 1 + 3 + 2*owed // opened, the invoices, recorded + completed per payment
	require.Equal(t, version, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1`, acct.ID))
	require.Equal(t, version, e.count(t, `SELECT max(stream_version) FROM events WHERE stream_id = $1`, acct.ID))
	require.Equal(t, owed, e.count(t, `SELECT count(DISTINCT data->'payment'->>'reference') FROM events WHERE stream_id = $1 AND type = 'payment.recorded'`, acct.ID))
	require.Equal(t, owed, e.count(t, `SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'payment.completed'`, acct.ID))

	// The read models, once they have every payment.
	wait := fmt.Sprintf("?min_position=%d", maxPos.Load())
	r := e.get(t, k.Secret, "/v1/accounts/"+acct.ID+wait)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	a := r.object(t)
	require.Equal(t, []any{total, "0.00", float64(version)}, []any{a["paid"], a["outstanding"], a["version"]})
	ids, sizes := walk(t, e, k.Secret, "/v1/accounts/"+acct.ID+"/payments"+wait+"&status=completed&limit=200", func(v listedPayment) string { return v.Reference })
	require.Len(t, ids, owed)
	require.Len(t, sizes, (owed+199)/200)
	seen := map[string]bool{}
	for _, ref := range ids {
		require.False(t, seen[ref], "payment %s listed twice", ref)
		seen[ref] = true
	}
	require.Empty(t, paymentRefs(t, e, k.Secret, "/v1/payments"+wait+"&status=pending"))
	var invoices []ledgerEntry
	e.listPage(t, k.Secret, "/v1/accounts/"+acct.ID+"/ledger-entries"+wait, &invoices)
	require.Len(t, invoices, 3)
	for _, inv := range invoices {
		require.Equal(t, []string{fmt.Sprintf("%d.00", owed/3), "0.00"}, []string{inv.Paid, inv.Remaining}, inv.Reference)
		require.NotNil(t, inv.SettledAt)
	}
}
