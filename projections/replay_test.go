package projections_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/projections/projectiontest"
)

// moneyInstallation is a fresh database with a money history, every
// projection caught up live.
func moneyInstallation(t *testing.T, seed uint64, conns int32) (*pgxpool.Pool, *eventstore.Store, *projections.Engine) {
	t.Helper()
	_, pool := testDB.Isolated(t, conns)
	store := eventstore.New(pool)
	projectiontest.MoneyWorkload(t, projectiontest.NewRand(seed), store)
	projectiontest.ClaimsHistory(t, projectiontest.NewRand(seed^0xc1a1), store, 60) // so that claims is not empty
	// Nor disputes, campaigns and enrollments.
	projectiontest.CollectionsHistory(t, projectiontest.NewRand(seed^0xc011), store, 60)
	projectiontest.WebhooksHistory(t, projectiontest.NewRand(seed^0x4e0b), store, 60) // and webhook_outbox
	catchUp(t, store, projections.All()...)
	return pool, store, projections.NewEngine(store)
}

// tableNames lists p's tables.
func tableNames(p projections.Projection) []string {
	var out []string
	for _, t := range p.Tables() {
		out = append(out, t.Name)
	}
	return out
}

// schemaOf lists the indexes and constraints of p's tables with their names
// and definitions, and the tables' columns.
func schemaOf(t *testing.T, q querier, p projections.Projection) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), `
		SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1)
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ': ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE conrelid = ANY(SELECT ('public.' || quote_ident(n))::regclass FROM unnest($1::text[]) n)
		UNION ALL
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' ||
			coalesce(generation_expression, '')
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ANY($1)
		ORDER BY 1`, tableNames(p))
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// shadowSchemas lists the schemas replays and verifies create.
func shadowSchemas(t *testing.T, q querier) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'arrears\_%' ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func eventCount(t *testing.T, q querier) int64 {
	t.Helper()
	var n int64
	require.NoError(t, q.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
	return n
}

// TestReplayEqualsLive: replaying each projection of a money history
// yields exactly the live tables, under the same index and constraint
// names; live runners continue from the checkpoint the replay saved.
func TestReplayEqualsLive(t *testing.T) {
	projectiontest.ForSeeds(t, 2, func(t *testing.T, seed uint64) {
		ctx := context.Background()
		projections.SetShadowBatch(t, 97) // many batches
		pool, store, engine := moneyInstallation(t, seed, 8)
		total := eventCount(t, pool)
		for _, p := range projections.All() {
			before, err := projections.Dump(ctx, pool, p)
			require.NoError(t, err)
			require.NotEmpty(t, before[p.Tables()[0].Name], "%s is empty: the workload proves nothing", p.Name())
			schema := schemaOf(t, pool, p)

			var calls, last int64
			cp, err := engine.Replay(ctx, p, func(done, total int64) {
				calls++
				assert.Greater(t, done, last, "progress goes forward")
				assert.LessOrEqual(t, done, total)
				last = done
			})
			require.NoError(t, err)
			assert.Equal(t, total, cp.Seq, "%s: replayed every event", p.Name())
			assert.GreaterOrEqual(t, calls, total/97, "%s: progress after each batch", p.Name())
			saved, err := engine.Load(ctx, p.Name())
			require.NoError(t, err)
			assert.Equal(t, cp, saved, "%s: the checkpoint saved", p.Name())

			after, err := projections.Dump(ctx, pool, p)
			require.NoError(t, err)
			require.Equal(t, before, after, "%s: replay differs from live (seed %d)", p.Name(), seed)
			assert.Equal(t, schema, schemaOf(t, pool, p), "%s: same columns, index and constraint names", p.Name())
		}
		assert.Empty(t, shadowSchemas(t, pool), "no shadow schema left behind")

		// What migrations do by name still works on the swapped-in tables.
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for _, sql := range []string{`DROP INDEX payments_account_id`, `DROP INDEX ledger_entries_seq`, `DROP INDEX ledger_entries_posted`,
				`DROP INDEX accounts_reference`, `ALTER TABLE accounts DROP CONSTRAINT accounts_pkey`} {
				if _, err := tx.Exec(ctx, sql); err != nil {
					return fmt.Errorf("%s: %w", sql, err)
				}
			}
			return errRollback
		})
		require.ErrorIs(t, err, errRollback)

		// Live runners continue from the replay's checkpoints: more
		// history, applied live, equals a rebuild from scratch.
		projectiontest.MoneyHistory(t, projectiontest.NewRand(seed+1000), store, 150)
		catchUp(t, store, projections.All()...)
		for _, p := range projections.All() {
			cp, err := engine.Load(ctx, p.Name())
			require.NoError(t, err)
			assert.Equal(t, eventCount(t, pool), cp.Seq, "%s: caught up after the replay", p.Name())
			live, err := projections.Dump(ctx, pool, p)
			require.NoError(t, err)
			_, err = engine.Rebuild(ctx, p, nil)
			require.NoError(t, err)
			rebuilt, err := projections.Dump(ctx, pool, p)
			require.NoError(t, err)
			require.Equal(t, rebuilt, live, "%s: live after the replay differs from a rebuild (seed %d)", p.Name(), seed)
		}
	})
}

