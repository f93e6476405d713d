package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// claimSyncLockID is the PostgreSQL advisory lock whose holder is the one
// active claim sync ("arrears" + 'C').
const claimSyncLockID int64 = 0x6172726561727343

// claimSyncName keys the claim sync's row in claim_sync_checkpoints.
const claimSyncName = "claims"

// ClaimSyncActor is the metadata actor of the events the claim sync records.
const ClaimSyncActor = "system:claim_sync"

var (
	claimSyncEvents = promauto.NewCounter(prometheus.CounterOpts{
		Name: "arrears_claim_sync_events_total", Help: "Claim events the claim sync recorded to keep managed claims in line with their invoices.",
	})
	claimSyncSkipped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "arrears_claim_sync_skipped_total", Help: "Managed claims the claim sync could not bring in line (the decision refused; logged).",
	})
	claimSyncLeader = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "arrears_claim_sync_leader", Help: "1 while this process holds the claim sync leadership.",
	})
	claimSyncLag = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "arrears_claim_sync_lag_seconds", Help: "Time from an account event's recording to the commit of its managed claims' sync.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
)

// ClaimSyncConfig tunes the claim sync.
type ClaimSyncConfig struct {
	BatchSize     int           // events read per round; default 2000
	MaxCommands   int           // claim commands per Execute (one transaction); default 1000
	PollInterval  time.Duration // fallback poll when not woken in-process; default 200ms
	CheckInterval time.Duration // leader connection check; default 5s
	LeaderRetry   time.Duration // how often a standby tries to become leader; default 1s
	Now           func() time.Time
	// NoLeadership runs without the advisory-lock leadership: every
	// ClaimSync works. It stays correct — the per-stream locks of Execute
	// serialise the decisions and each decides from the current state, so
	// the second finds nothing to do — but duplicates the work (tests).
	NoLeadership bool
}

