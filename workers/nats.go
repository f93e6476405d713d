// Package workers holds arrears' long-running loops: the relay (event store →
// JetStream) and the projection runners.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSConfig names the JetStream stream and subjects arrears publishes to.
type NATSConfig struct {
	Stream        string        // default ARREARS_EVENTS
	SubjectPrefix string        // default arrears.events
	MaxAge        time.Duration // 0 = keep forever (limits retention)
	Replicas      int           // default 1
}

// WithDefaults fills unset fields.
func (c NATSConfig) WithDefaults() NATSConfig {
	if c.Stream == "" {
		c.Stream = "ARREARS_EVENTS"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "arrears.events"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

// Header names set on every relayed message besides Nats-Msg-Id.
const (
	HeaderTxID     = "Arrears-Txid"     // the event's transaction id (with position, its global-order checkpoint)
	HeaderPosition = "Arrears-Position" // the event's position
)

// ConnectNATS connects to url, reconnecting forever.
func ConnectNATS(url, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", url, err)
	}
	return nc, nil
}

// EnsureStream returns the events stream, creating it if it does not exist.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg NATSConfig) (jetstream.Stream, error) {
	cfg = cfg.WithDefaults()
	s, err := js.Stream(ctx, cfg.Stream)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("nats: stream %s: %w", cfg.Stream, err)
	}
	s, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "arrears events (rebuildable fan-out of the PostgreSQL event store)",
		Subjects:    []string{cfg.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		Replicas:    cfg.Replicas,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.Stream(ctx, cfg.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: create stream %s: %w", cfg.Stream, err)
	}
	return s, nil
}
