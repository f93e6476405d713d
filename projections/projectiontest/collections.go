package projectiontest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// CollectionsWorkload drives random collection histories through the
// domain's commands (eventstore.Store.Execute), over a few tenants, live
// and sandbox, refused commands included: claims (as ClaimsWorkload) with
// promises to pay made, kept by payments and credits, broken by the
// scheduler's day passing their due date, cancelled by resolutions and
// stops; custom triggers on claims and accounts; disputes opened on
// accounts and claims, resolved and withdrawn; campaigns created, paused,
// resumed and completed; and enrollments of claims, accounts and
// statements in them — created, cancelled, reopened and advanced as the
// scheduler does (journey.step_due, completion).
func CollectionsWorkload(t *testing.T, rng *rand.Rand, store *eventstore.Store) {
	CollectionsHistory(t, rng, store, 250+rng.IntN(150))
}

// CollectionsHistory is CollectionsWorkload with a given number of steps.
// Its first steps always create an account, a claim, a campaign, an
// enrollment and a dispute, so that no collection table stays empty.
func CollectionsHistory(t testing.TB, rng *rand.Rand, store *eventstore.Store, steps int) {
	cw := &claimsWorld{t: t, rng: rng, store: store, now: time.Date(2025, 11, 3, 8, 0, 0, 0, time.UTC)}
	cw.ids = domain.NewIDGenerator(rngReader{rng})
	for i := range 2 {
		cw.tenants = append(cw.tenants, fmt.Sprintf("ten_coll%d", i))
	}
	w := &collectionsWorld{claimsWorld: cw}
	w.prelude()
	for range steps {
		w.now = w.now.Add(time.Duration(1+rng.IntN(24*60)) * time.Minute)
		w.step()
	}
}

type collectionsWorld struct {
	*claimsWorld
	accounts    []collAccount
	disputes    []collRef
	campaigns   []collRef
	enrollments []collEnrollment
}

type collAccount struct {
	tenant, id, currency string
	sandbox              bool
	debtors              []string
	due                  domain.Date
}

// collRef names a stream of a tenant, in a mode.
type collRef struct {
	tenant, id string
	sandbox    bool
}

type collEnrollment struct {
	collRef
	campaign collRef
	target   domain.EnrollmentTarget
	anchor   domain.Date
}

func (w *collectionsWorld) today() domain.Date { return domain.DateOf(w.now) }

func (w *collectionsWorld) cmd(tenant, streamType, id string, newAgg func() domain.Aggregate, decide func(domain.Aggregate) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.Command{TenantID: tenant, StreamType: streamType, StreamID: id, New: newAgg, Decide: decide}
}

// read is a command that only reads its aggregate into *dst.
func read[A domain.Aggregate](w *collectionsWorld, tenant, streamType, id string, newAgg func() A, dst *A) eventstore.Command {
	return w.cmd(tenant, streamType, id, func() domain.Aggregate { return newAgg() },
		func(agg domain.Aggregate) ([]domain.NewEvent, error) { *dst = agg.(A); return nil, nil })
}

func (w *collectionsWorld) campaignCmd(c collRef, decide func(*domain.Campaign) ([]domain.NewEvent, error)) eventstore.Command {
	return w.cmd(c.tenant, domain.StreamTypeCampaign, c.id, func() domain.Aggregate { return domain.NewCampaign(c.tenant, c.id) },
		func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(*domain.Campaign)) })
}

func (w *collectionsWorld) disputeCmd(d collRef, decide func(*domain.Dispute) ([]domain.NewEvent, error)) eventstore.Command {
	return w.cmd(d.tenant, domain.StreamTypeDispute, d.id, func() domain.Aggregate { return domain.NewDispute(d.tenant, d.id) },
		func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(*domain.Dispute)) })
}

func (w *collectionsWorld) enrollmentCmd(tenant, id string, decide func(*domain.Enrollment) ([]domain.NewEvent, error)) eventstore.Command {
	return w.cmd(tenant, domain.StreamTypeEnrollment, id, func() domain.Aggregate { return domain.NewEnrollment(tenant, id) },
		func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(*domain.Enrollment)) })
}

