package domain_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

// paymentFixture: inv-1 100 due 2026-01-01, inv-2 50 due 2026-02-01.
func paymentFixture(t testing.TB) *ledgerBook {
	t.Helper()
	b := newLedgerBook(t, "EUR")
	b.post(t0, inv("inv-1", "100", "2026-01-01"), inv("inv-2", "50", "2026-02-01"))
	return b
}

// paymentIn brings pay_1 (60) to status s.
func paymentIn(t *testing.T, b *ledgerBook, s domain.PaymentStatus) {
	t.Helper()
	in := domain.PaymentInput{Reference: "P-1", Amount: d("60"), Status: domain.PaymentPending}
	at := t0.Add(time.Minute)
	switch s {
	case domain.PaymentPending:
		b.pay("pay_1", in, at)
	case domain.PaymentProcessing:
		b.pay("pay_1", in, at)
		b.keep(b.a.ProcessPayment("pay_1", at))
	case domain.PaymentCompleted:
		b.pay("pay_1", in, at)
		b.keep(b.a.CompletePayment("pay_1", at))
	case domain.PaymentFailed:
		b.pay("pay_1", in, at)
		b.keep(b.a.FailPayment("pay_1", "insufficient funds", at))
	case domain.PaymentRefunded:
		in.Status = domain.PaymentCompleted
		b.pay("pay_1", in, at)
		b.keep(b.a.RefundPayment("pay_1", "customer asked", at))
	case domain.PaymentChargedBack:
		in.Status = ""
		b.pay("pay_1", in, at)
		b.keep(b.a.ChargebackPayment("pay_1", "fraud", at))
	}
	p, _ := b.a.Payment("pay_1")
	require.Equal(t, s, p.Status)
}

var allStatuses = []domain.PaymentStatus{domain.PaymentPending, domain.PaymentProcessing, domain.PaymentCompleted,
	domain.PaymentFailed, domain.PaymentRefunded, domain.PaymentChargedBack}

func TestPaymentLifecycle(t *testing.T) {
	type command struct {
		run   func(a *domain.Account, at time.Time) ([]domain.NewEvent, error)
		from  []domain.PaymentStatus
		to    domain.PaymentStatus
		event string
	}
	process := func(a *domain.Account, at time.Time) ([]domain.NewEvent, error) { return a.ProcessPayment("pay_1", at) }
	complete := func(a *domain.Account, at time.Time) ([]domain.NewEvent, error) {
		return a.CompletePayment("pay_1", at)
	}
	fail := func(a *domain.Account, at time.Time) ([]domain.NewEvent, error) {
		return a.FailPayment("pay_1", "declined", at)
	}
	refund := func(a *domain.Account, at time.Time) ([]domain.NewEvent, error) {
		return a.RefundPayment("pay_1", "goodwill", at)
	}
	chargeback := func(a *domain.Account, at time.Time) ([]domain.NewEvent, error) {
		return a.ChargebackPayment("pay_1", "bank", at)
	}
	open := []domain.PaymentStatus{domain.PaymentPending, domain.PaymentProcessing}
	completed := []domain.PaymentStatus{domain.PaymentCompleted}
	commands := map[string]command{
		"process":    {process, []domain.PaymentStatus{domain.PaymentPending}, domain.PaymentProcessing, domain.EventPaymentProcessed},
		"complete":   {complete, open, domain.PaymentCompleted, domain.EventPaymentCompleted},
		"fail":       {fail, open, domain.PaymentFailed, domain.EventPaymentFailed},
		"refund":     {refund, completed, domain.PaymentRefunded, domain.EventPaymentRefunded},
		"chargeback": {chargeback, completed, domain.PaymentChargedBack, domain.EventPaymentCharged},
	}
	allowed := 0
	for name, c := range commands {
		for _, from := range allStatuses {
			ok := false
			for _, f := range c.from {
				ok = ok || f == from
			}
			if ok {
				allowed++
			}
			t.Run(string(from)+"/"+name, func(t *testing.T) {
				b := paymentFixture(t)
				paymentIn(t, b, from)
				v, before := b.a.Version, b.a.Balance(asOf)
				at := t0.Add(time.Hour)
				evs, err := c.run(b.a, at)
				p, _ := b.a.Payment("pay_1")
				if !ok {
					assert.Nil(t, evs)
					e := domErr(t, err)
					assert.Equal(t, domain.ECONFLICT, e.Code)
					assert.Equal(t, "invalid_transition", e.Reason)
					assert.Contains(t, e.Message, "is "+string(from)+";", "names the current status")
					assert.Equal(t, v, b.a.Version)
					assert.Equal(t, from, p.Status)
					assert.Equal(t, before, b.a.Balance(asOf))
					return
				}
				b.keep(evs, err)
				require.Equal(t, []string{c.event}, eventTypes(evs))
				assert.Equal(t, c.to, p.Status)
				switch c.to {
				case domain.PaymentCompleted:
					require.NotNil(t, p.CompletedAt)
					assert.Equal(t, at, *p.CompletedAt)
					assert.Equal(t, []string{"inv-1=60.00"}, allocStrings(p.Allocations))
					assertBalanceDelta(t, before, b.a.Balance(asOf), map[string]string{"Paid": "60", "Outstanding": "-60"})
				case domain.PaymentFailed:
					require.NotNil(t, p.FailedAt)
					assert.Equal(t, "declined", p.FailureReason)
					assertBalanceDelta(t, before, b.a.Balance(asOf), nil)
				case domain.PaymentRefunded:
					require.NotNil(t, p.ReversedAt)
					assert.Equal(t, "goodwill", p.ReversalReason)
					assertBalanceDelta(t, before, b.a.Balance(asOf), map[string]string{"Refunded": "60", "Outstanding": "60"})
				case domain.PaymentChargedBack:
					require.NotNil(t, p.ReversedAt)
					assert.Equal(t, "bank", p.ReversalReason)
					assertBalanceDelta(t, before, b.a.Balance(asOf), map[string]string{"Chargebacks": "60", "Outstanding": "60"})
				default:
					assertBalanceDelta(t, before, b.a.Balance(asOf), nil)
				}
				r := replay(t, b.all)
				rp, _ := r.Payment("pay_1")
				assert.Equal(t, p, rp)
				assert.Equal(t, b.a.Balance(asOf), r.Balance(asOf))
			})
		}
	}
	assert.Equal(t, 7, allowed, "pending→processing|completed|failed, processing→completed|failed, completed→refunded|charged_back")
}

