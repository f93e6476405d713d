package projections_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/projections/projectiontest"
)

// TestClaimsMatchFold: after a random claims history, every row of claims
// equals the state of its claim folded from the event store by
// (*domain.Claim).Apply, there is a row for every created claim and none
// for anything else, and the workload exercised every claim event type.
func TestClaimsMatchFold(t *testing.T) {
	seen := map[string]int{}
	projectiontest.ForSeeds(t, 3, func(t *testing.T, seed uint64) {
		ctx := context.Background()
		_, pool := testDB.Isolated(t, 4)
		store := eventstore.New(pool)
		projectiontest.ClaimsWorkload(t, projectiontest.NewRand(seed), store)
		catchUp(t, store, projections.Claims{})

		rows, err := pool.Query(ctx, `SELECT type, count(*) FROM events GROUP BY type`)
		require.NoError(t, err)
		var typ string
		var n int
		_, err = pgx.ForEachRow(rows, []any{&typ, &n}, func() error { seen[typ] += n; return nil })
		require.NoError(t, err)

		claims, sandbox := 0, 0
		for _, s := range streams(t, pool) {
			if s.typ != domain.StreamTypeClaim {
				continue
			}
			want := domain.NewClaim(s.tenant, s.id)
			_, err := store.Load(ctx, s.tenant, s.id, want)
			require.NoError(t, err)
			got, err := projections.ScanClaim(pool.QueryRow(ctx, `SELECT `+projections.ClaimColumns+` FROM claims WHERE tenant_id = $1 AND id = $2`, s.tenant, s.id))
			if !want.Created {
				require.ErrorIs(t, err, pgx.ErrNoRows)
				continue
			}
			require.NoError(t, err, "claim %s", s.id)
			requireSameClaim(t, want, got)
			claims++
			if got.Sandbox {
				sandbox++
			}
		}
		var total int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM claims`).Scan(&total))
		assert.Equal(t, claims, total, "claims rows of no claim")
		assert.Positive(t, claims)
		assert.Positive(t, sandbox, "no sandbox claim")
		t.Logf("%d claims (%d sandbox) equal their fold", claims, sandbox)
	})
	if t.Failed() || len(seen) == 0 {
		return
	}
	for _, typ := range []string{domain.EventClaimCreated, domain.EventClaimUpdated, domain.EventClaimCredited, domain.EventClaimDebited,
		domain.EventClaimPaid, domain.EventClaimPaused, domain.EventClaimResumed, domain.EventClaimResolved, domain.EventClaimStopped,
		domain.EventClaimRecreated, domain.EventClaimOverdue, domain.EventAccountOpened} {
		assert.Positive(t, seen[typ], "the workload never recorded %s", typ)
	}
}

func requireSameClaim(t *testing.T, want, got *domain.Claim) {
	t.Helper()
	j := func(v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return string(b)
	}
	jsonEq := func(a, b json.RawMessage) bool {
		if len(a) == 0 || len(b) == 0 {
			return len(a) == len(b)
		}
		var x, y any
		require.NoError(t, json.Unmarshal(a, &x))
		require.NoError(t, json.Unmarshal(b, &y))
		return j(x) == j(y)
	}
	at := func(x time.Time) time.Time { return x.Round(time.Microsecond).UTC() }
	id := want.ID
	assert.Equal(t, want.Sandbox, got.Sandbox, id)
	assert.Equal(t, want.Version, got.Version, id)
	assert.Equal(t, want.Reference, got.Reference, id)
	assert.Equal(t, want.AccountID, got.AccountID, id)
	assert.Equal(t, want.EntryReference, got.EntryReference, id)
	assert.Equal(t, want.PrimaryDebtorID, got.PrimaryDebtorID, id)
	assert.Equal(t, want.Currency, got.Currency, id)
	for name, p := range map[string][2]string{
		"amount": {want.Amount.String(), got.Amount.String()}, "original_amount": {want.OriginalAmount.String(), got.OriginalAmount.String()},
		"credits": {want.Credits.String(), got.Credits.String()}, "debits": {want.Debits.String(), got.Debits.String()},
		"paid": {want.Paid.String(), got.Paid.String()}, "total_fees": {want.TotalFees.String(), got.TotalFees.String()},
	} {
		assert.Equal(t, p[0], p[1], "%s %s", id, name)
	}
	assert.Equal(t, want.OriginalDueDate, got.OriginalDueDate, id)
	assert.Equal(t, want.CurrentDueDate, got.CurrentDueDate, id)
	assert.Equal(t, want.ProductReference, got.ProductReference, id)
	assert.Equal(t, want.PortfolioReference, got.PortfolioReference, id)
	assert.Equal(t, want.CreditorReference, got.CreditorReference, id)
	assert.Equal(t, j(want.Scores), j(got.Scores), id)
	assert.True(t, jsonEq(want.Meta, got.Meta), "%s meta %s != %s", id, want.Meta, got.Meta)
	assert.Equal(t, want.Status, got.Status, id)
	assert.Equal(t, want.Resolution, got.Resolution, id)
	assert.Equal(t, want.StatusReason, got.StatusReason, id)
	assert.Equal(t, j(want.Overdue), j(got.Overdue), id)
	assert.Equal(t, want.Recreations, got.Recreations, id)
	assert.Equal(t, j(want.Promises), j(got.Promises), "%s promises", id)
	assert.Equal(t, want.Triggers, got.Triggers, "%s triggers", id)
	assert.Equal(t, at(want.CreatedAt), at(got.CreatedAt), id)
	assert.Equal(t, at(want.UpdatedAt), at(got.UpdatedAt), id)
	require.Equal(t, want.ResolvedAt == nil, got.ResolvedAt == nil, id)
	if want.ResolvedAt != nil {
		assert.Equal(t, at(*want.ResolvedAt), at(*got.ResolvedAt), id)
	}
}
