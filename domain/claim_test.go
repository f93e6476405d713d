package domain_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/arrears/arrears/domain"
)

var claimT0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func claimInput() domain.ClaimInput {
	return domain.ClaimInput{Reference: "CLM-1", AccountID: "acct_1", Amount: decimal.RequireFromString("100.00"), Currency: "EUR",
		OriginalDueDate: "2026-02-01", PrimaryDebtorID: "dbt_1"}
}

// claimIn returns a claim driven into status and the events that did it.
func claimIn(t *testing.T, status domain.ClaimStatus) (*domain.Claim, []domain.NewEvent) {
	t.Helper()
	c := domain.NewClaim("ten_1", "clm_1")
	evs, err := c.Create(claimInput(), false, claimT0)
	require.NoError(t, err)
	var more []domain.NewEvent
	switch status {
	case domain.ClaimPaused:
		more, err = c.Pause("promise", claimT0)
	case domain.ClaimResolved:
		more, err = c.Resolve(domain.ResolutionSold, "portfolio sale", claimT0)
	case domain.ClaimStopped:
		more, err = c.Stop("deceased", claimT0)
	}
	require.NoError(t, err)
	require.Equal(t, status, c.Status)
	return c, append(evs, more...)
}

// openClaim is a claim just created.
func openClaim(t *testing.T) *domain.Claim {
	c, _ := claimIn(t, domain.ClaimOpen)
	return c
}

// TestClaimStateMachine covers every (state, command) pair: an allowed
// transition records exactly the events listed and lands in the state
// listed; a forbidden one is a conflict naming the current state and
// records nothing.
func TestClaimStateMachine(t *testing.T) {
	at := claimT0.Add(time.Hour)
	commands := map[string]func(c *domain.Claim) ([]domain.NewEvent, error){
		"create": func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Create(claimInput(), false, at) },
		"update": func(c *domain.Claim) ([]domain.NewEvent, error) {
			return c.Update(domain.ClaimFields{PortfolioReference: ptrTo("PF-9")}, at)
		},
		"credit": func(c *domain.Claim) ([]domain.NewEvent, error) {
			return c.Credit(decimal.RequireFromString("10.00"), "goodwill", at)
		},
		"credit_all": func(c *domain.Claim) ([]domain.NewEvent, error) {
			return c.Credit(decimal.RequireFromString("100.00"), "settled", at)
		},
		"debit": func(c *domain.Claim) ([]domain.NewEvent, error) {
			return c.Debit(decimal.RequireFromString("5.00"), "interest", at)
		},
		"pay": func(c *domain.Claim) ([]domain.NewEvent, error) {
			return c.AllocatePayment("pay_1", decimal.RequireFromString("20.00"), at)
		},
		"pause":    func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Pause("dispute", at) },
		"resume":   func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Resume(at) },
		"resolve":  func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Resolve(domain.ResolutionDiscarded, "", at) },
		"stop":     func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Stop("insolvency", at) },
		"recreate": func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Recreate(claimInput(), at) },
		"overdue":  func(c *domain.Claim) ([]domain.NewEvent, error) { return c.MarkOverdue("2026-03-15", at) },
	}
	type outcome struct {
		events []string // nil: refused
		then   domain.ClaimStatus
	}
	ok := func(then domain.ClaimStatus, events ...string) outcome {
		return outcome{events: append([]string{}, events...), then: then}
	}
	refused := outcome{}
	const (
		open, paused, resolved, stopped = domain.ClaimOpen, domain.ClaimPaused, domain.ClaimResolved, domain.ClaimStopped
	)
	table := map[domain.ClaimStatus]map[string]outcome{
		open: {
			"create": refused, "update": ok(open, domain.EventClaimUpdated), "credit": ok(open, domain.EventClaimCredited),
			"credit_all": ok(resolved, domain.EventClaimCredited, domain.EventClaimResolved), "debit": ok(open, domain.EventClaimDebited),
			"pay": ok(open, domain.EventClaimPaid), "pause": ok(paused, domain.EventClaimPaused), "resume": refused,
			"resolve": ok(resolved, domain.EventClaimResolved), "stop": ok(stopped, domain.EventClaimStopped), "recreate": refused,
			"overdue": ok(open, domain.EventClaimOverdue, domain.EventClaimOverdue), // 42 days past due: thresholds 1 and 30
		},
		paused: {
			"create": refused, "update": ok(paused, domain.EventClaimUpdated), "credit": ok(paused, domain.EventClaimCredited),
			"credit_all": ok(resolved, domain.EventClaimCredited, domain.EventClaimResolved), "debit": ok(paused, domain.EventClaimDebited),
			"pay": ok(paused, domain.EventClaimPaid), "pause": refused, "resume": ok(open, domain.EventClaimResumed),
			"resolve": ok(resolved, domain.EventClaimResolved), "stop": ok(stopped, domain.EventClaimStopped), "recreate": refused,
			"overdue": ok(paused), // nothing while paused
		},
		resolved: {
			"create": refused, "update": refused, "credit": refused, "credit_all": refused, "debit": refused, "pay": refused,
			"pause": refused, "resume": refused, "resolve": refused, "stop": refused, "recreate": ok(open, domain.EventClaimRecreated),
			"overdue": ok(resolved),
		},
		stopped: {
			"create": refused, "update": refused, "credit": refused, "credit_all": refused, "debit": refused, "pay": refused,
			"pause": refused, "resume": refused, "resolve": refused, "stop": refused, "recreate": ok(open, domain.EventClaimRecreated),
			"overdue": ok(stopped),
		},
	}
	for _, state := range []domain.ClaimStatus{open, paused, resolved, stopped} {
		require.Len(t, table[state], len(commands), "state %s: every command has an outcome", state)
		for name, cmd := range commands {
			want, listed := table[state][name]
			require.True(t, listed, "state %s has no outcome for %s", state, name)
			t.Run(string(state)+"/"+name, func(t *testing.T) {
				c, before := claimIn(t, state)
				version := c.Version
				evs, err := cmd(c)
				if want.events == nil {
					require.Error(t, err)
					require.Equal(t, domain.ECONFLICT, domain.ErrorCode(err), "%v", err)
					if name != "create" {
						require.Contains(t, domain.ErrorMessage(err), "is "+string(state), "the 409 names the state")
					}
					require.Empty(t, evs)
					require.Equal(t, version, c.Version, "a refused command changes nothing")
					require.Equal(t, state, c.Status)
					return
				}
				require.NoError(t, err)
				require.Equal(t, want.events, eventTypes(evs))
				require.Equal(t, want.then, c.Status)
				require.Equal(t, version+int64(len(evs)), c.Version)
				// The events alone rebuild the state.
				again := domain.NewClaim("ten_1", "clm_1")
				for _, e := range append(before, evs...) {
					require.NoError(t, again.Apply(e.Type, e.Data))
				}
				require.Equal(t, claimState(c), claimState(again))
			})
		}
	}
	t.Run("missing", func(t *testing.T) {
		for name, cmd := range commands {
			if name == "create" {
				continue
			}
			_, err := cmd(domain.NewClaim("ten_1", "clm_none"))
			require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err), "%s on a missing claim: %v", name, err)
		}
	})
}

