package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/workers"
)

// tailCmd is `arrears tail [--subject S] [--server URL] [--raw] [--count N]`:
// it subscribes to the event subjects on NATS (core NATS: live events only,
// nothing durable) and prints one line per event — time, type, stream and
// version, position, tenant, data — or with --raw the CloudEvent as it
// arrived.
func tailCmd(ctx context.Context, args []string) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	subject := fs.String("subject", cfg.NATSSubjectPrefix+".>", "NATS subject to watch, e.g. '"+cfg.NATSSubjectPrefix+".*.claim.>' (wildcards * and >)")
	server := fs.String("server", "", "NATS URL (default: NATS_URL, or the embedded server's address ARREARS_NATS_LISTEN)")
	raw := fs.Bool("raw", false, "print each CloudEvent as received (one JSON document a line)")
	count := fs.Int("count", 0, "exit after this many events (0: run until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("tail takes no arguments, got %v", fs.Args())
	}
	url := *server
	if url == "" {
		url = cfg.NATSURL
	}
	if url == "" {
		url = "nats://" + cfg.NATSListen
	}
	nc, err := workers.ConnectNATS(url, "arrears-tail", slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("tail: %w (is arrears running? the embedded server's URL is in its log)", err)
	}
	defer nc.Close()
	return tailEvents(ctx, nc, *subject, os.Stdout, os.Stderr, *raw, *count)
}

// tailEvents prints the events arriving on subject until ctx ends or count
// (if > 0) have been printed.
func tailEvents(ctx context.Context, nc *nats.Conn, subject string, out, info io.Writer, raw bool, count int) error {
	msgs := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(subject, msgs)
	if err != nil {
		return fmt.Errorf("tail: subscribe %s: %w", subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	fmt.Fprintf(info, "listening on %s at %s (Ctrl-C to stop)\n", subject, nc.ConnectedUrlRedacted())
	for n := 0; count <= 0 || n < count; n++ {
		var m *nats.Msg
		select {
		case <-ctx.Done():
			return nil
		case m = <-msgs:
		}
		if raw {
			fmt.Fprintf(out, "%s\n", bytes.TrimSpace(m.Data))
			continue
		}
		var ce domain.CloudEvent
		if err := json.Unmarshal(m.Data, &ce); err != nil {
			fmt.Fprintf(out, "%s: not a CloudEvent (%v): %s\n", m.Subject, err, m.Data)
			continue
		}
		data := ce.Data
		var buf bytes.Buffer
		if json.Compact(&buf, data) == nil {
			data = buf.Bytes()
		}
		mode := ""
		if ce.Sandbox {
			mode = " sandbox"
		}
		fmt.Fprintf(out, "%s  %-28s %s#%d  pos %d  %s%s  %s\n", ce.Time.UTC().Format(time.RFC3339Nano), ce.Type, ce.StreamID, ce.StreamVersion,
			ce.Position, ce.TenantID, mode, data)
	}
	return nil
}
