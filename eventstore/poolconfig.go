package eventstore

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ParsePoolConfig parses a PostgreSQL URL into the pool configuration every
// arrears connection uses. It sets plan_cache_mode = force_custom_plan:
// pgx prepares each statement once per connection, and after five
// executions PostgreSQL may switch a prepared statement to a generic plan,
// costed with the statistics of that moment and kept until the table is
// analysed again. arrears' tables start empty and grow under long-lived
// connections, so a generic plan chosen while a table was small (a
// sequential scan of events hash-joined to a command's streams) went on
// scanning the whole table per command once it held 100,000 rows: 90 ms
// per single-entry post instead of 0.1 ms, measured by `arrears bench`.
// A custom plan is made per execution with the parameters and the table's
// current size; the planning costs tens of microseconds per statement.
func ParsePoolConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("eventstore: database URL: %w", err)
	}
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	return cfg, nil
}