func ptrTo[T any](v T) *T { return &v }

func TestClaimValidation(t *testing.T) {
	at := claimT0
	tests := []struct {
		name  string
		edit  func(in *domain.ClaimInput)
		field string
	}{
		{"no reference", func(in *domain.ClaimInput) { in.Reference = "" }, "reference"},
		{"no account", func(in *domain.ClaimInput) { in.AccountID = "" }, "account_id"},
		{"unknown currency", func(in *domain.ClaimInput) { in.Currency = "XXX" }, "currency"},
		{"zero amount", func(in *domain.ClaimInput) { in.Amount = decimal.Zero }, "amount"},
		{"negative amount", func(in *domain.ClaimInput) { in.Amount = decimal.RequireFromString("-1") }, "amount"},
		{"too precise", func(in *domain.ClaimInput) { in.Amount = decimal.RequireFromString("1.001") }, "amount"},
		{"JPY cents", func(in *domain.ClaimInput) { in.Currency, in.Amount = "JPY", decimal.RequireFromString("1.5") }, "amount"},
		{"negative fees", func(in *domain.ClaimInput) { in.TotalFees = decimal.RequireFromString("-0.01") }, "total_fees"},
		{"no due date", func(in *domain.ClaimInput) { in.OriginalDueDate = "" }, "original_due_date"},
		{"meta not an object", func(in *domain.ClaimInput) { in.Meta = json.RawMessage(`[1]`) }, "meta"},
		{"score twice", func(in *domain.ClaimInput) {
			in.Scores = []domain.Score{{Type: "risk", Value: decimal.NewFromInt(1)}, {Type: "risk", Value: decimal.NewFromInt(2)}}
		}, "scores[1].type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := claimInput()
			tc.edit(&in)
			c := domain.NewClaim("ten_1", "clm_1")
			evs, err := c.Create(in, false, at)
			require.Equal(t, domain.EINVALID, domain.ErrorCode(err), "%v", err)
			require.Empty(t, evs)
			require.False(t, c.Created)
			var fields []string
			for _, fe := range err.(*domain.Error).Fields {
				fields = append(fields, fe.Field)
			}
			require.Contains(t, fields, tc.field)
		})
	}

	c := openClaim(t)
	_, err := c.Credit(decimal.RequireFromString("100.01"), "", at)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err), "a credit above the amount")
	_, err = c.Debit(decimal.RequireFromString("0.001"), "", at)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
	_, err = c.Resolve("paid_in_kind", "", at)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
	in := claimInput()
	in.Reference = "OTHER"
	c, _ = claimIn(t, domain.ClaimResolved)
	_, err = c.Recreate(in, at)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err), "recreate keeps the reference")
	evs, err := openClaim(t).Update(domain.ClaimFields{ProductReference: ptrTo("")}, at)
	require.NoError(t, err)
	require.Empty(t, evs, "an update to nothing records nothing")
	_, err = openClaim(t).Update(domain.ClaimFields{TotalFees: ptrTo("1.234")}, at)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
}

