package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// relayLockID is the PostgreSQL advisory lock whose holder is the one active
// relay ("arrears" + 0x01).
const relayLockID int64 = 0x6172726561727301

// RelayConfig tunes the relay.
type RelayConfig struct {
	NATS          NATSConfig
	BatchSize     int           // events read and published per round; default 1000
	PollInterval  time.Duration // fallback poll when not woken in-process; default 200ms
	CheckInterval time.Duration // stream and leadership check; default 5s
	LeaderRetry   time.Duration // how often a standby tries to become leader; default 1s
	AckTimeout    time.Duration // wait for a batch's acks; default 10s
}

func (c RelayConfig) withDefaults() RelayConfig {
	c.NATS = c.NATS.WithDefaults()
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 5 * time.Second
	}
	if c.LeaderRetry <= 0 {
		c.LeaderRetry = time.Second
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	return c
}

// Relay tails the event store in the gap-free global order and publishes
// every event to JetStream, owning the stream's sequence: the k-th event of
// the global order is stream sequence k. Every publish carries the expected
// last sequence, so JetStream rejects anything out of place; on every start,
// reconnect, publish error and CheckInterval the relay compares the stream's
// last sequence with its checkpoint and repairs the difference from
// PostgreSQL. Only the holder of an advisory lock relays.
type Relay struct {
	cfg   RelayConfig
	store *eventstore.Store
	nc    *nats.Conn
	js    jetstream.JetStream
	log   *slog.Logger
	wake  chan struct{}

	leader  atomic.Bool
	seq     atomic.Uint64
	lastErr lastError
}

// NewRelay returns a relay publishing through nc.
func NewRelay(store *eventstore.Store, nc *nats.Conn, cfg RelayConfig, log *slog.Logger) (*Relay, error) {
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*cfg.BatchSize))
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return &Relay{cfg: cfg, store: store, nc: nc, js: js, log: log.With("component", "relay"), wake: make(chan struct{}, 1)}, nil
}

// Wake makes the relay read the event store now (call after a commit).
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Leader reports whether this relay is the active one.
func (r *Relay) Leader() bool { return r.leader.Load() }

// Sequence returns the relay's checkpoint sequence (when leader).
func (r *Relay) Sequence() uint64 { return r.seq.Load() }

// LastError returns the error that last stopped publishing, nil once
// publishing succeeds again.
func (r *Relay) LastError() error { return r.lastErr.Load() }

// Run relays until ctx is done, taking over leadership whenever it is free.
func (r *Relay) Run(ctx context.Context) error {
	runLeader(ctx, r.log, "relay", r.cfg.LeaderRetry, r.lead, nil)
	return nil
}

