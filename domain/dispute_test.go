package domain_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

var disputeT0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

func disputeInput() domain.DisputeInput {
	return domain.DisputeInput{AccountID: "acct_1", ClaimID: "clm_1", DebtorIDs: []string{"dbt_1"}, Reason: "already_paid",
		Description: "paid in cash", Reference: "D-1", Meta: json.RawMessage(`{"channel":"phone"}`)}
}

// disputeIn returns a dispute driven into status ("" : never opened) and
// the events that did it.
func disputeIn(t *testing.T, status domain.DisputeStatus) (*domain.Dispute, []domain.NewEvent) {
	t.Helper()
	d := domain.NewDispute("ten_1", "dsp_1")
	if status == "" {
		return d, nil
	}
	evs, err := d.Open(disputeInput(), false, disputeT0)
	require.NoError(t, err)
	var more []domain.NewEvent
	switch status {
	case domain.DisputeResolved:
		more, err = d.Resolve("rejected", "receipt not found", disputeT0)
	case domain.DisputeWithdrawn:
		more, err = d.Withdraw("found the invoice", disputeT0)
	}
	require.NoError(t, err)
	require.Equal(t, status, d.Status)
	return d, append(evs, more...)
}

// TestDisputeStateMachine covers every (state, command) pair: an allowed
// command records exactly the events listed and lands in the state listed
// (and the events alone rebuild it); a forbidden one is a conflict naming
// the current state and changes nothing; on a dispute never opened,
// resolve and withdraw are not found.
func TestDisputeStateMachine(t *testing.T) {
	at := disputeT0.Add(time.Hour)
	commands := map[string]func(d *domain.Dispute) ([]domain.NewEvent, error){
		"open":     func(d *domain.Dispute) ([]domain.NewEvent, error) { return d.Open(disputeInput(), false, at) },
		"resolve":  func(d *domain.Dispute) ([]domain.NewEvent, error) { return d.Resolve("upheld", "refund issued", at) },
		"withdraw": func(d *domain.Dispute) ([]domain.NewEvent, error) { return d.Withdraw("", at) },
	}
	type outcome struct {
		code   string   // "" : allowed
		events []string // allowed: exactly these
		then   domain.DisputeStatus
	}
	ok := func(then domain.DisputeStatus, events ...string) outcome { return outcome{events: events, then: then} }
	conflict, notFound := outcome{code: domain.ECONFLICT}, outcome{code: domain.ENOTFOUND}
	const none, open, resolved, withdrawn = domain.DisputeStatus(""), domain.DisputeOpen, domain.DisputeResolved, domain.DisputeWithdrawn
	table := map[domain.DisputeStatus]map[string]outcome{
		none:      {"open": ok(open, domain.EventDisputeOpened), "resolve": notFound, "withdraw": notFound},
		open:      {"open": conflict, "resolve": ok(resolved, domain.EventDisputeResolved), "withdraw": ok(withdrawn, domain.EventDisputeWithdrawn)},
		resolved:  {"open": conflict, "resolve": conflict, "withdraw": conflict},
		withdrawn: {"open": conflict, "resolve": conflict, "withdraw": conflict},
	}
	for _, state := range []domain.DisputeStatus{none, open, resolved, withdrawn} {
		require.Len(t, table[state], len(commands), "state %q: every command has an outcome", state)
		for name, cmd := range commands {
			want, listed := table[state][name]
			require.True(t, listed, "state %q has no outcome for %s", state, name)
			t.Run(string(state)+"/"+name, func(t *testing.T) {
				d, before := disputeIn(t, state)
				snapshot := foldJSON(t, d)
				evs, err := cmd(d)
				if want.code != "" {
					e := domErr(t, err)
					require.Equal(t, want.code, e.Code, "%v", err)
					if want.code == domain.ECONFLICT {
						require.Contains(t, e.Message, "is "+string(state), "the 409 names the state")
					}
					require.Empty(t, evs)
					require.Equal(t, snapshot, foldJSON(t, d), "a refused command changes nothing")
					return
				}
				require.NoError(t, err)
				require.Equal(t, want.events, eventTypes(evs))
				require.Equal(t, want.then, d.Status)
				again := domain.NewDispute("ten_1", "dsp_1")
				for _, e := range append(before, evs...) {
					require.NoError(t, again.Apply(e.Type, e.Data))
				}
				require.Equal(t, foldJSON(t, d), foldJSON(t, again), "the events alone rebuild the state")
			})
		}
	}
}

// TestDisputeFields: what the events carry lands in the state.
func TestDisputeFields(t *testing.T) {
	d, _ := disputeIn(t, domain.DisputeOpen)
	require.Equal(t, disputeInput().Reason, d.Reason)
	require.Equal(t, disputeT0, d.OpenedAt)
	require.Nil(t, d.ClosedAt)
	at := disputeT0.Add(48 * time.Hour)
	_, err := d.Resolve("upheld", "refunded", at)
	require.NoError(t, err)
	require.Equal(t, "upheld", d.Outcome)
	require.Equal(t, "refunded", d.Note)
	require.Equal(t, at, *d.ClosedAt)
	require.Equal(t, int64(2), d.Version)

	w, _ := disputeIn(t, domain.DisputeWithdrawn)
	require.Empty(t, w.Outcome, "a withdrawal has no outcome")
	require.NotNil(t, w.ClosedAt)
}

func TestDisputeValidation(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(in *domain.DisputeInput)
		field string
	}{
		{"no account", func(in *domain.DisputeInput) { in.AccountID = "" }, "account_id"},
		{"unknown reason", func(in *domain.DisputeInput) { in.Reason = "because" }, "reason"},
		{"no reason", func(in *domain.DisputeInput) { in.Reason = "" }, "reason"},
		{"long description", func(in *domain.DisputeInput) { in.Description = strings.Repeat("x", 2001) }, "description"},
		{"long reference", func(in *domain.DisputeInput) { in.Reference = strings.Repeat("x", 201) }, "reference"},
		{"meta not an object", func(in *domain.DisputeInput) { in.Meta = json.RawMessage(`[1]`) }, "meta"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := disputeInput()
			tc.edit(&in)
			d := domain.NewDispute("ten_1", "dsp_1")
			evs, err := d.Open(in, false, disputeT0)
			e := domErr(t, err)
			require.Equal(t, domain.EINVALID, e.Code)
			require.Contains(t, fieldNames(e), tc.field)
			require.Empty(t, evs)
			require.False(t, d.Created)
		})
	}
	for _, outcome := range []string{"", "maybe", "UPHELD"} {
		d, _ := disputeIn(t, domain.DisputeOpen)
		_, err := d.Resolve(outcome, "", disputeT0)
		e := domErr(t, err)
		require.Equal(t, domain.EINVALID, e.Code, "outcome %q", outcome)
		require.Equal(t, []string{"outcome"}, fieldNames(e))
		require.Equal(t, domain.DisputeOpen, d.Status)
	}
	d, _ := disputeIn(t, domain.DisputeOpen)
	_, err := d.Withdraw(strings.Repeat("n", 2001), disputeT0)
	require.Equal(t, []string{"note"}, fieldNames(domErr(t, err)))
	_, err = d.Resolve("upheld", strings.Repeat("n", 2001), disputeT0)
	require.Equal(t, []string{"note"}, fieldNames(domErr(t, err)))
}

// foldJSON is an aggregate's whole state as JSON text.
func foldJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