// TestClaimOverdueOnce: each threshold is recorded once, on the first day
// days past due reach it, whatever how often the scheduler asks; none
// while paused; a recreated claim starts again.
func TestClaimOverdueOnce(t *testing.T) {
	c := openClaim(t) // due 2026-02-01
	var got []string
	for day := domain.Date("2026-01-25"); day <= "2026-06-30"; day = domain.DateOf(day.Time().AddDate(0, 0, 1)) {
		for range 2 { // two scheduler passes a day
			evs, err := c.MarkOverdue(day, claimT0)
			require.NoError(t, err)
			for _, e := range evs {
				var o domain.ClaimOverdue
				require.NoError(t, json.Unmarshal(e.Data, &o))
				got = append(got, fmt.Sprintf("%d@%s", o.Threshold, o.Date))
			}
		}
	}
	require.Equal(t, []string{"1@2026-02-02", "30@2026-03-03", "60@2026-04-02", "90@2026-05-02"}, got)

	p, _ := claimIn(t, domain.ClaimPaused)
	evs, err := p.MarkOverdue("2026-06-01", claimT0)
	require.NoError(t, err)
	require.Empty(t, evs, "nothing while paused")
	_, err = p.Resume(claimT0)
	require.NoError(t, err)
	evs, err = p.MarkOverdue("2026-06-01", claimT0)
	require.NoError(t, err)
	require.Len(t, evs, 4, "after resuming, every threshold reached is recorded at once")

	_, err = c.Resolve(domain.ResolutionSold, "", claimT0)
	require.NoError(t, err)
	_, err = c.Recreate(claimInput(), claimT0)
	require.NoError(t, err)
	evs, err = c.MarkOverdue("2026-02-02", claimT0)
	require.NoError(t, err)
	require.Equal(t, []string{domain.EventClaimOverdue}, eventTypes(evs), "a recreated claim starts its thresholds again")
}

// TestClaimProperties: for random command sequences, a claim's amount
// equals original + debits − credits − allocated payments and is never
// negative; zero means resolved as paid; and folding the recorded events
// into a new claim gives the same state.
func TestClaimProperties(t *testing.T) {
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
			return decimal.New(rapid.Int64Range(-100, 20000).Draw(t, label), -2)
		}
		do(c.Create(claimInput(), false, at))
		steps := rapid.IntRange(0, 60).Draw(t, "steps")
		for range steps {
			at = at.Add(time.Duration(rapid.IntRange(1, 72).Draw(t, "hours")) * time.Hour)
			switch rapid.IntRange(0, 9).Draw(t, "command") {
			case 0:
				do(c.Credit(amount("credit"), "r", at))
			case 1:
				do(c.Debit(amount("debit"), "r", at))
			case 2:
				do(c.AllocatePayment(fmt.Sprintf("pay_%d", len(all)), amount("payment"), at))
			case 3:
				do(c.Pause("p", at))
			case 4:
				do(c.Resume(at))
			case 5:
				do(c.Resolve(rapid.SampledFrom(domain.ClaimResolutions).Draw(t, "resolution"), "", at))
			case 6:
				do(c.Stop("s", at))
			case 7:
				in := claimInput()
				in.Amount = amount("recreate")
				do(c.Recreate(in, at))
			case 8:
				do(c.MarkOverdue(domain.DateOf(at), at))
			case 9:
				do(c.Update(domain.ClaimFields{PortfolioReference: ptrTo(rapid.SampledFrom([]string{"A", "B"}).Draw(t, "pf"))}, at))
			}
			want := c.OriginalAmount.Add(c.Debits).Sub(c.Credits).Sub(c.Paid)
			if !c.Amount.Equal(want) {
				t.Fatalf("amount %s != original %s + debits %s − credits %s − paid %s", c.Amount, c.OriginalAmount, c.Debits, c.Credits, c.Paid)
			}
			if c.Amount.IsNegative() {
				t.Fatalf("negative amount %s", c.Amount)
			}
			if c.Amount.IsZero() && c.Status != domain.ClaimResolved {
				t.Fatalf("amount zero but %s", c.Status)
			}
			if c.Status == domain.ClaimResolved && c.Resolution == "" {
				t.Fatalf("resolved without a resolution")
			}
			if !slices.IsSorted(c.Overdue) {
				t.Fatalf("overdue thresholds out of order: %v", c.Overdue)
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

// claimState is a claim's state as comparable text.
func claimState(c *domain.Claim) string {
	b, _ := json.Marshal(c)
	return strings.ReplaceAll(string(b), `"`, "")
}

func TestClaimDaysPastDue(t *testing.T) {
	c := openClaim(t)
	for day, want := range map[domain.Date]int{"2026-01-01": 0, "2026-02-01": 0, "2026-02-02": 1, "2026-03-03": 30, "2027-02-01": 365} {
		assert.Equal(t, want, c.DaysPastDue(day), "%s", day)
	}
}
