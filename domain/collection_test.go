package domain_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/arrears/arrears/domain"
)

// Promise fixtures: claimInput's claim (100.00 EUR) on 2026-03-01, a
// promise of 40.00 due 2026-03-10.
const (
	promiseToday = domain.Date("2026-03-01")
	promiseDue   = domain.Date("2026-03-10")
)

// promiseIn returns an open claim whose latest promise is in status ("" :
// none ever made), and the events that did it. A cancelled promise's claim
// was stopped and recreated (open again).
func promiseIn(t *testing.T, status domain.PromiseStatus) (*domain.Claim, []domain.NewEvent) {
	t.Helper()
	c, evs := claimIn(t, domain.ClaimOpen)
	keep := func(more []domain.NewEvent, err error) {
		t.Helper()
		require.NoError(t, err)
		evs = append(evs, more...)
	}
	if status == "" {
		return c, evs
	}
	keep(c.MakePromise("ptp_1", d("40.00"), promiseDue, promiseToday, claimT0))
	switch status {
	case domain.PromiseKept:
		keep(c.AllocatePayment("pay_1", d("40.00"), claimT0))
	case domain.PromiseBroken:
		keep(c.SettlePromise(promiseDue.AddDays(1), claimT0))
	case domain.PromiseCancelled:
		keep(c.Stop("insolvency", claimT0))
		keep(c.Recreate(claimInput(), claimT0))
	}
	require.Len(t, c.Promises, 1)
	require.Equal(t, status, c.Promises[0].Status)
	require.Equal(t, domain.ClaimOpen, c.Status)
	return c, evs
}

// TestPromiseStateMachine covers every (promise state, command) pair on an
// open claim: a promise can be made unless one is active (a conflict
// naming it); the scheduler's decision the day after the due date breaks
// an active unpaid promise and records nothing otherwise.
func TestPromiseStateMachine(t *testing.T) {
	at := claimT0.Add(time.Hour)
	day := promiseDue.AddDays(1)
	commands := map[string]func(c *domain.Claim) ([]domain.NewEvent, error){
		"make": func(c *domain.Claim) ([]domain.NewEvent, error) {
			return c.MakePromise("ptp_2", d("25.00"), day.AddDays(7), day, at)
		},
		"settle": func(c *domain.Claim) ([]domain.NewEvent, error) { return c.SettlePromise(day, at) },
	}
	type outcome struct {
		code   string
		events []string
	}
	ok := func(events ...string) outcome { return outcome{events: append([]string{}, events...)} }
	conflict := outcome{code: domain.ECONFLICT}
	none := domain.PromiseStatus("")
	table := map[domain.PromiseStatus]map[string]outcome{
		none:                    {"make": ok(domain.EventPromiseMade), "settle": ok()},
		domain.PromiseActive:    {"make": conflict, "settle": ok(domain.EventPromiseBroken)},
		domain.PromiseKept:      {"make": ok(domain.EventPromiseMade), "settle": ok()},
		domain.PromiseBroken:    {"make": ok(domain.EventPromiseMade), "settle": ok()},
		domain.PromiseCancelled: {"make": ok(domain.EventPromiseMade), "settle": ok()},
	}
	for _, state := range []domain.PromiseStatus{none, domain.PromiseActive, domain.PromiseKept, domain.PromiseBroken, domain.PromiseCancelled} {
		require.Len(t, table[state], len(commands))
		for name, cmd := range commands {
			want := table[state][name]
			t.Run(fmt.Sprintf("%q/%s", state, name), func(t *testing.T) {
				c, before := promiseIn(t, state)
				snapshot := claimState(c)
				evs, err := cmd(c)
				if want.code != "" {
					e := domErr(t, err)
					require.Equal(t, want.code, e.Code, "%v", err)
					require.Contains(t, e.Message, "active promise", "the 409 names the active promise")
					require.Contains(t, e.Message, "ptp_1")
					require.Empty(t, evs)
					require.Equal(t, snapshot, claimState(c), "a refused command changes nothing")
					return
				}
				require.NoError(t, err)
				require.Equal(t, want.events, append([]string{}, eventTypes(evs)...))
				if len(evs) == 0 {
					require.Equal(t, snapshot, claimState(c))
				}
				if name == "make" {
					p := c.ActivePromise()
					require.NotNil(t, p)
					require.Equal(t, "ptp_2", p.ID)
					require.Equal(t, c.Promises[len(c.Promises)-1], *p, "the newest promise is the active one")
				}
				active := 0
				for _, p := range c.Promises {
					if p.Status == domain.PromiseActive {
						active++
					}
				}
				require.LessOrEqual(t, active, 1, "at most one active promise")
				again := domain.NewClaim("ten_1", "clm_1")
				for _, e := range append(before, evs...) {
					require.NoError(t, again.Apply(e.Type, e.Data))
				}
				require.Equal(t, claimState(c), claimState(again), "the events alone rebuild the state")
			})
		}
	}
	t.Run("missing claim", func(t *testing.T) {
		for name, cmd := range commands {
			_, err := cmd(domain.NewClaim("ten_1", "clm_none"))
			require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err), "%s: %v", name, err)
		}
	})
}

