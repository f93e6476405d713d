package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/eventstore/pgtest"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/workers"
	"github.com/arrears/arrears/workers/natstest"
)

var (
	testDB   *pgtest.DB
	testNATS *natstest.Server
)

func TestMain(m *testing.M) { natstest.Main(m, &testDB, &testNATS) }

var logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// env is one isolated installation: its own database and JetStream stream.
type env struct {
	t     testing.TB
	store *eventstore.Store
	pool  *pgxpool.Pool
	nc    *nats.Conn
	js    jetstream.JetStream
	topo  workers.NATSConfig
	ids   *domain.IDGenerator
}

func newEnv(t testing.TB, natsURL string) *env {
	t.Helper()
	_, pool := testDB.Isolated(t, 10)
	if natsURL == "" {
		natsURL = testNATS.URL
	}
	nc, err := workers.ConnectNATS(natsURL, "test", logger)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return &env{t: t, store: eventstore.New(pool), pool: pool, nc: nc, js: js, topo: natstest.Topology(t, natsURL), ids: domain.NewIDGenerator(nil)}
}

// run starts fn in a goroutine stopped at test cleanup (or by the returned func).
func run(t testing.TB, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := fn(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func (e *env) relay(cfg workers.RelayConfig) (*workers.Relay, func()) {
	cfg.NATS = e.topo
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 200 * time.Millisecond
	}
	if cfg.LeaderRetry == 0 {
		cfg.LeaderRetry = 50 * time.Millisecond
	}
	r, err := workers.NewRelay(e.store, e.nc, cfg, logger)
	require.NoError(e.t, err)
	e.store.OnAppend(r.Wake)
	return r, run(e.t, r.Run)
}

func (e *env) projector(p projections.Projection) func() {
	w, err := workers.NewProjector(p, e.store, e.nc, workers.ProjectorConfig{NATS: e.topo, MaxWait: 100 * time.Millisecond, BatchSize: 50}, logger)
	require.NoError(e.t, err)
	return run(e.t, w.Run)
}

// appendN appends n events spread over streams, one append per call, and
// returns them in append order.
func (e *env) appendN(n, streams int) []domain.Event {
	e.t.Helper()
	ctx := context.Background()
	ids := make([]string, streams)
	versions := make([]int64, streams)
	for i := range ids {
		ids[i] = e.ids.New("acct", time.Now())
	}
	var out []domain.Event
	for i := range n {
		s := i % streams
		evs, err := e.store.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_w", StreamType: "account", StreamID: ids[s], ExpectedVersion: versions[s],
			Events: []domain.NewEvent{{Type: "ledger_entry.posted", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}}})
		require.NoError(e.t, err)
		versions[s]++
		out = append(out, evs...)
	}
	return out
}

func (e *env) stream() jetstream.Stream {
	e.t.Helper()
	s, err := workers.EnsureStream(context.Background(), e.js, e.topo)
	require.NoError(e.t, err)
	return s
}

func (e *env) lastSeq() uint64 {
	info, err := e.stream().Info(context.Background())
	if err != nil {
		return 0
	}
	return info.State.LastSeq
}

// eventually polls cond every 10 ms until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// globalOrder returns every event id in the gap-free global order.
func (e *env) globalOrder() []string {
	rows, err := e.pool.Query(context.Background(), `SELECT id FROM events ORDER BY tx_id, position`)
	require.NoError(e.t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(e.t, err)
	return ids
}

// streamIDs returns the Nats-Msg-Id of every message 1..last of the stream.
func (e *env) streamIDs() []string {
	e.t.Helper()
	s := e.stream()
	last := e.lastSeq()
	out := make([]string, 0, last)
	for seq := uint64(1); seq <= last; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		require.NoError(e.t, err, "message %d", seq)
		out = append(out, m.Header.Get(jetstream.MsgIDHeader))
	}
	return out
}

func (e *env) projectionSeq(name string) int64 {
	cp, err := projections.NewEngine(e.store).Load(context.Background(), name)
	require.NoError(e.t, err)
	return cp.Seq
}

// requireReplayEqualsLive dumps the projection, rebuilds it from scratch and
// requires the same rows.
func (e *env) requireReplayEqualsLive(p projections.Projection) {
	e.t.Helper()
	ctx := context.Background()
	live, err := projections.Dump(ctx, e.pool, p)
	require.NoError(e.t, err)
	_, err = projections.NewEngine(e.store).Rebuild(ctx, p, nil)
	require.NoError(e.t, err)
	rebuilt, err := projections.Dump(ctx, e.pool, p)
	require.NoError(e.t, err)
	require.Equal(e.t, rebuilt, live, "projection %s: live differs from a replay", p.Name())
}
