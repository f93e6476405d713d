package workers_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/workers"
)

// TestPlainSubscriberGetsEveryEventInStreamOrder: a plain nats.go core
// subscriber on <prefix>.> receives a valid CloudEvent for every event, in
// version order per stream, while writers append concurrently.
func TestPlainSubscriberGetsEveryEventInStreamOrder(t *testing.T) {
	e := newEnv(t, "")
	var mu sync.Mutex
	var got []domain.CloudEvent
	var subjects []string
	sub, err := e.nc.Subscribe(e.topo.SubjectPrefix+".>", func(m *nats.Msg) {
		var ce domain.CloudEvent
		if err := json.Unmarshal(m.Data, &ce); err != nil {
			t.Errorf("not a CloudEvent: %v", err)
		}
		mu.Lock()
		got = append(got, ce)
		subjects = append(subjects, m.Subject)
		mu.Unlock()
	})
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, e.nc.Flush())
	e.relay(relayDefaults())

	const writers, perWriter = 8, 60
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() { e.appendN(perWriter, 5) })
	}
	wg.Wait()
	eventually(t, 20*time.Second, "every event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= writers*perWriter
	})

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, writers*perWriter)
	lastVersion := map[string]int64{}
	seen := map[string]bool{}
	for i, ce := range got {
		assert.Equal(t, "1.0", ce.SpecVersion)
		assert.Equal(t, "ledger_entry.posted", ce.Type)
		assert.Equal(t, domain.CloudEventSource+"ten_w", ce.Source)
		assert.Equal(t, "application/json", ce.DataContentType)
		assert.Equal(t, ce.StreamID, ce.Subject)
		assert.False(t, ce.Time.IsZero())
		assert.True(t, json.Valid(ce.Data))
		assert.Positive(t, ce.Position)
		assert.Equal(t, e.topo.SubjectPrefix+".ten_w.account.ledger_entry.posted", subjects[i])
		assert.False(t, seen[ce.ID], "duplicate %s", ce.ID)
		seen[ce.ID] = true
		assert.Equal(t, lastVersion[ce.StreamID]+1, ce.StreamVersion, "stream %s out of order", ce.StreamID)
		lastVersion[ce.StreamID] = ce.StreamVersion
		// A valid envelope of exactly the stored event.
		ev, err := ce.Event()
		if assert.NoError(t, err, "not a valid arrears CloudEvent") {
			stored, err := e.store.Event(context.Background(), ce.TenantID, ce.ID)
			require.NoError(t, err)
			stored.TxID, stored.Hash, stored.Metadata = 0, nil, domain.Metadata{Sandbox: stored.Metadata.Sandbox}
			assert.JSONEq(t, string(stored.Data), string(ev.Data))
			ev.Data = stored.Data // compacted in the envelope
			assert.Equal(t, stored, ev, "the envelope carries the stored event")
		}
	}
	assert.Equal(t, e.globalOrder(), e.streamIDs(), "stream sequence k is the k-th event of the global order")
}

// TestOneRelayLeads: of two relays on one database only one publishes; when
// it stops the other takes over, and no event is published twice.
func TestOneRelayLeads(t *testing.T) {
	e := newEnv(t, "")
	a, stopA := e.relay(relayDefaults())
	b, stopB := e.relay(relayDefaults())
	// A monitor watches for two leaders at once for the whole test.
	var both atomic.Bool
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				if a.Leader() && b.Leader() {
					both.Store(true)
				}
			}
		}
	}()
	defer close(done)
	eventually(t, 10*time.Second, "a leader", func() bool { return a.Leader() || b.Leader() })

	e.appendN(100, 7)
	eventually(t, 10*time.Second, "100 published", func() bool { return e.lastSeq() == 100 })

	leader, stopLeader, standby := a, stopA, b
	if b.Leader() {
		leader, stopLeader, standby = b, stopB, a
	}
	stopLeader()
	require.False(t, leader.Leader())
	eventually(t, 10*time.Second, "the standby takes over", standby.Leader)

	e.appendN(100, 7)
	eventually(t, 10*time.Second, "200 published", func() bool { return e.lastSeq() == 200 })
	assert.Equal(t, e.globalOrder(), e.streamIDs())
	assert.False(t, both.Load(), "two relays led at the same time")
}

