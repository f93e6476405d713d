package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/workers"
)

// Config is arrears' whole configuration, from environment variables (the
// README's table is this struct).
type Config struct {
	DatabaseURL string `env:"DATABASE_URL"` // empty: private PostgreSQL cluster under DataDir/pg
	NATSURL     string `env:"NATS_URL"`     // empty: embedded NATS server under DataDir/nats
	HTTPAddr    string `env:"ARREARS_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	DataDir     string `env:"ARREARS_DATA_DIR" envDefault:"./data"`
	LogLevel    string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat   string `env:"LOG_FORMAT"` // json | text; default text on a terminal, json otherwise

	NATSListen        string        `env:"ARREARS_NATS_LISTEN" envDefault:"127.0.0.1:4222"`
	NATSStream        string        `env:"ARREARS_NATS_STREAM" envDefault:"ARREARS_EVENTS"`
	NATSSubjectPrefix string        `env:"ARREARS_NATS_SUBJECT_PREFIX" envDefault:"arrears.events"`
	NATSMaxAge        time.Duration `env:"ARREARS_NATS_MAX_AGE" envDefault:"0s"`
	NATSReplicas      int           `env:"ARREARS_NATS_REPLICAS" envDefault:"1"`

	DBMaxConns          int32         `env:"ARREARS_DB_MAX_CONNS" envDefault:"20"`
	RelayBatchSize      int           `env:"ARREARS_RELAY_BATCH_SIZE" envDefault:"1000"`
	RelayPollInterval   time.Duration `env:"ARREARS_RELAY_POLL_INTERVAL" envDefault:"200ms"`
	ProjectionBatchSize int           `env:"ARREARS_PROJECTION_BATCH_SIZE" envDefault:"500"`
	SchedulerInterval   time.Duration `env:"ARREARS_SCHEDULER_INTERVAL" envDefault:"1m"` // collection scheduler tick; 0 disables it
	ReadyMaxRelayLag    time.Duration `env:"ARREARS_READY_MAX_RELAY_LAG" envDefault:"30s"`
	ShutdownTimeout     time.Duration `env:"ARREARS_SHUTDOWN_TIMEOUT" envDefault:"30s"`

	RateLimitRequests int           `env:"ARREARS_RATE_LIMIT_REQUESTS" envDefault:"100"` // per key; 0 disables
	RateLimitPer      time.Duration `env:"ARREARS_RATE_LIMIT_PER" envDefault:"1s"`
	BodyLimit         int64         `env:"ARREARS_BODY_LIMIT" envDefault:"1048576"` // bytes
	IdempotencyTTL    time.Duration `env:"ARREARS_IDEMPOTENCY_TTL" envDefault:"24h"`
	ReadWaitLimit     time.Duration `env:"ARREARS_READ_WAIT_LIMIT" envDefault:"5s"` // longest min_position wait

	Webhooks WebhookConfig // ARREARS_WEBHOOK_* (webhooks_config.go)

	httpAddrSet bool // ARREARS_HTTP_ADDR given explicitly
}

func loadConfig() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	_, cfg.httpAddrSet = os.LookupEnv("ARREARS_HTTP_ADDR")
	return cfg, cfg.Webhooks.parse()
}

func (c Config) apiConfig() api.Config {
	return api.Config{
		BodyLimit:      c.BodyLimit,
		RateLimit:      api.RateLimit{Requests: c.RateLimitRequests, Per: c.RateLimitPer},
		IdempotencyTTL: c.IdempotencyTTL,
		WaitLimit:      c.ReadWaitLimit,
		Webhooks:       c.Webhooks.service(),
	}
}

func (c Config) natsConfig() workers.NATSConfig {
	return workers.NATSConfig{Stream: c.NATSStream, SubjectPrefix: c.NATSSubjectPrefix, MaxAge: c.NATSMaxAge, Replicas: c.NATSReplicas}
}

func newLogger(c Config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("config: LOG_LEVEL: %w", err)
	}
	format := strings.ToLower(c.LogFormat)
	if format == "" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("config: LOG_FORMAT must be json or text, not %q", c.LogFormat)
}
