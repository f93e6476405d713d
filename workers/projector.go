package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
)

// ProjectorConfig tunes a projection runner.
type ProjectorConfig struct {
	NATS      NATSConfig
	BatchSize int           // messages per fetch and per transaction; default 500
	MaxWait   time.Duration // fetch wait; default 1s
	AckWait   time.Duration // JetStream redelivery delay of unacked messages; default 30s
	// IdleBackfill: after this many empty fetches while the event store is
	// ahead of the projection, read the missing events from it; default 2.
	IdleBackfill int
	// Decoded, if set, is shared by the projectors of this process so that
	// each message is decoded once (Projectors sets one).
	Decoded *DecodeCache
}

func (c ProjectorConfig) withDefaults() ProjectorConfig {
	c.NATS = c.NATS.WithDefaults()
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.MaxWait <= 0 {
		c.MaxWait = time.Second
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.IdleBackfill <= 0 {
		c.IdleBackfill = 2
	}
	return c
}

// Projector runs one projection from a durable JetStream pull consumer. Each
// fetched batch is applied with its checkpoint in one transaction, then acked;
// duplicates are skipped by sequence; a jump in the sequence (messages lost or
// expired in JetStream) is filled from the event store.
type Projector struct {
	p      projections.Projection
	engine *projections.Engine
	store  *eventstore.Store
	js     jetstream.JetStream
	cfg    ProjectorConfig
	log    *slog.Logger

	lastErr lastError
}

// NewProjector returns a runner for p.
func NewProjector(p projections.Projection, store *eventstore.Store, nc *nats.Conn, cfg ProjectorConfig, log *slog.Logger) (*Projector, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("projector %s: %w", p.Name(), err)
	}
	return &Projector{p: p, engine: projections.NewEngine(store), store: store, js: js, cfg: cfg.withDefaults(),
		log: log.With("component", "projector", "projection", p.Name())}, nil
}

// ConsumerName is the durable consumer of projection name.
func ConsumerName(name string) string { return "arrears_proj_" + name }

// Run applies events until ctx is done; errors are logged and retried.
func (w *Projector) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := w.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.log.Warn("projector restarting", "err", err)
		// Whatever failed (typically JetStream), PostgreSQL has every event:
		// keep the projection current from it meanwhile. A projection's
		// sequence is the event's ordinal in the global order, so what JetStream
		// delivers later is recognised as duplicates.
		if res, err := w.engine.CatchUp(ctx, w.p, -1, w.cfg.BatchSize); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.Warn("catching up from the event store failed", "err", err)
		} else if res.Applied > 0 {
			w.log.Info("caught up from the event store while JetStream is unavailable", "events", res.Applied, "sequence", res.Checkpoint.Seq)
			w.observe(res, nil)
		}
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (w *Projector) run(ctx context.Context) error {
	cp, err := w.engine.Load(ctx, w.p.Name())
	if err != nil {
		return err
	}
	if _, err := EnsureStream(ctx, w.js, w.cfg.NATS); err != nil {
		return err
	}
	cons, err := w.consumer(ctx, cp)
	w.lastErr.Set(err)
	if err != nil {
		return err
	}
	projectionSequence.WithLabelValues(w.p.Name()).Set(float64(cp.Seq))
	w.log.Info("projector started", "sequence", cp.Seq)

	// Fetching (and decoding) runs ahead of applying: while one batch is
	// applied in its transaction, the next ones are fetched, and batches
	// waiting when the applier is free are applied together (up to
	// maxMerge of them), so a projection behind catches up in fewer,
	// larger transactions.
	fctx, stop := context.WithCancel(ctx)
	fetched := make(chan fetchedBatch, prefetchBatches)
	var fetching sync.WaitGroup
	fetching.Go(func() { w.fetch(fctx, cons, fetched) })
	defer func() { stop(); fetching.Wait() }()

	var held *fetchedBatch // taken by a merge that stopped at it
	idle := 0
	for {
		var fb fetchedBatch
		if held != nil {
			fb, held = *held, nil
		} else {
			select {
			case <-ctx.Done():
				return nil
			case fb = <-fetched:
			}
		}
		if fb.err != nil {
			w.lastErr.Set(fb.err)
			return fmt.Errorf("fetch: %w", fb.err)
		}
		if fb.msgs == 0 {
			idle++
			if idle >= w.cfg.IdleBackfill {
				idle = 0
				if err := w.backfillIfBehind(ctx); err != nil {
					return err
				}
			}
			continue
		}
		idle = 0
		w.lastErr.Set(nil)
		events, last := fb.events, fb.last
	merge:
		for range maxMerge - 1 {
			select {
			case more := <-fetched:
				if more.err != nil || more.msgs == 0 {
					held = &more // handled on the next round
					break merge
				}
				events, last = append(events, more.events...), more.last
			default:
				break merge
			}
		}
		res, err := w.engine.Apply(ctx, w.p, events)
		if err != nil {
			w.lastErr.Set(err)
			return err
		}
		if err := last.Ack(); err != nil { // AckAll: acks every message up to it
			w.log.Debug("ack failed; messages will be redelivered as duplicates", "err", err)
		}
		w.observe(res, events)
	}
}

// prefetchBatches is how many fetched batches wait for the applier, and
// maxMerge how many of them one transaction applies at most.
const (
	prefetchBatches = 3
	maxMerge        = 4
)

// fetchedBatch is one fetch: its decoded events, the number of messages
// and the last one (to ack), or the error that ended fetching.
type fetchedBatch struct {
	events []projections.Sequenced
	msgs   int
	last   jetstream.Msg
	err    error
}