func TestPaymentUnknown(t *testing.T) {
	b := paymentFixture(t)
	for _, run := range []func() ([]domain.NewEvent, error){
		func() ([]domain.NewEvent, error) { return b.a.ProcessPayment("pay_x", t0) },
		func() ([]domain.NewEvent, error) { return b.a.CompletePayment("pay_x", t0) },
		func() ([]domain.NewEvent, error) { return b.a.FailPayment("pay_x", "", t0) },
		func() ([]domain.NewEvent, error) { return b.a.RefundPayment("pay_x", "", t0) },
		func() ([]domain.NewEvent, error) { return b.a.ChargebackPayment("pay_x", "", t0) },
	} {
		_, err := run()
		assert.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err))
	}
	_, _, err := domain.NewAccount("ten_1", "acct_2").RecordPayment("pay_1", domain.PaymentInput{Amount: d("1")}, t0)
	assert.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err))
}

func TestRecordPaymentInitialStatus(t *testing.T) {
	cases := []struct {
		status domain.PaymentStatus
		want   domain.PaymentStatus
		events []string
	}{
		{"", domain.PaymentCompleted, []string{domain.EventPaymentRecorded, domain.EventPaymentCompleted}},
		{domain.PaymentCompleted, domain.PaymentCompleted, []string{domain.EventPaymentRecorded, domain.EventPaymentCompleted}},
		{domain.PaymentPending, domain.PaymentPending, []string{domain.EventPaymentRecorded}},
		{domain.PaymentProcessing, domain.PaymentProcessing, []string{domain.EventPaymentRecorded}},
	}
	for _, c := range cases {
		t.Run(string(c.status), func(t *testing.T) {
			b := paymentFixture(t)
			p, evs := b.pay("pay_1", domain.PaymentInput{Amount: d("10"), Status: c.status, Method: "card"}, t0)
			assert.Equal(t, c.events, eventTypes(evs))
			assert.Equal(t, c.want, p.Status)
			assert.Equal(t, "pay_1", p.ID)
			r := replay(t, b.all)
			rp, _ := r.Payment("pay_1")
			assert.Equal(t, p, rp)
		})
	}
}

