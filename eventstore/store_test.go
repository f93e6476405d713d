package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/eventstore/pgtest"
)

var testDB *pgtest.DB

func TestMain(m *testing.M) { pgtest.Main(m, &testDB) }

func newStore(t testing.TB, maxConns int32) *eventstore.Store {
	t.Helper()
	return eventstore.New(testDB.Pool(t, maxConns))
}

var ids = domain.NewIDGenerator(nil)

func newStream(prefix string) string { return ids.New(prefix, time.Now()) }

func ev(typ string, data any) domain.NewEvent {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return domain.NewEvent{Type: typ, Data: b}
}

func TestAppendReadStream(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 4)
	acct := newStream(domain.PrefixAccount)
	meta := domain.Metadata{RequestID: "req_1", Actor: "key_1", Sandbox: true}

	got, err := s.Append(ctx, meta, eventstore.StreamAppend{
		TenantID: "ten_a", StreamType: "account", StreamID: acct, ExpectedVersion: 0,
		Events: []domain.NewEvent{ev("account.opened", map[string]any{"currency": "EUR"}), ev("ledger_entry.posted", map[string]any{"amount": "12.50"})},
	})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, int64(1), got[0].StreamVersion)
	assert.Equal(t, int64(2), got[1].StreamVersion)
	assert.Less(t, got[0].Position, got[1].Position)
	assert.Equal(t, got[0].TxID, got[1].TxID, "one append is one transaction")
	assert.True(t, domain.HasPrefix(got[0].ID, domain.PrefixEvent))

	_, err = s.Append(ctx, meta, eventstore.StreamAppend{
		TenantID: "ten_a", StreamType: "account", StreamID: acct, ExpectedVersion: 2,
		Events: []domain.NewEvent{ev("ledger_entry.posted", map[string]any{"amount": "1e2", "n": 1})},
	})
	require.NoError(t, err)

	read, err := s.ReadStream(ctx, "ten_a", acct, 0)
	require.NoError(t, err)
	require.Len(t, read, 3)
	for i, e := range read {
		assert.Equal(t, int64(i+1), e.StreamVersion)
		assert.Equal(t, meta, e.Metadata)
		assert.Len(t, e.Hash, 32)
	}
	assert.Equal(t, got[0].ID, read[0].ID)
	assert.Equal(t, got[1].Hash, read[1].Hash)
	assert.JSONEq(t, `{"amount":"12.50"}`, string(read[1].Data))

	// Another tenant sees nothing of it.
	other, err := s.ReadStream(ctx, "ten_b", acct, 0)
	require.NoError(t, err)
	assert.Empty(t, other)

	rep, err := s.VerifyChains(ctx, nil)
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%+v", rep.Problems)
}

func TestAppendConflictsAndAtomicBatch(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 4)
	a, b := newStream("acct"), newStream("acct")
	_, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_a", StreamType: "account", StreamID: a, Events: []domain.NewEvent{ev("x.created", map[string]any{})}})
	require.NoError(t, err)

	tests := []struct {
		name     string
		expected int64
	}{
		{"stream exists, expected new", 0},
		{"expected ahead of head", 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// b is new and valid; a conflicts: the whole batch must fail.
			_, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_a", StreamType: "account", StreamID: b, Events: []domain.NewEvent{ev("x.created", map[string]any{})}},
				eventstore.StreamAppend{TenantID: "ten_a", StreamType: "account", StreamID: a, ExpectedVersion: tc.expected, Events: []domain.NewEvent{ev("x.changed", map[string]any{})}})
			var vc *domain.VersionConflictError
			require.ErrorAs(t, err, &vc)
			assert.Equal(t, a, vc.StreamID)
			assert.Equal(t, domain.ECONFLICT, domain.ErrorCode(err))
			evs, err := s.ReadStream(ctx, "ten_a", b, 0)
			require.NoError(t, err)
			assert.Empty(t, evs, "a failed batch writes nothing")
		})
	}
}

