package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/projections/projectiontest"
)

// TestVerifyCleanHistory: every projection of an untouched money history
// matches its rebuild; verifying changes nothing and leaves nothing behind.
func TestVerifyCleanHistory(t *testing.T) {
	ctx := context.Background()
	projections.SetShadowBatch(t, 97)
	pool, _, engine := moneyInstallation(t, 11, 8)
	total := eventCount(t, pool)
	for _, p := range projections.All() {
		before, err := projections.Dump(ctx, pool, p)
		require.NoError(t, err)
		cp, err := engine.Load(ctx, p.Name())
		require.NoError(t, err)
		r, err := engine.Verify(ctx, p, nil)
		require.NoError(t, err)
		assert.True(t, r.OK(), "%s: %+v", p.Name(), r)
		assert.Equal(t, total, r.Checkpoint.Seq)
		require.Len(t, r.Tables, len(p.Tables()))
		for _, tr := range r.Tables {
			assert.Equal(t, int64(len(before[tr.Table])), tr.LiveRows, tr.Table)
			assert.Equal(t, tr.LiveRows, tr.RebuiltRows, tr.Table)
			assert.Equal(t, tr.LiveChecksum, tr.RebuiltChecksum, tr.Table)
			assert.Empty(t, tr.Diffs, tr.Table)
		}
		after, err := projections.Dump(ctx, pool, p)
		require.NoError(t, err)
		assert.Equal(t, before, after, "%s: verify changed the live tables", p.Name())
		cp2, err := engine.Load(ctx, p.Name())
		require.NoError(t, err)
		assert.Equal(t, cp, cp2, "%s: verify moved the checkpoint", p.Name())
	}
	assert.Empty(t, shadowSchemas(t, pool))
}

// TestVerifyAtTheLiveCheckpoint: a projection that lags the event store is
// compared with a rebuild of the same prefix of history, not of all of it.
func TestVerifyAtTheLiveCheckpoint(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 8)
	store := eventstore.New(pool)
	projectiontest.MoneyWorkload(t, projectiontest.NewRand(12), store)
	catchUp(t, store) // await visibility
	total := eventCount(t, pool)
	engine := projections.NewEngine(store)
	for _, p := range projections.All() {
		_, err := engine.CatchUp(ctx, p, total/2, 100)
		require.NoError(t, err)
		r, err := engine.Verify(ctx, p, nil)
		require.NoError(t, err)
		assert.True(t, r.OK(), "%s: %+v", p.Name(), r)
		assert.Equal(t, total/2, r.Checkpoint.Seq, p.Name())
	}
}

// TestVerifyWhileLive: a verify while a live runner keeps applying new
// events compares at one point in history, and so finds no difference.
func TestVerifyWhileLive(t *testing.T) {
	ctx := context.Background()
	projections.SetShadowBatch(t, 20)
	_, pool := testDB.Isolated(t, 8)
	store := eventstore.New(pool)
	engine := projections.NewEngine(store)
	p := projections.StreamHeads{}
	ids := domain.NewIDGenerator(nil)
	var streams []string
	for range 20 {
		streams = append(streams, ids.New("acct", time.Now()))
	}
	versions := map[string]int64{}
	var appended atomic.Int64
	appendSome := func() error {
		s := streams[appended.Load()%int64(len(streams))]
		evs := []domain.NewEvent{{Type: "test.x", Data: []byte(`{}`)}, {Type: "test.y", Data: []byte(`{}`)}}
		if _, err := store.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_v", StreamType: "account", StreamID: s,
			ExpectedVersion: versions[s], Events: evs}); err != nil {
			return err
		}
		versions[s] += 2
		appended.Add(1)
		return nil
	}
	for range 200 {
		require.NoError(t, appendSome())
	}
	catchUp(t, store, p)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var liveErr error
	wg.Go(func() {
		for !stop.Load() {
			if err := appendSome(); err != nil {
				liveErr = err
				return
			}
			if _, err := engine.CatchUp(ctx, p, -1, 7); err != nil {
				liveErr = err
				return
			}
		}
	})
	var rounds int
	for range 3 {
		r, err := engine.Verify(ctx, p, nil)
		require.NoError(t, err)
		assert.True(t, r.OK(), "%+v", r)
		rounds++
	}
	stop.Store(true)
	wg.Wait()
	require.NoError(t, liveErr)
	t.Logf("%d verifies while %d appends were applied live", rounds, appended.Load()-200)
	assert.Greater(t, appended.Load(), int64(200), "the live runner ran during the verify")
}