// TestMakePromiseByClaimStatus: a promise is made on an open or paused
// claim; on a resolved or stopped one it is a conflict naming the status.
func TestMakePromiseByClaimStatus(t *testing.T) {
	for _, tc := range []struct {
		status domain.ClaimStatus
		ok     bool
	}{
		{domain.ClaimOpen, true}, {domain.ClaimPaused, true}, {domain.ClaimResolved, false}, {domain.ClaimStopped, false},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			c, _ := claimIn(t, tc.status)
			evs, err := c.MakePromise("ptp_1", d("10"), promiseDue, promiseToday, claimT0)
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, []string{domain.EventPromiseMade}, eventTypes(evs))
				made := decodeEvent[domain.PromiseMade](t, evs[0])
				require.Equal(t, domain.PromiseMade{PromiseID: "ptp_1", Amount: d("10"), DueDate: promiseDue, ReducedAtStart: d("0"), At: claimT0},
					domain.PromiseMade{PromiseID: made.PromiseID, Amount: made.Amount, DueDate: made.DueDate, ReducedAtStart: made.ReducedAtStart, At: made.At})
				require.Equal(t, tc.status, c.Status, "a promise does not change the claim's status")
				return
			}
			e := domErr(t, err)
			require.Equal(t, domain.ECONFLICT, e.Code)
			require.Contains(t, e.Message, "is "+string(tc.status))
			require.Empty(t, evs)
			require.Empty(t, c.Promises)
		})
	}
}

// TestMakePromiseValidation: amounts and due dates a promise may not have.
func TestMakePromiseValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		amount string
		due    domain.Date
		field  string
	}{
		{"zero", "0", promiseDue, "amount"},
		{"negative", "-5", promiseDue, "amount"},
		{"too precise", "1.005", promiseDue, "amount"},
		{"above the claim", "100.01", promiseDue, "amount"},
		{"no due date", "10", "", "due_date"},
		{"due yesterday", "10", promiseToday.AddDays(-1), "due_date"},
		{"too far ahead", "10", promiseToday.AddDays(domain.MaxPromiseDays + 1), "due_date"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openClaim(t)
			evs, err := c.MakePromise("ptp_1", d(tc.amount), tc.due, promiseToday, claimT0)
			e := domErr(t, err)
			require.Equal(t, domain.EINVALID, e.Code)
			require.Equal(t, []string{tc.field}, fieldNames(e))
			require.Empty(t, evs)
			require.Nil(t, c.ActivePromise())
		})
	}
	for _, due := range []domain.Date{promiseToday, promiseToday.AddDays(domain.MaxPromiseDays)} {
		_, err := openClaim(t).MakePromise("ptp_1", d("100.00"), due, promiseToday, claimT0)
		require.NoError(t, err, "due %s, the whole amount", due)
	}
}

