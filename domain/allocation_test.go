package domain_test

import (
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

// allocationFixture posts one batch at t0 (2026-01-15), so posting order is
// list order. Total owed 407.
//
//	seq ref    kind        amount due         product fee_type / target
//	1   inv-A  invoice     100    2026-01-10  P1
//	2   inv-B  invoice     200    2026-01-05  P2
//	3   fee-A  fee          10    2026-01-12  P1      reminder → inv-A
//	4   fee-X  fee          15    2026-01-01          collection (account level)
//	5   adj-1  adjustment   20    2026-01-08
//	6   inv-C  invoice      50    2026-01-05  P1      (due-date tie with inv-B)
//	7   fee-B  fee           5    2026-01-20          interest → inv-B
//	8   fee-Y  fee           7    2026-01-05          reminder (account level; tie with inv-B, inv-C)
//
// Oldest first (due date, then posting order):
// fee-X, inv-B, inv-C, fee-Y, adj-1, inv-A, fee-A, fee-B.
func allocationFixture(t testing.TB) *ledgerBook {
	t.Helper()
	b := newLedgerBook(t, "EUR")
	fee := func(ref, amount, due, target, typ, product string) domain.EntryInput {
		return domain.EntryInput{Reference: ref, Kind: domain.KindFee, Amount: d(amount), DueDate: domain.Date(due), TargetReference: target, FeeType: typ, ProductReference: product}
	}
	invP := func(ref, amount, due, product string) domain.EntryInput {
		e := inv(ref, amount, due)
		e.ProductReference = product
		return e
	}
	b.post(t0,
		invP("inv-A", "100", "2026-01-10", "P1"),
		invP("inv-B", "200", "2026-01-05", "P2"),
		fee("fee-A", "10", "2026-01-12", "inv-A", "reminder", "P1"),
		fee("fee-X", "15", "2026-01-01", "", "collection", ""),
		domain.EntryInput{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("20"), DueDate: "2026-01-08", Reason: "back-billing"},
		invP("inv-C", "50", "2026-01-05", "P1"),
		fee("fee-B", "5", "2026-01-20", "inv-B", "interest", ""),
		fee("fee-Y", "7", "2026-01-05", "", "reminder", ""),
	)
	require.True(t, b.a.Outstanding().Equal(d("407")))
	return b
}

var allocationFixtureRefs = []string{"inv-A", "inv-B", "fee-A", "fee-X", "adj-1", "inv-C", "fee-B", "fee-Y"}

func TestAllocationByMatchStrategy(t *testing.T) {
	all := func(refs ...string) []string { return refs }
	cases := []struct {
		name     string
		strategy domain.MatchStrategy
		feeOrder []string
		product  string
		amount   string
		allocs   []string
		settled  []string
	}{
		// ORDERED_LEDGER_ENTRIES (default): fee-X, inv-B, inv-C, fee-Y, adj-1, inv-A, fee-A, fee-B
		{"default partial", "", nil, "", "10", all("fee-X=10.00"), nil},
		{"ordered exact first", domain.MatchOrderedEntries, nil, "", "15", all("fee-X=15.00"), all("fee-X")},
		{"ordered one cent into the next", domain.MatchOrderedEntries, nil, "", "15.01", all("fee-X=15.00", "inv-B=0.01"), all("fee-X")},
		{"ordered tie broken by posting order", domain.MatchOrderedEntries, nil, "", "265",
			all("fee-X=15.00", "inv-B=200.00", "inv-C=50.00"), all("fee-X", "inv-B", "inv-C")},
		{"ordered three-way tie", "", nil, "", "266.50",
			all("fee-X=15.00", "inv-B=200.00", "inv-C=50.00", "fee-Y=1.50"), all("fee-X", "inv-B", "inv-C")},
		{"ordered one cent short of all", "", nil, "", "406.99",
			all("fee-X=15.00", "inv-B=200.00", "inv-C=50.00", "fee-Y=7.00", "adj-1=20.00", "inv-A=100.00", "fee-A=10.00", "fee-B=4.99"),
			all("fee-X", "inv-B", "inv-C", "fee-Y", "adj-1", "inv-A", "fee-A")},
		{"ordered everything", domain.MatchOrderedEntries, nil, "", "407",
			all("fee-X=15.00", "inv-B=200.00", "inv-C=50.00", "fee-Y=7.00", "adj-1=20.00", "inv-A=100.00", "fee-A=10.00", "fee-B=5.00"),
			allocationFixtureRefs},
		{"ordered product P1 first", "", nil, "P1", "170.50",
			all("inv-C=50.00", "inv-A=100.00", "fee-A=10.00", "fee-X=10.50"), all("inv-C", "inv-A", "fee-A")},
		{"ordered product P2 first", domain.MatchOrderedEntries, nil, "P2", "210", all("inv-B=200.00", "fee-X=10.00"), all("inv-B")},
		{"ordered unknown product", "", nil, "P9", "100", all("fee-X=15.00", "inv-B=85.00"), all("fee-X")},

		// invoices with their fees, oldest invoice first, then account entries:
		// inv-B, fee-B, inv-C, inv-A, fee-A | fee-X, fee-Y, adj-1
		{"invoices+fees partial fee", domain.MatchInvoicesWithFeesThenAccount, nil, "", "204", all("inv-B=200.00", "fee-B=4.00"), all("inv-B")},
		{"invoices+fees into the next invoice", domain.MatchInvoicesWithFeesThenAccount, nil, "", "300",
			all("inv-B=200.00", "fee-B=5.00", "inv-C=50.00", "inv-A=45.00"), all("inv-B", "fee-B", "inv-C")},
		{"invoices+fees then account entries", domain.MatchInvoicesWithFeesThenAccount, nil, "", "380",
			all("inv-B=200.00", "fee-B=5.00", "inv-C=50.00", "inv-A=100.00", "fee-A=10.00", "fee-X=15.00"),
			all("inv-B", "fee-B", "inv-C", "inv-A", "fee-A", "fee-X")},
		{"invoices+fees everything", domain.MatchInvoicesWithFeesThenAccount, nil, "", "407",
			all("inv-B=200.00", "fee-B=5.00", "inv-C=50.00", "inv-A=100.00", "fee-A=10.00", "fee-X=15.00", "fee-Y=7.00", "adj-1=20.00"),
			allocationFixtureRefs},
		{"invoices+fees product P1 first", domain.MatchInvoicesWithFeesThenAccount, nil, "P1", "165",
			all("inv-C=50.00", "inv-A=100.00", "fee-A=10.00", "inv-B=5.00"), all("inv-C", "inv-A", "fee-A")},

		// account entries first: fee-X, fee-Y, adj-1 | inv-B, fee-B, inv-C, inv-A, fee-A
		{"account first exact", domain.MatchAccountThenInvoicesWithFees, nil, "", "42",
			all("fee-X=15.00", "fee-Y=7.00", "adj-1=20.00"), all("fee-X", "fee-Y", "adj-1")},
		{"account first then invoices", domain.MatchAccountThenInvoicesWithFees, nil, "", "50",
			all("fee-X=15.00", "fee-Y=7.00", "adj-1=20.00", "inv-B=8.00"), all("fee-X", "fee-Y", "adj-1")},
		{"account first then the invoice's fee", domain.MatchAccountThenInvoicesWithFees, nil, "", "245",
			all("fee-X=15.00", "fee-Y=7.00", "adj-1=20.00", "inv-B=200.00", "fee-B=3.00"), all("fee-X", "fee-Y", "adj-1", "inv-B")},
		{"account first product P1", domain.MatchAccountThenInvoicesWithFees, nil, "P1", "60", all("inv-C=50.00", "inv-A=10.00"), all("inv-C")},
		{"account first product P1 then the rest", domain.MatchAccountThenInvoicesWithFees, nil, "P1", "200",
			all("inv-C=50.00", "inv-A=100.00", "fee-A=10.00", "fee-X=15.00", "fee-Y=7.00", "adj-1=18.00"),
			all("inv-C", "inv-A", "fee-A", "fee-X", "fee-Y")},

		// custom: fees in fee_order, unlisted fees, then everything else, each oldest first
		{"custom interest,reminder", domain.MatchCustomOrderedFees, []string{"interest", "reminder"}, "", "20",
			all("fee-B=5.00", "fee-Y=7.00", "fee-A=8.00"), all("fee-B", "fee-Y")},
		{"custom interest,reminder into unlisted and invoices", domain.MatchCustomOrderedFees, []string{"interest", "reminder"}, "", "40",
			all("fee-B=5.00", "fee-Y=7.00", "fee-A=10.00", "fee-X=15.00", "inv-B=3.00"), all("fee-B", "fee-Y", "fee-A", "fee-X")},
		{"custom without fee order: fees oldest first", domain.MatchCustomOrderedFees, nil, "", "30",
			all("fee-X=15.00", "fee-Y=7.00", "fee-A=8.00"), all("fee-X", "fee-Y")},
		{"custom with only unknown fee types", domain.MatchCustomOrderedFees, []string{"legal"}, "", "25",
			all("fee-X=15.00", "fee-Y=7.00", "fee-A=3.00"), all("fee-X", "fee-Y")},
		{"custom reminder then the rest", domain.MatchCustomOrderedFees, []string{"reminder"}, "", "300",
			all("fee-Y=7.00", "fee-A=10.00", "fee-X=15.00", "fee-B=5.00", "inv-B=200.00", "inv-C=50.00", "adj-1=13.00"),
			all("fee-Y", "fee-A", "fee-X", "fee-B", "inv-B", "inv-C")},
		{"custom reminder product P1", domain.MatchCustomOrderedFees, []string{"reminder"}, "P1", "70",
			all("fee-A=10.00", "inv-C=50.00", "inv-A=10.00"), all("fee-A", "inv-C")},
	}
	for _, c := range cases {
		for _, mode := range []string{"recorded completed", "pending then completed", "processing then completed"} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				b := allocationFixture(t)
				in := domain.PaymentInput{Reference: "P-1", Amount: d(c.amount), MatchStrategy: c.strategy, FeeOrder: c.feeOrder, ProductReference: c.product}
				var evs []domain.NewEvent
				switch mode {
				case "recorded completed":
					_, evs = b.pay("pay_1", in, t0.Add(time.Hour))
					require.Equal(t, []string{domain.EventPaymentRecorded, domain.EventPaymentCompleted}, eventTypes(evs))
				case "pending then completed", "processing then completed":
					in.Status = domain.PaymentPending
					if mode == "processing then completed" {
						in.Status = domain.PaymentProcessing
					}
					b.pay("pay_1", in, t0)
					evs = b.keep(b.a.CompletePayment("pay_1", t0.Add(time.Hour)))
					require.Equal(t, []string{domain.EventPaymentCompleted}, eventTypes(evs))
				}
				ev := decodeEvent[domain.PaymentCompletion](t, eventOf(t, evs, domain.EventPaymentCompleted))
				assert.Equal(t, "pay_1", ev.PaymentID)
				assert.Equal(t, c.allocs, allocStrings(ev.Allocations), "event allocations")
				assert.True(t, ev.ToCredit.IsZero(), "to_credit %s", ev.ToCredit)
				p, ok := b.a.Payment("pay_1")
				require.True(t, ok)
				assert.Equal(t, domain.PaymentCompleted, p.Status)
				assert.Equal(t, c.allocs, allocStrings(p.Allocations), "payment allocations")
				assertSettled(t, b, c.settled, t0.Add(time.Hour))
				// what each entry was paid is exactly its allocation
				for _, ref := range allocationFixtureRefs {
					want := decimal.Zero
					for _, al := range ev.Allocations {
						if al.Reference == ref {
							want = al.Amount
						}
					}
					assert.True(t, b.entry(ref).Paid.Equal(want), "%s paid %s, want %s", ref, b.entry(ref).Paid, want)
				}
				assert.True(t, b.a.Outstanding().Equal(d("407").Sub(d(c.amount))))
				assert.True(t, b.a.Balance(asOf).Outstanding.Equal(b.a.Outstanding()))
				r := replay(t, b.all)
				rp, _ := r.Payment("pay_1")
				assert.Equal(t, p, rp)
			})
		}
	}
}

