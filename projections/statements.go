package projections

import (
	"slices"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
)

// This file holds the parts of the Ledger projection that derive the
// transactions and statements tables from the rows the fold changed.
//
// A statement (domain.Statements) sums a debtor's lines of one month and
// currency over every account the debtor is on: each non-reporting entry
// (debits and chargeback entries raise what is owed, the other credits lower
// it), each completed payment and each reversal of one. Its due is what is
// still owed on the month's debits. The fold turns every changed entry and
// payment into the change of its lines (what it adds now less what it added
// when loaded) and adds those deltas to the statements of the account's
// debtors; opening and closing balances and the status then follow from
// the debtor's months in order. A debtor whose set of accounts changed in
// the batch is restated from the tables instead: deltas cannot say which
// lines a newly linked account brings.

// contribution is what a row adds to a statement.
type contribution struct {
	charges, credits, due decimal.Decimal
	lines                 int
}

// net is the contribution's effect on what is owed.
func (c contribution) net() decimal.Decimal { return c.charges.Sub(c.credits) }

// entryContribution is what an entry of kind with amount, of which paid is
// paid, adds to the statement of its posting month; as
// domain.Statements' lines.
func entryContribution(kind domain.EntryKind, amount, paid decimal.Decimal) contribution {
	z := decimal.Zero
	en := domain.Entry{EntryInput: domain.EntryInput{Kind: kind, Amount: amount}}
	switch {
	case kind == domain.KindReporting:
		return contribution{charges: z, credits: z, due: z}
	case en.IsDebit():
		return contribution{charges: amount, credits: z, due: amount.Sub(paid), lines: 1}
	case kind == domain.KindChargeback:
		return contribution{charges: amount, credits: z, due: z, lines: 1}
	default: // payment, discount, negative adjustment
		return contribution{charges: z, credits: amount.Abs(), due: z, lines: 1}
	}
}

// transaction records a money-moving event of account a.
func (f *fold) transaction(e domain.Event, a *accountRow, kind string, amount decimal.Decimal, entryRef, paymentID string, at time.Time) {
	f.transactions = append(f.transactions, transactionRow{tenant: a.tenant, id: e.ID, account: a.id, kind: kind, amount: amount,
		currency: a.currency, entryRef: entryRef, paymentID: paymentID, at: at, sandbox: a.sandbox})
}

// restateChanged marks the debtors that join or leave account a (its
// debtors becoming next) for restatement.
func (f *fold) restateChanged(a *accountRow, next []string) {
	for _, id := range a.debtorIDs {
		if !slices.Contains(next, id) {
			f.restate[debtorKey{a.tenant, id}] = true
		}
	}
	for _, id := range next {
		if !slices.Contains(a.debtorIDs, id) {
			f.restate[debtorKey{a.tenant, id}] = true
		}
	}
}

// statementKey names one statement row.
type statementKey struct{ tenant, debtor, currency, month string }

// statementDelta is a change to one statement row.
type statementDelta struct {
	contribution
	sandbox bool
	last    *time.Time // latest new line, nil if none
}

func month(t time.Time) string { return t.UTC().Format("2006-01") }

// statementDeltas sums the changes of every entry and payment the batch
// touched into the statements of their accounts' debtors (but those being
// restated).
func (f *fold) statementDeltas() map[statementKey]*statementDelta {
	out := map[statementKey]*statementDelta{}
	add := func(tenant, account, m string, c contribution, line *time.Time) {
		if c.charges.IsZero() && c.credits.IsZero() && c.due.IsZero() && c.lines == 0 {
			return
		}
		a := f.accounts[streamKey{tenant, account}]
		if a == nil {
			return
		}
		for _, d := range a.debtorIDs {
			if f.restate[debtorKey{tenant, d}] {
				continue
			}
			k := statementKey{tenant, d, a.currency, m}
			sd := out[k]
			if sd == nil {
				z := decimal.Zero
				sd = &statementDelta{contribution: contribution{charges: z, credits: z, due: z}, sandbox: a.sandbox}
				out[k] = sd
			}
			sd.sandbox = sd.sandbox || a.sandbox
			sd.charges, sd.credits, sd.due = sd.charges.Add(c.charges), sd.credits.Add(c.credits), sd.due.Add(c.due)
			sd.lines += c.lines
			if line != nil && (sd.last == nil || line.After(*sd.last)) {
				sd.last = line
			}
		}
	}
	for _, e := range f.order.entries {
		now := entryContribution(e.kind, e.amount, e.paid)
		if e.isNew {
			add(e.key.tenant, e.key.account, month(e.postedAt), now, &e.postedAt)
			continue
		}
		was := entryContribution(e.kind, e.amount0, e.paid0)
		add(e.key.tenant, e.key.account, month(e.postedAt), contribution{
			charges: now.charges.Sub(was.charges), credits: now.credits.Sub(was.credits), due: now.due.Sub(was.due)}, nil)
	}
	z := decimal.Zero
	for _, p := range f.order.payments {
		if p.completedAt != nil && p.completedAt0 == nil {
			add(p.key.tenant, p.account, month(*p.completedAt), contribution{charges: z, credits: p.amount, due: z, lines: 1}, p.completedAt)
		}
		if p.reversedAt != nil && p.reversedAt0 == nil {
			add(p.key.tenant, p.account, month(*p.reversedAt), contribution{charges: p.amount, credits: z, due: z, lines: 1}, p.reversedAt)
		}
	}
	return out
}

