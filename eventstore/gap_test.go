package eventstore_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// TestConcurrentCommitGap is the gap-free read proof. In every iteration
// transaction A inserts first (so it holds the smaller position) but commits
// 0–500 ms after transaction B. A reader polling "after my checkpoint" with the
// xid horizon must see every event; a naive "position > last" reader polling
// the same table at the same time must miss some (the control that proves
// this harness can catch the bug at all).
func TestConcurrentCommitGap(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	const iterations = 1000
	const parallel = 20
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := newStore(t, 2*parallel+4)
	tenant := "ten_gap"

	var mu sync.Mutex
	committed := map[string]bool{}
	seenHorizon := map[string]int{}
	seenNaive := map[string]bool{}

	stop := make(chan struct{})
	var pollers sync.WaitGroup
	// Horizon reader: the store's ReadAll.
	pollers.Go(func() {
		var cp domain.Checkpoint
		for {
			evs, err := s.ReadAll(ctx, cp, 500)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, e := range evs {
				seenHorizon[e.ID]++
			}
			mu.Unlock()
			if len(evs) > 0 {
				cp = evs[len(evs)-1].Checkpoint()
				continue
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	// Naive reader: position > last.
	pollers.Go(func() {
		var last int64
		for {
			rows, err := s.Pool().Query(ctx, `SELECT id, position FROM events WHERE position > $1 ORDER BY position LIMIT 500`, last)
			if err != nil {
				t.Error(err)
				return
			}
			n := 0
			for rows.Next() {
				var id string
				if err := rows.Scan(&id, &last); err != nil {
					t.Error(err)
				}
				mu.Lock()
				seenNaive[id] = true
				mu.Unlock()
				n++
			}
			rows.Close()
			if n > 0 {
				continue
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})

	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range iterations {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			delay := time.Duration(rand.IntN(500)) * time.Millisecond
			if err := commitOutOfOrder(ctx, s, tenant, delay); err != nil {
				t.Errorf("iteration %d: %v", i, err)
				return
			}
		})
	}
	wg.Wait()

	// Everything committed; collect the ids.
	rows, err := s.Pool().Query(ctx, `SELECT id FROM events WHERE tenant_id = $1`, tenant)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, ids, 2*iterations)
	for _, id := range ids {
		committed[id] = true
	}

	// Wait (with a deadline) until the horizon reader has caught up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for id := range committed {
			if seenHorizon[id] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("horizon reader missed %d of %d events", missing, len(committed))
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	pollers.Wait()

	mu.Lock()
	defer mu.Unlock()
	for id, n := range seenHorizon {
		if committed[id] {
			assert.Equal(t, 1, n, "event %s read %d times", id, n)
		}
	}
	missedNaive := 0
	for id := range committed {
		if !seenNaive[id] {
			missedNaive++
		}
	}
	t.Logf("%d events; horizon reader missed 0; naive reader missed %d", len(committed), missedNaive)
	assert.Positive(t, missedNaive, "the naive position>last reader should miss late commits: the harness is not sharp")
}

// commitOutOfOrder: A inserts first, B inserts and commits, A commits after delay.
func commitOutOfOrder(ctx context.Context, s *eventstore.Store, tenant string, delay time.Duration) error {
	txA, err := s.Pool().Begin(ctx)
	if err != nil {
		return err
	}
	defer txA.Rollback(context.WithoutCancel(ctx))
	if _, err := s.AppendTx(ctx, txA, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: "account", StreamID: newStream("acct"),
		Events: []domain.NewEvent{ev("gap.a", map[string]any{})}}); err != nil {
		return err
	}
	if _, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: "account", StreamID: newStream("acct"),
		Events: []domain.NewEvent{ev("gap.b", map[string]any{})}}); err != nil {
		return err
	}
	time.Sleep(delay)
	return txA.Commit(ctx)
}