func TestRecordPaymentValidation(t *testing.T) {
	cases := []struct {
		name   string
		in     domain.PaymentInput
		fields []string
	}{
		{"zero", domain.PaymentInput{Amount: d("0")}, []string{"amount"}},
		{"negative", domain.PaymentInput{Amount: d("-1")}, []string{"amount"}},
		{"3 decimals", domain.PaymentInput{Amount: d("1.001")}, []string{"amount"}},
		{"overpayment", domain.PaymentInput{Amount: d("150.01")}, []string{"amount"}},
		{"overpayment pending", domain.PaymentInput{Amount: d("150.01"), Status: domain.PaymentPending}, []string{"amount"}},
		{"initial status failed", domain.PaymentInput{Amount: d("1"), Status: domain.PaymentFailed}, []string{"status"}},
		{"initial status refunded", domain.PaymentInput{Amount: d("1"), Status: domain.PaymentRefunded}, []string{"status"}},
		{"initial status unknown", domain.PaymentInput{Amount: d("1"), Status: "paid"}, []string{"status"}},
		{"unknown strategy", domain.PaymentInput{Amount: d("1"), MatchStrategy: "NEWEST_FIRST"}, []string{"match_strategy"}},
		{"meta array", domain.PaymentInput{Amount: d("1"), Meta: json.RawMessage(`[]`)}, []string{"meta"}},
		{"everything wrong", domain.PaymentInput{Amount: d("0"), Status: "x", MatchStrategy: "y", Meta: json.RawMessage(`1`)},
			[]string{"amount", "status", "match_strategy", "meta"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := paymentFixture(t)
			v := b.a.Version
			p, evs, err := b.a.RecordPayment("pay_1", c.in, t0)
			assert.Nil(t, p)
			assert.Nil(t, evs)
			e := domErr(t, err)
			assert.Equal(t, domain.EINVALID, e.Code)
			assert.Equal(t, c.fields, fieldNames(e))
			assert.Equal(t, v, b.a.Version)
			assert.Empty(t, b.a.Payments)
		})
	}
	t.Run("exactly what is owed", func(t *testing.T) {
		b := paymentFixture(t)
		p, _ := b.pay("pay_1", domain.PaymentInput{Amount: d("150.00")}, t0)
		assert.Equal(t, []string{"inv-1=100.00", "inv-2=50.00"}, allocStrings(p.Allocations))
		assert.True(t, b.a.Outstanding().IsZero())
		_, _, err := b.a.RecordPayment("pay_2", domain.PaymentInput{Amount: d("0.01")}, t0)
		assert.Equal(t, []string{"amount"}, fieldNames(domErr(t, err)))
	})
	t.Run("JPY", func(t *testing.T) {
		b := newLedgerBook(t, "JPY")
		b.post(t0, inv("inv-1", "1000", "2026-01-01"))
		_, _, err := b.a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("0.5")}, t0)
		assert.Equal(t, []string{"amount"}, fieldNames(domErr(t, err)))
		b.pay("pay_1", domain.PaymentInput{Amount: d("999")}, t0)
		assert.True(t, b.a.Outstanding().Equal(d("1")))
	})
}

