package migrations_test

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/eventstore/pgtest"
	"github.com/arrears/arrears/migrations"
)

var testDB *pgtest.DB

func TestMain(m *testing.M) { pgtest.Main(m, &testDB) }

// TestConcurrentStartsMigrateOnce: eight processes starting at once on an
// empty database all succeed, and every migration is applied exactly once.
func TestConcurrentStartsMigrateOnce(t *testing.T) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testDB.AdminURL)
	require.NoError(t, err)
	defer admin.Close(ctx)
	name := "arrears_t_" + strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	url := strings.Replace(testDB.URL, "/"+testDB.Name, "/"+name, 1)

	var wg sync.WaitGroup
	versions := make([]int64, 8)
	errs := make([]error, 8)
	for i := range versions {
		wg.Go(func() { versions[i], errs[i] = migrations.Up(ctx, url, nil) })
	}
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i], "migrator %d", i)
	}
	st, err := migrations.Status(ctx, url)
	require.NoError(t, err)
	latest := st[len(st)-1].Source.Version
	for i, v := range versions {
		assert.Equal(t, latest, v, "migrator %d", i)
	}

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var applied int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied))
	assert.Equal(t, len(st), applied, "each migration recorded once")
	var tables int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename IN ('events', 'relay_log', 'projection_checkpoints', 'stream_heads')`).Scan(&tables))
	assert.Equal(t, 4, tables)
}