var errRollback = fmt.Errorf("roll back")

// TestReplayAllEqualsLive: replaying every projection at once — the
// history read once, each page folded into every shadow concurrently —
// yields exactly the live tables and checkpoints, with a pool big enough
// for that and with one that is not (one after the other).
func TestReplayAllEqualsLive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conns int32
	}{{"together", 12}, {"one after the other", 4}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			projections.SetShadowBatch(t, 97) // many pages
			pool, _, engine := moneyInstallation(t, 7, tc.conns)
			total := eventCount(t, pool)
			all := projections.All()
			before := map[string]map[string][]string{}
			for _, p := range all {
				d, err := projections.Dump(ctx, pool, p)
				require.NoError(t, err)
				before[p.Name()] = d
			}
			var mu sync.Mutex
			last := map[string]int64{}
			var swapped []string
			cps, err := engine.ReplayAll(ctx, all, func(p projections.Projection, done, total int64) {
				mu.Lock()
				defer mu.Unlock()
				assert.Greater(t, done, last[p.Name()], "%s: progress goes forward", p.Name())
				assert.LessOrEqual(t, done, total)
				last[p.Name()] = done
			}, func(p projections.Projection, cp projections.Checkpoint) {
				swapped = append(swapped, p.Name())
			})
			require.NoError(t, err)
			require.Len(t, cps, len(all))
			var names []string
			for i, p := range all {
				names = append(names, p.Name())
				assert.Equal(t, total, cps[i].Seq, "%s: replayed every event", p.Name())
				assert.Equal(t, total, last[p.Name()], "%s: progress reached the end", p.Name())
				saved, err := engine.Load(ctx, p.Name())
				require.NoError(t, err)
				assert.Equal(t, cps[i], saved, "%s: the checkpoint saved", p.Name())
				after, err := projections.Dump(ctx, pool, p)
				require.NoError(t, err)
				require.Equal(t, before[p.Name()], after, "%s: replay differs from live", p.Name())
			}
			assert.Equal(t, names, swapped, "each swapped in, in order")
			assert.Empty(t, shadowSchemas(t, pool), "no shadow schema left behind")
		})
	}
}

// tableSums is, per table of p, one statement's view of the whole table:
// its row count and a checksum of its rows in key order.
func tableSums(ctx context.Context, q querier, p projections.Projection) (map[string]string, error) {
	out := map[string]string{}
	for _, t := range p.Tables() {
		var sum string
		err := q.QueryRow(ctx, `SELECT count(*) || ':' || md5(coalesce(string_agg(to_jsonb(t)::text, E'\n' ORDER BY `+strings.Join(t.Key, ", ")+`), ''))
			FROM `+t.Name+` t`).Scan(&sum)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		out[t.Name] = sum
	}
	return out, nil
}

