package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
)

// transactionKinds are the kinds a transaction has: every entry kind that
// moves money, an amendment of an invoice or fee, and a completed payment's
// refund or chargeback (a completed payment is kind payment).
var transactionKinds = []string{"invoice", "fee", "payment", "adjustment", "chargeback", "discount", "amendment", "refund"}

// transactionView is a money-moving event of an account. Amount is signed
// by its effect on what the account owes: positive raises it, negative
// lowers it; an account's transactions sum to its outstanding.
type transactionView struct {
	Object         string    `json:"object"`
	ID             string    `json:"id"` // the event's id
	AccountID      string    `json:"account_id"`
	Kind           string    `json:"kind"`
	Amount         string    `json:"amount"`
	Currency       string    `json:"currency"`
	EntryReference string    `json:"entry_reference"`
	PaymentID      string    `json:"payment_id"`
	OccurredAt     time.Time `json:"occurred_at"`
}

// queryFilters collects a list request's query filters and their errors.
type queryFilters struct {
	r  *http.Request
	fe []domain.FieldError
}

func (f *queryFilters) text(name string) string { return strings.TrimSpace(f.r.URL.Query().Get(name)) }

// oneOf is the comma-separated values of name, each one of allowed.
func (f *queryFilters) oneOf(name string, allowed []string) []string {
	v := f.text(name)
	if v == "" {
		return nil
	}
	var out []string
	for _, x := range strings.Split(v, ",") {
		x = strings.TrimSpace(x)
		if !slices.Contains(allowed, x) {
			f.fe = append(f.fe, domain.FieldError{Field: "query:" + name, Error: "each value must be one of " + strings.Join(allowed, ", ")})
			return nil
		}
		out = append(out, x)
	}
	return out
}

// date is name as a YYYY-MM-DD date, nil if absent.
func (f *queryFilters) date(name string) *string {
	v := f.text(name)
	if v == "" {
		return nil
	}
	if _, err := domain.ParseDate(v); err != nil {
		f.fe = append(f.fe, domain.FieldError{Field: "query:" + name, Error: "must be a date, YYYY-MM-DD"})
		return nil
	}
	return &v
}

// month is name as a YYYY-MM month (a YYYY-MM-DD date names its month), ""
// if absent.
func (f *queryFilters) month(name string) string {
	v := f.text(name)
	if v == "" {
		return ""
	}
	if len(v) == len("2006-01-02") {
		if _, err := domain.ParseDate(v); err == nil {
			return v[:7]
		}
	} else if _, err := time.Parse("2006-01", v); err == nil {
		return v
	}
	f.fe = append(f.fe, domain.FieldError{Field: "query:" + name, Error: "must be a month, YYYY-MM (or a date in it, YYYY-MM-DD)"})
	return ""
}

func (f *queryFilters) err(what string) error {
	if len(f.fe) > 0 {
		return domain.Invalid("invalid "+what+" filters", f.fe...)
	}
	return nil
}

// listTransactions: GET /v1/transactions — every money-moving event of the
// caller's tenant and mode, oldest first, filtered by account_id,
// debtor_id, kind (comma-separated), from and to (dates, UTC, inclusive).
func (s *Server) listTransactions(w http.ResponseWriter, r *http.Request) {
	f := &queryFilters{r: r}
	account, debtor := f.text("account_id"), f.text("debtor_id")
	kinds, from, to := f.oneOf("kind", transactionKinds), f.date("from"), f.date("to")
	pg, ok := s.startList(w, r, func() error { return f.err("transaction") }, "ledger")
	if !ok {
		return
	}
	p := principal(r)
	rows, err := s.store.Pool().Query(r.Context(), `
		SELECT t.id, t.account_id, t.kind, t.amount::text, t.currency, t.entry_reference, t.payment_id, t.occurred_at
		FROM transactions t
		WHERE t.tenant_id = $1 AND t.sandbox = $2 AND t.id > $3
		  AND ($4 = '' OR t.account_id = $4)
		  AND ($5::text[] IS NULL OR t.kind = ANY($5))
		  AND ($6::date IS NULL OR t.occurred_at >= $6::date::timestamp AT TIME ZONE 'UTC')
		  AND ($7::date IS NULL OR t.occurred_at < ($7::date + 1)::timestamp AT TIME ZONE 'UTC')
		  AND ($8 = '' OR EXISTS (SELECT 1 FROM accounts a WHERE a.tenant_id = t.tenant_id AND a.id = t.account_id AND a.debtor_ids @> ARRAY[$8]))
		ORDER BY t.id LIMIT $9`, p.TenantID, p.Sandbox(), pg.After, account, kinds, from, to, debtor, pg.Limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	views, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (transactionView, error) {
		v := transactionView{Object: "transaction"}
		var amount string
		if err := row.Scan(&v.ID, &v.AccountID, &v.Kind, &amount, &v.Currency, &v.EntryReference, &v.PaymentID, &v.OccurredAt); err != nil {
			return v, err
		}
		v.OccurredAt = v.OccurredAt.UTC()
		v.Amount, err = formatNumeric(amount, v.Currency)
		return v, err
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v transactionView) string { return v.ID }))
}