func (w *collectionsWorld) accountCmd(a collAccount, decide func(*domain.Account) ([]domain.NewEvent, error)) eventstore.Command {
	return w.cmd(a.tenant, domain.StreamTypeAccount, a.id, func() domain.Aggregate { return domain.NewAccount(a.tenant, a.id) },
		func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(*domain.Account)) })
}

// prelude creates one of everything, valid, live, in the first tenant:
// an account, a claim, a campaign, an enrollment of the claim in it, and a
// dispute.
func (w *collectionsWorld) prelude() {
	tenant := w.tenants[0]
	a := collAccount{tenant: tenant, id: w.ids.New(domain.PrefixAccount, w.now), currency: "EUR", debtors: []string{"dbt_coll0"},
		due: w.today().AddDays(-3)}
	w.openAccountAs(a, false)
	c := claimRef{tenant: tenant, id: w.ids.New(domain.PrefixClaim, w.now), reference: "CLM-COLL-0", account: a.id, currency: "EUR"}
	in := domain.ClaimInput{Reference: c.reference, AccountID: a.id, Amount: decimal.New(12000, -2), Currency: "EUR", OriginalDueDate: w.today().AddDays(-2)}
	at := w.now
	cmd := w.command(tenant, c.id, func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Create(in, false, at) })
	cmd.Reference = c.reference
	require.True(w.t, w.run(false, cmd), "prelude: create claim")
	w.claims = append(w.claims, c)
	w.createCampaignAs(collRef{tenant: tenant, id: w.ids.New(domain.PrefixCampaign, w.now)}, false)
	require.Len(w.t, w.campaigns, 1, "prelude: create campaign")
	w.enroll(true)
	require.Len(w.t, w.enrollments, 1, "prelude: enroll")
	for _, tenant := range w.tenants[1:] {
		w.createCampaignAs(collRef{tenant: tenant, id: w.ids.New(domain.PrefixCampaign, w.now)}, false)
	}
	w.openDispute(false)
	require.Len(w.t, w.disputes, 1, "prelude: open dispute")
}

func (w *collectionsWorld) step() {
	rng := w.rng
	switch r := rng.IntN(100); {
	case r < 4:
		w.openAccount(rng.IntN(5) == 0)
	case r < 12:
		switch {
		case len(w.claims) >= 40:
			w.claimStep()
		case rng.IntN(3) == 0:
			w.create() // ClaimsWorkload's claims: due up to 60 days ago
		default:
			w.createClaim()
		}
	case r < 48:
		w.claimStep()
	case r < 52:
		w.triggerAccount()
	case r < 58:
		w.openDispute(rng.IntN(8) == 0)
	case r < 64:
		w.closeDispute()
	case r < 67:
		w.createCampaign(rng.IntN(6) == 0)
	case r < 72:
		w.campaignStep()
	case r < 78:
		w.enroll(false)
	case r < 83:
		w.cancelEnrollment()
	case r < 90:
		w.advance(pick(w.rng, w.enrollments))
	default:
		// A scheduler tick: the recent enrollments advance.
		for _, e := range w.enrollments[max(0, len(w.enrollments)-8):] {
			w.advance(e)
		}
	}
}

// openAccount opens an account with an invoice due around today (or with
// nothing owed).
func (w *collectionsWorld) openAccount(bare bool) {
	rng := w.rng
	a := collAccount{tenant: pick(rng, w.tenants), id: w.ids.New(domain.PrefixAccount, w.now), currency: pick(rng, []string{"EUR", "USD", "JPY"}),
		sandbox: rng.IntN(5) == 0, debtors: []string{fmt.Sprintf("dbt_coll%d", rng.IntN(4))}}
	if !bare {
		a.due = w.today().AddDays(rng.IntN(40) - 30)
	}
	w.openAccountAs(a, bare)
}

