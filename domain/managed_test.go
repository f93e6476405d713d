package domain_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/arrears/arrears/domain"
)

const managedAccountID = "acct_01KA2M3N4P5Q6R7S8T9V0W1X2Y"

var mt0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// managedBook is an account with debtors, and the managed claims of its
// invoices as the sync leaves them (each with every event it recorded).
type managedBook struct {
	t      tb
	a      *domain.Account
	claims map[string]*domain.Claim
	events map[string][]domain.NewEvent
	now    time.Time
	opened []domain.NewEvent
}

// tb is what the helpers need of *testing.T and *rapid.T.
type tb interface {
	require.TestingT
	Helper()
}

func newManagedBook(t tb, sandbox bool) *managedBook {
	t.Helper()
	b := &managedBook{t: t, a: domain.NewAccount("ten_1", managedAccountID), claims: map[string]*domain.Claim{},
		events: map[string][]domain.NewEvent{}, now: mt0}
	var err error
	b.opened, err = b.a.Open(domain.OpenAccount{Reference: "A-1", Currency: "EUR", DebtorIDs: []string{"dbt_1", "dbt_2"}, Sandbox: sandbox}, mt0)
	require.NoError(t, err)
	return b
}

func (b *managedBook) tick() time.Time { b.now = b.now.Add(time.Hour); return b.now }

func (b *managedBook) post(ins ...domain.EntryInput) {
	b.t.Helper()
	_, err := b.a.PostEntries(ins, b.tick(), nil)
	require.NoError(b.t, err)
}

func (b *managedBook) claim(ref string) *domain.Claim {
	c, ok := b.claims[ref]
	if !ok {
		c = domain.NewClaim("ten_1", domain.ManagedClaimID(b.a.ID, ref))
		b.claims[ref] = c
	}
	return c
}

// sync runs the decision for invoice ref, keeps its events, and requires a
// second run to record nothing.
func (b *managedBook) sync(ref string) []string {
	b.t.Helper()
	c := b.claim(ref)
	evs, err := c.SyncWithEntry(b.a, ref, b.tick())
	require.NoError(b.t, err)
	b.events[ref] = append(b.events[ref], evs...)
	again, err := c.SyncWithEntry(b.a, ref, b.tick())
	require.NoError(b.t, err)
	require.Empty(b.t, types(again), "a second sync records nothing")
	// The fold of every event equals the live claim.
	r := domain.NewClaim("ten_1", c.ID)
	for _, e := range b.events[ref] {
		require.NoError(b.t, r.Apply(e.Type, e.Data))
	}
	require.Equal(b.t, c, r, "replay equals live")
	return types(evs)
}