// TestPromiseKeptByPayments: payments and credits since the promise count
// towards it; the one that covers it records claim.promise_kept in its own
// command, after itself (and before claim.resolved when it pays the claim
// off); what was paid before the promise does not count; a debit does not
// undo progress.
func TestPromiseKeptByPayments(t *testing.T) {
	type step struct {
		cmd  string // pay, credit, debit
		amt  string
		want []string
	}
	pay, credit := domain.EventClaimPaid, domain.EventClaimCredited
	tests := []struct {
		name     string
		before   string // paid before the promise
		promise  string
		steps    []step
		progress string
	}{
		{name: "one payment", promise: "40.00", steps: []step{{"pay", "40.00", []string{pay, domain.EventPromiseKept}}}, progress: "40"},
		{name: "more than promised", promise: "40.00", steps: []step{{"pay", "55.00", []string{pay, domain.EventPromiseKept}}}, progress: "55"},
		{name: "instalments", promise: "40.00", steps: []step{
			{"pay", "15.00", []string{pay}}, {"credit", "5.00", []string{credit}}, {"debit", "30.00", []string{domain.EventClaimDebited}},
			{"pay", "19.99", []string{pay}}, {"pay", "0.01", []string{pay, domain.EventPromiseKept}},
		}, progress: "40"},
		{name: "a credit", promise: "10.00", steps: []step{{"credit", "10.00", []string{credit, domain.EventPromiseKept}}}, progress: "10"},
		{name: "paid off", promise: "30.00", steps: []step{{"pay", "100.00", []string{pay, domain.EventPromiseKept, domain.EventClaimResolved}}}, progress: "100"},
		{name: "paid off below the promise", before: "80.00", promise: "20.00", steps: []step{
			{"debit", "5.00", []string{domain.EventClaimDebited}}, {"pay", "25.00", []string{pay, domain.EventPromiseKept, domain.EventClaimResolved}},
		}, progress: "25"},
		{name: "earlier payments do not count", before: "50.00", promise: "30.00", steps: []step{
			{"pay", "29.99", []string{pay}}, {"credit", "0.01", []string{credit, domain.EventPromiseKept}},
		}, progress: "30"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := openClaim(t)
			if tc.before != "" {
				_, err := c.AllocatePayment("pay_0", d(tc.before), claimT0)
				require.NoError(t, err)
			}
			_, err := c.MakePromise("ptp_1", d(tc.promise), promiseDue, promiseToday, claimT0)
			require.NoError(t, err)
			var last []domain.NewEvent
			for i, s := range tc.steps {
				at := claimT0.Add(time.Duration(i+1) * time.Hour)
				switch s.cmd {
				case "pay":
					last, err = c.AllocatePayment(fmt.Sprintf("pay_%d", i+1), d(s.amt), at)
				case "credit":
					last, err = c.Credit(d(s.amt), "goodwill", at)
				default:
					last, err = c.Debit(d(s.amt), "interest", at)
				}
				require.NoError(t, err)
				require.Equal(t, s.want, eventTypes(last), "step %d", i)
			}
			kept := decodeEvent[domain.PromiseDecided](t, eventOf(t, last, domain.EventPromiseKept))
			require.Equal(t, "ptp_1", kept.PromiseID)
			require.True(t, d(tc.progress).Equal(kept.Progress), "progress %s", kept.Progress)
			p := c.Promises[0]
			require.Equal(t, domain.PromiseKept, p.Status)
			require.True(t, d(tc.progress).Equal(p.Progress))
			require.NotNil(t, p.DecidedAt)
			require.Nil(t, c.ActivePromise())
			// The scheduler finds nothing more to decide.
			evs, err := c.SettlePromise(promiseDue.AddDays(30), claimT0)
			require.NoError(t, err)
			require.Empty(t, evs)
		})
	}
}