// TestRelayAdoptsBatchAckedBeforeCrash: the relay died after JetStream
// acknowledged a batch but before its checkpoint was written. On restart it
// must recognise the messages as its own and continue without duplicates.
func TestRelayAdoptsBatchAckedBeforeCrash(t *testing.T) {
	e := newEnv(t, "")
	_, stop := e.relay(relayDefaults())
	e.appendN(60, 4)
	eventually(t, 10*time.Second, "60 published", func() bool { return e.lastSeq() == 60 })
	stop()

	// Forget the newest checkpoints, as if they had never been written.
	_, err := e.pool.Exec(context.Background(), `DELETE FROM relay_log WHERE seq > 25`)
	require.NoError(t, err)

	r, _ := e.relay(relayDefaults())
	e.appendN(40, 4)
	eventually(t, 10*time.Second, "100 published", func() bool { return e.lastSeq() == 100 && r.Sequence() == 100 })
	assert.Equal(t, e.globalOrder(), e.streamIDs())
}

// TestRelayRefusesForeignStream: a stream holding messages this event store
// never published is not silently built upon.
func TestRelayRefusesForeignStream(t *testing.T) {
	e := newEnv(t, "")
	e.stream()
	_, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: e.topo.SubjectPrefix + ".ten_x.account.x.created", Data: []byte(`{}`),
		Header: nats.Header{"Nats-Msg-Id": []string{"evt_FOREIGN"}}})
	require.NoError(t, err)
	r, _ := e.relay(relayDefaults())
	e.appendN(1, 1)
	eventually(t, 10*time.Second, "the relay reports the foreign stream", func() bool {
		err := r.LastError()
		return err != nil && strings.Contains(err.Error(), "another installation")
	})
	assert.Equal(t, uint64(1), e.lastSeq(), "nothing published on top of a foreign stream")
	assert.Zero(t, r.Sequence())
}

// TestProjectorFillsDeletedMessages: messages deleted from JetStream (by an
// operator, by retention) before a projection consumed them are read from
// the event store, including a deleted last message that nothing follows.
func TestProjectorFillsDeletedMessages(t *testing.T) {
	e := newEnv(t, "")
	e.relay(relayDefaults())
	e.appendN(100, 9)
	eventually(t, 10*time.Second, "100 published", func() bool { return e.lastSeq() == 100 })
	s := e.stream()
	for _, seq := range []uint64{1, 40, 41, 42, 43, 44, 45, 77, 100} {
		require.NoError(t, s.DeleteMsg(context.Background(), seq))
	}
	e.projector(projections.StreamHeads{})
	eventually(t, 20*time.Second, "projection at 100", func() bool { return e.projectionSeq("stream_heads") == 100 })
	e.requireReplayEqualsLive(projections.StreamHeads{})
}

// TestProjectorSkipsDuplicates: replaying the stream into a projection that
// is already up to date changes nothing.
func TestProjectorSkipsDuplicates(t *testing.T) {
	e := newEnv(t, "")
	e.relay(relayDefaults())
	stop := e.projector(projections.StreamHeads{})
	e.appendN(50, 5)
	eventually(t, 10*time.Second, "projection at 50", func() bool { return e.projectionSeq("stream_heads") == 50 })
	stop()
	before, err := projections.Dump(context.Background(), e.pool, projections.StreamHeads{})
	require.NoError(t, err)
	// A new consumer from sequence 1 re-delivers everything.
	require.NoError(t, e.js.DeleteConsumer(context.Background(), e.topo.Stream, "arrears_proj_stream_heads"))
	res, err := projections.NewEngine(e.store).Apply(context.Background(), projections.StreamHeads{}, sequenced(t, e, 1, 50))
	require.NoError(t, err)
	assert.Equal(t, 50, res.Duplicates)
	assert.Zero(t, res.Applied)
	after, err := projections.Dump(context.Background(), e.pool, projections.StreamHeads{})
	require.NoError(t, err)
	assert.Equal(t, before, after)
}

func sequenced(t *testing.T, e *env, from, to int) []projections.Sequenced {
	t.Helper()
	var cp domain.Checkpoint
	evs, err := e.store.ReadAll(context.Background(), cp, to)
	require.NoError(t, err)
	var out []projections.Sequenced
	for i := from - 1; i < to; i++ {
		out = append(out, projections.Sequenced{Seq: int64(i + 1), Event: evs[i]})
	}
	return out
}

func relayDefaults() workers.RelayConfig { return workers.RelayConfig{} }

// TestProjectorResumesOnItsDurableConsumer: a restarted runner consumes
// JetStream again through its existing durable consumer (whose start
// sequence JetStream will not let it change), not only the store fallback.
func TestProjectorResumesOnItsDurableConsumer(t *testing.T) {
	e := newEnv(t, "")
	e.relay(relayDefaults())
	stop := e.projector(projections.StreamHeads{})
	e.appendN(50, 5)
	eventually(t, 10*time.Second, "projection at 50", func() bool { return e.projectionSeq("stream_heads") == 50 })
	stop()

	e.appendN(50, 5)
	w, err := workers.NewProjector(projections.StreamHeads{}, e.store, e.nc, workers.ProjectorConfig{NATS: e.topo, MaxWait: 100 * time.Millisecond, BatchSize: 50, IdleBackfill: 1 << 30}, logger)
	require.NoError(t, err)
	run(t, w.Run)
	eventually(t, 10*time.Second, "JetStream acks up to 100 through the durable consumer", func() bool {
		c, err := e.js.Consumer(context.Background(), e.topo.Stream, workers.ConsumerName("stream_heads"))
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 100
	})
	assert.NoError(t, w.LastError())
	assert.Equal(t, int64(100), e.projectionSeq("stream_heads"))
}