// formatNumeric formats a numeric read as text in currency's minor units.
func formatNumeric(s, currency string) (string, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return "", err
	}
	return domain.FormatAmount(d, currency), nil
}

// statementLineView is one movement on a statement.
type statementLineView struct {
	AccountID string       `json:"account_id"`
	Reference string       `json:"reference"` // the entry's reference, or the payment's id
	Kind      string       `json:"kind"`      // the entry's kind, or payment, refund, chargeback
	Date      domain.Date  `json:"date"`
	At        time.Time    `json:"at"`
	Amount    string       `json:"amount"` // + owed, - credited
	DueDate   *domain.Date `json:"due_date"`
	Remaining string       `json:"remaining"` // charges: what is still owed on it
}

// statementView is a debtor's statement of one calendar month and currency.
type statementView struct {
	Object         string              `json:"object"`
	ID             string              `json:"id"`
	DebtorID       string              `json:"debtor_id"`
	Month          string              `json:"month"`
	Currency       string              `json:"currency"`
	PeriodStart    domain.Date         `json:"period_start"`
	PeriodEnd      domain.Date         `json:"period_end"`
	OpeningBalance string              `json:"opening_balance"`
	Charges        string              `json:"charges"`
	Credits        string              `json:"credits"`
	ClosingBalance string              `json:"closing_balance"`
	Due            string              `json:"due"`
	Status         string              `json:"status"`
	LineCount      int                 `json:"line_count"`
	LastActivityAt time.Time           `json:"last_activity_at"`
	Lines          []statementLineView `json:"lines,omitempty"` // GET /v1/statements/{id} only
}

const statementColumns = `id, debtor_id, month, currency, opening_balance::text, charges::text, credits::text, closing_balance::text,
	due::text, status, line_count, last_activity_at`

func scanStatement(row rowScanner) (statementView, error) {
	v := statementView{Object: "statement"}
	money := make([]string, 5)
	if err := row.Scan(&v.ID, &v.DebtorID, &v.Month, &v.Currency, &money[0], &money[1], &money[2], &money[3], &money[4],
		&v.Status, &v.LineCount, &v.LastActivityAt); err != nil {
		return v, err
	}
	for i, dst := range []*string{&v.OpeningBalance, &v.Charges, &v.Credits, &v.ClosingBalance, &v.Due} {
		var err error
		if *dst, err = formatNumeric(money[i], v.Currency); err != nil {
			return v, err
		}
	}
	start, err := time.Parse("2006-01", v.Month)
	if err != nil {
		return v, fmt.Errorf("statement %s: month %q: %w", v.ID, v.Month, err)
	}
	v.PeriodStart, v.PeriodEnd = domain.DateOf(start), domain.DateOf(start.AddDate(0, 1, -1))
	v.LastActivityAt = v.LastActivityAt.UTC()
	return v, nil
}

// listStatements: GET /v1/statements — the statements of the caller's
// tenant and mode, by id (so a debtor's months are together, oldest
// first), filtered by debtor_id, status (comma-separated), currency, and
// from and to (months, inclusive).
func (s *Server) listStatements(w http.ResponseWriter, r *http.Request) {
	f := &queryFilters{r: r}
	debtor, currency := f.text("debtor_id"), f.text("currency")
	statuses := f.oneOf("status", []string{string(domain.StatementOpen), string(domain.StatementPartiallyPaid), string(domain.StatementPaid)})
	from, to := f.month("from"), f.month("to")
	pg, ok := s.startList(w, r, func() error { return f.err("statement") }, "ledger")
	if !ok {
		return
	}
	p := principal(r)
	rows, err := s.store.Pool().Query(r.Context(), `SELECT `+statementColumns+` FROM statements
		WHERE tenant_id = $1 AND sandbox = $2 AND id > $3
		  AND ($4 = '' OR debtor_id = $4)
		  AND ($5::text[] IS NULL OR status = ANY($5))
		  AND ($6 = '' OR currency = $6)
		  AND ($7 = '' OR month >= $7) AND ($8 = '' OR month <= $8)
		ORDER BY id LIMIT $9`, p.TenantID, p.Sandbox(), pg.After, debtor, statuses, strings.ToUpper(currency), from, to, pg.Limit+1)
	views, err := collect(rows, err, scanStatement)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v statementView) string { return v.ID }))
}

