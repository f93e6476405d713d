package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type transaction struct {
	ID             string `json:"id"`
	AccountID      string `json:"account_id"`
	Kind           string `json:"kind"`
	Amount         string `json:"amount"`
	Currency       string `json:"currency"`
	EntryReference string `json:"entry_reference"`
	PaymentID      string `json:"payment_id"`
}

type statementLine struct {
	AccountID string  `json:"account_id"`
	Reference string  `json:"reference"`
	Kind      string  `json:"kind"`
	Amount    string  `json:"amount"`
	DueDate   *string `json:"due_date"`
	Remaining string  `json:"remaining"`
}

type statement struct {
	ID             string          `json:"id"`
	DebtorID       string          `json:"debtor_id"`
	Month          string          `json:"month"`
	Currency       string          `json:"currency"`
	PeriodStart    string          `json:"period_start"`
	PeriodEnd      string          `json:"period_end"`
	OpeningBalance string          `json:"opening_balance"`
	Charges        string          `json:"charges"`
	Credits        string          `json:"credits"`
	ClosingBalance string          `json:"closing_balance"`
	Due            string          `json:"due"`
	Status         string          `json:"status"`
	LineCount      int             `json:"line_count"`
	Lines          []statementLine `json:"lines"`
}

// listAll pages through a list endpoint (query without cursor) with
// ?limit=, returning every item.
func listAll[T any](t *testing.T, e *env, secret, path string, limit int) []T {
	t.Helper()
	var out []T
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 100, "paging %s does not end", path)
		p := fmt.Sprintf("%s&limit=%d", path, limit)
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		r := e.get(t, secret, p)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", p, r.Body)
		var page struct {
			Data       []T     `json:"data"`
			NextCursor *string `json:"next_cursor"`
		}
		r.decode(t, &page)
		out = append(out, page.Data...)
		if page.NextCursor == nil {
			return out
		}
		require.Len(t, page.Data, limit, "a page before the last is full")
		cursor = *page.NextCursor
	}
}