func (r *Relay) lead(ctx context.Context) error {
	conn, release, err := takeLeadership(ctx, r.store.Pool(), "relay", relayLockID)
	if err != nil {
		return err
	}
	defer release()
	r.leader.Store(true)
	relayLeader.Set(1)
	defer func() { r.leader.Store(false); relayLeader.Set(0) }()

	seq, cp, err := r.loadCheckpoint(ctx, conn)
	if err != nil {
		return err
	}
	r.log.Info("relay is the leader", "sequence", seq)

	needSync := true
	lastCheck := time.Now()
	reconnects := r.nc.Stats().Reconnects
	backoff := 50 * time.Millisecond
	hot := 0 // after a wake-up, retry quickly while older transactions hold the horizon back
	for {
		if ctx.Err() != nil {
			return nil
		}
		if rc := r.nc.Stats().Reconnects; rc != reconnects {
			reconnects, needSync = rc, true
		}
		if time.Since(lastCheck) >= r.cfg.CheckInterval {
			if err := conn.Ping(ctx); err != nil {
				return fmt.Errorf("relay: leader connection lost: %w", err)
			}
			lastCheck, needSync = time.Now(), true
		}
		if needSync {
			s, c, err := r.reconcile(ctx, conn, seq, cp)
			r.lastErr.Set(err)
			if err != nil {
				r.log.Warn("relay: cannot reconcile with JetStream", "err", err)
				if !sleep(ctx, backoff) {
					return nil
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			seq, cp, needSync = s, c, false
			r.seq.Store(seq)
			relaySequence.Set(float64(seq))
		}

		evs, err := r.store.ReadAll(ctx, cp, r.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			s, c, err := r.publish(ctx, conn, seq, evs)
			r.lastErr.Set(err)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.log.Warn("relay: publish failed; reconciling", "sequence", seq, "err", err)
				needSync = true
				if !sleep(ctx, backoff) {
					return nil
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			seq, cp, backoff = s, c, 50*time.Millisecond
			r.seq.Store(seq)
			relaySequence.Set(float64(seq))
			continue
		}

		wait := r.cfg.PollInterval
		if hot > 0 {
			wait = time.Millisecond << (8 - hot) // 1, 2, 4 … 128 ms
			hot--
		}
		t := time.NewTimer(min(wait, r.cfg.CheckInterval))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
			hot = 8
		case <-t.C:
		}
		t.Stop()
	}
}

// publish sends evs as the stream sequences seq+1 … seq+len(evs), waits for
// every ack, then records the new checkpoint.
func (r *Relay) publish(ctx context.Context, conn *pgxpool.Conn, seq uint64, evs []domain.Event) (uint64, domain.Checkpoint, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(evs))
	for i, e := range evs {
		body, err := json.Marshal(e.ToCloudEvent())
		if err != nil {
			return seq, domain.Checkpoint{}, fmt.Errorf("relay: encode %s: %w", e.ID, err)
		}
		m := &nats.Msg{Subject: e.Subject(r.cfg.NATS.SubjectPrefix), Data: body, Header: nats.Header{}}
		m.Header.Set(HeaderTxID, strconv.FormatInt(e.TxID, 10))
		m.Header.Set(HeaderPosition, strconv.FormatInt(e.Position, 10))
		f, err := r.js.PublishMsgAsync(m,
			jetstream.WithMsgID(e.ID),
			jetstream.WithExpectStream(r.cfg.NATS.Stream),
			jetstream.WithExpectLastSequence(seq+uint64(i)))
		if err != nil {
			return seq, domain.Checkpoint{}, fmt.Errorf("relay: publish %s: %w", e.ID, err)
		}
		futs = append(futs, f)
	}
	timeout := time.NewTimer(r.cfg.AckTimeout)
	defer timeout.Stop()
	for i, f := range futs {
		want := seq + uint64(i) + 1
		select {
		case ack := <-f.Ok():
			if ack.Sequence != want {
				return seq, domain.Checkpoint{}, fmt.Errorf("relay: %s acknowledged as sequence %d (duplicate=%t), want %d", evs[i].ID, ack.Sequence, ack.Duplicate, want)
			}
		case err := <-f.Err():
			return seq, domain.Checkpoint{}, fmt.Errorf("relay: publish sequence %d (%s): %w", want, evs[i].ID, err)
		case <-timeout.C:
			return seq, domain.Checkpoint{}, fmt.Errorf("relay: no ack for sequence %d within %s", want, r.cfg.AckTimeout)
		case <-ctx.Done():
			return seq, domain.Checkpoint{}, ctx.Err()
		}
	}
	last := evs[len(evs)-1]
	newSeq := seq + uint64(len(evs))
	if _, err := conn.Exec(ctx, `INSERT INTO relay_log (seq, event_id, tx_id, position) VALUES ($1, $2, $3, $4)`,
		int64(newSeq), last.ID, last.TxID, last.Position); err != nil {
		// JetStream has the batch; the next reconcile adopts it.
		return seq, domain.Checkpoint{}, fmt.Errorf("relay: record checkpoint: %w", err)
	}
	relayPublished.Add(float64(len(evs)))
	now := time.Now()
	for _, e := range evs {
		relayLag.Observe(now.Sub(e.RecordedAt).Seconds())
	}
	return newSeq, last.Checkpoint(), nil
}

func (r *Relay) loadCheckpoint(ctx context.Context, conn *pgxpool.Conn) (uint64, domain.Checkpoint, error) {
	var seq int64
	var cp domain.Checkpoint
	err := conn.QueryRow(ctx, `SELECT seq, tx_id, position FROM relay_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &cp.TxID, &cp.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, domain.Checkpoint{}, nil
	}
	if err != nil {
		return 0, cp, fmt.Errorf("relay: load checkpoint: %w", err)
	}
	return uint64(seq), cp, nil
}

// reconcile compares the stream's last sequence with the relay's checkpoint
// and returns the sequence and checkpoint to continue from.
func (r *Relay) reconcile(ctx context.Context, conn *pgxpool.Conn, seq uint64, cp domain.Checkpoint) (uint64, domain.Checkpoint, error) {
	stream, err := EnsureStream(ctx, r.js, r.cfg.NATS)
	if err != nil {
		return seq, cp, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return seq, cp, fmt.Errorf("relay: stream info: %w", err)
	}
	last := info.State.LastSeq
	switch {
	case last == seq:
		return seq, cp, nil

	case last < seq:
		// JetStream lost acknowledged messages (crash before fsync, store
		// restored from a copy, stream deleted): republish from last+1.
		at, err := r.eventAt(ctx, conn, last)
		if err != nil {
			return seq, cp, err
		}
		if last > 0 {
			if err := r.checkMsg(ctx, stream, last, at.ID); err != nil {
				return seq, cp, err
			}
		}
		if _, err := conn.Exec(ctx, `DELETE FROM relay_log WHERE seq > $1`, int64(last)); err != nil {
			return seq, cp, fmt.Errorf("relay: rewind checkpoint: %w", err)
		}
		r.log.Warn("JetStream lost its tail: republishing it from PostgreSQL",
			"stream", r.cfg.NATS.Stream, "stream_last_sequence", last, "relay_sequence", seq, "missing", seq-last)
		relayRepairs.WithLabelValues("lost_tail").Inc()
		return last, at.Checkpoint(), nil

	default:
		// The stream is ahead of the checkpoint: a batch was acknowledged but
		// the process died before recording it. Adopt it if the messages are
		// exactly the events that come next.
		e, ok, err := r.store.Nth(ctx, cp, int64(last-seq))
		if err != nil {
			return seq, cp, err
		}
		if !ok {
			return seq, cp, r.foreign(last, seq)
		}
		if err := r.checkMsg(ctx, stream, last, e.ID); err != nil {
			return seq, cp, err
		}
		if _, err := conn.Exec(ctx, `INSERT INTO relay_log (seq, event_id, tx_id, position) VALUES ($1, $2, $3, $4)`,
			int64(last), e.ID, e.TxID, e.Position); err != nil {
			return seq, cp, fmt.Errorf("relay: record checkpoint: %w", err)
		}
		r.log.Info("relay adopted messages acknowledged before a restart", "from", seq+1, "to", last)
		relayRepairs.WithLabelValues("adopted").Inc()
		return last, e.Checkpoint(), nil
	}
}

// eventAt returns the event whose relay sequence is seq (zero Event for 0).
func (r *Relay) eventAt(ctx context.Context, conn *pgxpool.Conn, seq uint64) (domain.Event, error) {
	if seq == 0 {
		return domain.Event{}, nil
	}
	var base int64
	var cp domain.Checkpoint
	var id string
	err := conn.QueryRow(ctx, `SELECT seq, event_id, tx_id, position FROM relay_log WHERE seq <= $1 ORDER BY seq DESC LIMIT 1`, int64(seq)).
		Scan(&base, &id, &cp.TxID, &cp.Position)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return domain.Event{}, fmt.Errorf("relay: find sequence %d: %w", seq, err)
	}
	if uint64(base) == seq {
		return domain.Event{ID: id, TxID: cp.TxID, Position: cp.Position}, nil
	}
	e, ok, err := r.store.Nth(ctx, cp, int64(seq)-base)
	if err != nil {
		return domain.Event{}, err
	}
	if !ok {
		return domain.Event{}, fmt.Errorf("relay: event store has no event at sequence %d", seq)
	}
	return e, nil
}

// checkMsg verifies that stream message seq is the event id.
func (r *Relay) checkMsg(ctx context.Context, stream jetstream.Stream, seq uint64, id string) error {
	m, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // deleted by retention or by hand: nothing to contradict
	}
	if err != nil {
		return fmt.Errorf("relay: get message %d: %w", seq, err)
	}
	if got := m.Header.Get(jetstream.MsgIDHeader); got != id {
		return r.foreign(seq, seq)
	}
	return nil
}

func (r *Relay) foreign(last, seq uint64) error {
	return domain.Errorf(domain.ECONFLICT,
		"relay: JetStream stream %s (last sequence %d) holds messages this event store did not publish (relay sequence %d): "+
			"it belongs to another installation or database. Point ARREARS_NATS_STREAM at another stream, or delete it "+
			"(nats stream rm %s) and arrears republishes every event from PostgreSQL",
		r.cfg.NATS.Stream, last, seq, r.cfg.NATS.Stream)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