// TestReplayServesReaders: while a replay is paused half-way, reads of the
// live tables complete and see the whole old state (a rebuild that emptied
// them in one transaction would block them until it ended); live runners
// keep applying; a reader reading in a loop throughout only ever sees a
// whole state, old or new, and after the swap the new one.
func TestReplayServesReaders(t *testing.T) {
	ctx := context.Background()
	projections.SetShadowBatch(t, 50)
	pool, store, engine := moneyInstallation(t, 42, 10)
	p := projections.Ledger{}

	// The live state goes wrong, so that old and new states differ.
	tag, err := pool.Exec(ctx, `UPDATE accounts SET paid = paid + 1 WHERE (tenant_id, id) = (SELECT tenant_id, id FROM accounts ORDER BY 1, 2 LIMIT 1)`)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	old, err := tableSums(ctx, pool, p)
	require.NoError(t, err)
	states := []map[string]string{old} // every whole state the tables may show

	type observation struct {
		sums     map[string]string
		at       time.Time
		duration time.Duration
	}
	var (
		mu       sync.Mutex
		seen     []observation
		stop     atomic.Bool
		readErr  error
		readerWG sync.WaitGroup
	)
	readerWG.Go(func() {
		for !stop.Load() {
			start := time.Now()
			sums, err := tableSums(ctx, pool, p)
			if err != nil {
				readErr = err
				return
			}
			mu.Lock()
			seen = append(seen, observation{sums, start, time.Since(start)})
			mu.Unlock()
		}
	})
	defer func() { stop.Store(true); readerWG.Wait() }()

	paused, resume := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(resume) })
	defer release() // a failing test must not leave the replay waiting
	var once sync.Once
	replayed := make(chan error, 1)
	var cp projections.Checkpoint
	go func() {
		var err error
		cp, err = engine.Replay(ctx, p, func(done, total int64) {
			if done >= total/2 {
				once.Do(func() {
					close(paused)
					<-resume
				})
			}
		})
		replayed <- err
	}()

	select {
	case <-paused:
	case err := <-replayed:
		t.Fatalf("the replay ended without pausing: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the replay did not reach half-way")
	}
	pausedAt := time.Now()
	// Half-way: the live tables answer at once, with the old state.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	start := time.Now()
	now, err := tableSums(rctx, pool, p)
	cancel()
	require.NoError(t, err, "a read while the replay is paused half-way")
	t.Logf("a read of the live tables half-way through the replay took %s", time.Since(start))
	assert.Equal(t, old, now, "half-way, readers see the whole old state")
	require.Len(t, shadowSchemas(t, pool), 1, "the replay builds in a shadow schema")

	// A live runner keeps working meanwhile (one transaction: one new
	// whole state), and the swap must include what it applied.
	projectiontest.MoneyHistory(t, projectiontest.NewRand(43), store, 40)
	last, err := store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, store.AwaitVisible(ctx, last))
	_, err = engine.CatchUp(ctx, p, -1, 100_000)
	require.NoError(t, err)
	mid, err := tableSums(ctx, pool, p)
	require.NoError(t, err)
	states = append(states, mid)
	time.Sleep(500 * time.Millisecond) // the reader goes on reading
	release()
	require.NoError(t, <-replayed)
	resumedAt := time.Now()

	final, err := tableSums(ctx, pool, p)
	require.NoError(t, err)
	states = append(states, final)
	assert.NotEqual(t, old["accounts"], final["accounts"], "the replay corrected the account")
	assert.Equal(t, eventCount(t, pool), cp.Seq)
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	readerWG.Wait()
	require.NoError(t, readErr, "the reader")

	var maxRead time.Duration
	var whilePaused int
	for i, o := range seen {
		maxRead = max(maxRead, o.duration)
		if o.at.After(pausedAt) && o.at.Add(o.duration).Before(resumedAt) {
			whilePaused++
		}
		for table, sum := range o.sums {
			found := false
			for _, s := range states {
				found = found || s[table] == sum
			}
			assert.True(t, found, "read %d: %s shows a state that is neither old nor new (%s)", i, table, sum)
		}
	}
	t.Logf("reader: %d reads, %d while the replay was paused, longest %s", len(seen), whilePaused, maxRead)
	assert.Positive(t, whilePaused, "the reader read while the replay was paused")
	assert.Less(t, maxRead, 5*time.Second, "no read waited for the rebuild")
	assert.Equal(t, final, seen[len(seen)-1].sums, "after the swap, readers see the new state")

	// The rebuilt state is the truth: a rebuild from scratch agrees.
	live, err := projections.Dump(ctx, pool, p)
	require.NoError(t, err)
	_, err = engine.Rebuild(ctx, p, nil)
	require.NoError(t, err)
	rebuilt, err := projections.Dump(ctx, pool, p)
	require.NoError(t, err)
	require.Equal(t, rebuilt, live)
}

