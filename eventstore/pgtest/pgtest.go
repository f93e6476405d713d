// Package pgtest gives each test package a fresh, migrated PostgreSQL
// database, dropped when the package's tests end.
//
// The server is ARREARS_TEST_DATABASE_URL (an admin URL, default
// postgres://postgres@127.0.0.1:5432/postgres); if that is unset and nothing
// answers there, a private cluster is started from the machine's PostgreSQL
// binaries (eventstore/pgcluster), so tests need no running server.
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/eventstore/pgcluster"
	"github.com/arrears/arrears/migrations"
)

const defaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DB is a test database.
type DB struct {
	URL      string // the test database
	AdminURL string // the server's maintenance database, as a superuser
	Name     string
	cluster  *pgcluster.Cluster
	tmp      string
}

// New creates and migrates a fresh database. Call Close when done (in
// TestMain, after m.Run).
func New(ctx context.Context) (*DB, error) {
	d := &DB{}
	admin := os.Getenv("ARREARS_TEST_DATABASE_URL")
	if admin == "" {
		admin = defaultAdminURL
		if !reachable(ctx, admin) {
			tmp, err := os.MkdirTemp("", "arrears-pgtest-")
			if err != nil {
				return nil, err
			}
			if err := os.Chmod(tmp, 0o755); err != nil {
				return nil, err
			}
			c, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: tmp + "/pg", Fast: true, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				os.RemoveAll(tmp)
				return nil, fmt.Errorf("pgtest: no server at %s and no private cluster: %w", defaultAdminURL, err)
			}
			d.cluster, d.tmp = c, tmp
			admin = c.URL("postgres")
		}
	}
	d.AdminURL = admin
	d.Name = "arrears_t_" + strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
	if err := d.exec(ctx, "CREATE DATABASE "+d.Name); err != nil {
		d.Close()
		return nil, err
	}
	d.URL = replaceDB(admin, d.Name)
	if _, err := migrations.Up(ctx, d.URL, nil); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// MustNew is New for TestMain: it exits the process on error.
func MustNew() *DB {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := New(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(2)
	}
	return d
}

// Main is a whole TestMain: it creates the package's database into *db,
// runs the tests, drops it and exits.
func Main(m *testing.M, db **DB) {
	*db = MustNew()
	code := m.Run()
	(*db).Close()
	os.Exit(code)
}

// Isolated creates another fresh, migrated database for one test (its own
// installation) and a pool of at most maxConns on it; both go at cleanup.
func (d *DB) Isolated(t testing.TB, maxConns int32) (url string, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	url, drop, err := d.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return url, d.pool(t, url, maxConns)
}

// Pool opens a pool of at most maxConns on the package's database, closed at
// cleanup.
func (d *DB) Pool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	return d.pool(t, d.URL, maxConns)
}

func (d *DB) pool(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := eventstore.ParsePoolConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Close drops the database (terminating its connections) and stops the
// private cluster if one was started.
func (d *DB) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if d.Name != "" && d.AdminURL != "" {
		if err := d.exec(ctx, "DROP DATABASE IF EXISTS "+d.Name+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: drop:", err)
		}
	}
	if d.cluster != nil {
		_ = d.cluster.Stop(ctx)
	}
	if d.tmp != "" {
		os.RemoveAll(d.tmp)
	}
}

// NewDatabase creates another empty, migrated database on the same server
// (e.g. a second installation), dropped by the returned func.
func (d *DB) NewDatabase(ctx context.Context) (url string, drop func(), err error) {
	name := "arrears_t_" + strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
	if err := d.exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	url = replaceDB(d.AdminURL, name)
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = d.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	if _, err := migrations.Up(ctx, url, nil); err != nil {
		drop()
		return "", nil, err
	}
	return url, drop, nil
}

func (d *DB) exec(ctx context.Context, sql string) error {
	c, err := pgx.Connect(ctx, d.AdminURL)
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

func reachable(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	c.Close(ctx)
	return true
}

// replaceDB returns url with its database name replaced.
func replaceDB(url, name string) string {
	// postgres://user@host:port/db?params
	scheme := strings.Index(url, "://")
	if scheme < 0 {
		return url + " dbname=" + name
	}
	rest := url[scheme+3:]
	slash := strings.IndexByte(rest, '/')
	q := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		q = rest[i:]
		rest = rest[:i]
		if slash > i {
			slash = -1
		}
	}
	if slash >= 0 {
		rest = rest[:slash]
	}
	return url[:scheme+3] + rest + "/" + name + q
}