func (w *collectionsWorld) openAccountAs(a collAccount, bare bool) {
	at := w.now
	ok := w.run(a.sandbox, w.accountCmd(a, func(agg *domain.Account) ([]domain.NewEvent, error) {
		evs, err := agg.Open(domain.OpenAccount{Currency: a.currency, DebtorIDs: a.debtors, Sandbox: a.sandbox}, at)
		if err != nil || bare {
			return evs, err
		}
		more, err := agg.PostEntries([]domain.EntryInput{{Reference: "INV-" + a.id, Kind: domain.KindInvoice,
			Amount: w.amount(a.currency, 300), DueDate: a.due}}, at, nil)
		return append(evs, more...), err
	}))
	if ok {
		w.accounts = append(w.accounts, a)
	}
}

func (w *collectionsWorld) triggerAccount() {
	if len(w.accounts) == 0 {
		return
	}
	a := pick(w.rng, w.accounts)
	id, name, payload, at := w.ids.New(domain.PrefixTrigger, w.now), w.triggerName(), w.payload(), w.now
	w.run(a.sandbox, w.accountCmd(a, func(agg *domain.Account) ([]domain.NewEvent, error) { return agg.Trigger(id, name, payload, at) }))
}

func (w *collectionsWorld) triggerName() string {
	return pick(w.rng, []string{"letter.sent", "called", "sms_reply", "Bad Name!", "x"})
}

func (w *collectionsWorld) payload() json.RawMessage {
	return pick(w.rng, []json.RawMessage{nil, json.RawMessage(`{"channel":"post","n":1}`), json.RawMessage(`[1]`)})
}

// claimStep runs one claim command: mostly promises, payments and the
// scheduler's decisions, and the rest of the claim life cycle.
func (w *collectionsWorld) claimStep() {
	if len(w.claims) == 0 {
		return
	}
	rng := w.rng
	c := pick(rng, w.claims)
	at, today := w.now, w.today()
	var decide func(*domain.Claim) ([]domain.NewEvent, error)
	switch r := rng.IntN(100); {
	case r < 22:
		id := w.ids.New(domain.PrefixPromise, at)
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) {
			amount := w.amount(c.currency, 150)
			if rng.IntN(3) == 0 && cl.Amount.IsPositive() {
				amount = cl.Amount
			}
			due := today.AddDays(rng.IntN(12) - 1) // yesterday: refused
			return cl.MakePromise(id, amount, due, today, at)
		}
	case r < 36:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.SettlePromise(today, at) }
	case r < 54:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) {
			amount := w.amount(c.currency, 100)
			if p := cl.ActivePromise(); p != nil && rng.IntN(2) == 0 {
				amount = decimal.Min(p.Amount, cl.Amount) // keeps it
			}
			if rng.IntN(3) == 0 {
				return cl.Credit(amount, "goodwill", at)
			}
			return cl.AllocatePayment(w.ids.New(domain.PrefixPayment, at), amount, at)
		}
	case r < 60:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) {
			return cl.Debit(w.amount(c.currency, 40), "interest", at)
		}
	case r < 66:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Pause("on hold", at) }
	case r < 72:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Resume(at) }
	case r < 77:
		res := pick(rng, domain.ClaimResolutions)
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Resolve(res, "by workload", at) }
	case r < 80:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Stop("stopped", at) }
	case r < 86:
		in := w.input(c)
		in.OriginalDueDate = today.AddDays(rng.IntN(30) - 20)
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Recreate(in, at) }
	case r < 94:
		id, name, payload := w.ids.New(domain.PrefixTrigger, at), w.triggerName(), w.payload()
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Trigger(id, name, payload, at) }
	default:
		decide = func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.MarkOverdue(today, at) }
	}
	w.run(c.sandbox, w.command(c.tenant, c.id, decide))
}

// recent is mostly the last few of xs (their due dates are near today),
// now and then all of them.
func recent[T any](rng *rand.Rand, xs []T) []T {
	if rng.IntN(3) == 0 {
		return xs
	}
	return xs[max(0, len(xs)-4):]
}

