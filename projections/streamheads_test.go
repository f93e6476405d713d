package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/eventstore/pgtest"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/projections/projectiontest"
)

var testDB *pgtest.DB

func TestMain(m *testing.M) { pgtest.Main(m, &testDB) }

// contractWorkloads are the histories each projection is checked against:
// every projection in All must have an entry.
var contractWorkloads = map[string]map[string]projectiontest.Workload{
	"stream_heads": {"generic": projectiontest.GenericWorkload, "money": projectiontest.MoneyWorkload, "claims": projectiontest.ClaimsWorkload,
		"collections": projectiontest.CollectionsWorkload},
	"debtors": {"money": projectiontest.MoneyWorkload},
	"ledger":  {"money": projectiontest.MoneyWorkload, "collections": projectiontest.CollectionsWorkload},
	"claims": {"claims": projectiontest.ClaimsWorkload, "generic": projectiontest.GenericWorkload,
		"collections": projectiontest.CollectionsWorkload},
	"disputes":       {"collections": projectiontest.CollectionsWorkload, "generic": projectiontest.GenericWorkload},
	"campaigns":      {"collections": projectiontest.CollectionsWorkload, "generic": projectiontest.GenericWorkload},
	"webhook_outbox": {"webhooks": projectiontest.WebhooksWorkload, "generic": projectiontest.GenericWorkload},
}

// TestContract runs every projection through the contract suite.
func TestContract(t *testing.T) {
	for _, p := range projections.All() {
		t.Run(p.Name(), func(t *testing.T) {
			workloads, ok := contractWorkloads[p.Name()]
			require.True(t, ok, "projection %s has no contract workload: add it to contractWorkloads", p.Name())
			for _, name := range []string{"generic", "money", "claims", "collections"} {
				if w, ok := workloads[name]; ok {
					t.Run(name, func(t *testing.T) { projectiontest.Run(t, testDB, p, w, 3) })
				}
			}
		})
	}
}

func TestStreamHeadsValues(t *testing.T) {
	ctx := context.Background()
	pool := testDB.Pool(t, 4)
	store := eventstore.New(pool)
	ev := func(typ string) domain.NewEvent { return domain.NewEvent{Type: typ, Data: []byte(`{}`)} }
	a := eventstore.StreamAppend{TenantID: "ten_h", StreamType: "account", StreamID: "acct_heads_1", Events: []domain.NewEvent{ev("account.opened"), ev("ledger_entry.posted")}}
	first, err := store.Append(ctx, domain.Metadata{}, a)
	require.NoError(t, err)
	a.ExpectedVersion, a.Events = 2, []domain.NewEvent{ev("payment.completed")}
	last, err := store.Append(ctx, domain.Metadata{}, a)
	require.NoError(t, err)

	require.NoError(t, store.AwaitVisible(ctx, last[0].TxID))
	engine := projections.NewEngine(store)
	_, err = engine.CatchUp(ctx, projections.StreamHeads{}, -1, 2)
	require.NoError(t, err)
	var version, count, pos int64
	var lastID, lastType string
	require.NoError(t, pool.QueryRow(ctx, `SELECT version, event_count, last_event_id, last_event_type, last_position FROM stream_heads WHERE tenant_id = 'ten_h' AND stream_id = 'acct_heads_1'`).
		Scan(&version, &count, &lastID, &lastType, &pos))
	assert.Equal(t, int64(3), version)
	assert.Equal(t, int64(3), count)
	assert.Equal(t, last[0].ID, lastID)
	assert.Equal(t, "payment.completed", lastType)
	assert.Equal(t, last[0].Position, pos)
	assert.Less(t, first[0].Position, pos)
}

// TestApplyFillsLargeGap: a batch that starts far past the checkpoint (more
// than one transaction should carry) is preceded by a batched catch-up.
func TestApplyFillsLargeGap(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 4)
	store := eventstore.New(pool)
	ids := domain.NewIDGenerator(nil)
	const total = 10_050
	for n := 0; n < total; {
		k := min(1000, total-n)
		appends := make([]eventstore.StreamAppend, k)
		for i := range appends {
			appends[i] = eventstore.StreamAppend{TenantID: "ten_gap", StreamType: "account", StreamID: ids.New("acct", time.Now()),
				Events: []domain.NewEvent{{Type: "x.created", Data: []byte(`{}`)}}}
		}
		_, err := store.Append(ctx, domain.Metadata{}, appends...)
		require.NoError(t, err)
		n += k
	}
	lastTx, err := store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, store.AwaitVisible(ctx, lastTx))
	all, err := store.ReadAll(ctx, domain.Checkpoint{}, total)
	require.NoError(t, err)
	require.Len(t, all, total)
	var last []projections.Sequenced
	for i := total - 10; i < total; i++ {
		last = append(last, projections.Sequenced{Seq: int64(i + 1), Event: all[i]})
	}
	engine := projections.NewEngine(store)
	res, err := engine.Apply(ctx, projections.StreamHeads{}, last)
	require.NoError(t, err)
	assert.Equal(t, int64(total), res.Checkpoint.Seq)
	var rows int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM stream_heads`).Scan(&rows))
	assert.Equal(t, total, rows)
}
