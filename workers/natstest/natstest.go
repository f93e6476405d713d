// Package natstest connects tests to a real NATS server with JetStream:
// ARREARS_TEST_NATS_URL, else nats://127.0.0.1:4222 when something answers
// there, else an embedded server in a temporary directory. Each test gets
// its own stream and subject prefix, deleted when it ends, so test packages
// running in parallel never see each other's messages.
package natstest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/arrears/arrears/eventstore/pgtest"
	"github.com/arrears/arrears/workers"
	"github.com/arrears/arrears/workers/natsembed"
)

const defaultURL = "nats://127.0.0.1:4222"

// Server is the NATS server tests use.
type Server struct {
	URL      string
	embedded *natsembed.Server
	tmp      string
}

// MustStart returns the test server (for TestMain); it exits on error.
func MustStart() *Server {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "natstest:", err)
		os.Exit(2)
	}
	return s
}

// Start finds or starts the test server.
func Start() (*Server, error) {
	if u := os.Getenv("ARREARS_TEST_NATS_URL"); u != "" {
		return &Server{URL: u}, nil
	}
	if nc, err := nats.Connect(defaultURL, nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		return &Server{URL: defaultURL}, nil
	}
	tmp, err := os.MkdirTemp("", "arrears-natstest-")
	if err != nil {
		return nil, err
	}
	ns, err := natsembed.Start(natsembed.Options{Port: -1, StoreDir: tmp, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &Server{URL: ns.URL(), embedded: ns, tmp: tmp}, nil
}

// Close stops an embedded server.
func (s *Server) Close() {
	if s.embedded != nil {
		s.embedded.Stop()
		os.RemoveAll(s.tmp)
	}
}

// Topology returns a fresh stream name and subject prefix for one test and
// deletes that stream when the test ends.
func Topology(t testing.TB, url string) workers.NATSConfig {
	t.Helper()
	id := strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
	cfg := workers.NATSConfig{Stream: "T_" + strings.ToUpper(id), SubjectPrefix: "t" + id + ".events"}.WithDefaults()
	t.Cleanup(func() {
		nc, err := nats.Connect(url)
		if err != nil {
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, cfg.Stream)
	})
	return cfg
}

// Main is a whole TestMain for packages that need PostgreSQL and NATS: a
// fresh database into *db and the NATS server into *srv; both are released
// after the tests.
func Main(m *testing.M, db **pgtest.DB, srv **Server) {
	*db = pgtest.MustNew()
	*srv = MustStart()
	code := m.Run()
	(*srv).Close()
	(*db).Close()
	os.Exit(code)
}
