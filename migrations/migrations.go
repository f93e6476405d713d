// Package migrations holds arrears' SQL schema migrations, embedded in the
// binary, and applies them with goose under a blocking PostgreSQL advisory
// lock so that several processes starting at once migrate exactly once.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed *.sql
var files embed.FS

// lockID is the advisory lock held while migrating ("arrears" + 0x02).
const lockID int64 = 0x6172726561727302

// Up applies every pending migration to the database at url and returns the
// resulting schema version. Concurrent callers (several processes starting
// at once) queue on a blocking advisory lock: the first migrates, the others
// then find nothing pending.
func Up(ctx context.Context, url string, logger *slog.Logger) (int64, error) {
	lockConn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("migrations: connect: %w", err)
	}
	defer lockConn.Close(context.WithoutCancel(ctx)) // ends the session, releasing the lock
	if _, err := lockConn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockID); err != nil {
		return 0, fmt.Errorf("migrations: lock: %w", err)
	}
	p, db, err := provider(url, logger)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrations: up: %w", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: version: %w", err)
	}
	return v, nil
}

// Status reports each migration's version, file and whether it is applied.
func Status(ctx context.Context, url string) ([]*goose.MigrationStatus, error) {
	p, db, err := provider(url, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	return st, nil
}

func provider(url string, logger *slog.Logger) (*goose.Provider, *sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("migrations: parse url: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files, opts...)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("migrations: %w", err)
	}
	return p, db, nil
}