// transactionColumns are the columns of the rows transactionRows returns.
var transactionColumns = []string{"tenant_id", "id", "sandbox", "account_id", "kind", "amount", "currency", "entry_reference", "payment_id", "occurred_at"}

// transactionRows are the batch's transactions, to copy into the table.
func (f *fold) transactionRows() [][]any {
	rows := make([][]any, len(f.transactions))
	for i, t := range f.transactions {
		rows[i] = []any{t.tenant, t.id, t.sandbox, t.account, t.kind, pgNumeric(t.amount), t.currency, t.entryRef, t.paymentID, t.at}
	}
	return rows
}

// statementLines selects the lines of the statements of the debtors in
// unnest($1 tenants, $2 debtor ids), as domain.Statements draws them.
const statementLines = `
	WITH d (t, i) AS (SELECT * FROM unnest($1::text[], $2::text[])),
	acct AS (
		SELECT d.t, d.i, a.id, a.sandbox, a.currency FROM d JOIN accounts a ON a.tenant_id = d.t AND a.debtor_ids @> ARRAY[d.i]
	)
	SELECT acct.t, acct.i, acct.sandbox, acct.currency, l.posted_at AS at,
		CASE WHEN l.kind IN ('invoice', 'fee', 'chargeback') OR (l.kind = 'adjustment' AND l.amount > 0) THEN l.amount ELSE -abs(l.amount) END AS amount,
		CASE WHEN l.kind IN ('invoice', 'fee') OR (l.kind = 'adjustment' AND l.amount > 0) THEN l.amount - l.paid ELSE 0 END AS remaining
	FROM acct JOIN ledger_entries l ON l.tenant_id = acct.t AND l.account_id = acct.id AND l.kind <> 'reporting'
	UNION ALL
	SELECT acct.t, acct.i, acct.sandbox, acct.currency, p.completed_at, -p.amount, 0
	FROM acct JOIN payments p ON p.tenant_id = acct.t AND p.account_id = acct.id AND p.completed_at IS NOT NULL
	UNION ALL
	SELECT acct.t, acct.i, acct.sandbox, acct.currency, p.reversed_at, p.amount, 0
	FROM acct JOIN payments p ON p.tenant_id = acct.t AND p.account_id = acct.id AND p.reversed_at IS NOT NULL`

// queueStatements writes the statements the batch changed: deltas added
// and the balances and status re-chained from the first month they change,
// restated debtors recomputed from the tables (queued after the writes of
// the tables, so it reads them) with their balances and status. Each row
// is written at most once.
func (f *fold) queueStatements(queue func(want int, sql string, args ...any)) {
	deltas := f.statementDeltas()
	keys := make([]statementKey, 0, len(deltas))
	for k := range deltas {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { // a stable order of row locks
		a, b := keys[i], keys[j]
		if a.tenant != b.tenant {
			return a.tenant < b.tenant
		}
		if a.debtor != b.debtor {
			return a.debtor < b.debtor
		}
		if a.currency != b.currency {
			return a.currency < b.currency
		}
		return a.month < b.month
	})
	if len(keys) > 0 {
		var c struct {
			tenant, id, debtor, currency, month, charges, credits, due []string
			sandbox                                                    []bool
			lines                                                      []int32
			last                                                       []*time.Time
		}
		for _, k := range keys {
			d := deltas[k]
			c.tenant, c.id, c.debtor = append(c.tenant, k.tenant), append(c.id, domain.StatementID(k.debtor, k.month, k.currency)), append(c.debtor, k.debtor)
			c.currency, c.month, c.sandbox = append(c.currency, k.currency), append(c.month, k.month), append(c.sandbox, d.sandbox)
			c.charges, c.credits, c.due = append(c.charges, d.charges.String()), append(c.credits, d.credits.String()), append(c.due, d.due.String())
			c.lines, c.last = append(c.lines, int32(d.lines)), append(c.last, d.last)
		}
		// One statement adds the deltas and re-chains: for each debtor and
		// currency it reads the rows from the first changed month on and the
		// closing balance of the month before, and writes every row whose
		// values change once, balances and status included. Earlier months
		// keep their balances: nothing before the first changed month moved.
		// A delta without a new line (an allocation, an amendment) leaves
		// last_activity_at as it is: -infinity never wins greatest().
		queue(-1, addStatementDeltas,
			c.tenant, c.id, c.sandbox, c.debtor, c.currency, c.month, c.charges, c.credits, c.due, c.lines, c.last)
	}

	if len(f.restate) > 0 {
		var rt, ri []string
		for k := range f.restate {
			rt, ri = append(rt, k.tenant), append(ri, k.id)
		}
		queue(-1, `DELETE FROM statements s USING unnest($1::text[], $2::text[]) AS d (t, i) WHERE s.tenant_id = d.t AND s.debtor_id = d.i`, rt, ri)
		queue(-1, `
			INSERT INTO statements (tenant_id, id, sandbox, debtor_id, currency, month, charges, credits, due, line_count, last_activity_at,
				opening_balance, closing_balance, status)
			SELECT t, id, sb, i, currency, m, ch, cr, du, n, la, trim_scale(closing - (ch - cr)), trim_scale(closing), `+statementStatus+`
			FROM (
				SELECT g.*, sum(ch - cr) OVER (PARTITION BY t, i, currency ORDER BY m) AS closing
				FROM (
					SELECT t, 'stm_' || substr(i, 5) || '-' || m || '-' || currency AS id, bool_or(sandbox) AS sb, i, currency, m,
						trim_scale(coalesce(sum(amount) FILTER (WHERE amount > 0), 0)) AS ch, trim_scale(coalesce(-sum(amount) FILTER (WHERE amount < 0), 0)) AS cr,
						trim_scale(sum(remaining)) AS du, count(*) AS n, max(at) AS la
					FROM (SELECT *, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') AS m FROM (`+statementLines+`) l) lines
					GROUP BY t, i, currency, m
				) g
			) w`, rt, ri)
	}
}