// createClaim creates a claim due around today on one of the world's
// accounts (so that journeys have steps to come).
func (w *collectionsWorld) createClaim() {
	rng := w.rng
	if len(w.accounts) == 0 {
		w.create()
		return
	}
	a := pick(rng, w.accounts)
	w.n++
	ref := claimRef{tenant: a.tenant, id: w.ids.New(domain.PrefixClaim, w.now), reference: fmt.Sprintf("CLM-C%d", w.n), account: a.id,
		currency: a.currency, sandbox: a.sandbox}
	in := w.input(ref)
	in.OriginalDueDate = w.today().AddDays(rng.IntN(25) - 15)
	in.PrimaryDebtorID = a.debtors[0]
	at := w.now
	cmd := w.command(ref.tenant, ref.id, func(cl *domain.Claim) ([]domain.NewEvent, error) { return cl.Create(in, ref.sandbox, at) })
	cmd.Reference, cmd.Sandbox = ref.reference, ref.sandbox
	if !w.run(ref.sandbox, cmd) {
		return
	}
	w.claims = append(w.claims, ref)
	var camps []collRef
	for _, c := range w.campaigns {
		if c.tenant == ref.tenant {
			camps = append(camps, c)
		}
	}
	if len(camps) > 0 && rng.IntN(4) > 0 {
		// Enrolled as soon as created: its journey's steps are to come.
		w.enrollIn(pick(rng, camps), domain.EnrollmentTarget{Type: "claim", ID: ref.id, AccountID: a.id, ClaimID: ref.id,
			DebtorIDs: []string{in.PrimaryDebtorID}, Currency: ref.currency}, in.OriginalDueDate, ref.sandbox)
	}
}

// openDispute opens a dispute on an account (with its debtors) or on a
// claim; bad ones are refused.
func (w *collectionsWorld) openDispute(bad bool) {
	rng := w.rng
	in := domain.DisputeInput{Reason: pick(rng, domain.DisputeReasons)}
	var ref collRef
	if len(w.accounts) > 0 && (len(w.claims) == 0 || rng.IntN(2) == 0) {
		a := pick(rng, w.accounts)
		ref = collRef{tenant: a.tenant, sandbox: a.sandbox}
		in.AccountID, in.DebtorIDs = a.id, a.debtors
	} else if len(w.claims) > 0 {
		c := pick(rng, w.claims)
		ref = collRef{tenant: c.tenant, sandbox: c.sandbox}
		in.AccountID, in.ClaimID = c.account, c.id
	} else {
		return
	}
	if rng.IntN(2) == 0 {
		in.Description, in.Reference = "the debtor says so", fmt.Sprintf("DSP-%d", rng.IntN(1000))
	}
	if rng.IntN(3) == 0 {
		in.Meta = json.RawMessage(`{"source":"call"}`)
	}
	if bad {
		in.Reason = "because"
	}
	ref.id = w.ids.New(domain.PrefixDispute, w.now)
	at := w.now
	if w.run(ref.sandbox, w.disputeCmd(ref, func(d *domain.Dispute) ([]domain.NewEvent, error) { return d.Open(in, ref.sandbox, at) })) {
		w.disputes = append(w.disputes, ref)
	}
}

func (w *collectionsWorld) closeDispute() {
	if len(w.disputes) == 0 {
		return
	}
	rng := w.rng
	d := pick(rng, w.disputes)
	at := w.now
	w.run(d.sandbox, w.disputeCmd(d, func(agg *domain.Dispute) ([]domain.NewEvent, error) {
		if rng.IntN(3) == 0 {
			return agg.Withdraw("debtor withdrew", at)
		}
		return agg.Resolve(pick(rng, append([]string{"maybe"}, domain.DisputeOutcomes...)), "checked", at)
	}))
}

