package workers_test

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/workers/natsembed"
)

// TestNATSLosesItsTail: JetStream acknowledges before fsync, so a crash can
// lose acknowledged messages. We reproduce exactly that outcome by restarting
// the NATS server from an older copy of its store while arrears runs: the
// relay must notice the stream is behind its checkpoint and republish the
// lost tail from PostgreSQL, the projection must not double-apply the
// re-delivered events, and everything ends equal to a replay.
func TestNATSLosesItsTail(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "nats")
	start := restartableNATS(t, store)
	ns := start()
	t.Cleanup(func() { ns.Stop() })

	e := newEnv(t, ns.URL())
	r, _ := e.relay(relayDefaults())
	e.projector(projections.StreamHeads{})
	caughtUp := func(n int) func() bool {
		return func() bool { return e.lastSeq() == uint64(n) && e.projectionSeq("stream_heads") == int64(n) }
	}

	e.appendN(300, 11)
	eventually(t, 20*time.Second, "300 published and projected", caughtUp(300))

	// Snapshot the store at 300 events.
	ns.Stop()
	snapshot := filepath.Join(dir, "snapshot")
	require.NoError(t, os.CopyFS(snapshot, os.DirFS(store)))
	ns = start()

	e.appendN(200, 11)
	eventually(t, 20*time.Second, "500 published and projected", caughtUp(500))
	// The relay records its checkpoint just after JetStream acknowledges.
	eventually(t, 20*time.Second, "relay checkpoint at 500", func() bool { return r.Sequence() == 500 })

	// The crash: NATS comes back with only the first 300 messages.
	ns.Stop()
	require.NoError(t, os.RemoveAll(store))
	require.NoError(t, os.Rename(snapshot, store))
	ns = start()

	eventually(t, 20*time.Second, "the lost tail republished", func() bool { return e.lastSeq() == 500 })
	assert.Equal(t, e.globalOrder(), e.streamIDs(), "republished in the same order at the same sequences")

	e.appendN(100, 11)
	eventually(t, 20*time.Second, "600 published and projected", caughtUp(600))
	assert.Equal(t, e.globalOrder(), e.streamIDs())
	e.requireReplayEqualsLive(projections.StreamHeads{})
}

// restartableNATS returns a func starting an embedded NATS server on one
// fixed port and store directory, so a test can stop and restart "the same"
// server and its clients reconnect.
func restartableNATS(t *testing.T, store string) func() *natsembed.Server {
	port := freePort(t)
	return func() *natsembed.Server {
		ns, err := natsembed.Start(natsembed.Options{Port: port, StoreDir: store, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		return ns
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// TestProjectionsKeepUpWhileNATSIsDown: with JetStream unreachable, the
// relay cannot publish, but projections still follow PostgreSQL; when NATS
// returns, the relay publishes and the projection takes the deliveries as
// duplicates.
func TestProjectionsKeepUpWhileNATSIsDown(t *testing.T) {
	start := restartableNATS(t, filepath.Join(t.TempDir(), "nats"))
	ns := start()
	e := newEnv(t, ns.URL())
	e.relay(relayDefaults())
	e.projector(projections.StreamHeads{})
	e.appendN(50, 5)
	eventually(t, 20*time.Second, "50 projected", func() bool { return e.projectionSeq("stream_heads") == 50 })

	ns.Stop()
	e.appendN(70, 5)
	eventually(t, 30*time.Second, "120 projected with NATS down", func() bool { return e.projectionSeq("stream_heads") == 120 })

	ns = start()
	t.Cleanup(func() { ns.Stop() })
	eventually(t, 20*time.Second, "120 published after NATS returns", func() bool { return e.lastSeq() == 120 })
	e.appendN(10, 5)
	eventually(t, 20*time.Second, "130 projected", func() bool { return e.projectionSeq("stream_heads") == 130 })
	assert.Equal(t, e.globalOrder(), e.streamIDs())
	e.requireReplayEqualsLive(projections.StreamHeads{})
}
