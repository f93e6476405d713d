package domain_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
)

// ledgerWithOpenInvoices returns an account with n open invoices and the
// events that built it.
func ledgerWithOpenInvoices(b *testing.B, n int) (*domain.Account, []domain.NewEvent) {
	a := domain.NewAccount("ten_b", "acct_b")
	evs, err := a.Open(domain.OpenAccount{Currency: "EUR"}, t0)
	if err != nil {
		b.Fatal(err)
	}
	ins := make([]domain.EntryInput, n)
	for i := range ins {
		ins[i] = domain.EntryInput{Reference: fmt.Sprintf("inv-%05d", i), Kind: domain.KindInvoice, Amount: decimal.RequireFromString("100.00"),
			DueDate: domain.DateOf(t0.AddDate(0, 0, i%365))}
	}
	more, err := a.PostEntries(ins, t0, nil)
	if err != nil {
		b.Fatal(err)
	}
	return a, append(evs, more...)
}

// BenchmarkApply measures folding recorded events into an account (what a
// load or a replay does), per event.
func BenchmarkApply(b *testing.B) {
	_, evs := ledgerWithOpenInvoices(b, 1000)
	b.ResetTimer()
	for b.Loop() {
		a := domain.NewAccount("ten_b", "acct_b")
		for _, e := range evs {
			if err := a.Apply(e.Type, e.Data); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(evs)*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAllocatePayment measures deciding a payment (validation,
// allocation over open invoices by strategy, recording) on accounts with
// 10, 100 and 1,000 open invoices. The account is rebuilt (untimed) every
// 100 payments so every measurement sees the same size of history.
func BenchmarkAllocatePayment(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, strategy := range []domain.MatchStrategy{domain.MatchOrderedEntries, domain.MatchInvoicesWithFeesThenAccount} {
			b.Run(fmt.Sprintf("open=%d/%s", n, strategy), func(b *testing.B) {
				_, evs := ledgerWithOpenInvoices(b, n)
				var a *domain.Account
				i := 0
				for b.Loop() {
					if i%100 == 0 {
						b.StopTimer()
						a = domain.NewAccount("ten_b", "acct_b")
						for _, e := range evs {
							if err := a.Apply(e.Type, e.Data); err != nil {
								b.Fatal(err)
							}
						}
						b.StartTimer()
					}
					i++
					if _, _, err := a.RecordPayment(fmt.Sprintf("pay_%d", i), domain.PaymentInput{Amount: decimal.RequireFromString("0.01"), MatchStrategy: strategy}, t0.Add(time.Duration(i))); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPaymentOnLongHistory measures deciding a payment on a hot
// account: three open invoices and 10 or 10,000 completed payments before
// it. The two should cost about the same: a decision must not scan the
// account's payment history.
func BenchmarkPaymentOnLongHistory(b *testing.B) {
	for _, history := range []int{10, 10000} {
		b.Run(fmt.Sprintf("payments=%d", history), func(b *testing.B) {
			a, _ := ledgerWithOpenInvoices(b, 3)
			if _, err := a.PostEntries([]domain.EntryInput{{Reference: "big", Kind: domain.KindInvoice, Amount: decimal.RequireFromString("1000000.00"),
				DueDate: domain.DateOf(t0)}}, t0, nil); err != nil {
				b.Fatal(err)
			}
			for i := range history {
				if _, _, err := a.RecordPayment(fmt.Sprintf("pay_h%d", i), domain.PaymentInput{Amount: decimal.RequireFromString("0.01")}, t0); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				i++
				if _, _, err := a.RecordPayment(fmt.Sprintf("pay_%d", i), domain.PaymentInput{Amount: decimal.RequireFromString("0.01")}, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
