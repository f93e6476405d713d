package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/projections"
)

// TestBenchQuick: `arrears bench -quick` runs every scenario against a
// fresh database on the test server and its own stream on the test NATS,
// exits 0, writes a JSON file with a positive figure for every scenario,
// and leaves neither the database nor the stream behind. It checks that the
// command works, never how fast anything is.
func TestBenchQuick(t *testing.T) {
	out := filepath.Join(t.TempDir(), "results.json")
	env := []string{"DATABASE_URL=" + testDB.AdminURL, "NATS_URL=" + testNATS.URL}
	stdout, stderr, code := runTool(t, 3*time.Minute, env, "bench", "-quick", "-out", out)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	t.Logf("arrears bench -quick:\n%s", stdout)
	require.Contains(t, stdout, "| Scenario")

	b, err := os.ReadFile(out)
	require.NoError(t, err)
	type rate struct {
		PerSecond float64 `json:"per_second"`
	}
	var res struct {
		Setup   map[string]string
		Options struct{ Quick bool }
		Machine struct {
			CPUs       int
			PostgreSQL map[string]string
		}
		Ingest struct {
			Entries          int
			EntriesPerSecond float64 `json:"entries_per_second"`
			API              struct {
				Count int
				P99   float64 `json:"p99_ms"`
			} `json:"api_latency"`
			Lag struct {
				FromResponse struct{ Count int } `json:"from_response"`
			} `json:"projection_lag"`
			PeakRSS int64 `json:"peak_rss_bytes"`
		}
		Lag80 struct {
			Achieved float64 `json:"achieved_entries_per_second"`
			Lag      struct {
				FromResponse struct{ Count int } `json:"from_response"`
			} `json:"projection_lag"`
		} `json:"lag_at_80_percent"`
		Baseline struct {
			Copy   rate `json:"copy"`
			Insert rate `json:"insert"`
		}
		Singles struct {
			Posts    rate `json:"posts"`
			Baseline rate `json:"baseline_single_row_insert"`
		}
		Reads struct {
			PerSecond float64 `json:"per_second"`
			Count     int
			Latency   struct {
				P99 float64 `json:"p99_ms"`
			}
			Outside  *struct{ Count int } `json:"outside_machine_pauses"`
			InPauses int                  `json:"due_in_machine_pauses"`
		}
		Pauses map[string]struct {
			Share *float64 `json:"share_of_time"`
		} `json:"machine_pauses"`
		Replay struct {
			EventsPerSecond float64 `json:"events_per_second"`
			Projections     []struct {
				Name            string
				EventsPerSecond float64 `json:"events_per_second"`
			}
		}
		PeakRSS int64 `json:"peak_rss_bytes"`
		Targets []struct{ Name, Met string }
	}
	require.NoError(t, json.Unmarshal(b, &res), "%s", b)
	require.True(t, res.Options.Quick)
	require.Positive(t, res.Machine.CPUs)
	require.NotEmpty(t, res.Machine.PostgreSQL["server_version"])
	require.Equal(t, 20_000, res.Ingest.Entries)
	for name, v := range map[string]float64{
		"ingest entries/s": res.Ingest.EntriesPerSecond, "ingest API p99": res.Ingest.API.P99,
		"80 % run entries/s": res.Lag80.Achieved,
		"COPY rows/s":        res.Baseline.Copy.PerSecond, "INSERT rows/s": res.Baseline.Insert.PerSecond,
		"single posts/s": res.Singles.Posts.PerSecond, "single-row INSERTs/s": res.Singles.Baseline.PerSecond,
		"reads/s": res.Reads.PerSecond, "reads p99": res.Reads.Latency.P99,
		"replay events/s": res.Replay.EventsPerSecond,
	} {
		require.Positive(t, v, name)
	}
	require.Equal(t, 20, res.Ingest.API.Count)
	require.Equal(t, 20, res.Ingest.Lag.FromResponse.Count)
	require.Positive(t, res.Lag80.Lag.FromResponse.Count)
	require.Positive(t, res.Reads.Count)
	require.Positive(t, res.Ingest.PeakRSS)
	require.GreaterOrEqual(t, res.PeakRSS, res.Ingest.PeakRSS)
	require.Len(t, res.Replay.Projections, len(projections.All()))
	for _, p := range res.Replay.Projections {
		require.Positive(t, p.EventsPerSecond, p.Name)
	}
	// The pause probe ran beside every scenario; every read is either
	// due in a machine pause or counted without them.
	require.Len(t, res.Pauses, 7, "machine pauses per scenario: %v", res.Pauses)
	for k, u := range res.Pauses {
		require.NotNil(t, u.Share, k)
		require.True(t, *u.Share >= 0 && *u.Share <= 1, "%s: %v", k, *u.Share)
	}
	require.NotNil(t, res.Reads.Outside)
	require.Equal(t, res.Reads.Count, res.Reads.Outside.Count+res.Reads.InPauses)
	require.Len(t, res.Targets, 7)
	for _, tg := range res.Targets {
		require.Contains(t, []string{"yes", "no", "n/a"}, tg.Met, tg.Name)
	}

	// Nothing left behind.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name, stream := res.Setup["database"], res.Setup["nats_stream"]
	require.NotEmpty(t, name)
	require.NotEmpty(t, stream)
	conn, err := pgx.Connect(ctx, testDB.AdminURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n))
	require.Zero(t, n, "database %s dropped", name)
	nc, err := nats.Connect(testNATS.URL)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.Stream(ctx, stream)
	require.True(t, errors.Is(err, jetstream.ErrStreamNotFound), "stream %s deleted: %v", stream, err)
}