// assertSettled checks exactly the entries in settled have SettledAt (at).
func assertSettled(t *testing.T, b *ledgerBook, settled []string, at time.Time) {
	t.Helper()
	for _, ref := range allocationFixtureRefs {
		e := b.entry(ref)
		if slices.Contains(settled, ref) {
			if assert.NotNil(t, e.SettledAt, "%s settled", ref) {
				assert.Equal(t, at, *e.SettledAt, "%s settled at", ref)
			}
		} else {
			assert.Nil(t, e.SettledAt, "%s open", ref)
		}
	}
}

func TestAllocationContinuesFromWhatIsLeft(t *testing.T) {
	b := allocationFixture(t)
	b.pay("pay_1", domain.PaymentInput{Amount: d("100")}, t0)
	p, _ := b.pay("pay_2", domain.PaymentInput{Amount: d("150")}, t0.Add(time.Hour))
	assert.Equal(t, []string{"inv-B=115.00", "inv-C=35.00"}, allocStrings(p.Allocations))
	assert.Equal(t, t0, *b.entry("fee-X").SettledAt)
	assert.Equal(t, t0.Add(time.Hour), *b.entry("inv-B").SettledAt)
	assert.Nil(t, b.entry("inv-C").SettledAt)
}

func TestAllocationSettledInvoiceKeepsItsFeesInPlace(t *testing.T) {
	b := allocationFixture(t)
	// a payment entry aimed at inv-B settles it; its open fee fee-B still
	// comes in inv-B's place among the invoices
	evs := b.post(t0, domain.EntryInput{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("200"), TargetReference: "inv-B"})
	assert.Equal(t, []string{"inv-B=200.00"}, allocStrings(decodeEvent[domain.EntryPosted](t, evs[0]).Allocations))
	p, _ := b.pay("pay_1", domain.PaymentInput{Amount: d("10"), MatchStrategy: domain.MatchInvoicesWithFeesThenAccount}, t0)
	assert.Equal(t, []string{"fee-B=5.00", "inv-C=5.00"}, allocStrings(p.Allocations))
	p, _ = b.pay("pay_2", domain.PaymentInput{Amount: d("23"), MatchStrategy: domain.MatchAccountThenInvoicesWithFees}, t0)
	assert.Equal(t, []string{"fee-X=15.00", "fee-Y=7.00", "adj-1=1.00"}, allocStrings(p.Allocations))
}