// TestPromiseBrokenAfterItsDueDate: an active promise not covered is broken
// by the scheduler's decision on the day after its due date — not before,
// not on it — with what was paid towards it, once; a promise covered by
// then is kept instead, whenever the scheduler looks.
func TestPromiseBrokenAfterItsDueDate(t *testing.T) {
	c := openClaim(t)
	_, err := c.MakePromise("ptp_1", d("40.00"), promiseDue, promiseToday, claimT0)
	require.NoError(t, err)
	_, err = c.AllocatePayment("pay_1", d("12.50"), claimT0)
	require.NoError(t, err)
	for day := promiseToday; day <= promiseDue; day = day.AddDays(1) {
		evs, err := c.SettlePromise(day, claimT0)
		require.NoError(t, err)
		require.Empty(t, evs, "%s: not broken on or before its due date", day)
	}
	broken, err := c.SettlePromise(promiseDue.AddDays(1), claimT0)
	require.NoError(t, err)
	require.Equal(t, []string{domain.EventPromiseBroken}, eventTypes(broken))
	e := decodeEvent[domain.PromiseDecided](t, broken[0])
	require.Equal(t, "ptp_1", e.PromiseID)
	require.True(t, d("12.50").Equal(e.Progress))
	require.Equal(t, promiseDue.AddDays(1), e.Date)
	require.Equal(t, "12.50 of 40.00 EUR paid by 2026-03-10", e.Reason)
	require.Equal(t, domain.PromiseBroken, c.Promises[0].Status)
	require.Equal(t, domain.ClaimOpen, c.Status, "a broken promise leaves the claim as it is")
	for _, day := range []domain.Date{promiseDue.AddDays(1), promiseDue.AddDays(2)} {
		evs, err := c.SettlePromise(day, claimT0)
		require.NoError(t, err)
		require.Empty(t, evs, "decided once")
	}
	// A payment after the break does not keep it.
	evs, err := c.AllocatePayment("pay_2", d("40.00"), claimT0)
	require.NoError(t, err)
	require.Equal(t, []string{domain.EventClaimPaid}, eventTypes(evs))
	require.Equal(t, domain.PromiseBroken, c.Promises[0].Status)
}

// TestPromiseEndsWithItsClaim: resolving a claim as paid keeps its active
// promise; resolving it for any other reason or stopping it cancels it —
// in the same command, before the claim's own event; without an active
// promise nothing more is recorded.
func TestPromiseEndsWithItsClaim(t *testing.T) {
	tests := []struct {
		name   string
		cmd    func(c *domain.Claim) ([]domain.NewEvent, error)
		want   []string
		status domain.PromiseStatus
		reason string
	}{
		{"resolved as paid", func(c *domain.Claim) ([]domain.NewEvent, error) {
			return c.Resolve(domain.ResolutionPaid, "paid elsewhere", claimT0)
		},
			[]string{domain.EventPromiseKept, domain.EventClaimResolved}, domain.PromiseKept, "claim resolved as paid"},
		{"sold", func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Resolve(domain.ResolutionSold, "", claimT0) },
			[]string{domain.EventPromiseCancelled, domain.EventClaimResolved}, domain.PromiseCancelled, "claim resolved: sold"},
		{"fraudulent", func(c *domain.Claim) ([]domain.NewEvent, error) {
			return c.Resolve(domain.ResolutionFraudulent, "", claimT0)
		},
			[]string{domain.EventPromiseCancelled, domain.EventClaimResolved}, domain.PromiseCancelled, "claim resolved: fraudulent"},
		{"stopped", func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Stop("deceased", claimT0) },
			[]string{domain.EventPromiseCancelled, domain.EventClaimStopped}, domain.PromiseCancelled, "claim stopped"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := claimIn(t, domain.ClaimPaused)
			_, err := c.MakePromise("ptp_1", d("40.00"), promiseDue, promiseToday, claimT0)
			require.NoError(t, err)
			_, err = c.AllocatePayment("pay_1", d("10.00"), claimT0)
			require.NoError(t, err)
			evs, err := tc.cmd(c)
			require.NoError(t, err)
			require.Equal(t, tc.want, eventTypes(evs))
			e := decodeEvent[domain.PromiseDecided](t, evs[0])
			require.Equal(t, tc.reason, e.Reason)
			require.True(t, d("10").Equal(e.Progress))
			require.Equal(t, tc.status, c.Promises[0].Status)
			require.Equal(t, tc.reason, c.Promises[0].Reason)
			require.Nil(t, c.ActivePromise())

			// Without an active promise: only the claim's event.
			c2 := openClaim(t)
			evs, err = tc.cmd(c2)
			require.NoError(t, err)
			require.Equal(t, tc.want[1:], eventTypes(evs))
		})
	}
}