// getStatement: GET /v1/statements/{id} — the statement with its lines,
// oldest first.
func (s *Server) getStatement(w http.ResponseWriter, r *http.Request) {
	if err := s.awaitPosition(r, "ledger"); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	ctx := r.Context()
	// One snapshot for the statement and its lines: the projector may
	// commit between two reads.
	var v statementView
	err := pgx.BeginTxFunc(ctx, s.store.Pool(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		v, err = scanStatement(tx.QueryRow(ctx, `SELECT `+statementColumns+` FROM statements WHERE tenant_id = $1 AND sandbox = $2 AND id = $3`,
			p.TenantID, p.Sandbox(), id))
		if err != nil {
			return notFound(err, "statement "+id)
		}
		v.Lines, err = statementLines(ctx, tx, p.TenantID, v)
		return err
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// statementLines reads the lines of statement v from the ledger read
// model, as domain.Statements draws them: every non-reporting entry posted
// in the month, every payment completed in it and every reversal of one;
// by time, then account, then posting order.
func statementLines(ctx context.Context, tx pgx.Tx, tenant string, v statementView) ([]statementLineView, error) {
	start := v.PeriodStart.Time()
	rows, err := tx.Query(ctx, `
		WITH acct AS (SELECT id FROM accounts WHERE tenant_id = $1 AND debtor_ids @> ARRAY[$2] AND currency = $3)
		SELECT l.account_id, l.reference, l.kind, l.posted_at,
			(CASE WHEN l.kind IN ('invoice', 'fee', 'chargeback') OR (l.kind = 'adjustment' AND l.amount > 0) THEN l.amount ELSE -abs(l.amount) END)::text,
			CASE WHEN l.kind IN ('invoice', 'fee') OR (l.kind = 'adjustment' AND l.amount > 0) THEN to_char(l.due_date, 'YYYY-MM-DD') END,
			(CASE WHEN l.kind IN ('invoice', 'fee') OR (l.kind = 'adjustment' AND l.amount > 0) THEN l.amount - l.paid ELSE 0 END)::text,
			l.seq AS ord
		FROM acct JOIN ledger_entries l ON l.tenant_id = $1 AND l.account_id = acct.id
		WHERE l.kind <> 'reporting' AND l.posted_at >= $4 AND l.posted_at < $5
		UNION ALL
		SELECT p.account_id, p.id, 'payment', p.completed_at, (-p.amount)::text, NULL, '0', 0
		FROM acct JOIN payments p ON p.tenant_id = $1 AND p.account_id = acct.id
		WHERE p.completed_at >= $4 AND p.completed_at < $5
		UNION ALL
		SELECT p.account_id, p.id, CASE WHEN p.status = 'charged_back' THEN 'chargeback' ELSE 'refund' END, p.reversed_at, p.amount::text, NULL, '0', 1
		FROM acct JOIN payments p ON p.tenant_id = $1 AND p.account_id = acct.id
		WHERE p.reversed_at >= $4 AND p.reversed_at < $5
		ORDER BY 4, 1, 8, 2`, tenant, v.DebtorID, v.Currency, start, start.AddDate(0, 1, 0))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (statementLineView, error) {
		var l statementLineView
		var amount, remaining string
		var due *string
		var ord int
		if err := row.Scan(&l.AccountID, &l.Reference, &l.Kind, &l.At, &amount, &due, &remaining, &ord); err != nil {
			return l, err
		}
		l.At = l.At.UTC()
		l.Date = domain.DateOf(l.At)
		if due != nil {
			d := domain.Date(*due)
			l.DueDate = &d
		}
		var err error
		if l.Amount, err = formatNumeric(amount, v.Currency); err != nil {
			return l, err
		}
		l.Remaining, err = formatNumeric(remaining, v.Currency)
		return l, err
	})
}