func types(evs []domain.NewEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func invoice(ref, amount string) domain.EntryInput {
	return domain.EntryInput{Reference: ref, Kind: domain.KindInvoice, Amount: d(amount), DueDate: "2026-02-01", ProductReference: "P1"}
}

func fee(ref, target, amount string) domain.EntryInput {
	return domain.EntryInput{Reference: ref, Kind: domain.KindFee, Amount: d(amount), TargetReference: target, FeeType: "reminder"}
}

func paymentEntry(ref, target, amount string) domain.EntryInput {
	return domain.EntryInput{Reference: ref, Kind: domain.KindPayment, Amount: d(amount), TargetReference: target}
}

func TestManagedClaimID(t *testing.T) {
	id := domain.ManagedClaimID(managedAccountID, "INV-1")
	assert.True(t, domain.HasPrefix(id, domain.PrefixClaim), id)
	assert.Equal(t, id, domain.ManagedClaimID(managedAccountID, "INV-1"), "deterministic")
	assert.NotEqual(t, id, domain.ManagedClaimID(managedAccountID, "INV-2"))
	assert.NotEqual(t, id, domain.ManagedClaimID("acct_01KA2M3N4P5Q6R7S8T9V0W1X2Z", "INV-1"))
	assert.NotEqual(t, domain.ManagedClaimID(managedAccountID, "a\x00b"), domain.ManagedClaimID(managedAccountID+"\x00a", "b"))

	acct := ulid.MustParse(strings.TrimPrefix(managedAccountID, "acct_"))
	clm := ulid.MustParse(strings.TrimPrefix(id, "clm_"))
	assert.Equal(t, acct.Time(), clm.Time(), "the account's time")
	assert.True(t, domain.HasPrefix(domain.ManagedClaimID("acct_1", "INV-1"), domain.PrefixClaim), "an account id that is no ULID still gives a valid id")
}

// TestManagedSync walks the decision through the ledger changes a managed
// claim follows; every step also checks that a second sync records
// nothing and that the claim's events replay to the same claim.
func TestManagedSync(t *testing.T) {
	t.Run("create", func(t *testing.T) {
		b := newManagedBook(t, true)
		in := invoice("INV-1", "100.00")
		in.OriginalDueDate = "2026-01-15"
		b.post(in)
		require.Equal(t, []string{domain.EventClaimCreated}, b.sync("INV-1"))
		c := b.claim("INV-1")
		assert.Equal(t, domain.ClaimOpen, c.Status)
		assert.True(t, c.Managed())
		assert.True(t, c.Sandbox)
		assert.Equal(t, "INV-1", c.Reference)
		assert.Equal(t, "INV-1", c.EntryReference)
		assert.Equal(t, managedAccountID, c.AccountID)
		assert.Equal(t, "EUR", c.Currency)
		assert.Equal(t, "100", c.Amount.String())
		assert.Equal(t, "0", c.TotalFees.String())
		assert.Equal(t, domain.Date("2026-01-15"), c.OriginalDueDate)
		assert.Equal(t, domain.Date("2026-02-01"), c.CurrentDueDate)
		assert.Equal(t, "P1", c.ProductReference)
		assert.Equal(t, "dbt_1", c.PrimaryDebtorID)
	})
	t.Run("create with fees and what is already paid", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"), fee("FEE-1", "INV-1", "10.00"), fee("FEE-2", "INV-1", "2.50"), paymentEntry("PE-1", "INV-1", "30.00"))
		require.Equal(t, []string{domain.EventClaimCreated, domain.EventClaimPaid}, b.sync("INV-1"))
		c := b.claim("INV-1")
		assert.Equal(t, "70", c.Amount.String())
		assert.Equal(t, "30", c.Paid.String())
		assert.Equal(t, "12.5", c.TotalFees.String())
		assert.False(t, c.Sandbox)
		assert.Equal(t, domain.Date("2026-02-01"), c.OriginalDueDate, "an invoice without original due date: its due date")
	})
	t.Run("created already paid resolves at once", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"), paymentEntry("PE-1", "INV-1", "100.00"))
		require.Equal(t, []string{domain.EventClaimCreated, domain.EventClaimPaid, domain.EventClaimResolved}, b.sync("INV-1"))
		c := b.claim("INV-1")
		assert.Equal(t, domain.ClaimResolved, c.Status)
		assert.Equal(t, domain.ResolutionPaid, c.Resolution)
	})
	t.Run("amendments up and down", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"))
		b.sync("INV-1")
		_, err := b.a.Amend("INV-1", d("150.00"), "interest", b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimDebited}, b.sync("INV-1"))
		c := b.claim("INV-1")
		assert.Equal(t, "150", c.Amount.String())
		assert.Equal(t, "50", c.Debits.String())
		_, err = b.a.Amend("INV-1", d("80.00"), "goodwill", b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimCredited}, b.sync("INV-1"))
		assert.Equal(t, "80", c.Amount.String())
		assert.Equal(t, "70", c.Credits.String())
		assert.Equal(t, domain.ClaimOpen, c.Status)
	})
	t.Run("fees posted and amended", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"), invoice("INV-2", "50.00"))
		b.sync("INV-1")
		b.sync("INV-2")
		b.post(fee("FEE-1", "INV-1", "10.00"))
		require.Equal(t, []string{domain.EventClaimUpdated}, b.sync("INV-1"))
		require.Empty(t, b.sync("INV-2"), "another invoice's fee")
		_, err := b.a.Amend("FEE-1", d("25.00"), "rate", b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimUpdated}, b.sync("INV-1"))
		assert.Equal(t, "25", b.claim("INV-1").TotalFees.String())
		assert.Equal(t, "100", b.claim("INV-1").Amount.String(), "fees are not the claim's amount")
	})
	t.Run("partial then full payment resolves it paid", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"))
		b.sync("INV-1")
		_, _, err := b.a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("40.00")}, b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimPaid}, b.sync("INV-1"))
		c := b.claim("INV-1")
		assert.Equal(t, "60", c.Amount.String())
		_, _, err = b.a.RecordPayment("pay_2", domain.PaymentInput{Amount: d("60.00")}, b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimPaid, domain.EventClaimResolved}, b.sync("INV-1"))
		assert.Equal(t, domain.ClaimResolved, c.Status)
		assert.Equal(t, domain.ResolutionPaid, c.Resolution)
		assert.Equal(t, "0", c.Amount.String())
	})
	t.Run("a paused claim follows payments and stays paused", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"))
		b.sync("INV-1")
		c := b.claim("INV-1")
		evs, err := c.Pause("dispute", b.tick())
		require.NoError(t, err)
		b.events["INV-1"] = append(b.events["INV-1"], evs...)
		_, _, err = b.a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("40.00")}, b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimPaid}, b.sync("INV-1"))
		assert.Equal(t, domain.ClaimPaused, c.Status)
	})
	t.Run("refund of a partial payment reverses it", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"))
		_, _, err := b.a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("40.00")}, b.tick())
		require.NoError(t, err)
		b.sync("INV-1")
		_, err = b.a.RefundPayment("pay_1", "customer request", b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimPaymentReversed}, b.sync("INV-1"))
		c := b.claim("INV-1")
		assert.Equal(t, "100", c.Amount.String())
		assert.Equal(t, "0", c.Paid.String())
	})
	t.Run("reversal and amendment down in one sync: increases first", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"))
		_, _, err := b.a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("80.00")}, b.tick())
		require.NoError(t, err)
		b.sync("INV-1")
		_, err = b.a.RefundPayment("pay_1", "", b.tick())
		require.NoError(t, err)
		_, err = b.a.Amend("INV-1", d("50.00"), "goodwill", b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimPaymentReversed, domain.EventClaimCredited}, b.sync("INV-1"))
		assert.Equal(t, "50", b.claim("INV-1").Amount.String())
	})
	t.Run("amended down to what is paid resolves it paid", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"), paymentEntry("PE-1", "INV-1", "30.00"))
		b.sync("INV-1")
		_, err := b.a.Amend("INV-1", d("30.00"), "settlement", b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimCredited, domain.EventClaimResolved}, b.sync("INV-1"))
	})
	t.Run("a chargeback re-opens a paid claim: recreated", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"))
		b.sync("INV-1")
		c := b.claim("INV-1")
		evs, err := c.Update(domain.ClaimFields{PortfolioReference: ptrTo("PF-1")}, b.tick())
		require.NoError(t, err)
		b.events["INV-1"] = append(b.events["INV-1"], evs...)
		_, _, err = b.a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("60.00")}, b.tick())
		require.NoError(t, err)
		_, _, err = b.a.RecordPayment("pay_2", domain.PaymentInput{Amount: d("40.00")}, b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimPaid, domain.EventClaimResolved}, b.sync("INV-1"))
		_, err = b.a.ChargebackPayment("pay_2", "disputed at the bank", b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimRecreated, domain.EventClaimPaid}, b.sync("INV-1"))
		assert.Equal(t, domain.ClaimOpen, c.Status)
		assert.Equal(t, 1, c.Recreations)
		assert.Equal(t, "40", c.Amount.String())
		assert.Equal(t, "60", c.Paid.String())
		assert.Equal(t, "100", c.OriginalAmount.String())
		assert.Equal(t, "PF-1", c.PortfolioReference, "the creditor's fields survive a recreate")
		_, err = b.a.ChargebackPayment("pay_1", "", b.tick())
		require.NoError(t, err)
		require.Equal(t, []string{domain.EventClaimPaymentReversed}, b.sync("INV-1"))
		assert.Equal(t, "100", c.Amount.String())
	})
	for _, status := range []string{"stopped", "resolved sold", "resolved paid by the creditor"} {
		t.Run(status+" is left alone", func(t *testing.T) {
			b := newManagedBook(t, false)
			b.post(invoice("INV-1", "100.00"))
			b.sync("INV-1")
			c := b.claim("INV-1")
			var evs []domain.NewEvent
			var err error
			switch status {
			case "stopped":
				evs, err = c.Stop("insolvency", b.tick())
			case "resolved sold":
				evs, err = c.Resolve(domain.ResolutionSold, "portfolio sale", b.tick())
			default:
				evs, err = c.Resolve(domain.ResolutionPaid, "paid elsewhere", b.tick())
			}
			require.NoError(t, err)
			b.events["INV-1"] = append(b.events["INV-1"], evs...)
			before := *c
			_, err = b.a.Amend("INV-1", d("120.00"), "interest", b.tick())
			require.NoError(t, err)
			b.post(fee("FEE-1", "INV-1", "5.00"))
			_, _, err = b.a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("50.00")}, b.tick())
			require.NoError(t, err)
			require.Empty(t, b.sync("INV-1"))
			assert.Equal(t, before, *c)
		})
	}
	t.Run("fields that drifted are restored", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"), fee("FEE-1", "INV-1", "7.00"))
		c := b.claim("INV-1")
		in := domain.ClaimInput{Reference: "INV-1", AccountID: managedAccountID, EntryReference: "INV-1", Amount: d("100.00"), Currency: "EUR",
			OriginalDueDate: "2026-02-01", CurrentDueDate: "2026-03-01"}
		evs, err := c.Create(in, false, b.tick())
		require.NoError(t, err)
		b.events["INV-1"] = evs
		require.Equal(t, []string{domain.EventClaimUpdated}, b.sync("INV-1"))
		assert.Equal(t, domain.Date("2026-02-01"), c.CurrentDueDate)
		assert.Equal(t, "7", c.TotalFees.String())
	})
	t.Run("refusals", func(t *testing.T) {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"), fee("FEE-1", "INV-1", "7.00"))
		c := b.claim("INV-1")
		_, err := c.SyncWithEntry(b.a, "FEE-1", b.tick())
		assert.Equal(t, "not_an_invoice", domErr(t, err).Reason)
		_, err = c.SyncWithEntry(b.a, "NOPE", b.tick())
		assert.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err))
		other := domain.NewClaim("ten_1", c.ID)
		_, err = other.Create(claimInput(), false, b.tick())
		require.NoError(t, err)
		_, err = other.SyncWithEntry(b.a, "INV-1", b.tick())
		assert.Equal(t, domain.ECONFLICT, domain.ErrorCode(err), "a claim that follows something else")
	})
}