// TestVerifyReportsTampering: rows changed, deleted or added behind the
// projection's back are reported by table and key, with the columns that
// differ; the other tables still match.
func TestVerifyReportsTampering(t *testing.T) {
	ctx := context.Background()
	pool, _, engine := moneyInstallation(t, 13, 8)
	var tenant, account string
	require.NoError(t, pool.QueryRow(ctx, `SELECT tenant_id, id FROM accounts ORDER BY 1, 2 LIMIT 1`).Scan(&tenant, &account))
	var entryTenant, entryAccount, entryRef string
	require.NoError(t, pool.QueryRow(ctx, `SELECT tenant_id, account_id, reference FROM ledger_entries ORDER BY 1, 2, 3 DESC LIMIT 1`).
		Scan(&entryTenant, &entryAccount, &entryRef))
	for _, sql := range []string{
		fmt.Sprintf(`UPDATE accounts SET paid = paid + 1 WHERE tenant_id = '%s' AND id = '%s'`, tenant, account),
		fmt.Sprintf(`DELETE FROM ledger_entries WHERE tenant_id = '%s' AND account_id = '%s' AND reference = '%s'`, entryTenant, entryAccount, entryRef),
		`INSERT INTO transactions (tenant_id, id, account_id, kind, amount, currency, occurred_at) VALUES ('ten_bogus', 'evt_bogus', 'acct_x', 'invoice', 5, 'EUR', now())`,
	} {
		tag, err := pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
		require.EqualValues(t, 1, tag.RowsAffected(), sql)
	}

	r, err := engine.Verify(ctx, projections.Ledger{}, nil)
	require.NoError(t, err)
	assert.False(t, r.OK())
	assert.Empty(t, r.CheckpointProblem)
	tables := map[string]projections.TableReport{}
	for _, tr := range r.Tables {
		tables[tr.Table] = tr
	}

	acc := tables["accounts"]
	assert.False(t, acc.OK())
	assert.Equal(t, acc.LiveRows, acc.RebuiltRows)
	assert.NotEqual(t, acc.LiveChecksum, acc.RebuiltChecksum)
	assert.Equal(t, []int64{1, 0, 0}, []int64{acc.Changed, acc.OnlyLive, acc.OnlyRebuilt})
	require.Len(t, acc.Diffs, 1)
	d := acc.Diffs[0]
	assert.Equal(t, projections.DiffChanged, d.Kind)
	assert.Equal(t, fmt.Sprintf("tenant_id=%s id=%s", tenant, account), projections.KeyString(d.Key))
	var cols []string
	for _, c := range d.Columns {
		cols = append(cols, c.Column)
	}
	assert.Equal(t, []string{"outstanding", "paid"}, cols, "paid, and outstanding that follows it")
	var live, rebuilt float64
	for _, c := range d.Columns {
		if c.Column == "paid" {
			require.NoError(t, json.Unmarshal(c.Live, &live))
			require.NoError(t, json.Unmarshal(c.Rebuilt, &rebuilt))
		}
	}
	assert.InDelta(t, 1, live-rebuilt, 1e-9)

	le := tables["ledger_entries"]
	assert.Equal(t, le.LiveRows+1, le.RebuiltRows)
	assert.Equal(t, []int64{0, 0, 1}, []int64{le.Changed, le.OnlyLive, le.OnlyRebuilt})
	require.Len(t, le.Diffs, 1)
	assert.Equal(t, projections.DiffOnlyRebuilt, le.Diffs[0].Kind)
	assert.Equal(t, fmt.Sprintf("tenant_id=%s account_id=%s reference=%s", entryTenant, entryAccount, entryRef), projections.KeyString(le.Diffs[0].Key))
	assert.Nil(t, le.Diffs[0].Live)
	assert.Contains(t, string(le.Diffs[0].Rebuilt), entryRef)

	tx := tables["transactions"]
	assert.Equal(t, []int64{0, 1, 0}, []int64{tx.Changed, tx.OnlyLive, tx.OnlyRebuilt})
	require.Len(t, tx.Diffs, 1)
	assert.Equal(t, projections.DiffOnlyLive, tx.Diffs[0].Kind)
	assert.Equal(t, "tenant_id=ten_bogus id=evt_bogus", projections.KeyString(tx.Diffs[0].Key))

	for _, name := range []string{"payments", "statements"} {
		assert.True(t, tables[name].OK(), "%s: %+v", name, tables[name])
	}

	// Many differences: counted in full, listed up to a bound.
	_, err = pool.Exec(ctx, `UPDATE ledger_entries SET amendment_count = amendment_count + 1`)
	require.NoError(t, err)
	r, err = engine.Verify(ctx, projections.Ledger{}, nil)
	require.NoError(t, err)
	for _, tr := range r.Tables {
		if tr.Table == "ledger_entries" {
			assert.Equal(t, tr.LiveRows, tr.Changed)
			assert.Greater(t, tr.Changed, int64(20))
			assert.Len(t, tr.Diffs, 20+1, "20 changed, 1 only rebuilt")
		}
	}

	// A checkpoint that names another event than its sequence's.
	_, err = pool.Exec(ctx, `UPDATE projection_checkpoints SET position = position + 1 WHERE name = 'debtors'`)
	require.NoError(t, err)
	r, err = engine.Verify(ctx, projections.Debtors{}, nil)
	require.NoError(t, err)
	assert.False(t, r.OK())
	assert.Contains(t, r.CheckpointProblem, "the live checkpoint at sequence")
	assert.Empty(t, shadowSchemas(t, pool))
}
