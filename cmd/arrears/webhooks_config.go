package main

import (
	"fmt"
	"time"

	"github.com/arrears/arrears/webhooks"
	"github.com/arrears/arrears/workers"
)

// WebhookConfig is the ARREARS_WEBHOOK_* part of Config.
type WebhookConfig struct {
	AllowNets       string          `env:"ARREARS_WEBHOOK_ALLOW_NETS"`  // CIDRs (or "loopback") deliveries may reach despite the SSRF guard
	SecretsKey      string          `env:"ARREARS_WEBHOOK_SECRETS_KEY"` // base64 AES-256 key sealing signing secrets; unset: the installation key
	RetrySchedule   []time.Duration `env:"ARREARS_WEBHOOK_RETRY_SCHEDULE" envDefault:"1m,5m,30m,2h,12h,24h" envSeparator:","`
	Jitter          float64         `env:"ARREARS_WEBHOOK_JITTER" envDefault:"0.1"` // ± fraction of each retry wait
	Timeout         time.Duration   `env:"ARREARS_WEBHOOK_TIMEOUT" envDefault:"15s"`
	Concurrency     int             `env:"ARREARS_WEBHOOK_CONCURRENCY" envDefault:"16"`
	PerEndpoint     int             `env:"ARREARS_WEBHOOK_PER_ENDPOINT" envDefault:"4"`
	PollInterval    time.Duration   `env:"ARREARS_WEBHOOK_POLL_INTERVAL" envDefault:"1s"`
	RotationOverlap time.Duration   `env:"ARREARS_WEBHOOK_ROTATION_OVERLAP" envDefault:"24h"`
	Disabled        bool            `env:"ARREARS_WEBHOOK_DISPATCHER_DISABLED"` // run no dispatcher in this process

	policy webhooks.AddressPolicy
	key    []byte
}

// parse checks and decodes the settings that need it.
func (w *WebhookConfig) parse() error {
	var err error
	if w.policy, err = webhooks.ParseAllowlist(w.AllowNets); err != nil {
		return fmt.Errorf("config: ARREARS_WEBHOOK_ALLOW_NETS: %w", err)
	}
	if w.key, err = webhooks.ParseSealingKey(w.SecretsKey); err != nil {
		return fmt.Errorf("config: ARREARS_WEBHOOK_SECRETS_KEY: %w", err)
	}
	for _, d := range w.RetrySchedule {
		if d <= 0 {
			return fmt.Errorf("config: ARREARS_WEBHOOK_RETRY_SCHEDULE: %s is not a positive duration", d)
		}
	}
	if w.Jitter < 0 || w.Jitter >= 1 {
		return fmt.Errorf("config: ARREARS_WEBHOOK_JITTER must be from 0 to below 1, not %v", w.Jitter)
	}
	return nil
}

func (w WebhookConfig) service() webhooks.Config {
	return webhooks.Config{SecretsKey: w.key, Policy: w.policy, RotationOverlap: w.RotationOverlap}
}

func (w WebhookConfig) dispatcher() workers.DispatcherConfig {
	jitter := w.Jitter
	if jitter == 0 {
		jitter = -1 // none
	}
	return workers.DispatcherConfig{Schedule: w.RetrySchedule, Jitter: jitter, Timeout: w.Timeout, Concurrency: w.Concurrency,
		PerEndpoint: w.PerEndpoint, PollInterval: w.PollInterval, Policy: w.policy, SecretsKey: w.key}
}