// TestTrigger: a custom trigger is recorded on any created claim (and
// opened account) with its name and payload, counted; bad names and
// payloads are refused naming the field; a missing claim or account is
// not found.
func TestTrigger(t *testing.T) {
	payload := json.RawMessage(`{"channel":"letter","pages":2}`)
	for _, status := range []domain.ClaimStatus{domain.ClaimOpen, domain.ClaimPaused, domain.ClaimResolved, domain.ClaimStopped} {
		c, _ := claimIn(t, status)
		evs, err := c.Trigger("trg_1", "letter.sent", payload, claimT0)
		require.NoError(t, err, status)
		require.Equal(t, []string{domain.EventClaimTriggered}, eventTypes(evs))
		tr := decodeEvent[domain.Triggered](t, evs[0])
		require.Equal(t, "letter.sent", tr.Name)
		require.JSONEq(t, string(payload), string(tr.Payload))
		require.Equal(t, 1, c.Triggers)
		require.Equal(t, status, c.Status, "a trigger changes nothing else")
	}
	a := domain.NewAccount("ten_1", "acct_1")
	_, err := a.Open(domain.OpenAccount{Currency: "EUR"}, claimT0)
	require.NoError(t, err)
	version := a.Version
	evs, err := a.Trigger("trg_2", "called", nil, claimT0)
	require.NoError(t, err)
	require.Equal(t, []string{domain.EventAccountTriggered}, eventTypes(evs))
	require.Equal(t, 1, a.Triggers)
	require.Equal(t, version+1, a.Version)
	again := domain.NewAccount("ten_1", "acct_1")
	opened, _ := domain.NewAccount("ten_1", "acct_1").Open(domain.OpenAccount{Currency: "EUR"}, claimT0)
	for _, e := range append(opened, evs...) {
		require.NoError(t, again.Apply(e.Type, e.Data))
	}
	require.Equal(t, 1, again.Triggers)

	for _, tc := range []struct {
		name    string
		trigger string
		payload json.RawMessage
		field   string
	}{
		{"empty name", "", nil, "name"},
		{"upper case", "Letter", nil, "name"},
		{"space", "letter sent", nil, "name"},
		{"too long", strings.Repeat("a", 65), nil, "name"},
		{"leading dot", ".x", nil, "name"},
		{"payload not an object", "ok", json.RawMessage(`[1]`), "payload"},
		{"payload not JSON", "ok", json.RawMessage(`{"a":`), "payload"},
	} {
		c := openClaim(t)
		_, err := c.Trigger("trg_1", tc.trigger, tc.payload, claimT0)
		e := domErr(t, err)
		require.Equal(t, domain.EINVALID, e.Code, tc.name)
		require.Equal(t, []string{tc.field}, fieldNames(e), tc.name)
		require.Zero(t, c.Triggers)
		_, err = a.Trigger("trg_1", tc.trigger, tc.payload, claimT0)
		require.Equal(t, []string{tc.field}, fieldNames(domErr(t, err)), tc.name)
	}
	_, err = openClaim(t).Trigger("trg_1", strings.Repeat("a", 64), json.RawMessage(`null`), claimT0)
	require.NoError(t, err, "64 characters, a null payload")

	_, err = domain.NewClaim("ten_1", "clm_none").Trigger("trg_1", "x", nil, claimT0)
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err))
	_, err = domain.NewAccount("ten_1", "acct_none").Trigger("trg_1", "x", nil, claimT0)
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err))
}