// statementStatus is a statement's status from its due and charges.
const statementStatus = `CASE WHEN du = 0 THEN 'paid' WHEN du = ch THEN 'open' ELSE 'partially_paid' END`

// addStatementDeltas adds the deltas in unnest($1 … $11) (one per statement,
// at most one per key) to their statements and re-chains the balances of
// each debtor's currency from the first month a delta changes: opening is
// the closing of the month before (0 for the first), closing is opening
// plus the month's charges less its credits. Rows are only written if a
// delta changes them or their balances or status move.
const addStatementDeltas = `
	WITH x AS (
		SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::integer[], $11::timestamptz[]) AS x (t, i, sb, d, c, m, ch, cr, du, n, la)
	),
	k AS (
		SELECT t, d, c, min(m) AS m0 FROM x GROUP BY t, d, c
	),
	base AS (
		SELECT k.*, coalesce((SELECT s.closing_balance FROM statements s
			WHERE s.tenant_id = k.t AND s.debtor_id = k.d AND s.currency = k.c AND s.month < k.m0
			ORDER BY s.month DESC LIMIT 1), 0) AS closing0
		FROM k
	),
	old AS (
		SELECT s.* FROM k JOIN statements s ON s.tenant_id = k.t AND s.debtor_id = k.d AND s.currency = k.c AND s.month >= k.m0
	),
	merged AS (
		SELECT coalesce(o.tenant_id, x.t) AS t, coalesce(o.id, x.i) AS id, coalesce(o.debtor_id, x.d) AS d, coalesce(o.currency, x.c) AS c,
			coalesce(o.month, x.m) AS m, x.t IS NOT NULL AS changed,
			coalesce(o.sandbox, false) OR coalesce(x.sb, false) AS sb,
			trim_scale(coalesce(o.charges, 0) + coalesce(x.ch::numeric, 0)) AS ch,
			trim_scale(coalesce(o.credits, 0) + coalesce(x.cr::numeric, 0)) AS cr,
			trim_scale(coalesce(o.due, 0) + coalesce(x.du::numeric, 0)) AS du,
			coalesce(o.line_count, 0) + coalesce(x.n, 0) AS n,
			CASE WHEN o.id IS NULL THEN coalesce(x.la, '-infinity') ELSE greatest(o.last_activity_at, coalesce(x.la, '-infinity')) END AS la,
			o.opening_balance AS opening0, o.closing_balance AS closing0, o.status AS status0
		FROM old o FULL JOIN x ON o.tenant_id = x.t AND o.id = x.i
	),
	chained AS (
		SELECT merged.*, trim_scale(b.closing0 + sum(ch - cr) OVER (PARTITION BY merged.t, merged.d, merged.c ORDER BY merged.m)) AS closing
		FROM merged JOIN base b ON b.t = merged.t AND b.d = merged.d AND b.c = merged.c
	),
	w AS (
		SELECT chained.*, trim_scale(closing - (ch - cr)) AS opening, ` + statementStatus + ` AS status FROM chained
	)
	INSERT INTO statements AS s (tenant_id, id, sandbox, debtor_id, currency, month, charges, credits, due, line_count, last_activity_at,
		opening_balance, closing_balance, status)
	SELECT t, id, sb, d, c, m, ch, cr, du, n, la, opening, closing, status FROM w
	WHERE changed OR (opening0::text, closing0::text, status0) IS DISTINCT FROM (opening::text, closing::text, status)
	ORDER BY t, id
	ON CONFLICT (tenant_id, id) DO UPDATE SET sandbox = EXCLUDED.sandbox, charges = EXCLUDED.charges, credits = EXCLUDED.credits,
		due = EXCLUDED.due, line_count = EXCLUDED.line_count, last_activity_at = EXCLUDED.last_activity_at,
		opening_balance = EXCLUDED.opening_balance, closing_balance = EXCLUDED.closing_balance, status = EXCLUDED.status`
