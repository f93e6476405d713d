package domain

import (
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// StatementStatus says how much of a statement's charges is paid.
type StatementStatus string

// Statement statuses.
const (
	StatementOpen          StatementStatus = "open"
	StatementPartiallyPaid StatementStatus = "partially_paid"
	StatementPaid          StatementStatus = "paid"
)

// StatementLine is one ledger movement on a statement.
type StatementLine struct {
	AccountID string          `json:"account_id"`
	Reference string          `json:"reference"` // entry reference, or payment id
	Kind      string          `json:"kind"`      // entry kind, or "payment", "refund", "chargeback"
	Date      Date            `json:"date"`
	At        time.Time       `json:"at"`
	Amount    decimal.Decimal `json:"amount"` // + owed, − credited
	DueDate   Date            `json:"due_date,omitempty"`
	Remaining decimal.Decimal `json:"remaining"` // charges: still owed today
}

// Statement is a debtor's account activity in one calendar month and one
// currency: opening balance, the month's charges and credits, closing
// balance, and what is still due of the month's charges after every credit
// was allocated (oldest first unless a payment asked otherwise).
type Statement struct {
	DebtorID string          `json:"debtor_id"`
	Month    string          `json:"month"` // YYYY-MM
	Currency string          `json:"currency"`
	Opening  decimal.Decimal `json:"opening_balance"`
	Charges  decimal.Decimal `json:"charges"`
	Credits  decimal.Decimal `json:"credits"`
	Closing  decimal.Decimal `json:"closing_balance"`
	Due      decimal.Decimal `json:"due"`
	Status   StatementStatus `json:"status"`
	Lines    []StatementLine `json:"lines"`
}

// Statements builds the debtor's monthly statements from the accounts it is
// a debtor of, one per (month, currency) with activity, oldest first.
func Statements(debtorID string, accounts []*Account) []Statement {
	type key struct{ month, currency string }
	byKey := map[key]*Statement{}
	get := func(t Date, currency string) *Statement {
		k := key{string(t)[:7], currency}
		s, ok := byKey[k]
		if !ok {
			z := decimal.Zero
			s = &Statement{DebtorID: debtorID, Month: k.month, Currency: currency, Opening: z, Charges: z, Credits: z, Closing: z, Due: z}
			byKey[k] = s
		}
		return s
	}
	line := func(a *Account, at time.Time, ref, kind string, amount decimal.Decimal, due Date, remaining decimal.Decimal) {
		s := get(DateOf(at), a.Currency)
		s.Lines = append(s.Lines, StatementLine{AccountID: a.ID, Reference: ref, Kind: kind, Date: DateOf(at), At: at, Amount: amount, DueDate: due, Remaining: remaining})
		if amount.IsPositive() {
			s.Charges = s.Charges.Add(amount)
		} else {
			s.Credits = s.Credits.Add(amount.Neg())
		}
		s.Due = s.Due.Add(remaining)
	}
	for _, a := range accounts {
		for _, e := range a.Entries {
			switch {
			case e.Kind == KindReporting:
			case e.IsDebit():
				line(a, e.PostedAt, e.Reference, string(e.Kind), e.Amount, e.effectiveDue(), e.Remaining())
			case e.Kind == KindChargeback:
				line(a, e.PostedAt, e.Reference, string(e.Kind), e.Amount, "", decimal.Zero)
			default: // payment, discount, negative adjustment
				line(a, e.PostedAt, e.Reference, string(e.Kind), e.Amount.Abs().Neg(), "", decimal.Zero)
			}
		}
		for _, p := range a.Payments {
			if p.CompletedAt == nil {
				continue
			}
			line(a, *p.CompletedAt, p.ID, "payment", p.Amount.Neg(), "", decimal.Zero)
			if p.ReversedAt != nil {
				kind := "refund"
				if p.Status == PaymentChargedBack {
					kind = "chargeback"
				}
				line(a, *p.ReversedAt, p.ID, kind, p.Amount, "", decimal.Zero)
			}
		}
	}
	out := make([]Statement, 0, len(byKey))
	for _, s := range byKey {
		sort.SliceStable(s.Lines, func(i, j int) bool { return s.Lines[i].Date < s.Lines[j].Date })
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Currency != out[j].Currency {
			return out[i].Currency < out[j].Currency
		}
		return out[i].Month < out[j].Month
	})
	closing := map[string]decimal.Decimal{}
	for i := range out {
		s := &out[i]
		s.Opening = closing[s.Currency]
		s.Closing = s.Opening.Add(s.Charges).Sub(s.Credits)
		closing[s.Currency] = s.Closing
		switch {
		case s.Due.IsZero():
			s.Status = StatementPaid
		case s.Due.Equal(s.Charges):
			s.Status = StatementOpen
		default:
			s.Status = StatementPartiallyPaid
		}
	}
	return out
}

// PrefixStatement starts a statement id.
const PrefixStatement = "stm"

// StatementID is the id of debtorID's statement for month (YYYY-MM) in
// currency: "stm_<debtor ULID>-<YYYY-MM>-<currency>". It is derived, not
// generated, so a rebuilt read model has the same ids.
func StatementID(debtorID, month, currency string) string {
	return PrefixStatement + "_" + strings.TrimPrefix(debtorID, PrefixDebtor+"_") + "-" + month + "-" + currency
}

// ParseStatementID splits a statement id into debtor id, month and
// currency; ok is false if id is not one StatementID makes.
func ParseStatementID(id string) (debtorID, month, currency string, ok bool) {
	rest, found := strings.CutPrefix(id, PrefixStatement+"_")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 4 {
		return "", "", "", false
	}
	debtorID, month, currency = PrefixDebtor+"_"+parts[0], parts[1]+"-"+parts[2], parts[3]
	if !HasPrefix(debtorID, PrefixDebtor) || len(parts[1]) != 4 || len(parts[2]) != 2 || ValidateCurrency("currency", currency) != nil {
		return "", "", "", false
	}
	if _, err := time.Parse("2006-01", month); err != nil {
		return "", "", "", false
	}
	return debtorID, month, currency, true
}
