package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

func TestStatementsByMonthOldestFirst(t *testing.T) {
	jan := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	feb := time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC)
	mar := time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC)
	a := domain.NewAccount("ten_1", "acct_1")
	_, err := a.Open(domain.OpenAccount{Currency: "EUR", DebtorIDs: []string{"dbt_1"}}, jan)
	require.NoError(t, err)
	_, err = a.PostEntries([]domain.EntryInput{{Reference: "jan", Kind: domain.KindInvoice, Amount: d("100.00"), DueDate: "2026-01-31"}}, jan, nil)
	require.NoError(t, err)
	_, err = a.PostEntries([]domain.EntryInput{{Reference: "feb", Kind: domain.KindInvoice, Amount: d("80.00"), DueDate: "2026-02-28"}}, feb, nil)
	require.NoError(t, err)
	// March: a 130 payment pays January in full and 30 of February.
	_, _, err = a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("130.00")}, mar)
	require.NoError(t, err)

	st := domain.Statements("dbt_1", []*domain.Account{a})
	require.Len(t, st, 3)
	want := []struct {
		month                          string
		opening, charges, credits, due string
		closing                        string
		status                         domain.StatementStatus
	}{
		{"2026-01", "0", "100", "0", "0", "100", domain.StatementPaid},
		{"2026-02", "100", "80", "0", "50", "180", domain.StatementPartiallyPaid},
		{"2026-03", "180", "0", "130", "0", "50", domain.StatementPaid},
	}
	for i, w := range want {
		s := st[i]
		assert.Equal(t, w.month, s.Month)
		assert.Equal(t, w.opening, s.Opening.String(), w.month)
		assert.Equal(t, w.charges, s.Charges.String(), w.month)
		assert.Equal(t, w.credits, s.Credits.String(), w.month)
		assert.Equal(t, w.due, s.Due.String(), w.month)
		assert.Equal(t, w.closing, s.Closing.String(), w.month)
		assert.Equal(t, w.status, s.Status, w.month)
	}
	assert.Equal(t, a.Outstanding().String(), st[2].Closing.String(), "the last closing balance is what is owed")
}

func TestStatementID(t *testing.T) {
	debtor := "dbt_01JD7Q5V6Z8K3M2N4P5R6S7T8V"
	id := domain.StatementID(debtor, "2026-11", "EUR")
	if id != "stm_01JD7Q5V6Z8K3M2N4P5R6S7T8V-2026-11-EUR" {
		t.Fatalf("StatementID = %s", id)
	}
	d, m, c, ok := domain.ParseStatementID(id)
	if !ok || d != debtor || m != "2026-11" || c != "EUR" {
		t.Fatalf("ParseStatementID(%s) = %s %s %s %v", id, d, m, c, ok)
	}
	for _, bad := range []string{"", "stm_", "stm_nonsense", "dbt_01JD7Q5V6Z8K3M2N4P5R6S7T8V-2026-11-EUR",
		"stm_01JD7Q5V6Z8K3M2N4P5R6S7T8V-2026-13-EUR", "stm_01JD7Q5V6Z8K3M2N4P5R6S7T8V-2026-11-XXX",
		"stm_01JD7Q5V6Z8K3M2N4P5R6S7T8V-2026-1-EUR", "stm_01JD7Q5V6Z8K3M2N4P5R6S7T8V-2026-11-EUR-1"} {
		if _, _, _, ok := domain.ParseStatementID(bad); ok {
			t.Errorf("ParseStatementID(%q) accepted", bad)
		}
	}
}