func TestPaymentReservation(t *testing.T) {
	b := paymentFixture(t) // owes 150
	b.pay("pay_1", domain.PaymentInput{Amount: d("60"), Status: domain.PaymentPending}, t0)
	assert.True(t, b.a.Outstanding().Equal(d("150")), "a pending payment does not move the balance")
	assert.True(t, b.a.Available().Equal(d("90")))
	assert.True(t, b.a.Balance(asOf).Paid.IsZero())
	b.pay("pay_2", domain.PaymentInput{Amount: d("40"), Status: domain.PaymentProcessing}, t0)
	assert.True(t, b.a.Available().Equal(d("50")), "processing reserves too")

	refused := func(amount string) {
		t.Helper()
		_, _, err := b.a.RecordPayment("pay_x", domain.PaymentInput{Amount: d(amount)}, t0)
		e := domErr(t, err)
		assert.Equal(t, domain.EINVALID, e.Code)
		assert.Equal(t, []string{"amount"}, fieldNames(e))
		assert.Contains(t, e.Fields[0].Error, "50.00 EUR available")
		_, err = b.a.PostEntries([]domain.EntryInput{{Reference: "pe-x", Kind: domain.KindPayment, Amount: d(amount)}}, t0, nil)
		assert.Equal(t, []string{"entries[0].amount"}, fieldNames(domErr(t, err)), "payment entries respect the reservation")
		b.rebuild()
	}
	refused("50.01")

	b.keep(b.a.FailPayment("pay_1", "declined", t0))
	assert.True(t, b.a.Available().Equal(d("110")), "a failed payment releases its reservation")
	b.keep(b.a.CompletePayment("pay_2", t0))
	assert.True(t, b.a.Outstanding().Equal(d("110")))
	assert.True(t, b.a.Available().Equal(d("110")), "a completed payment is no longer reserved")
	p, _ := b.pay("pay_3", domain.PaymentInput{Amount: d("110")}, t0)
	assert.Equal(t, []string{"inv-1=60.00", "inv-2=50.00"}, allocStrings(p.Allocations))
	assert.True(t, b.a.Available().IsZero())
}

func TestPaymentCompletesPerItsStrategy(t *testing.T) {
	b := allocationFixture(t)
	b.pay("pay_1", domain.PaymentInput{Amount: d("22"), Status: domain.PaymentPending, MatchStrategy: domain.MatchAccountThenInvoicesWithFees}, t0)
	b.pay("pay_2", domain.PaymentInput{Amount: d("12"), Status: domain.PaymentPending, MatchStrategy: domain.MatchCustomOrderedFees, FeeOrder: []string{"interest"}}, t0)
	evs := b.keep(b.a.CompletePayment("pay_2", t0))
	assert.Equal(t, []string{"fee-B=5.00", "fee-X=7.00"}, allocStrings(decodeEvent[domain.PaymentCompletion](t, evs[0]).Allocations))
	evs = b.keep(b.a.CompletePayment("pay_1", t0))
	assert.Equal(t, []string{"fee-X=8.00", "fee-Y=7.00", "adj-1=7.00"}, allocStrings(decodeEvent[domain.PaymentCompletion](t, evs[0]).Allocations))
}

func TestPaymentReference(t *testing.T) {
	in := domain.PaymentInput{Reference: "P-1", Amount: d("60"), Method: "card", Provider: "stripe", TrackingID: "tr_1",
		MatchStrategy: domain.MatchCustomOrderedFees, FeeOrder: []string{"reminder"}, ProductReference: "P1",
		Status: domain.PaymentPending, Meta: json.RawMessage(`{"x":1,"y":"z"}`)}
	t.Run("same content returns the existing payment", func(t *testing.T) {
		b := paymentFixture(t)
		first, _ := b.pay("pay_1", in, t0)
		v := b.a.Version
		again := in
		again.Amount = d("60.00")
		again.Meta = json.RawMessage(`{"y":"z", "x":1}`)
		again.Status = domain.PaymentCompleted // the status is not part of the content
		p, evs, err := b.a.RecordPayment("pay_2", again, t0.Add(time.Hour))
		require.NoError(t, err)
		assert.Empty(t, evs)
		assert.Same(t, first, p)
		assert.Equal(t, "pay_1", p.ID)
		assert.Equal(t, domain.PaymentPending, p.Status)
		assert.Equal(t, v, b.a.Version)
		assert.Len(t, b.a.Payments, 1)
		_, ok := b.a.Payment("pay_2")
		assert.False(t, ok)
	})
	t.Run("same content after the payment failed", func(t *testing.T) {
		b := paymentFixture(t)
		b.pay("pay_1", in, t0)
		b.keep(b.a.FailPayment("pay_1", "declined", t0))
		p, evs, err := b.a.RecordPayment("pay_2", in, t0)
		require.NoError(t, err)
		assert.Empty(t, evs)
		assert.Equal(t, domain.PaymentFailed, p.Status)
	})
	changes := []struct {
		name   string
		change func(*domain.PaymentInput)
	}{
		{"amount", func(p *domain.PaymentInput) { p.Amount = d("61") }},
		{"method", func(p *domain.PaymentInput) { p.Method = "cash" }},
		{"provider", func(p *domain.PaymentInput) { p.Provider = "adyen" }},
		{"tracking id", func(p *domain.PaymentInput) { p.TrackingID = "tr_2" }},
		{"strategy", func(p *domain.PaymentInput) { p.MatchStrategy = "" }},
		{"fee order", func(p *domain.PaymentInput) { p.FeeOrder = []string{"reminder", "interest"} }},
		{"product", func(p *domain.PaymentInput) { p.ProductReference = "" }},
		{"meta", func(p *domain.PaymentInput) { p.Meta = json.RawMessage(`{"x":2,"y":"z"}`) }},
	}
	for _, c := range changes {
		t.Run("different "+c.name+" is a conflict", func(t *testing.T) {
			b := paymentFixture(t)
			b.pay("pay_1", in, t0)
			v := b.a.Version
			other := in
			c.change(&other)
			p, evs, err := b.a.RecordPayment("pay_2", other, t0)
			assert.Nil(t, p)
			assert.Nil(t, evs)
			e := domErr(t, err)
			assert.Equal(t, domain.ECONFLICT, e.Code)
			assert.Equal(t, []string{"reference"}, fieldNames(e))
			assert.Equal(t, v, b.a.Version)
		})
	}
	t.Run("no reference: always a new payment", func(t *testing.T) {
		b := paymentFixture(t)
		b.pay("pay_1", domain.PaymentInput{Amount: d("10")}, t0)
		b.pay("pay_2", domain.PaymentInput{Amount: d("10")}, t0)
		assert.Len(t, b.a.Payments, 2)
		assert.True(t, b.a.Outstanding().Equal(d("130")))
	})
}