func (c ClaimSyncConfig) withDefaults() ClaimSyncConfig {
	if c.BatchSize <= 0 {
		c.BatchSize = 2000
	}
	if c.MaxCommands <= 0 {
		c.MaxCommands = 1000
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
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ClaimSync keeps managed claims in step with the invoices they follow. It
// tails the event store in the gap-free global order from a durable
// checkpoint (claim_sync_checkpoints); for each batch it finds the
// (account, invoice) pairs the account events touched — invoices posted,
// fees posted or amended (their invoice), amendments, allocations of
// payments and credits, reversals — and brings each pair's claim
// (domain.ManagedClaimID) in line with the account's current state through
// Store.Execute: the account command decides nothing (it only reads the
// account, under its lock), the claim commands run the sync decision
// ((*domain.ManagedLedger).Sync). Then it saves the checkpoint.
//
// The decision depends on the current state only, never on the event that
// triggered it, and records nothing for a claim in line: a crash between a
// batch's commits and its checkpoint, a replay from any earlier checkpoint,
// or two syncs racing all leave each claim event recorded exactly once.
// One holder of an advisory lock syncs; others stand by.
type ClaimSync struct {
	store *eventstore.Store
	cfg   ClaimSyncConfig
	log   *slog.Logger
	wake  chan struct{}

	leader   atomic.Bool
	cp       atomic.Pointer[domain.Checkpoint]
	recorded atomic.Int64
	skipped  atomic.Int64
	lastErr  lastError
}

// NewClaimSync returns a claim sync over store.
func NewClaimSync(store *eventstore.Store, cfg ClaimSyncConfig, log *slog.Logger) *ClaimSync {
	return &ClaimSync{store: store, cfg: cfg.withDefaults(), log: log.With("component", "claim_sync"), wake: make(chan struct{}, 1)}
}

// Wake makes the sync read the event store now (register with OnAppend).
func (w *ClaimSync) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Leader reports whether this sync is the active one.
func (w *ClaimSync) Leader() bool { return w.leader.Load() }

// Checkpoint returns the sync's checkpoint (when leader).
func (w *ClaimSync) Checkpoint() domain.Checkpoint {
	if cp := w.cp.Load(); cp != nil {
		return *cp
	}
	return domain.Checkpoint{}
}

// Recorded counts the claim events this sync recorded; Skipped the claims
// whose decision refused (logged).
func (w *ClaimSync) Recorded() int64 { return w.recorded.Load() }

// Skipped counts the claims whose decision refused, since start.
func (w *ClaimSync) Skipped() int64 { return w.skipped.Load() }

// LastError returns the error that last stopped the sync from progressing,
// nil once it progresses again.
func (w *ClaimSync) LastError() error { return w.lastErr.Load() }

// Run syncs until ctx is done, taking over leadership whenever it is free.
func (w *ClaimSync) Run(ctx context.Context) error {
	runLeader(ctx, w.log, "claim sync", w.cfg.LeaderRetry, w.lead, w.lastErr.Set)
	return nil
}

func (w *ClaimSync) lead(ctx context.Context) error {
	var ping func(context.Context) error
	if !w.cfg.NoLeadership {
		conn, release, err := takeLeadership(ctx, w.store.Pool(), "claim sync", claimSyncLockID)
		if err != nil {
			return err
		}
		defer release()
		ping = conn.Ping
		claimSyncLeader.Set(1)
		defer claimSyncLeader.Set(0)
	}
	w.leader.Store(true)
	defer w.leader.Store(false)

	cp, err := w.loadCheckpoint(ctx)
	if err != nil {
		return err
	}
	w.cp.Store(&cp)
	w.log.Info("claim sync is the leader", "tx_id", cp.TxID, "position", cp.Position)

	lastCheck := time.Now()
	backoff := 50 * time.Millisecond
	hot := 0 // after a wake-up, retry quickly while older transactions hold the horizon back
	for {
		if ctx.Err() != nil {
			return nil
		}
		if ping != nil && time.Since(lastCheck) >= w.cfg.CheckInterval {
			if err := ping(ctx); err != nil {
				return fmt.Errorf("claim sync: leader connection lost: %w", err)
			}
			lastCheck = time.Now()
		}
		evs, err := w.store.ReadAll(ctx, cp, w.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			if err := w.process(ctx, evs); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.lastErr.Set(err)
				w.log.Warn("claim sync: batch failed; retrying", "err", err)
				if !sleep(ctx, backoff) {
					return nil
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			next := evs[len(evs)-1].Checkpoint()
			if err := w.saveCheckpoint(ctx, next); err != nil {
				return err
			}
			cp, backoff = next, 50*time.Millisecond
			w.cp.Store(&cp)
			w.lastErr.Set(nil)
			continue
		}
		w.lastErr.Set(nil) // caught up
		wait := w.cfg.PollInterval
		if hot > 0 {
			wait = time.Millisecond << (8 - hot) // 1, 2, 4 … 128 ms
			hot--
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-w.wake:
			hot = 8
		case <-t.C:
		}
		t.Stop()
	}
}

func (w *ClaimSync) loadCheckpoint(ctx context.Context) (domain.Checkpoint, error) {
	var cp domain.Checkpoint
	err := w.store.Pool().QueryRow(ctx, `SELECT tx_id, position FROM claim_sync_checkpoints WHERE name = $1`, claimSyncName).
		Scan(&cp.TxID, &cp.Position)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return cp, fmt.Errorf("claim sync: load checkpoint: %w", err)
	}
	return cp, nil
}

// saveCheckpoint moves the checkpoint forward (never back: with
// NoLeadership, a slower sync must not undo a faster one's progress).
func (w *ClaimSync) saveCheckpoint(ctx context.Context, cp domain.Checkpoint) error {
	_, err := w.store.Pool().Exec(ctx, `
		INSERT INTO claim_sync_checkpoints AS c (name, tx_id, position) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, updated_at = now()
		WHERE (c.tx_id, c.position) < (EXCLUDED.tx_id, EXCLUDED.position)`, claimSyncName, cp.TxID, cp.Position)
	if err != nil {
		return fmt.Errorf("claim sync: save checkpoint: %w", err)
	}
	return nil
}

// touched is an account whose events a batch holds, and the entry
// references they touched.
type touched struct {
	tenant, id string
	refs       []string
	seen       map[string]bool
	last       time.Time // recorded_at of its newest event in the batch

	// Filled in by resolve: the account's invoices among (or behind) refs.
	invoices []string
	sandbox  bool
}

// process brings in line the managed claims of every (account, invoice)
// pair evs touch.
func (w *ClaimSync) process(ctx context.Context, evs []domain.Event) error {
	var accounts []*touched
	byKey := map[string]*touched{}
	for _, e := range evs {
		if e.StreamType != domain.StreamTypeAccount {
			continue
		}
		refs, err := domain.ManagedRefs(e.Type, e.Data)
		if err != nil {
			// The account cannot fold it either: its sync will fail, visibly.
			w.log.Warn("claim sync: undecodable account event", "event", e.ID, "err", err)
			continue
		}
		if len(refs) == 0 {
			continue
		}
		k := e.TenantID + "/" + e.StreamID
		a := byKey[k]
		if a == nil {
			a = &touched{tenant: e.TenantID, id: e.StreamID, seen: map[string]bool{}}
			byKey[k] = a
			accounts = append(accounts, a)
		}
		for _, r := range refs {
			if !a.seen[r] {
				a.seen[r] = true
				a.refs = append(a.refs, r)
			}
		}
		a.last = e.RecordedAt
	}
	if len(accounts) == 0 {
		return nil
	}
	if err := w.resolve(ctx, accounts); err != nil {
		return err
	}
	for _, sandbox := range []bool{false, true} {
		for _, chunk := range w.chunks(accounts, sandbox) {
			if err := w.sync(ctx, chunk, sandbox); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve finds, from each account's current state, which invoices its
// touched references are or belong to (a fee's invoice is in no event of
// its amendment): one Execute of read-only account commands per
// MaxCommands accounts. Entries never change kind or invoice, so any state
// at or after the events answers the same.
func (w *ClaimSync) resolve(ctx context.Context, accounts []*touched) error {
	for start := 0; start < len(accounts); start += w.cfg.MaxCommands {
		part := accounts[start:min(start+w.cfg.MaxCommands, len(accounts))]
		cmds := make([]eventstore.Command, len(part))
		for i, t := range part {
			cmds[i] = eventstore.On(t.tenant, domain.StreamTypeAccount, t.id, domain.NewAccount, func(a *domain.Account) ([]domain.NewEvent, error) {
				t.invoices, t.sandbox = nil, a.Sandbox
				if !a.Opened {
					return nil, nil
				}
				l := domain.NewManagedLedger(a)
				seen := map[string]bool{}
				for _, r := range t.refs {
					if inv, ok := l.InvoiceOf(r); ok && !seen[inv] {
						seen[inv] = true
						t.invoices = append(t.invoices, inv)
					}
				}
				return nil, nil
			})
		}
		if _, err := w.store.Execute(ctx, domain.Metadata{Actor: ClaimSyncActor}, cmds, nil); err != nil {
			return fmt.Errorf("claim sync: read accounts: %w", err)
		}
	}
	return nil
}

// piece is some invoices of one account, synced in one Execute.
type piece struct {
	acct     *touched
	invoices []string
}

// chunks packs the accounts of one mode into Executes of at most
// MaxCommands claim commands (plus one read-only command per account): an
// account with more invoices spreads over several.
func (w *ClaimSync) chunks(accounts []*touched, sandbox bool) [][]piece {
	var out [][]piece
	var cur []piece
	n := 0
	for _, a := range accounts {
		if a.sandbox != sandbox {
			continue
		}
		for inv := a.invoices; len(inv) > 0; {
			take := min(len(inv), w.cfg.MaxCommands-n)
			cur = append(cur, piece{acct: a, invoices: inv[:take]})
			inv, n = inv[take:], n+take
			if n == w.cfg.MaxCommands {
				out, cur, n = append(out, cur), nil, 0
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// sync runs the claim commands of pieces in one Execute. A claim whose
// decision refuses (without recording) is skipped and logged, the others
// proceed; if a refusal still fails the Execute, each account is retried
// on its own and an account that keeps failing with a refusal is skipped.
func (w *ClaimSync) sync(ctx context.Context, pieces []piece, sandbox bool) error {
	at := w.cfg.Now()
	var cmds []eventstore.Command
	type refusal struct {
		acct, ref string
		err       error
	}
	var refusals []*refusal
	for _, p := range pieces {
		var ledger *domain.ManagedLedger // of this account's state in this attempt
		cmds = append(cmds, eventstore.On(p.acct.tenant, domain.StreamTypeAccount, p.acct.id, domain.NewAccount, func(a *domain.Account) ([]domain.NewEvent, error) {
			ledger = nil
			if a.Opened {
				ledger = domain.NewManagedLedger(a)
			}
			return nil, nil
		}))
		for _, ref := range p.invoices {
			r := &refusal{acct: p.acct.id, ref: ref}
			refusals = append(refusals, r)
			id := domain.ManagedClaimID(p.acct.id, ref)
			cmds = append(cmds, eventstore.On(p.acct.tenant, domain.StreamTypeClaim, id, domain.NewClaim, func(c *domain.Claim) ([]domain.NewEvent, error) {
				r.err = nil
				if ledger == nil {
					return nil, nil
				}
				before := c.AppliedEvents()
				evs, err := ledger.Sync(c, ref, at)
				var de *domain.Error
				if err != nil && c.AppliedEvents() == before && errors.As(err, &de) && de.Code != domain.EINTERNAL {
					r.err = err // refused, and nothing changed: skip this claim only
					return nil, nil
				}
				return evs, err
			}))
		}
	}
	evs, err := w.store.Execute(ctx, domain.Metadata{Actor: ClaimSyncActor, Sandbox: sandbox}, cmds, nil)
	if err != nil {
		var de *domain.Error
		if ctx.Err() != nil || !errors.As(err, &de) {
			return fmt.Errorf("claim sync: %w", err)
		}
		if len(pieces) > 1 {
			for _, p := range pieces {
				if err := w.sync(ctx, []piece{p}, sandbox); err != nil {
					return err
				}
			}
			return nil
		}
		w.skipped.Add(int64(len(pieces[0].invoices)))
		claimSyncSkipped.Add(float64(len(pieces[0].invoices)))
		w.log.Error("claim sync: managed claims of an account refused; skipped", "account", pieces[0].acct.id, "err", err)
		return nil
	}
	for _, r := range refusals {
		if r.err != nil {
			w.skipped.Add(1)
			claimSyncSkipped.Inc()
			w.log.Error("claim sync: managed claim refused; skipped", "account", r.acct, "entry", r.ref, "err", r.err)
		}
	}
	w.recorded.Add(int64(len(evs)))
	claimSyncEvents.Add(float64(len(evs)))
	now := time.Now()
	for _, p := range pieces {
		claimSyncLag.Observe(now.Sub(p.acct.last).Seconds())
	}
	return nil
}

// ClaimSyncLag is how far the claim sync (in whichever process leads) is
// behind the event store.
type ClaimSyncLag struct {
	Pending       int               `json:"pending"`                // committed events not yet synced (capped at 10,000)
	OldestPending float64           `json:"oldest_pending_seconds"` // age of the oldest of them
	Checkpoint    domain.Checkpoint `json:"-"`
}

// MeasureClaimSyncLag reads the claim sync's checkpoint and what is
// committed after it.
func MeasureClaimSyncLag(ctx context.Context, store *eventstore.Store) (ClaimSyncLag, error) {
	var l ClaimSyncLag
	err := store.Pool().QueryRow(ctx, `SELECT tx_id, position FROM claim_sync_checkpoints WHERE name = $1`, claimSyncName).
		Scan(&l.Checkpoint.TxID, &l.Checkpoint.Position)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("claim sync lag: %w", err)
	}
	if l.Pending, l.OldestPending, err = pendingAfter(ctx, store, l.Checkpoint); err != nil {
		return l, fmt.Errorf("claim sync lag: %w", err)
	}
	return l, nil
}