// TestReplayKeepsTableProperties: privileges, comments and storage options
// of the live tables survive the swap.
func TestReplayKeepsTableProperties(t *testing.T) {
	ctx := context.Background()
	pool, _, engine := moneyInstallation(t, 7, 8)
	role := fmt.Sprintf("arrears_reader_%d", time.Now().UnixNano())
	for _, sql := range []string{
		`CREATE ROLE ` + role,
		`GRANT SELECT ON debtors TO ` + role,
		`COMMENT ON TABLE debtors IS 'debtors, as the events say'`,
		`ALTER TABLE debtors SET (fillfactor = 90)`,
	} {
		_, err := pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `REVOKE ALL ON debtors FROM `+role)
		_, _ = pool.Exec(context.Background(), `DROP ROLE `+role)
	})
	var oid uint32
	require.NoError(t, pool.QueryRow(ctx, `SELECT 'debtors'::regclass::oid`).Scan(&oid))
	_, err := engine.Replay(ctx, projections.Debtors{}, nil)
	require.NoError(t, err)
	var newOID uint32
	var canRead bool
	var comment string
	var options []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT oid, has_table_privilege($1, oid, 'SELECT'), obj_description(oid, 'pg_class'), reloptions
		FROM pg_class WHERE oid = 'debtors'::regclass`, role).Scan(&newOID, &canRead, &comment, &options))
	assert.NotEqual(t, oid, newOID, "a new table")
	assert.True(t, canRead, "the grant is kept")
	assert.Equal(t, "debtors, as the events say", comment)
	assert.Equal(t, []string{"fillfactor=90"}, options)
}

// TestReplayRefusesWhatItCannotMove: a table with a trigger would lose it
// in the swap; the replay refuses before it builds anything. A shadow a
// crashed replay left behind is dropped by the next one.
func TestReplayRefusesWhatItCannotMove(t *testing.T) {
	ctx := context.Background()
	pool, _, engine := moneyInstallation(t, 9, 8)
	_, err := pool.Exec(ctx, `CREATE SCHEMA arrears_replay_0badf00d_stream_heads; CREATE TABLE arrears_replay_0badf00d_stream_heads.stream_heads (x int)`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `
		CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
		CREATE TRIGGER heads_noop BEFORE INSERT ON stream_heads FOR EACH ROW EXECUTE FUNCTION noop()`)
	require.NoError(t, err)
	_, err = engine.Replay(ctx, projections.StreamHeads{}, nil)
	require.ErrorContains(t, err, `cannot be swapped for a rebuilt copy: trigger heads_noop`)
	assert.Empty(t, shadowSchemas(t, pool), "the stale shadow is gone, no new one is left")

	_, err = pool.Exec(ctx, `DROP TRIGGER heads_noop ON stream_heads`)
	require.NoError(t, err)
	_, err = engine.Replay(ctx, projections.StreamHeads{}, nil)
	require.NoError(t, err)
}