// TestManagedClaimGuards: the ledger entry is the truth of a managed claim.
// Credit, debit, recreate and an update of current_due_date or total_fees
// are 409 managed_claim (naming the field); the rest stays allowed.
func TestManagedClaimGuards(t *testing.T) {
	managed := func(t *testing.T) *domain.Claim {
		b := newManagedBook(t, false)
		b.post(invoice("INV-1", "100.00"))
		b.sync("INV-1")
		return b.claim("INV-1")
	}
	c := managed(t)
	refused := func(t *testing.T, evs []domain.NewEvent, err error, fields ...string) {
		t.Helper()
		version := c.Version
		de := domErr(t, err)
		assert.Equal(t, domain.ECONFLICT, de.Code)
		assert.Equal(t, "managed_claim", de.Reason)
		assert.Contains(t, de.Message, "amend the ledger entry instead")
		if fields == nil {
			fields = []string{}
		}
		assert.Equal(t, fields, fieldNames(de))
		assert.Empty(t, evs)
		assert.Equal(t, version, c.Version, "nothing recorded")
	}
	evs, err := c.Credit(d("10.00"), "goodwill", mt0)
	refused(t, evs, err, "amount")
	evs, err = c.Debit(d("10.00"), "interest", mt0)
	refused(t, evs, err, "amount")
	evs, err = c.Update(domain.ClaimFields{TotalFees: ptrTo("5.00"), PortfolioReference: ptrTo("PF")}, mt0)
	refused(t, evs, err, "total_fees")
	due := domain.Date("2026-05-01")
	evs, err = c.Update(domain.ClaimFields{CurrentDueDate: &due, TotalFees: ptrTo("5.00")}, mt0)
	refused(t, evs, err, "current_due_date", "total_fees")

	evs, err = c.Update(domain.ClaimFields{TotalFees: ptrTo("0"), CurrentDueDate: &c.CurrentDueDate}, mt0)
	require.NoError(t, err, "the same values change nothing: allowed")
	assert.Empty(t, evs)
	_, err = c.Update(domain.ClaimFields{PortfolioReference: ptrTo("PF"), Meta: []byte(`{"k":1}`)}, mt0)
	require.NoError(t, err)
	_, err = c.Pause("dispute", mt0)
	require.NoError(t, err)
	_, err = c.Resume(mt0)
	require.NoError(t, err)
	_, err = c.Resolve(domain.ResolutionSold, "sale", mt0)
	require.NoError(t, err)
	evs, err = c.Recreate(domain.ClaimInput{Reference: "INV-1", AccountID: managedAccountID, Amount: d("10.00"), Currency: "EUR", OriginalDueDate: "2026-02-01"}, mt0)
	refused(t, evs, err)

	c = managed(t)
	_, err = c.Stop("deceased", mt0)
	require.NoError(t, err)

	// A direct claim is not guarded.
	direct := openClaim(t)
	_, err = direct.Credit(d("10.00"), "goodwill", mt0)
	require.NoError(t, err)
	_, err = direct.Debit(d("10.00"), "interest", mt0)
	require.NoError(t, err)
}