func TestAppendValidation(t *testing.T) {
	s := newStore(t, 2)
	ok := eventstore.StreamAppend{TenantID: "ten_a", StreamType: "account", StreamID: "acct_1", Events: []domain.NewEvent{ev("a.b", map[string]any{})}}
	tests := []struct {
		name  string
		mut   func(*eventstore.StreamAppend)
		field string
	}{
		{"tenant with dot", func(a *eventstore.StreamAppend) { a.TenantID = "ten.a" }, "appends[0].tenant_id"},
		{"tenant wildcard", func(a *eventstore.StreamAppend) { a.TenantID = "*" }, "appends[0].tenant_id"},
		{"stream type upper", func(a *eventstore.StreamAppend) { a.StreamType = "Account" }, "appends[0].stream_type"},
		{"empty stream id", func(a *eventstore.StreamAppend) { a.StreamID = "" }, "appends[0].stream_id"},
		{"negative version", func(a *eventstore.StreamAppend) { a.ExpectedVersion = -1 }, "appends[0].expected_version"},
		{"no events", func(a *eventstore.StreamAppend) { a.Events = nil }, "appends[0].events"},
		{"event type with space", func(a *eventstore.StreamAppend) { a.Events = []domain.NewEvent{{Type: "a b", Data: []byte(`{}`)}} }, "appends[0].events[0].type"},
		{"event type empty token", func(a *eventstore.StreamAppend) { a.Events = []domain.NewEvent{{Type: "a..b", Data: []byte(`{}`)}} }, "appends[0].events[0].type"},
		{"data not object", func(a *eventstore.StreamAppend) { a.Events = []domain.NewEvent{{Type: "a.b", Data: []byte(`[1]`)}} }, "appends[0].events[0].data"},
		{"data invalid", func(a *eventstore.StreamAppend) { a.Events = []domain.NewEvent{{Type: "a.b", Data: []byte(`{"a":`)}} }, "appends[0].events[0].data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := ok
			tc.mut(&a)
			_, err := s.Append(context.Background(), domain.Metadata{}, a)
			var de *domain.Error
			require.ErrorAs(t, err, &de)
			assert.Equal(t, domain.EINVALID, de.Code)
			require.NotEmpty(t, de.Fields)
			assert.Equal(t, tc.field, de.Fields[0].Field)
		})
	}
	_, err := s.Append(context.Background(), domain.Metadata{}, ok, ok)
	assert.Equal(t, domain.EINVALID, domain.ErrorCode(err), "the same stream twice in one batch")
}

// TestConcurrentAppendsSameVersion: 100 writers race to append version 1 of
// one stream; exactly one wins, every other gets a version conflict.
func TestConcurrentAppendsSameVersion(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 20)
	stream := newStream("acct")
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 100 {
		wg.Go(func() {
			<-start
			_, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_a", StreamType: "account", StreamID: stream,
				Events: []domain.NewEvent{ev("x.created", map[string]any{"writer": i})}})
			var vc *domain.VersionConflictError
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &vc):
				conflicts.Add(1)
			default:
				t.Errorf("writer %d: unexpected error %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
	assert.Equal(t, int32(99), conflicts.Load())
	evs, err := s.ReadStream(ctx, "ten_a", stream, 0)
	require.NoError(t, err)
	assert.Len(t, evs, 1)
}

func TestEventsAreAppendOnly(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 2)
	_, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_a", StreamType: "account", StreamID: newStream("acct"), Events: []domain.NewEvent{ev("x.created", map[string]any{})}})
	require.NoError(t, err)
	for _, stmt := range []string{
		`UPDATE events SET type = 'x.forged'`,
		`DELETE FROM events`,
		`TRUNCATE events`,
		`SET session_replication_role = replica; UPDATE events SET type = 'x.forged'`,
	} {
		t.Run(stmt, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, testDB.URL)
			require.NoError(t, err)
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, stmt)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "append-only")
		})
	}
	var forged int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'x.forged'`).Scan(&forged))
	assert.Zero(t, forged)
}

func TestReadAllPagesInGlobalOrder(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 4)
	tenant := "ten_page" + fmt.Sprint(time.Now().UnixNano())
	var want []string
	for range 25 {
		evs, err := s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: "account", StreamID: newStream("acct"),
			Events: []domain.NewEvent{ev("x.created", map[string]any{}), ev("x.changed", map[string]any{})}})
		require.NoError(t, err)
		for _, e := range evs {
			want = append(want, e.ID)
		}
	}
	lastTx, err := s.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, s.AwaitVisible(ctx, lastTx))
	var got []string
	var cp domain.Checkpoint
	var prev domain.Checkpoint
	for {
		evs, err := s.ReadAll(ctx, cp, 7)
		require.NoError(t, err)
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			require.True(t, prev.Less(e.Checkpoint()), "strictly increasing (xid, position)")
			prev = e.Checkpoint()
			if e.TenantID == tenant {
				got = append(got, e.ID)
			}
		}
		cp = evs[len(evs)-1].Checkpoint()
	}
	assert.Equal(t, want, got)

	// Nth lands on the n-th event after a checkpoint.
	first, err := s.ReadAll(ctx, domain.Checkpoint{}, 5)
	require.NoError(t, err)
	e5, ok, err := s.Nth(ctx, domain.Checkpoint{}, 5)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, first[4].ID, e5.ID)
	_, ok, err = s.Nth(ctx, domain.Checkpoint{}, 1<<40)
	require.NoError(t, err)
	assert.False(t, ok)
}