func TestPaymentReversalReopensWhatItSettled(t *testing.T) {
	for _, kind := range []string{"refund", "chargeback"} {
		t.Run(kind, func(t *testing.T) {
			b := paymentFixture(t) // inv-1 100, inv-2 50
			b.post(t0, domain.EntryInput{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("10"), TargetReference: "inv-2"})
			before := b.a.Balance(asOf)
			p, _ := b.pay("pay_1", domain.PaymentInput{Reference: "P-1", Amount: d("120")}, t0.Add(time.Hour))
			assert.Equal(t, []string{"inv-1=100.00", "inv-2=20.00"}, allocStrings(p.Allocations))
			require.NotNil(t, b.entry("inv-1").SettledAt)
			assert.True(t, b.a.Outstanding().Equal(d("20")))

			var evs []domain.NewEvent
			if kind == "refund" {
				evs = b.keep(b.a.RefundPayment("pay_1", "customer asked", t0.Add(2*time.Hour)))
			} else {
				evs = b.keep(b.a.ChargebackPayment("pay_1", "disputed", t0.Add(2*time.Hour)))
			}
			rev := decodeEvent[domain.PaymentReversed](t, evs[0])
			assert.Equal(t, "pay_1", rev.PaymentID)
			assert.Equal(t, []string{"inv-2=20.00", "inv-1=100.00"}, allocStrings(rev.Reversals), "every allocation, latest first")
			assert.Nil(t, b.entry("inv-1").SettledAt)
			assert.True(t, b.entry("inv-1").Paid.IsZero())
			assert.True(t, b.entry("inv-2").Paid.Equal(d("10")), "the payment entry's allocation stays")
			assert.True(t, b.a.Outstanding().Equal(d("140")), "outstanding restored exactly")
			after := b.a.Balance(asOf)
			want := map[string]string{"Paid": "120", "Refunded": "120"}
			if kind == "chargeback" {
				want = map[string]string{"Paid": "120", "Chargebacks": "120"}
			}
			assertBalanceDelta(t, before, after, want)
			assert.True(t, after.Outstanding.Equal(before.Outstanding))
			// a reversed payment is final
			_, err := b.a.RefundPayment("pay_1", "", t0)
			assert.Equal(t, domain.ECONFLICT, domain.ErrorCode(err))
			assert.True(t, strings.Contains(domain.ErrorMessage(err), "is "+string(p.Status)))
			assert.Equal(t, after, replay(t, b.all).Balance(asOf))
		})
	}
}

