package api_test

// Managed claims through HTTP: shown as managed, and the commands that
// would make them disagree with their ledger entry are 409 managed_claim.

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

func TestClaimManagedRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{projector: true})
	ten := e.tenant(t, "Managed claims")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})

	// An invoice and its managed claim, as the claim sync records them.
	acctID := e.ids.New(domain.PrefixAccount, time.Now())
	claimID := domain.ManagedClaimID(acctID, "INV-1")
	now := time.Now()
	var acct *domain.Account
	evs, err := e.store.Execute(context.Background(), domain.Metadata{Actor: "test"}, []eventstore.Command{
		{TenantID: ten.ID, StreamType: domain.StreamTypeAccount, StreamID: acctID,
			New: func() domain.Aggregate { return domain.NewAccount(ten.ID, acctID) },
			Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) {
				acct = agg.(*domain.Account)
				out, err := acct.Open(domain.OpenAccount{Currency: "EUR"}, now)
				if err != nil {
					return nil, err
				}
				more, err := acct.PostEntries([]domain.EntryInput{{Reference: "INV-1", Kind: domain.KindInvoice,
					Amount: decimal.RequireFromString("100.00"), DueDate: "2026-01-01"}}, now, nil)
				return append(out, more...), err
			}},
		{TenantID: ten.ID, StreamType: domain.StreamTypeClaim, StreamID: claimID,
			New: func() domain.Aggregate { return domain.NewClaim(ten.ID, claimID) },
			Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) {
				return agg.(*domain.Claim).SyncWithEntry(acct, "INV-1", now)
			}},
	}, nil)
	require.NoError(t, err)
	pos := evs[len(evs)-1].Position

	r := e.get(t, k.Secret, fmt.Sprintf("/v1/claims/%s?min_position=%d", claimID, pos))
	require.Equal(t, http.StatusOK, r.Status, "get: %s", r.Body)
	got := r.object(t)
	require.Equal(t, true, got["managed"])
	require.Equal(t, "INV-1", got["entry_reference"])
	require.Equal(t, "100.00", got["amount"])

	managed := func(r *response, fields ...string) {
		t.Helper()
		p := requireProblem(t, r, http.StatusConflict, "conflict", "managed_claim")
		require.Contains(t, p.Detail, "amend the ledger entry instead")
		var named []string
		for _, fe := range p.Errors {
			named = append(named, fe.Field)
		}
		require.Equal(t, fields, named)
	}
	managed(e.post(t, k.Secret, "/v1/claims/"+claimID+"/credit", map[string]any{"amount": "10.00", "reason": "goodwill"}), "amount")
	managed(e.post(t, k.Secret, "/v1/claims/"+claimID+"/debit", map[string]any{"amount": "10.00", "reason": "interest"}), "amount")
	patch := func(body map[string]any) *response {
		return e.send(t, req{Method: http.MethodPatch, Path: "/v1/claims/" + claimID, Auth: k.Secret, Body: body})
	}
	managed(patch(map[string]any{"total_fees": "5.00"}), "total_fees")
	managed(patch(map[string]any{"current_due_date": "2026-06-01", "portfolio_reference": "PF-1"}), "current_due_date")
	r = patch(map[string]any{"portfolio_reference": "PF-1"})
	require.Equal(t, http.StatusOK, r.Status, "other fields stay the creditor's: %s", r.Body)
	require.Equal(t, true, r.object(t)["managed"])
	e.claimAction(t, k.Secret, claimID, "resolve", map[string]any{"resolution": "sold", "reason": "portfolio sale"}, http.StatusOK)
	managed(e.post(t, k.Secret, "/v1/claims/"+claimID+"/recreate", map[string]any{"amount": "50.00", "original_due_date": "2026-01-01"}))
}