// createCampaign creates a campaign of 1-5 steps around the due date;
// bad ones are refused.
func (w *collectionsWorld) createCampaign(bad bool) {
	rng := w.rng
	w.createCampaignAs(collRef{tenant: pick(rng, w.tenants), id: w.ids.New(domain.PrefixCampaign, w.now), sandbox: rng.IntN(6) == 0}, bad)
}

func (w *collectionsWorld) createCampaignAs(ref collRef, bad bool) {
	rng := w.rng
	in := domain.CampaignInput{Name: fmt.Sprintf("Journey %d", len(w.campaigns)+1), Type: pick(rng, []string{"collection", "collection", "reminder"})}
	offset := -5 + rng.IntN(10)
	for range 1 + rng.IntN(5) {
		in.Steps = append(in.Steps, domain.CampaignStep{DayOffset: offset, Action: pick(rng, []string{"email", "sms", "call", "letter"}),
			Name: pick(rng, []string{"", "reminder", "final notice"}), Template: pick(rng, []string{"", "tpl_1"})})
		offset += rng.IntN(15) // steps on the same day too
	}
	if rng.IntN(3) == 0 {
		in.Description, in.Meta = "standard dunning", json.RawMessage(`{"owner":"ops"}`)
	}
	if bad {
		in.Steps = append(in.Steps, domain.CampaignStep{DayOffset: -400, Action: "Email"})
	}
	at := w.now
	if w.run(ref.sandbox, w.campaignCmd(ref, func(c *domain.Campaign) ([]domain.NewEvent, error) { return c.Create(in, ref.sandbox, at) })) {
		w.campaigns = append(w.campaigns, ref)
	}
}

func (w *collectionsWorld) campaignStep() {
	if len(w.campaigns) == 0 {
		return
	}
	rng := w.rng
	c := pick(rng, w.campaigns)
	at := w.now
	w.run(c.sandbox, w.campaignCmd(c, func(agg *domain.Campaign) ([]domain.NewEvent, error) {
		switch r := rng.IntN(10); {
		case r < 3:
			return agg.Pause("holiday", at)
		case r < 9:
			return agg.Resume(at)
		default:
			return agg.Complete("replaced", at)
		}
	}))
}

// enroll enrolls a claim, an account or a statement of the campaign's
// tenant (or reopens its enrollment). With live, a live collection
// campaign and a live claim (for the prelude).
func (w *collectionsWorld) enroll(live bool) {
	rng := w.rng
	if len(w.campaigns) == 0 {
		return
	}
	camp := pick(rng, w.campaigns)
	if live {
		for _, c := range w.campaigns {
			if !c.sandbox {
				camp = c
			}
		}
	}
	var target domain.EnrollmentTarget
	var anchor domain.Date
	sandbox := false
	var accts []collAccount
	for _, a := range w.accounts {
		if a.tenant == camp.tenant {
			accts = append(accts, a)
		}
	}
	var claims []claimRef
	for _, c := range w.claims {
		if c.tenant == camp.tenant && (!live || !c.sandbox) {
			claims = append(claims, c)
		}
	}
	switch r := rng.IntN(10); {
	case (live || r < 6) && len(claims) > 0:
		c := pick(rng, recent(rng, claims))
		var cl *domain.Claim
		if !w.run(false, read(w, c.tenant, domain.StreamTypeClaim, c.id, func() *domain.Claim { return domain.NewClaim(c.tenant, c.id) }, &cl)) {
			return
		}
		target = domain.EnrollmentTarget{Type: "claim", ID: c.id, AccountID: c.account, ClaimID: c.id, Currency: c.currency}
		if cl.PrimaryDebtorID != "" {
			target.DebtorIDs = []string{cl.PrimaryDebtorID}
		}
		anchor, sandbox = cl.OriginalDueDate, c.sandbox
	case r < 8 && len(accts) > 0:
		a := pick(rng, recent(rng, accts))
		target = domain.EnrollmentTarget{Type: "account", ID: a.id, AccountID: a.id, DebtorIDs: a.debtors, Currency: a.currency}
		anchor, sandbox = a.due, a.sandbox // "" for an account owing nothing: refused
	default:
		month := domain.DateOf(w.now.AddDate(0, -rng.IntN(2)/2, 0))[:7]
		debtor := fmt.Sprintf("dbt_coll%d", rng.IntN(4))
		id := domain.StatementID(debtor, string(month), "EUR")
		target = domain.EnrollmentTarget{Type: "statement", ID: id, StatementID: id, DebtorIDs: []string{debtor}, Currency: "EUR"}
		anchor = domain.StatementAnchor(string(month))
	}
	w.enrollIn(camp, target, anchor, sandbox)
}