// A pending payment is not allocated until it completes. If the account owes
// less by then (a discount, a negative adjustment or an amendment down, none
// of which respect the reservation), what no open debit can take becomes
// unallocated credit (to_credit), which the next debits consume.
// TestPendingPaymentsReserveWhatIsOwed: while a payment is pending, what is
// owed cannot be reduced below what it reserves (discount, negative
// adjustment, amendment down), so a completion always finds debits to pay
// and never overflows into unallocated credit — which also means reversing
// a payment never has to take back credit that later debits consumed.
func TestPendingPaymentsReserveWhatIsOwed(t *testing.T) {
	b := newLedgerBook(t, "EUR")
	b.post(t0, inv("inv-1", "100", "2026-01-01"))
	b.pay("pay_1", domain.PaymentInput{Amount: d("100"), Status: domain.PaymentPending}, t0)

	for _, e := range []domain.EntryInput{
		{Reference: "disc-1", Kind: domain.KindDiscount, Amount: d("70"), TargetReference: "inv-1"},
		{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("-0.01")},
	} {
		evs, err := b.a.PostEntries([]domain.EntryInput{e}, t0, nil)
		require.Error(t, err, e.Reference)
		assert.Empty(t, evs)
		var de *domain.Error
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "entries[0].amount", de.Fields[0].Field)
		assert.Contains(t, de.Fields[0].Error, "pending")
	}
	_, err := b.a.Amend("inv-1", d("99"), "typo", t0)
	assert.Equal(t, domain.ECONFLICT, domain.ErrorCode(err))

	evs := b.keep(b.a.CompletePayment("pay_1", t0))
	ev := decodeEvent[domain.PaymentCompletion](t, evs[0])
	assert.Equal(t, []string{"inv-1=100.00"}, allocStrings(ev.Allocations))
	assert.True(t, ev.ToCredit.IsZero())
	assert.True(t, b.a.Credit.IsZero())

	// Once nothing is pending, reductions are allowed again.
	b.post(t0, inv("inv-2", "50", "2026-02-01"))
	b.post(t0, domain.EntryInput{Reference: "disc-2", Kind: domain.KindDiscount, Amount: d("20"), TargetReference: "inv-2"})
	assert.True(t, b.a.Outstanding().Equal(d("30")))
	assert.Equal(t, b.a.Balance(asOf), replay(t, b.all).Balance(asOf))
}

// TestReopenedDebitsConsumeCredit: unallocated credit (from a negative
// adjustment) pays the debits a chargeback or refund re-opens, so aging and
// overdue never show debt that credit already covers.
func TestReopenedDebitsConsumeCredit(t *testing.T) {
	for _, reverse := range []string{"chargeback-entry", "refund", "chargeback"} {
		t.Run(reverse, func(t *testing.T) {
			b := newLedgerBook(t, "EUR")
			b.post(t0, inv("inv-1", "100", "2026-01-01"))
			if reverse == "chargeback-entry" {
				b.post(t0, domain.EntryInput{Reference: "pe-1", Kind: domain.KindPayment, Amount: d("30")})
			} else {
				b.pay("pay_1", domain.PaymentInput{Amount: d("30")}, t0)
			}
			b.post(t0, domain.EntryInput{Reference: "adj-1", Kind: domain.KindAdjustment, Amount: d("-90")}) // 70 to inv-1, 20 credit
			require.True(t, b.a.Credit.Equal(d("20")))
			switch reverse {
			case "chargeback-entry":
				b.post(t0, domain.EntryInput{Reference: "cb-1", Kind: domain.KindChargeback, Amount: d("30"), TargetReference: "pe-1"})
			case "refund":
				b.keep(b.a.RefundPayment("pay_1", "", t0))
			case "chargeback":
				b.keep(b.a.ChargebackPayment("pay_1", "", t0))
			}
			assert.True(t, b.a.Credit.IsZero(), "credit %s", b.a.Credit)
			assert.True(t, b.a.Outstanding().Equal(d("10")))
			bal := b.a.Balance("2026-03-01")
			assert.True(t, bal.Overdue.Equal(d("10")), "overdue %s", bal.Overdue)
			assert.True(t, bal.Outstanding.Equal(b.a.Outstanding()))
			assert.Equal(t, bal, replay(t, b.all).Balance("2026-03-01"))
		})
	}
}
