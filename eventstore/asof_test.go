package eventstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// TestLoadAsOf: a stream folded up to a time or a position is the fold of
// its longest prefix within the cut — also when a clock went backwards —
// and equals the state the commands had at that version.
func TestLoadAsOf(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var clock time.Time
	s := eventstore.New(testDB.Pool(t, 4), eventstore.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }))
	setClock := func(at time.Time) { mu.Lock(); clock = at; mu.Unlock() }
	const tenant = "ten_asof"
	id := newStream("acct")
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	t1, t2, t4 := t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(4*time.Hour)

	// Something before the stream, so a position before it is not 0 (no cut).
	setClock(t0)
	_, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: "test", StreamID: newStream("tst"),
		Events: []domain.NewEvent{ev("test.happened", map[string]any{})}})
	require.NoError(t, err)

	live := domain.NewAccount(tenant, id)
	amount := func(s string) decimal.Decimal { return decimal.RequireFromString(s) }
	steps := []struct {
		at     time.Time
		decide func() ([]domain.NewEvent, error)
	}{
		{t1, func() ([]domain.NewEvent, error) { return live.Open(domain.OpenAccount{Currency: "EUR"}, t1) }},
		{t2, func() ([]domain.NewEvent, error) {
			return live.PostEntries([]domain.EntryInput{{Reference: "inv", Kind: domain.KindInvoice, Amount: amount("100.00"), DueDate: "2026-03-15"}}, t2, nil)
		}},
		{t0, func() ([]domain.NewEvent, error) { // recorded by a process whose clock is behind
			return live.PostEntries([]domain.EntryInput{{Reference: "fee", Kind: domain.KindFee, Amount: amount("5.00")}}, t0, nil)
		}},
		{t4, func() ([]domain.NewEvent, error) {
			_, evs, err := live.RecordPayment("pay_1", domain.PaymentInput{Amount: amount("40.00")}, t4)
			return evs, err
		}},
	}
	var positions []int64
	outstanding := map[int64]string{} // after each step's last version
	for _, st := range steps {
		evs, err := st.decide()
		require.NoError(t, err)
		setClock(st.at)
		recorded, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: domain.StreamTypeAccount,
			StreamID: id, ExpectedVersion: live.Version - int64(len(evs)), Events: evs})
		require.NoError(t, err)
		outstanding[live.Version] = live.Outstanding().String()
		positions = append(positions, recorded[len(recorded)-1].Position)
	}
	require.Equal(t, int64(5), live.Version) // the payment is recorded and completed

	load := func(cut eventstore.Cut) (*domain.Account, int64) {
		t.Helper()
		a := domain.NewAccount(tenant, id)
		v, err := s.LoadAsOf(ctx, tenant, id, cut, a)
		require.NoError(t, err)
		require.Equal(t, v, a.Version)
		return a, v
	}
	for _, c := range []struct {
		name string
		cut  eventstore.Cut
		want int64
	}{
		{"nothing cut", eventstore.Cut{}, 5},
		{"before the first event", eventstore.Cut{At: t0.Add(-time.Minute)}, 0},
		{"the event behind the clock does not make a prefix", eventstore.Cut{At: t0}, 0},
		{"at the first event", eventstore.Cut{At: t1}, 1},
		{"between", eventstore.Cut{At: t1.Add(time.Minute)}, 1},
		{"the late-clock event is inside once its predecessors are", eventstore.Cut{At: t2}, 3},
		{"at the last", eventstore.Cut{At: t4}, 5},
		{"by position", eventstore.Cut{Position: positions[1]}, 2},
		{"by position, inside a write of two events", eventstore.Cut{Position: positions[3] - 1}, 4},
		{"by a position before the stream", eventstore.Cut{Position: positions[0] - 1}, 0},
		{"both: the tighter wins", eventstore.Cut{At: t4, Position: positions[2]}, 3},
		{"both: the tighter wins (time)", eventstore.Cut{At: t1, Position: positions[3]}, 1},
	} {
		a, v := load(c.cut)
		require.Equal(t, c.want, v, c.name)
		require.Equal(t, c.want > 0, a.Opened, c.name)
		if want, ok := outstanding[v]; ok {
			require.Equal(t, want, a.Outstanding().String(), c.name)
		}
	}

	// Another tenant's stream of the same id is not read.
	a := domain.NewAccount("ten_other", id)
	v, err := s.LoadAsOf(ctx, "ten_other", id, eventstore.Cut{}, a)
	require.NoError(t, err)
	require.Zero(t, v)
	require.False(t, a.Opened)
}