func TestManagedRefs(t *testing.T) {
	b := newManagedBook(t, false)
	evs, err := b.a.PostEntries([]domain.EntryInput{invoice("INV-1", "100.00"), invoice("INV-2", "50.00"), fee("FEE-1", "INV-1", "5.00"),
		paymentEntry("PE-1", "", "120.00"), {Reference: "REP-1", Kind: domain.KindReporting, Amount: d("1")}}, mt0, nil)
	require.NoError(t, err)
	got := [][]string{}
	for _, e := range evs {
		refs, err := domain.ManagedRefs(e.Type, e.Data)
		require.NoError(t, err)
		got = append(got, refs)
	}
	assert.Equal(t, [][]string{{"INV-1"}, {"INV-2"}, {"FEE-1", "INV-1"}, {"PE-1", "INV-1", "INV-2"}, {"REP-1"}}, got)

	l := domain.NewManagedLedger(b.a)
	for ref, want := range map[string]string{"INV-1": "INV-1", "INV-2": "INV-2", "FEE-1": "INV-1", "PE-1": "", "REP-1": "", "NOPE": ""} {
		inv, ok := l.InvoiceOf(ref)
		assert.Equal(t, want, inv, ref)
		assert.Equal(t, want != "", ok, ref)
	}

	evs, err = b.a.Amend("FEE-1", d("6.00"), "rate", mt0)
	require.NoError(t, err)
	refs, err := domain.ManagedRefs(evs[0].Type, evs[0].Data)
	require.NoError(t, err)
	assert.Equal(t, []string{"FEE-1"}, refs)
	b.post(invoice("INV-3", "10.00"))
	_, evs, err = b.a.RecordPayment("pay_1", domain.PaymentInput{Amount: d("10.00")}, mt0)
	require.NoError(t, err)
	refs, err = domain.ManagedRefs(evs[len(evs)-1].Type, evs[len(evs)-1].Data)
	require.NoError(t, err)
	assert.Equal(t, []string{"INV-2"}, refs, "oldest first: what INV-2 still owes")
	evs, err = b.a.ChargebackPayment("pay_1", "", mt0)
	require.NoError(t, err)
	refs, err = domain.ManagedRefs(evs[0].Type, evs[0].Data)
	require.NoError(t, err)
	assert.Equal(t, []string{"INV-2"}, refs)
	refs, err = domain.ManagedRefs(domain.EventAccountUpdated, []byte(`{}`))
	require.NoError(t, err)
	assert.Empty(t, refs)
}