// TestClaimPromiseProperties: for random sequences of claim commands —
// promises made and settled, payments, credits, debits, pauses,
// resolutions, stops, recreations — the amount is always original +
// debits − credits − paid, there is at most one active promise and only
// on an open or paused claim, a promise is kept only when covered (or the
// claim was resolved as paid by the same command), broken only after its
// due date uncovered, cancelled only with its claim, and the recorded
// events fold into the same state.
func TestClaimPromiseProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := domain.NewClaim("ten_p", "clm_p")
		var all []domain.NewEvent
		at := claimT0
		do := func(evs []domain.NewEvent, err error) {
			if err == nil {
				all = append(all, evs...)
				return
			}
			if code := domain.ErrorCode(err); code != domain.ECONFLICT && code != domain.EINVALID && code != domain.ENOTFOUND {
				t.Fatalf("unexpected error: %v", err)
			}
		}
		amount := func(label string) decimal.Decimal {
			return decimal.New(rapid.Int64Range(-100, 12000).Draw(t, label), -2)
		}
		do(c.Create(claimInput(), false, at))
		for i := range rapid.IntRange(0, 80).Draw(t, "steps") {
			at = at.Add(time.Duration(rapid.IntRange(1, 60).Draw(t, "hours")) * time.Hour)
			today := domain.DateOf(at)
			before := make([]domain.PromiseStatus, len(c.Promises))
			for j, p := range c.Promises {
				before[j] = p.Status
			}
			switch rapid.IntRange(0, 11).Draw(t, "command") {
			case 0, 1:
				due := today.AddDays(rapid.IntRange(-1, 10).Draw(t, "due in"))
				do(c.MakePromise(fmt.Sprintf("ptp_%d", i), amount("promise"), due, today, at))
			case 2:
				do(c.SettlePromise(today, at))
			case 3, 4:
				do(c.AllocatePayment(fmt.Sprintf("pay_%d", i), amount("payment"), at))
			case 5:
				do(c.Credit(amount("credit"), "r", at))
			case 6:
				do(c.Debit(amount("debit"), "r", at))
			case 7:
				do(c.Pause("p", at))
			case 8:
				do(c.Resume(at))
			case 9:
				do(c.Resolve(rapid.SampledFrom(domain.ClaimResolutions).Draw(t, "resolution"), "", at))
			case 10:
				do(c.Stop("s", at))
			case 11:
				in := claimInput()
				in.Amount = amount("recreate")
				do(c.Recreate(in, at))
			}
			for j, p := range c.Promises {
				if j < len(before) && before[j] == p.Status {
					continue
				}
				switch p.Status {
				case domain.PromiseKept: // decided by this command
					if p.Progress.LessThan(p.Amount) && (c.Status != domain.ClaimResolved || c.Resolution != domain.ResolutionPaid) {
						t.Fatalf("promise %s kept with %s of %s", p.ID, p.Progress, p.Amount)
					}
				case domain.PromiseBroken:
					if !p.Progress.LessThan(p.Amount) || today <= p.DueDate {
						t.Fatalf("promise %s due %s broken on %s with %s of %s", p.ID, p.DueDate, today, p.Progress, p.Amount)
					}
				case domain.PromiseCancelled:
					if c.Status != domain.ClaimStopped && c.Status != domain.ClaimResolved {
						t.Fatalf("promise %s cancelled on a %s claim", p.ID, c.Status)
					}
				}
			}
			want := c.OriginalAmount.Add(c.Debits).Sub(c.Credits).Sub(c.Paid)
			if !c.Amount.Equal(want) {
				t.Fatalf("amount %s != original %s + debits %s − credits %s − paid %s", c.Amount, c.OriginalAmount, c.Debits, c.Credits, c.Paid)
			}
			active := 0
			for _, p := range c.Promises {
				if p.Status == domain.PromiseActive {
					active++
				}
			}
			if active > 1 {
				t.Fatalf("%d active promises", active)
			}
			if active == 1 && c.Status != domain.ClaimOpen && c.Status != domain.ClaimPaused {
				t.Fatalf("an active promise on a %s claim", c.Status)
			}
		}
		again := domain.NewClaim("ten_p", "clm_p")
		for _, e := range all {
			if err := again.Apply(e.Type, e.Data); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(claimState(c), claimState(again)) {
			t.Fatalf("fold differs from the live claim:\n%v\n%v", claimState(c), claimState(again))
		}
	})
}