// TestTransactionsAndStatements drives a debtor's accounts through
// entries, payments, an amendment, a refund and a change of debtors, and
// checks GET /v1/transactions and /v1/statements against the figures
// worked out by hand.
func TestTransactionsAndStatements(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Statements")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	month := time.Now().UTC().Format("2006-01")

	d := e.createDebtor(t, k.Secret, map[string]any{"first_name": "Erika", "last_name": "Mustermann"})
	wait := fmt.Sprintf("min_position=%d", d.Position)
	a1 := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "debtor_ids": []string{d.ID}}, wait)
	a2 := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR", "debtor_ids": []string{d.ID}}, wait)
	a3 := e.createAccount(t, k.Secret, map[string]any{"currency": "USD", "debtor_ids": []string{d.ID}}, wait)
	a4 := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	e.postEntries(t, k.Secret,
		map[string]any{"account_id": a1.ID, "reference": "INV-1", "kind": "invoice", "amount": "100.00", "due_date": "2026-01-01"},
		map[string]any{"account_id": a1.ID, "reference": "FEE-1", "kind": "fee", "amount": "5.50", "target_reference": "INV-1"},
		map[string]any{"account_id": a1.ID, "reference": "REP-1", "kind": "reporting", "amount": "9.00"},
		map[string]any{"account_id": a2.ID, "reference": "INV-2", "kind": "invoice", "amount": "50.00", "due_date": "2026-02-01"},
		map[string]any{"account_id": a2.ID, "reference": "PAYENT-2", "kind": "payment", "amount": "50.00"},
		map[string]any{"account_id": a3.ID, "reference": "INV-3", "kind": "invoice", "amount": "20.00", "due_date": "2026-03-01"},
		map[string]any{"account_id": a4.ID, "reference": "INV-4", "kind": "invoice", "amount": "10.00", "due_date": "2026-03-01"},
	)
	pay1 := e.createPayment(t, k.Secret, a1.ID, map[string]any{"amount": "30.00"})
	pay2 := e.createPayment(t, k.Secret, a1.ID, map[string]any{"amount": "10.00"})
	r := e.post(t, k.Secret, fmt.Sprintf("/v1/accounts/%s/ledger-entries/FEE-1/amend?min_position=%d", a1.ID, pay2.Position),
		map[string]any{"amount": "6.00", "reason": "fee schedule"})
	require.Equal(t, http.StatusOK, r.Status, "amend: %s", r.Body)
	r = e.paymentAction(t, k.Secret, pay2.ID, "refund", pay2.Position, map[string]any{"reason": "goodwill"})
	require.Equal(t, http.StatusOK, r.Status, "refund: %s", r.Body)
	last := r.position(t)
	if time.Now().UTC().Format("2006-01") != month {
		t.Skip("the month turned while the test wrote: its statements span two months")
	}
	at := fmt.Sprintf("?min_position=%d", last)

	// Transactions: one per money-moving event, signed; an account's sum
	// to its outstanding (76.00 = 100 + 6 - 30).
	txns := listAll[transaction](t, e, k.Secret, "/v1/transactions"+at+"&account_id="+a1.ID, 2)
	var kinds []string
	for _, x := range txns {
		kinds = append(kinds, x.Kind+" "+x.Amount+" "+x.EntryReference+x.PaymentID)
		require.Equal(t, "EUR", x.Currency)
		require.True(t, domain.HasPrefix(x.ID, domain.PrefixEvent), x.ID)
	}
	require.Equal(t, []string{"invoice 100.00 INV-1", "fee 5.50 FEE-1", "payment -30.00 " + pay1.ID, "payment -10.00 " + pay2.ID,
		"amendment 0.50 FEE-1", "refund 10.00 " + pay2.ID}, kinds)
	require.Len(t, listAll[transaction](t, e, k.Secret, "/v1/transactions"+at+"&debtor_id="+d.ID, 4), 6+2+1, "a4 has no debtor")
	require.Len(t, listAll[transaction](t, e, k.Secret, "/v1/transactions"+at, 50), 6+2+1+1)
	both := listAll[transaction](t, e, k.Secret, "/v1/transactions"+at+"&kind=refund,amendment", 50)
	require.Len(t, both, 2)
	today := time.Now().UTC().Format(time.DateOnly)
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	require.Len(t, listAll[transaction](t, e, k.Secret, "/v1/transactions"+at+"&from="+tomorrow, 50), 0)
	require.Len(t, listAll[transaction](t, e, k.Secret, "/v1/transactions"+at+"&to=2020-01-01", 50), 0)
	if time.Now().UTC().Format(time.DateOnly) == today {
		require.Len(t, listAll[transaction](t, e, k.Secret, "/v1/transactions"+at+"&from="+today+"&to="+today, 50), 10)
	}
	requireInvalid(t, e.get(t, k.Secret, "/v1/transactions?kind=reporting"), "query:kind")
	requireInvalid(t, e.get(t, k.Secret, "/v1/transactions?from=2026-13-01"), "query:from")

	// Statements: one per month and currency of the debtor; a4 is not its.
	stmts := listAll[statement](t, e, k.Secret, "/v1/statements"+at+"&debtor_id="+d.ID, 1)
	require.Len(t, stmts, 2)
	byCurrency := map[string]statement{}
	for _, s := range stmts {
		require.Equal(t, month, s.Month)
		require.Equal(t, d.ID, s.DebtorID)
		require.Nil(t, s.Lines, "lists carry no lines")
		byCurrency[s.Currency] = s
	}
	eur, usd := byCurrency["EUR"], byCurrency["USD"]
	require.Equal(t, domain.StatementID(d.ID, month, "EUR"), eur.ID)
	require.Equal(t, month+"-01", eur.PeriodStart)
	// EUR: charges INV-1 100 + FEE-1 6 + INV-2 50 + the refund 10; credits
	// the payment entry 50 + the payments 30 and 10. Due: INV-1 70 (the
	// refunded payment re-opened its 10) + FEE-1 6.
	require.Equal(t, []string{"0.00", "166.00", "90.00", "76.00", "76.00", "partially_paid"},
		[]string{eur.OpeningBalance, eur.Charges, eur.Credits, eur.ClosingBalance, eur.Due, eur.Status})
	require.Equal(t, 7, eur.LineCount)
	require.Equal(t, []string{"0.00", "20.00", "0.00", "20.00", "20.00", "open"},
		[]string{usd.OpeningBalance, usd.Charges, usd.Credits, usd.ClosingBalance, usd.Due, usd.Status})

	r = e.get(t, k.Secret, "/v1/statements/"+eur.ID+at)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var full statement
	r.decode(t, &full)
	lines := map[string]statementLine{}
	for _, l := range full.Lines {
		lines[l.Reference+" "+l.Kind] = l
	}
	require.Len(t, full.Lines, 7, "%s", r.Body)
	require.Equal(t, "100.00/70.00", lines["INV-1 invoice"].Amount+"/"+lines["INV-1 invoice"].Remaining)
	require.Equal(t, "2026-01-01", *lines["INV-1 invoice"].DueDate)
	require.Equal(t, "6.00/6.00", lines["FEE-1 fee"].Amount+"/"+lines["FEE-1 fee"].Remaining)
	require.Equal(t, "50.00/0.00", lines["INV-2 invoice"].Amount+"/"+lines["INV-2 invoice"].Remaining)
	require.Equal(t, "-50.00", lines["PAYENT-2 payment"].Amount)
	require.Equal(t, "-30.00", lines[pay1.ID+" payment"].Amount)
	require.Equal(t, "-10.00", lines[pay2.ID+" payment"].Amount)
	require.Equal(t, "10.00", lines[pay2.ID+" refund"].Amount)
	require.Nil(t, lines[pay2.ID+" refund"].DueDate)

	// Filters.
	filtered := func(q string) []string {
		var ids []string
		for _, s := range listAll[statement](t, e, k.Secret, "/v1/statements"+at+"&debtor_id="+d.ID+q, 50) {
			ids = append(ids, s.Currency)
		}
		return ids
	}
	require.Equal(t, []string{"USD"}, filtered("&status=open"))
	require.Equal(t, []string{"EUR"}, filtered("&status=partially_paid,paid"))
	require.Equal(t, []string{"USD"}, filtered("&currency=usd"))
	require.Empty(t, filtered("&from="+time.Now().UTC().AddDate(0, 1, 0).Format("2006-01")))
	require.Len(t, filtered("&from="+month+"&to="+month+"-15"), 2)
	requireInvalid(t, e.get(t, k.Secret, "/v1/statements?status=late"), "query:status")
	requireInvalid(t, e.get(t, k.Secret, "/v1/statements?from=2026-1"), "query:from")
	requireProblem(t, e.get(t, k.Secret, "/v1/statements/stm_nonsense"), http.StatusNotFound, "not-found", "")
	requireProblem(t, e.get(t, k.Secret, "/v1/statements/"+domain.StatementID(d.ID, "1999-01", "EUR")), http.StatusNotFound, "not-found", "")

	// The debtor leaves a2: its statements are restated without a2's lines.
	r = e.patch(t, k.Secret, fmt.Sprintf("/v1/accounts/%s?min_position=%d", a2.ID, last), map[string]any{"debtor_ids": []string{}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	at = fmt.Sprintf("?min_position=%d", r.position(t))
	r = e.get(t, k.Secret, "/v1/statements/"+eur.ID+at)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	r.decode(t, &full)
	require.Equal(t, []string{"116.00", "40.00", "76.00", "76.00", "partially_paid"},
		[]string{full.Charges, full.Credits, full.ClosingBalance, full.Due, full.Status})
	require.Len(t, full.Lines, 5)
	require.Len(t, listAll[transaction](t, e, k.Secret, "/v1/transactions"+at+"&debtor_id="+d.ID, 50), 6+1)

	// Another mode's statements are not this key's.
	test := e.key(t, ten.ID, eventstore.NewKey{Name: "test", Mode: domain.ModeTest})
	require.Empty(t, listAll[statement](t, e, test.Secret, "/v1/statements"+at, 50))
	requireProblem(t, e.get(t, test.Secret, "/v1/statements/"+eur.ID), http.StatusNotFound, "not-found", "")
	require.Empty(t, listAll[transaction](t, e, test.Secret, "/v1/transactions"+at, 50))
}
