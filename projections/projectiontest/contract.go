// Package projectiontest is the contract every projection must pass: fed
// live, in random batch sizes, with redelivered duplicates and missing
// sequences (as JetStream may deliver), it ends equal to a rebuild from
// scratch. Each projection's test calls Run.
package projectiontest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/eventstore/pgtest"
	"github.com/arrears/arrears/projections"
)

// Workload appends a random history to store, driven by rng.
type Workload func(t *testing.T, rng *rand.Rand, store *eventstore.Store)

// Run checks p against the contract on fresh databases, once per seed
// (ARREARS_SEED pins one seed to reproduce a failure; it is printed).
func Run(t *testing.T, db *pgtest.DB, p projections.Projection, workload Workload, seeds int) {
	ForSeeds(t, seeds, func(t *testing.T, seed uint64) { runSeed(t, db, p, workload, seed) })
}

// ForSeeds runs f as a subtest per seed: seeds random ones, or the one
// ARREARS_SEED pins to reproduce a failure (each subtest logs its seed).
func ForSeeds(t *testing.T, seeds int, f func(t *testing.T, seed uint64)) {
	base := uint64(time.Now().UnixNano())
	if s := os.Getenv("ARREARS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		base, seeds = v, 1
	}
	for i := range seeds {
		seed := base + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("reproduce with ARREARS_SEED=%d", seed)
			f(t, seed)
		})
	}
}

// NewRand returns the workload rng of seed.
func NewRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func runSeed(t *testing.T, db *pgtest.DB, p projections.Projection, workload Workload, seed uint64) {
	ctx := context.Background()
	_, pool := db.Isolated(t, 4)
	store := eventstore.New(pool)
	rng := NewRand(seed)

	workload(t, rng, store)
	last, err := store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, store.AwaitVisible(ctx, last))

	var all []projections.Sequenced
	var cp domain.Checkpoint
	for {
		evs, err := store.ReadAll(ctx, cp, 1000)
		require.NoError(t, err)
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			all = append(all, projections.Sequenced{Seq: int64(len(all) + 1), Event: e})
		}
		cp = evs[len(evs)-1].Checkpoint()
	}
	require.NotEmpty(t, all, "the workload appended nothing")

	// Live: deliver in random batches; sometimes drop messages (the engine
	// must backfill them), sometimes redeliver old ones (it must skip them).
	engine := projections.NewEngine(store)
	for i := 0; i < len(all); {
		n := 1 + rng.IntN(40)
		batch := make([]projections.Sequenced, 0, n+4)
		for _, s := range all[i:min(i+n, len(all))] {
			if rng.IntN(10) == 0 && s.Seq != int64(len(all)) {
				continue // lost in JetStream
			}
			batch = append(batch, toLive(s))
		}
		if i > 0 && rng.IntN(4) == 0 {
			from := rng.IntN(i)
			batch = append(batch, toLive(all[from])) // redelivery
		}
		i += n
		if len(batch) == 0 {
			continue
		}
		_, err := engine.Apply(ctx, p, batch)
		require.NoError(t, err)
	}
	got, err := engine.Load(ctx, p.Name())
	require.NoError(t, err)
	require.Equal(t, int64(len(all)), got.Seq, "checkpoint after the live run")

	live, err := projections.Dump(ctx, pool, p)
	require.NoError(t, err)
	_, err = engine.Rebuild(ctx, p, nil)
	require.NoError(t, err)
	rebuilt, err := projections.Dump(ctx, pool, p)
	require.NoError(t, err)
	require.Equal(t, rebuilt, live, "live differs from rebuild (seed %d)", seed)
}

// toLive strips what a NATS-delivered event does not carry: live and replay
// must not depend on it.
func toLive(s projections.Sequenced) projections.Sequenced {
	e := s.Event
	e.Metadata = domain.Metadata{Sandbox: e.Metadata.Sandbox}
	e.Hash = nil
	// Round-trip through the public envelope, as the relay does.
	b, err := json.Marshal(e.ToCloudEvent())
	if err != nil {
		panic(err)
	}
	var ce domain.CloudEvent
	if err := json.Unmarshal(b, &ce); err != nil {
		panic(err)
	}
	le, err := ce.Event()
	if err != nil {
		panic(err)
	}
	le.TxID = s.Event.TxID
	return projections.Sequenced{Seq: s.Seq, Event: le}
}

// GenericWorkload appends 200–700 events of assorted made-up types over a
// few tenants and streams, in single and multi-stream batches. The types are
// prefixed "test." so that they never collide with a real domain event type:
// a projection of real events ignores them.
func GenericWorkload(t *testing.T, rng *rand.Rand, store *eventstore.Store) {
	ctx := context.Background()
	ids := domain.NewIDGenerator(nil)
	type stream struct {
		tenant, id, typ string
		version         int64
	}
	var streams []*stream
	for range 5 + rng.IntN(30) {
		streams = append(streams, &stream{tenant: fmt.Sprintf("ten_%d", rng.IntN(3)), id: ids.New("acct", time.Now()), typ: []string{"account", "debtor", "claim"}[rng.IntN(3)]})
	}
	types := []string{"test.account.opened", "test.ledger_entry.posted", "test.payment.completed", "test.claim.resolved"}
	total := 200 + rng.IntN(500)
	for n := 0; n < total; {
		k := 1 + rng.IntN(3)
		var appends []eventstore.StreamAppend
		used := map[string]bool{}
		for range k {
			s := streams[rng.IntN(len(streams))]
			if used[s.id] {
				continue
			}
			used[s.id] = true
			m := 1 + rng.IntN(4)
			evs := make([]domain.NewEvent, m)
			for j := range evs {
				evs[j] = domain.NewEvent{Type: types[rng.IntN(len(types))], Data: json.RawMessage(fmt.Sprintf(`{"n":%d,"amount":"%d.%02d"}`, n+j, rng.IntN(1000), rng.IntN(100)))}
			}
			appends = append(appends, eventstore.StreamAppend{TenantID: s.tenant, StreamType: s.typ, StreamID: s.id, ExpectedVersion: s.version, Events: evs})
			n += m
		}
		_, err := store.Append(ctx, domain.Metadata{Sandbox: rng.IntN(2) == 0}, appends...)
		require.NoError(t, err)
		for _, a := range appends {
			for _, s := range streams {
				if s.id == a.StreamID {
					s.version += int64(len(a.Events))
				}
			}
		}
	}
}