// TestProjectorGroupSharesOneConsumer: projections in a group are fed by
// one durable consumer, which starts after the lowest member's checkpoint:
// a member ahead gets what it has as duplicates, a member behind (here new)
// gets everything, and JetStream delivers each message to the group once.
func TestProjectorGroupSharesOneConsumer(t *testing.T) {
	e := newEnv(t, "")
	e.relay(relayDefaults())
	stop := e.projector(projections.StreamHeads{})
	e.appendN(50, 5)
	eventually(t, 10*time.Second, "stream_heads at 50", func() bool { return e.projectionSeq("stream_heads") == 50 })
	stop()

	e.appendN(50, 5)
	w, err := workers.NewProjectorGroup("g", []projections.Projection{projections.StreamHeads{}, projections.WebhookOutbox{}}, e.store, e.nc,
		workers.ProjectorConfig{NATS: e.topo, MaxWait: 100 * time.Millisecond, BatchSize: 20, IdleBackfill: 1 << 30}, logger)
	require.NoError(t, err)
	require.Equal(t, []string{"stream_heads", "webhook_outbox"}, w.Projections())
	run(t, w.Run)
	eventually(t, 10*time.Second, "both projections at 100", func() bool {
		return e.projectionSeq("stream_heads") == 100 && e.projectionSeq("webhook_outbox") == 100
	})
	c, err := e.js.Consumer(context.Background(), e.topo.Stream, workers.ConsumerName("g"))
	require.NoError(t, err)
	eventually(t, 10*time.Second, "the group's consumer acked 100", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 100
	})
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint64(100), info.Delivered.Consumer, "every message delivered once to the group, from the lowest checkpoint")
	assert.Zero(t, info.NumRedelivered)
	assert.NoError(t, w.LastError())

	var versions int64
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT sum(version) FROM stream_heads`).Scan(&versions))
	assert.Equal(t, int64(100), versions, "stream heads: 5 streams at version 20")
}

// gated is a projection whose Apply fails until open is set; ok counts the
// events of its successful applies.
type gated struct {
	open atomic.Bool
	ok   atomic.Int64
}

func (*gated) Name() string                { return "gated" }
func (*gated) Tables() []projections.Table { return nil }
func (g *gated) Apply(_ context.Context, _ pgx.Tx, events []domain.Event) error {
	if !g.open.Load() {
		return errors.New("gated shut")
	}
	g.ok.Add(int64(len(events)))
	return nil
}

// TestProjectorGroupIsolatesAFailingMember: a member that cannot apply does
// not hold the others back; it is retried and, once it can, catches up
// from its own checkpoint with every event once.
func TestProjectorGroupIsolatesAFailingMember(t *testing.T) {
	e := newEnv(t, "")
	e.relay(relayDefaults())
	g := &gated{}
	w, err := workers.NewProjectorGroup("iso", []projections.Projection{projections.StreamHeads{}, g}, e.store, e.nc,
		workers.ProjectorConfig{NATS: e.topo, MaxWait: 100 * time.Millisecond, BatchSize: 20}, logger)
	require.NoError(t, err)
	run(t, w.Run)
	e.appendN(100, 5)
	eventually(t, 10*time.Second, "stream_heads at 100 while gated fails", func() bool { return e.projectionSeq("stream_heads") == 100 })
	c, err := e.js.Consumer(context.Background(), e.topo.Stream, workers.ConsumerName("iso"))
	require.NoError(t, err)
	eventually(t, 10*time.Second, "JetStream acked up to 100 (the group consumes, not only the event-store fallback)", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 100
	})
	assert.Zero(t, e.projectionSeq("gated"))
	require.ErrorContains(t, w.LastError(), "gated: apply: gated shut")
	require.ErrorContains(t, w.ProjectionError("gated"), "gated shut")
	require.NoError(t, w.ProjectionError("stream_heads"), "only the failing member is reported")

	g.open.Store(true)
	eventually(t, 15*time.Second, "gated at 100 once it can apply", func() bool { return e.projectionSeq("gated") == 100 })
	assert.Equal(t, int64(100), g.ok.Load(), "every event applied once")
	eventually(t, 5*time.Second, "no error reported", func() bool { return w.LastError() == nil && w.ProjectionError("gated") == nil })
}
