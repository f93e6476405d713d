package workers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/workers"
)

// TestDecodeCache: a message is served from the cache only when its
// stream, sequence and event id (Nats-Msg-Id) are those of the cached one —
// then its body is not even read — so a recreated stream whose sequence 1 is
// another event gets that event, and messages without an id are always
// decoded.
func TestDecodeCache(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	cache := workers.NewDecodeCache(8)

	event := func(id string, n int) domain.Event {
		return domain.Event{ID: id, TxID: 100 + int64(n), Position: int64(n), TenantID: "ten_d", StreamType: "account", StreamID: "acct_d",
			StreamVersion: int64(n), Type: "account.triggered", SchemaVersion: 1, Data: json.RawMessage(`{"n":1}`),
			RecordedAt: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	}
	publish := func(ev domain.Event, body []byte, withID bool) {
		t.Helper()
		if body == nil {
			var err error
			body, err = json.Marshal(ev.ToCloudEvent())
			require.NoError(t, err)
		}
		m := &nats.Msg{Subject: ev.Subject(e.topo.SubjectPrefix), Data: body, Header: nats.Header{}}
		m.Header.Set(workers.HeaderTxID, "100")
		var opts []jetstream.PublishOpt
		if withID {
			opts = append(opts, jetstream.WithMsgID(ev.ID))
		}
		_, err := e.js.PublishMsg(ctx, m, opts...)
		require.NoError(t, err)
	}
	fetch := func(n int) []jetstream.Msg {
		t.Helper()
		cons, err := e.js.OrderedConsumer(ctx, e.topo.Stream, jetstream.OrderedConsumerConfig{})
		require.NoError(t, err)
		batch, err := cons.FetchNoWait(n)
		require.NoError(t, err)
		var out []jetstream.Msg
		for m := range batch.Messages() {
			out = append(out, m)
		}
		require.Len(t, out, n)
		return out
	}
	decode := func(msgs []jetstream.Msg) ([]projections.Sequenced, int) {
		var bad int
		out := cache.Decode(msgs, func(error) { bad++ })
		return out, bad
	}
	recreate := func() {
		t.Helper()
		require.NoError(t, e.js.DeleteStream(ctx, e.topo.Stream))
		e.stream()
	}

	a := event("evt_a", 1)
	e.stream()
	publish(a, nil, true)
	got, bad := decode(fetch(1))
	require.Zero(t, bad)
	require.Len(t, got, 1)
	require.Equal(t, int64(1), got[0].Seq)
	require.Equal(t, "evt_a", got[0].Event.ID)
	require.Equal(t, int64(100), got[0].Event.TxID)

	// Same stream, sequence and id, but a body that does not decode: the
	// cached event is served.
	recreate()
	publish(a, []byte("not json"), true)
	got, bad = decode(fetch(1))
	require.Zero(t, bad, "served from the cache without reading the body")
	require.Len(t, got, 1)
	require.Equal(t, "evt_a", got[0].Event.ID)

	// Sequence 1 is now another event: decoded, never the cached one.
	recreate()
	publish(event("evt_b", 1), nil, true)
	got, bad = decode(fetch(1))
	require.Zero(t, bad)
	require.Len(t, got, 1)
	require.Equal(t, "evt_b", got[0].Event.ID)

	// Without a message id nothing is taken from (or put in) the cache.
	recreate()
	publish(event("evt_b", 1), []byte("not json"), false)
	got, bad = decode(fetch(1))
	require.Equal(t, 1, bad)
	require.Empty(t, got)

	// A nil cache decodes every message.
	var none *workers.DecodeCache
	recreate()
	publish(a, nil, true)
	out := none.Decode(fetch(1), func(err error) { t.Fatal(err) })
	require.Equal(t, "evt_a", out[0].Event.ID)
}