// enrollIn enrolls target in campaign camp as the API does: the campaign
// read in the same Execute.
func (w *collectionsWorld) enrollIn(camp collRef, target domain.EnrollmentTarget, anchor domain.Date, sandbox bool) {
	id := domain.EnrollmentID(camp.id, target.ID)
	at, today := w.now, w.today()
	var campaign *domain.Campaign
	ok := w.run(sandbox,
		read(w, camp.tenant, domain.StreamTypeCampaign, camp.id, func() *domain.Campaign { return domain.NewCampaign(camp.tenant, camp.id) }, &campaign),
		w.enrollmentCmd(camp.tenant, id, func(e *domain.Enrollment) ([]domain.NewEvent, error) {
			return e.Enroll(campaign, target, anchor, today, sandbox, at)
		}))
	if !ok {
		return
	}
	for _, e := range w.enrollments {
		if e.tenant == camp.tenant && e.id == id {
			return
		}
	}
	w.enrollments = append(w.enrollments, collEnrollment{collRef: collRef{tenant: camp.tenant, id: id}, campaign: camp, target: target, anchor: anchor})
}

func (w *collectionsWorld) cancelEnrollment() {
	if len(w.enrollments) == 0 {
		return
	}
	e := pick(w.rng, w.enrollments)
	at := w.now
	w.run(false, w.enrollmentCmd(e.tenant, e.id, func(agg *domain.Enrollment) ([]domain.NewEvent, error) { return agg.Cancel("opted out", at) }))
}

// advance is the scheduler's decision on an enrollment today: the campaign
// and the target read in the same Execute, then the enrollment decides
// with the target's gate (now and then disputed).
func (w *collectionsWorld) advance(e collEnrollment) {
	rng := w.rng
	at, today := w.now, w.today()
	disputed := rng.IntN(6) == 0
	var campaign *domain.Campaign
	var gate domain.Gate
	cmds := []eventstore.Command{read(w, e.tenant, domain.StreamTypeCampaign, e.campaign.id,
		func() *domain.Campaign { return domain.NewCampaign(e.tenant, e.campaign.id) }, &campaign)}
	switch e.target.Type {
	case "claim":
		var cl *domain.Claim
		cmds = append(cmds, w.cmd(e.tenant, domain.StreamTypeClaim, e.target.ID, func() domain.Aggregate { return domain.NewClaim(e.tenant, e.target.ID) },
			func(agg domain.Aggregate) ([]domain.NewEvent, error) {
				cl = agg.(*domain.Claim)
				gate = domain.ClaimGate(cl, disputed)
				return nil, nil
			}))
	case "account":
		cmds = append(cmds, w.cmd(e.tenant, domain.StreamTypeAccount, e.target.ID, func() domain.Aggregate { return domain.NewAccount(e.tenant, e.target.ID) },
			func(agg domain.Aggregate) ([]domain.NewEvent, error) {
				gate = domain.AccountGate(agg.(*domain.Account), disputed)
				return nil, nil
			}))
	default:
		switch rng.IntN(8) {
		case 0:
			gate = domain.Gate{Done: true, Reason: "statement paid"}
		case 1:
			gate = domain.Gate{Held: true, Reason: "disputed"}
		}
	}
	cmds = append(cmds, w.enrollmentCmd(e.tenant, e.id, func(agg *domain.Enrollment) ([]domain.NewEvent, error) {
		return agg.Advance(campaign, gate, today, at)
	}))
	w.run(false, cmds...)
}