func TestAllocationIsDecidedAtCompletion(t *testing.T) {
	b := allocationFixture(t)
	b.pay("pay_1", domain.PaymentInput{Amount: d("50"), Status: domain.PaymentPending}, t0)
	// fee-X is paid by an entry meanwhile (the pending 50 is reserved, 357 is available)
	assert.True(t, b.a.Available().Equal(d("357")))
	b.post(t0, domain.EntryInput{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("15")})
	assert.NotNil(t, b.entry("fee-X").SettledAt)
	evs := b.keep(b.a.CompletePayment("pay_1", t0.Add(time.Hour)))
	assert.Equal(t, []string{"inv-B=50.00"}, allocStrings(decodeEvent[domain.PaymentCompletion](t, evs[0]).Allocations))
}

func TestAllocationOfCreditEntries(t *testing.T) {
	cases := []struct {
		name   string
		in     domain.EntryInput
		allocs []string
	}{
		{"payment entry oldest first", domain.EntryInput{Kind: domain.KindPayment, Amount: d("16")}, []string{"fee-X=15.00", "inv-B=1.00"}},
		{"payment entry on a target", domain.EntryInput{Kind: domain.KindPayment, Amount: d("30"), TargetReference: "inv-A"}, []string{"inv-A=30.00"}},
		{"payment entry target then product then oldest", domain.EntryInput{Kind: domain.KindPayment, Amount: d("200"), TargetReference: "fee-B", ProductReference: "P1"},
			[]string{"fee-B=5.00", "inv-C=50.00", "inv-A=100.00", "fee-A=10.00", "fee-X=15.00", "inv-B=20.00"}},
		{"payment entry target after its remainder", domain.EntryInput{Kind: domain.KindPayment, Amount: d("6"), TargetReference: "fee-B"}, []string{"fee-B=5.00", "fee-X=1.00"}},
		{"negative adjustment oldest first", domain.EntryInput{Kind: domain.KindAdjustment, Amount: d("-20")}, []string{"fee-X=15.00", "inv-B=5.00"}},
		{"negative adjustment on a product", domain.EntryInput{Kind: domain.KindAdjustment, Amount: d("-20"), ProductReference: "P2"}, []string{"inv-B=20.00"}},
		{"discount only on its target", domain.EntryInput{Kind: domain.KindDiscount, Amount: d("20"), TargetReference: "adj-1"}, []string{"adj-1=20.00"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := allocationFixture(t)
			c.in.Reference = "cr-1"
			evs := b.post(t0, c.in)
			assert.Equal(t, c.allocs, allocStrings(decodeEvent[domain.EntryPosted](t, evs[0]).Allocations))
			assert.Equal(t, c.allocs, allocStrings(b.entry("cr-1").Allocations))
		})
	}
}
