package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// Projector runs projections from one durable JetStream pull consumer. Each
// fetched batch is applied to each projection with its checkpoint in one
// transaction (one per projection), then acked; duplicates are skipped by
// sequence, per projection; a jump in the sequence (messages lost or expired
// in JetStream) is filled from the event store.
//
// A group of projections shares the consumer, the fetches and the decoding:
// JetStream delivers each message once to the group instead of once per
// projection (delivery was a third of the process's CPU with a consumer per
// projection). The group moves at the pace of its slowest member, so only
// projections of similar cost belong together.
type Projector struct {
	name   string
	ps     []projections.Projection
	engine *projections.Engine
	store  *eventstore.Store
	js     jetstream.JetStream
	cfg    ProjectorConfig
	log    *slog.Logger

	lastErr lastError

	// members holds the members of the group whose last apply failed
	// (used by the run goroutine only); failed is its errors, for readers.
	members map[string]*memberFailure
	failed  atomic.Pointer[map[string]error]
}

// memberFailure is a member of a group that failed: the others go on, and
// it is retried after its backoff, from its own checkpoint (the events it
// missed meanwhile are a gap, filled from the event store).
type memberFailure struct {
	err     error
	retryAt time.Time
	backoff time.Duration
}

// NewProjector returns a runner for p alone (its consumer is named after it).
func NewProjector(p projections.Projection, store *eventstore.Store, nc *nats.Conn, cfg ProjectorConfig, log *slog.Logger) (*Projector, error) {
	return NewProjectorGroup(p.Name(), []projections.Projection{p}, store, nc, cfg, log)
}

// NewProjectorGroup returns a runner for ps sharing the consumer named after
// name.
func NewProjectorGroup(name string, ps []projections.Projection, store *eventstore.Store, nc *nats.Conn, cfg ProjectorConfig, log *slog.Logger) (*Projector, error) {
	if len(ps) == 0 {
		return nil, fmt.Errorf("projector %s: no projections", name)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("projector %s: %w", name, err)
	}
	w := &Projector{name: name, ps: ps, engine: projections.NewEngine(store), store: store, js: js, cfg: cfg.withDefaults(),
		members: map[string]*memberFailure{}}
	w.log = log.With("component", "projector", "projection", strings.Join(w.Projections(), ","))
	return w, nil
}

// ConsumerName is the durable consumer of projection (or group) name.
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
		for _, p := range w.ps {
			if res, err := w.engine.CatchUp(ctx, p, -1, w.cfg.BatchSize); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.log.Warn("catching up from the event store failed", "projection", p.Name(), "err", err)
			} else if res.Applied > 0 {
				w.log.Info("caught up from the event store while JetStream is unavailable", "projection", p.Name(), "events", res.Applied, "sequence", res.Checkpoint.Seq)
				w.observe(p, res, nil)
			}
		}
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (w *Projector) run(ctx context.Context) error {
	// The consumer starts after the group's lowest checkpoint; what a
	// member has already applied comes to it as duplicates.
	var from projections.Checkpoint
	for i, p := range w.ps {
		cp, err := w.engine.Load(ctx, p.Name())
		if err != nil {
			return err
		}
		projectionSequence.WithLabelValues(p.Name()).Set(float64(cp.Seq))
		if i == 0 || cp.Seq < from.Seq {
			from = cp
		}
	}
	if _, err := EnsureStream(ctx, w.js, w.cfg.NATS); err != nil {
		return err
	}
	cons, err := w.consumer(ctx, from)
	w.lastErr.Set(err)
	if err != nil {
		return err
	}
	w.log.Info("projector started", "sequence", from.Seq)

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
		if fb.last == nil {
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
				if more.err != nil || more.last == nil {
					held = &more // handled on the next round
					break merge
				}
				events, last = append(events, more.events...), more.last
			default:
				break merge
			}
		}
		applied := 0
		for _, p := range w.ps {
			if w.member(ctx, p, events, func() (projections.Result, error) { return w.engine.Apply(ctx, p, events) }) {
				applied++
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if applied == 0 {
			// Nobody took the batch: not acked; the runner restarts.
			if err := w.membersError(); err != nil {
				return err
			}
			return errors.New("no projection applied the batch")
		}
		if err := last.Ack(); err != nil { // AckAll: acks every message up to it
			w.log.Debug("ack failed; messages will be redelivered as duplicates", "err", err)
		}
	}
}

// prefetchBatches is how many fetched batches wait for the applier, and
// maxMerge how many of them one transaction applies at most.
const (
	prefetchBatches = 3
	maxMerge        = 4
)