// fetch fetches and decodes batches into out until ctx is done or a fetch
// fails (the error is the last thing sent).
func (w *Projector) fetch(ctx context.Context, cons jetstream.Consumer, out chan<- fetchedBatch) {
	for ctx.Err() == nil {
		// A fetch bounded by a context (MaxWait, or ctx ending) rather
		// than FetchMaxWait alone: a stopped runner leaves no fetch behind.
		wait, cancel := context.WithTimeout(ctx, w.cfg.MaxWait)
		batch, err := cons.Fetch(w.cfg.BatchSize, jetstream.FetchContext(wait))
		var fb fetchedBatch
		if err != nil {
			fb.err = err
		} else {
			var msgs []jetstream.Msg
			for m := range batch.Messages() {
				msgs = append(msgs, m)
			}
			fb.events = w.cfg.Decoded.Decode(msgs, func(err error) {
				// Not ours or corrupt: the sequence is still accounted
				// for, and the event comes from the event store instead.
				w.log.Warn("undecodable message; the event store will fill it", "err", err)
			})
			if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
				w.log.Debug("fetch ended", "err", err)
			}
			if fb.msgs = len(msgs); fb.msgs > 0 {
				fb.last = msgs[len(msgs)-1]
			}
		}
		cancel()
		select {
		case out <- fb:
		case <-ctx.Done():
			return
		}
		if fb.err != nil {
			return
		}
	}
}

// backfillIfBehind reads from the event store what JetStream has not
// delivered while the fetches came back empty: messages deleted or expired,
// a consumer ahead of a restored stream, or no delivery at all because NATS
// or the relay is down.
func (w *Projector) backfillIfBehind(ctx context.Context) error {
	cp, err := w.engine.Load(ctx, w.p.Name())
	if err != nil {
		return err
	}
	n, err := w.store.Pending(ctx, cp.Checkpoint, 1)
	if err != nil || n == 0 {
		return err
	}
	res, err := w.engine.CatchUp(ctx, w.p, -1, w.cfg.BatchSize)
	if err != nil {
		return err
	}
	if res.Applied > 0 {
		w.log.Info("nothing delivered while the event store is ahead: caught up from it",
			"from", cp.Seq, "to", res.Checkpoint.Seq)
	}
	w.observe(res, nil)
	return nil
}

func (w *Projector) observe(res projections.Result, events []projections.Sequenced) {
	name := w.p.Name()
	projectionEvents.WithLabelValues(name).Add(float64(res.Applied))
	projectionSequence.WithLabelValues(name).Set(float64(res.Checkpoint.Seq))
	if res.Backfilled > 0 {
		projectionBackfills.WithLabelValues(name).Inc()
		w.log.Info("filled a sequence gap from the event store", "events", res.Backfilled, "sequence", res.Checkpoint.Seq)
	}
	if res.Duplicates == 0 {
		now := time.Now()
		for _, s := range events {
			projectionLag.WithLabelValues(name).Observe(now.Sub(s.Event.RecordedAt).Seconds())
		}
	}
}

// consumer returns the projection's durable consumer. An existing one is used
// as it is — JetStream cannot move a consumer's start sequence, and need not:
// what it delivers at or below the checkpoint is skipped as duplicates, and a
// jump past it is filled from the event store. A missing one is created to
// start just after the checkpoint.
func (w *Projector) consumer(ctx context.Context, cp projections.Checkpoint) (jetstream.Consumer, error) {
	name := ConsumerName(w.p.Name())
	cons, err := w.js.Consumer(ctx, w.cfg.NATS.Stream, name)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	cons, err = w.js.CreateConsumer(ctx, w.cfg.NATS.Stream, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "arrears projection " + w.p.Name(),
		FilterSubject: w.cfg.NATS.SubjectPrefix + ".>",
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   uint64(cp.Seq) + 1,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       w.cfg.AckWait,
		MaxAckPending: 2 * (prefetchBatches + maxMerge) * w.cfg.BatchSize,
		MaxDeliver:    -1,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return w.js.Consumer(ctx, w.cfg.NATS.Stream, name) // created concurrently by another worker
	}
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", name, err)
	}
	return cons, nil
}

// Name returns the projection's name.
func (w *Projector) Name() string { return w.p.Name() }

// LastError returns the error that last stopped the runner from consuming
// JetStream, nil while it consumes normally.
func (w *Projector) LastError() error { return w.lastErr.Load() }

// decode turns a relayed message into an event with its relay sequence.
func decode(m jetstream.Msg) (projections.Sequenced, error) {
	md, err := m.Metadata()
	if err != nil {
		return projections.Sequenced{}, err
	}
	var ce domain.CloudEvent
	if err := json.Unmarshal(m.Data(), &ce); err != nil {
		return projections.Sequenced{}, fmt.Errorf("sequence %d: %w", md.Sequence.Stream, err)
	}
	e, err := ce.Event()
	if err != nil {
		return projections.Sequenced{}, fmt.Errorf("sequence %d: %w", md.Sequence.Stream, err)
	}
	if e.TxID, err = strconv.ParseInt(m.Headers().Get(HeaderTxID), 10, 64); err != nil {
		return projections.Sequenced{}, fmt.Errorf("sequence %d: header %s: %w", md.Sequence.Stream, HeaderTxID, err)
	}
	return projections.Sequenced{Seq: int64(md.Sequence.Stream), Event: e}, nil
}

// Projectors returns a runner for every projection.
func Projectors(store *eventstore.Store, nc *nats.Conn, cfg ProjectorConfig, log *slog.Logger) ([]*Projector, error) {
	if cfg.Decoded == nil {
		cfg.Decoded = NewDecodeCache(defaultDecodeCache)
	}
	var out []*Projector
	for _, p := range projections.All() {
		w, err := NewProjector(p, store, nc, cfg, log)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}