// managedMachine drives an account with random ledger commands and syncs
// every invoice's managed claim after each one; a creditor now and then
// pauses, resumes, stops or resolves claims.
type managedMachine struct {
	b    *managedBook
	kept []domain.NewEvent // the account's events
	n    int
	pays []string // payment ids
}

func (m *managedMachine) amount(t *rapid.T, label string, maxMinor int64) decimal.Decimal {
	x, err := domain.FromMinor(rapid.Int64Range(1, maxMinor).Draw(t, label), "EUR")
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func (m *managedMachine) refs(kinds ...domain.EntryKind) []string {
	var out []string
	for _, e := range m.b.a.Entries {
		if slices.Contains(kinds, e.Kind) {
			out = append(out, e.Reference)
		}
	}
	return out
}

func (m *managedMachine) pick(t *rapid.T, label string, refs []string) string {
	if len(refs) == 0 {
		return ""
	}
	return rapid.SampledFrom(refs).Draw(t, label)
}

// done keeps a command's events, or rebuilds the account after a refusal.
func (m *managedMachine) done(t *rapid.T, evs []domain.NewEvent, err error) {
	if err != nil {
		if c := domain.ErrorCode(err); c != domain.EINVALID && c != domain.ECONFLICT && c != domain.ENOTFOUND {
			t.Fatalf("unexpected error %v", err)
		}
		a := domain.NewAccount("ten_1", managedAccountID)
		for _, e := range m.kept {
			if err := a.Apply(e.Type, e.Data); err != nil {
				t.Fatal(err)
			}
		}
		m.b.a = a
		return
	}
	m.kept = append(m.kept, evs...)
}

func (m *managedMachine) post(t *rapid.T, in domain.EntryInput) {
	evs, err := m.b.a.PostEntries([]domain.EntryInput{in}, m.b.tick(), nil)
	m.done(t, evs, err)
}

func (m *managedMachine) actions() map[string]func(*rapid.T) {
	next := func(p string) string { m.n++; return fmt.Sprintf("%s-%d", p, m.n) }
	return map[string]func(*rapid.T){
		"invoice": func(t *rapid.T) {
			m.post(t, domain.EntryInput{Reference: next("INV"), Kind: domain.KindInvoice, Amount: m.amount(t, "amount", 50000), DueDate: "2026-02-01"})
		},
		"fee": func(t *rapid.T) {
			m.post(t, domain.EntryInput{Reference: next("FEE"), Kind: domain.KindFee, Amount: m.amount(t, "amount", 5000),
				TargetReference: m.pick(t, "target", m.refs(domain.KindInvoice))})
		},
		"payment": func(t *rapid.T) {
			id := next("pay")
			_, evs, err := m.b.a.RecordPayment(id, domain.PaymentInput{Amount: m.amount(t, "amount", 60000),
				MatchStrategy: rapid.SampledFrom(domain.MatchStrategies[:3]).Draw(t, "strategy")}, m.b.tick())
			m.done(t, evs, err)
			if err == nil {
				m.pays = append(m.pays, id)
			}
		},
		"payment_entry": func(t *rapid.T) {
			m.post(t, domain.EntryInput{Reference: next("PE"), Kind: domain.KindPayment, Amount: m.amount(t, "amount", 60000),
				TargetReference: m.pick(t, "target", m.refs(domain.KindInvoice, domain.KindFee))})
		},
		"discount": func(t *rapid.T) {
			m.post(t, domain.EntryInput{Reference: next("DISC"), Kind: domain.KindDiscount, Amount: m.amount(t, "amount", 20000),
				TargetReference: m.pick(t, "target", m.refs(domain.KindInvoice, domain.KindFee))})
		},
		"negative_adjustment": func(t *rapid.T) {
			m.post(t, domain.EntryInput{Reference: next("ADJ"), Kind: domain.KindAdjustment, Amount: m.amount(t, "amount", 30000).Neg()})
		},
		"amend": func(t *rapid.T) {
			ref := m.pick(t, "ref", m.refs(domain.KindInvoice, domain.KindFee))
			if ref == "" {
				return
			}
			evs, err := m.b.a.Amend(ref, m.amount(t, "amount", 50000), "amended", m.b.tick())
			m.done(t, evs, err)
		},
		"refund_or_chargeback": func(t *rapid.T) {
			id := m.pick(t, "payment", m.pays)
			if id == "" {
				return
			}
			var evs []domain.NewEvent
			var err error
			if rapid.Bool().Draw(t, "refund") {
				evs, err = m.b.a.RefundPayment(id, "refund", m.b.tick())
			} else {
				evs, err = m.b.a.ChargebackPayment(id, "chargeback", m.b.tick())
			}
			m.done(t, evs, err)
		},
		"chargeback_entry": func(t *rapid.T) {
			m.post(t, domain.EntryInput{Reference: next("CB"), Kind: domain.KindChargeback, Amount: m.amount(t, "amount", 30000),
				TargetReference: m.pick(t, "target", m.refs(domain.KindPayment))})
		},
		"creditor": func(t *rapid.T) {
			ref := m.pick(t, "claim", m.refs(domain.KindInvoice))
			c, ok := m.b.claims[ref]
			if !ok {
				return
			}
			var evs []domain.NewEvent
			var err error
			switch rapid.IntRange(0, 9).Draw(t, "decision") {
			case 0:
				evs, err = c.Stop("creditor", m.b.tick())
			case 1:
				evs, err = c.Resolve(domain.ResolutionDiscarded, "creditor", m.b.tick())
			case 2, 3, 4:
				evs, err = c.Pause("creditor", m.b.tick())
			default:
				evs, err = c.Resume(m.b.tick())
			}
			if err != nil { // a transition the status does not allow records nothing
				require.Equal(t, domain.ECONFLICT, domain.ErrorCode(err))
				require.Empty(t, evs)
				return
			}
			m.b.events[ref] = append(m.b.events[ref], evs...)
		},
		"": m.check,
	}
}

// check syncs every invoice's claim and checks it follows its entry.
func (m *managedMachine) check(t *rapid.T) {
	for _, ref := range m.refs(domain.KindInvoice) {
		m.b.t = t
		m.b.sync(ref)
		c, e := m.b.claims[ref], m.entry(t, ref)
		fees := decimal.Zero
		for _, f := range m.b.a.Entries {
			if f.Kind == domain.KindFee && f.TargetReference == ref {
				fees = fees.Add(f.Amount)
			}
		}
		net := c.OriginalAmount.Add(c.Debits).Sub(c.Credits).Sub(c.Paid)
		if !c.Amount.Equal(net) {
			t.Fatalf("%s: amount %s != original %s + debits %s - credits %s - paid %s", ref, c.Amount, c.OriginalAmount, c.Debits, c.Credits, c.Paid)
		}
		switch {
		case c.Status == domain.ClaimOpen || c.Status == domain.ClaimPaused:
			if !c.Amount.Equal(e.Remaining()) || !c.Paid.Equal(e.Paid) || !c.Amount.IsPositive() {
				t.Fatalf("%s (%s): claim amount %s paid %s, entry remaining %s paid %s", ref, c.Status, c.Amount, c.Paid, e.Remaining(), e.Paid)
			}
			if !c.TotalFees.Equal(fees) || c.CurrentDueDate != e.DueDate {
				t.Fatalf("%s: claim fees %s due %s, ledger %s %s", ref, c.TotalFees, c.CurrentDueDate, fees, e.DueDate)
			}
		case c.Status == domain.ClaimResolved && c.Resolution == domain.ResolutionPaid:
			if !e.Remaining().IsZero() {
				t.Fatalf("%s: resolved paid while %s remains", ref, e.Remaining())
			}
		}
	}
}

func (m *managedMachine) entry(t *rapid.T, ref string) *domain.Entry {
	e, ok := m.b.a.Entry(ref)
	if !ok {
		t.Fatalf("no entry %s", ref)
	}
	return e
}

// TestManagedSyncProperties: after any sequence of ledger commands, with a
// sync after each, every open or paused managed claim's amount is its
// invoice's remainder (and original + debits − credits − paid), its paid
// the invoice's, its fees and due date the ledger's; a claim resolved as
// paid has nothing remaining; a second sync records nothing; and every
// claim's events replay to the claim.
func TestManagedSyncProperties(t *testing.T) {
	recorded := map[string]int{}
	rapid.Check(t, func(rt *rapid.T) {
		m := &managedMachine{b: newManagedBook(rt, false)}
		m.kept = m.b.opened
		rt.Repeat(m.actions())
		for _, evs := range m.b.events {
			for _, e := range evs {
				recorded[e.Type]++
			}
		}
	})
	t.Logf("claim events recorded: %v", recorded)
	for _, typ := range []string{domain.EventClaimDebited, domain.EventClaimCredited, domain.EventClaimPaymentReversed, domain.EventClaimRecreated, domain.EventClaimUpdated} {
		assert.Positive(t, recorded[typ], "no %s in any run: the generator misses a path", typ)
	}
}