// fetchedBatch is one fetch: its decoded events and its last message (to
// ack; nil: the fetch came back empty), or the error that ended fetching.
type fetchedBatch struct {
	events []projections.Sequenced
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
			if len(msgs) > 0 {
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
	for _, p := range w.ps {
		cp, err := w.engine.Load(ctx, p.Name())
		if err != nil {
			return err
		}
		n, err := w.store.Pending(ctx, cp.Checkpoint, 1)
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		w.member(ctx, p, nil, func() (projections.Result, error) {
			res, err := w.engine.CatchUp(ctx, p, -1, w.cfg.BatchSize)
			if err == nil && res.Applied > 0 {
				w.log.Info("nothing delivered while the event store is ahead: caught up from it",
					"projection", p.Name(), "from", cp.Seq, "to", res.Checkpoint.Seq)
			}
			return res, err
		})
	}
	if len(w.members) == len(w.ps) {
		return w.membersError()
	}
	return nil
}

// member runs apply for member p unless p failed lately and its retry is
// not due, and reports whether it ran and succeeded. A failure is
// recorded (LastError reports it) and p is retried after a backoff, while
// the other members go on: one projection that cannot apply an event
// (a bug, a full disk for its tables) does not hold the others back.
func (w *Projector) member(ctx context.Context, p projections.Projection, events []projections.Sequenced, apply func() (projections.Result, error)) bool {
	name := p.Name()
	f := w.members[name]
	if f != nil && time.Now().Before(f.retryAt) {
		return false
	}
	res, err := apply()
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		if f == nil {
			f = &memberFailure{backoff: 100 * time.Millisecond}
			w.members[name] = f
		} else {
			f.backoff = min(2*f.backoff, 5*time.Second)
		}
		f.err, f.retryAt = err, time.Now().Add(f.backoff) // (the engine names the projection)
		w.log.Warn("projection failed; the group goes on without it until it retries", "failed", name, "err", err, "retry_in", f.backoff)
		w.reportMembers()
		return false
	}
	if f != nil {
		delete(w.members, name)
		w.log.Info("projection recovered", "recovered", name, "sequence", res.Checkpoint.Seq)
		w.reportMembers()
	}
	w.observe(p, res, events)
	return true
}

// reportMembers publishes the members' failures for readers.
func (w *Projector) reportMembers() {
	failed := make(map[string]error, len(w.members))
	for name, f := range w.members {
		failed[name] = f.err
	}
	w.failed.Store(&failed)
}

// membersError joins the failures of the members, in their order.
func (w *Projector) membersError() error {
	failed := w.failed.Load()
	if failed == nil {
		return nil
	}
	var errs []error
	for _, p := range w.ps {
		if err := (*failed)[p.Name()]; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ProjectionError returns what keeps projection name of w from being
// current: the error that stopped w consuming JetStream, or the
// projection's own last failure; nil while it consumes normally.
func (w *Projector) ProjectionError(name string) error {
	if err := w.lastErr.Load(); err != nil {
		return err
	}
	if failed := w.failed.Load(); failed != nil {
		return (*failed)[name]
	}
	return nil
}

func (w *Projector) observe(p projections.Projection, res projections.Result, events []projections.Sequenced) {
	name := p.Name()
	projectionEvents.WithLabelValues(name).Add(float64(res.Applied))
	projectionSequence.WithLabelValues(name).Set(float64(res.Checkpoint.Seq))
	if res.Backfilled > 0 {
		projectionBackfills.WithLabelValues(name).Inc()
		w.log.Info("filled a sequence gap from the event store", "projection", name, "events", res.Backfilled, "sequence", res.Checkpoint.Seq)
	}
	if res.Duplicates == 0 {
		now := time.Now()
		for _, s := range events {
			projectionLag.WithLabelValues(name).Observe(now.Sub(s.Event.RecordedAt).Seconds())
		}
	}
}

// consumer returns the projector's durable consumer. An existing one is used
// as it is — JetStream cannot move a consumer's start sequence, and need not:
// what it delivers at or below the checkpoint is skipped as duplicates, and a
// jump past it is filled from the event store. A missing one is created to
// start just after the checkpoint.
func (w *Projector) consumer(ctx context.Context, cp projections.Checkpoint) (jetstream.Consumer, error) {
	name := ConsumerName(w.name)
	cons, err := w.js.Consumer(ctx, w.cfg.NATS.Stream, name)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	cons, err = w.js.CreateConsumer(ctx, w.cfg.NATS.Stream, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "arrears projections " + strings.Join(w.Projections(), ", "),
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

// Name returns the projector's name: its projection's, or its group's.
func (w *Projector) Name() string { return w.name }

// Projections returns the names of the projections w runs.
func (w *Projector) Projections() []string {
	out := make([]string, len(w.ps))
	for i, p := range w.ps {
		out[i] = p.Name()
	}
	return out
}

// LastError returns the error that last stopped the runner from consuming
// JetStream and those of the members whose last apply failed; nil while
// every member consumes normally.
func (w *Projector) LastError() error {
	return errors.Join(w.lastErr.Load(), w.membersError())
}

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

// ReadModelsGroup is the name of the projector group (and, with
// ConsumerName, of its consumer) that Projectors runs every projection but
// the ledger in.
const ReadModelsGroup = "read_models"

// Projectors returns runners for every projection: the ledger alone, the
// others in one group.
func Projectors(store *eventstore.Store, nc *nats.Conn, cfg ProjectorConfig, log *slog.Logger) ([]*Projector, error) {
	if cfg.Decoded == nil {
		cfg.Decoded = NewDecodeCache(defaultDecodeCache)
	}
	// The ledger (the costly one: entries, transactions, statements) runs
	// alone; the others, each a few milliseconds per batch, share one
	// consumer.
	var out []*Projector
	var light []projections.Projection
	for _, p := range projections.All() {
		if p.Name() != (projections.Ledger{}).Name() {
			light = append(light, p)
			continue
		}
		w, err := NewProjector(p, store, nc, cfg, log)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	w, err := NewProjectorGroup(ReadModelsGroup, light, store, nc, cfg, log)
	if err != nil {
		return nil, err
	}
	return append(out, w), nil
}
