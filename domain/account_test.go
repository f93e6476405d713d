package domain_test

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

var t0 = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func openAccount(t *testing.T) *domain.Account {
	t.Helper()
	a := domain.NewAccount("ten_1", "acct_1")
	_, err := a.Open(domain.OpenAccount{Reference: "A-1", Currency: "EUR"}, t0)
	require.NoError(t, err)
	return a
}

// replay folds a's recorded events into a fresh account.
func replay(t *testing.T, evs []domain.NewEvent) *domain.Account {
	t.Helper()
	b := domain.NewAccount("ten_1", "acct_1")
	for _, e := range evs {
		require.NoError(t, b.Apply(e.Type, e.Data))
	}
	return b
}

func TestAccountSmoke(t *testing.T) {
	a := domain.NewAccount("ten_1", "acct_1")
	var all []domain.NewEvent
	keep := func(evs []domain.NewEvent, err error) {
		t.Helper()
		require.NoError(t, err)
		all = append(all, evs...)
	}
	keep(a.Open(domain.OpenAccount{Reference: "A-1", Currency: "EUR"}, t0))
	keep(a.PostEntries([]domain.EntryInput{
		{Reference: "inv-1", Kind: domain.KindInvoice, Amount: d("100.00"), DueDate: "2026-01-01"},
		{Reference: "fee-1", Kind: domain.KindFee, Amount: d("5.00"), TargetReference: "inv-1"},
		{Reference: "inv-2", Kind: domain.KindInvoice, Amount: d("50.00"), DueDate: "2026-02-01"},
	}, t0, nil))
	assert.Equal(t, "155", a.Outstanding().String())

	p, evs, err := a.RecordPayment("pay_1", domain.PaymentInput{Reference: "P1", Amount: d("102.00")}, t0.Add(time.Hour))
	keep(evs, err)
	require.Equal(t, domain.PaymentCompleted, p.Status)
	e, _ := a.Entry("inv-1")
	assert.NotNil(t, e.SettledAt, "oldest invoice settled first")
	fee, _ := a.Entry("fee-1")
	assert.Equal(t, "2", fee.Paid.String())
	assert.Equal(t, "53", a.Outstanding().String())

	_, _, err = a.RecordPayment("pay_2", domain.PaymentInput{Amount: d("60.00")}, t0)
	assert.Equal(t, domain.EINVALID, domain.ErrorCode(err), "overpayment refused")

	keep(a.ChargebackPayment("pay_1", "bank", t0.Add(2*time.Hour)))
	assert.Nil(t, e.SettledAt, "a chargeback re-opens what the payment settled")
	assert.Equal(t, "155", a.Outstanding().String())

	b := a.Balance("2026-02-15")
	assert.Equal(t, a.Outstanding().String(), b.Outstanding.String())
	assert.Equal(t, 45, b.DaysPastDue)
	assert.Equal(t, "155", b.Overdue.String())

	r := replay(t, all)
	assert.Equal(t, a.Balance("2026-02-15"), r.Balance("2026-02-15"), "the fold of the recorded events is the state")
}

func TestOpenAccountValidation(t *testing.T) {
	tests := []struct {
		name  string
		in    domain.OpenAccount
		field string
	}{
		{"unknown currency", domain.OpenAccount{Currency: "EURO"}, "currency"},
		{"product without reference", domain.OpenAccount{Currency: "EUR", Products: []domain.Product{{Name: "loan"}}}, "products[0].reference"},
		{"product twice", domain.OpenAccount{Currency: "EUR", Products: []domain.Product{{Reference: "P"}, {Reference: "P"}}}, "products[1].reference"},
		{"score without type", domain.OpenAccount{Currency: "EUR", Scores: []domain.Score{{Value: d("1")}}}, "scores[0].type"},
		{"mandate twice", domain.OpenAccount{Currency: "EUR", Mandates: []domain.Mandate{{ID: "m"}, {ID: "m"}}}, "mandates[1].id"},
		{"meta not an object", domain.OpenAccount{Currency: "EUR", Meta: []byte(`"x"`)}, "meta"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := domain.NewAccount("ten_1", "acct_1")
			evs, err := a.Open(tc.in, t0)
			var de *domain.Error
			require.ErrorAs(t, err, &de)
			assert.Equal(t, domain.EINVALID, de.Code)
			require.NotEmpty(t, de.Fields)
			assert.Equal(t, tc.field, de.Fields[0].Field)
			assert.Empty(t, evs)
			assert.False(t, a.Opened)
		})
	}
	a := openAccount(t)
	_, err := a.Open(domain.OpenAccount{Currency: "EUR"}, t0)
	assert.Equal(t, domain.ECONFLICT, domain.ErrorCode(err), "opening twice")
}
