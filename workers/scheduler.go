package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
)

var schedulerEvents = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "arrears_scheduler_events_total", Help: "Events the collection scheduler recorded, by type.",
}, []string{"type"})

// Clock tells the scheduler what time it is; tests drive it by hand.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// SchedulerProjections are the read models the scheduler selects its work
// from; it waits for them to reach the event store's head before a tick.
var SchedulerProjections = []string{"claims", "disputes", "campaigns"}

// SchedulerConfig tunes the scheduler.
type SchedulerConfig struct {
	Interval time.Duration // between ticks; default 1 minute
	Page     int           // rows selected per query; default 200
	// Ready, if set, is called at the start of every tick and must return
	// once the read models (SchedulerProjections) hold every event
	// committed before it was called. Default: AwaitProjections.
	Ready func(ctx context.Context) error
}

// Scheduler is the collection workflow's clock-driven worker: each tick,
// on the clock's UTC date, it records claim.overdue when an open claim's
// days past due cross 1, 30, 60 and 90, breaks promises to pay whose due
// date has passed unpaid, and advances every enrollment with a step due
// (journey.step_due; enrollment.ended when the journey is finished or its
// target settled). It never emits a step or an overdue mark for a claim
// that is paused, disputed, resolved or stopped, nor a step while a promise
// to pay is active. Every decision is taken by the aggregate under its
// stream lock, so two schedulers (or one restarted mid-tick) record each
// event once: the second finds it already recorded.
type Scheduler struct {
	store *eventstore.Store
	clock Clock
	cfg   SchedulerConfig
	log   *slog.Logger
}

// NewScheduler returns a scheduler on store reading time from clock.
func NewScheduler(store *eventstore.Store, clock Clock, cfg SchedulerConfig, log *slog.Logger) *Scheduler {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Page <= 0 {
		cfg.Page = 200
	}
	if cfg.Ready == nil {
		cfg.Ready = func(ctx context.Context) error {
			return AwaitProjections(ctx, store, SchedulerProjections, 30*time.Second)
		}
	}
	if clock == nil {
		clock = SystemClock{}
	}
	return &Scheduler{store: store, clock: clock, cfg: cfg, log: log.With("component", "scheduler")}
}

// Run ticks every Interval until ctx is done; a failed tick is logged and
// the next one tries again (everything it does is idempotent).
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		res, err := s.Tick(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.log.Error("scheduler tick failed", "err", err)
		case res.Events() > 0:
			s.log.Info("scheduler tick", "date", res.Date, "overdue", res.Overdue, "steps", res.Steps, "promises", res.Promises, "ended", res.Ended)
		}
		if !sleep(ctx, s.cfg.Interval) {
			return nil
		}
	}
}

// TickResult counts what one tick recorded.
type TickResult struct {
	Date     domain.Date
	Overdue  int   // claim.overdue
	Promises int   // claim.promise_kept / claim.promise_broken
	Steps    int   // journey.step_due
	Ended    int   // enrollment.ended
	Position int64 // of the last event recorded (0: none): a read's min_position
}

// Events is the number of events the tick recorded.
func (r TickResult) Events() int { return r.Overdue + r.Promises + r.Steps + r.Ended }

func (r *TickResult) count(evs []domain.Event) {
	for _, e := range evs {
		schedulerEvents.WithLabelValues(e.Type).Inc()
		r.Position = max(r.Position, e.Position)
		switch e.Type {
		case domain.EventClaimOverdue:
			r.Overdue++
		case domain.EventPromiseKept, domain.EventPromiseBroken:
			r.Promises++
		case domain.EventJourneyStepDue:
			r.Steps++
		case domain.EventEnrollmentEnded:
			r.Ended++
		}
	}
}

// Tick does one day's work as of the clock's current time.
func (s *Scheduler) Tick(ctx context.Context) (TickResult, error) {
	now := s.clock.Now().UTC()
	res := TickResult{Date: domain.DateOf(now)}
	if err := s.cfg.Ready(ctx); err != nil {
		return res, fmt.Errorf("scheduler: wait for read models: %w", err)
	}
	for _, step := range []func(context.Context, domain.Date, time.Time, *TickResult) error{s.overdue, s.promises, s.journeys} {
		if err := step(ctx, res.Date, now, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// openDispute is the SQL condition "an open dispute covers claim c" (on
// the claim itself or on its whole account).
const openDispute = `EXISTS (SELECT 1 FROM disputes d WHERE d.tenant_id = c.tenant_id AND d.status = 'open'
	AND (d.claim_id = c.id OR (d.claim_id = '' AND d.account_id = c.account_id)))`

type claimRef struct {
	tenantID, id string
	sandbox      bool
}

// overdue marks open, undisputed claims whose days past due reached a
// threshold they have not recorded.
func (s *Scheduler) overdue(ctx context.Context, today domain.Date, now time.Time, res *TickResult) error {
	return s.claimSweep(ctx, `c.status = 'open' AND c.original_due_date < $1::date
		AND cardinality(c.overdue_thresholds) < (SELECT count(*) FROM unnest($2::int[]) th WHERE th <= $1::date - c.original_due_date)
		AND NOT `+openDispute, []any{string(today), domain.OverdueThresholds}, res,
		func(c *domain.Claim) ([]domain.NewEvent, error) {
			if !c.Created {
				return nil, nil
			}
			return c.MarkOverdue(today, now)
		})
}

// promises decides the active promises whose due date has passed.
func (s *Scheduler) promises(ctx context.Context, today domain.Date, now time.Time, res *TickResult) error {
	return s.claimSweep(ctx, `c.active_promise_due < $1::date`, []any{string(today)}, res,
		func(c *domain.Claim) ([]domain.NewEvent, error) {
			if !c.Created {
				return nil, nil
			}
			return c.SettlePromise(today, now)
		})
}

// claimSweep runs decide on every claim matching where (args from $1),
// in pages; each page of one mode is one Execute.
func (s *Scheduler) claimSweep(ctx context.Context, where string, args []any, res *TickResult, decide func(*domain.Claim) ([]domain.NewEvent, error)) error {
	n := len(args)
	q := fmt.Sprintf(`SELECT c.tenant_id, c.id, c.sandbox FROM claims c WHERE %s AND (c.tenant_id, c.id) > ($%d, $%d)
		ORDER BY c.tenant_id, c.id LIMIT $%d`, where, n+1, n+2, n+3)
	var afterTenant, afterID string
	for {
		rows, err := s.store.Pool().Query(ctx, q, append(args, afterTenant, afterID, s.cfg.Page)...)
		if err != nil {
			return fmt.Errorf("scheduler: select claims: %w", err)
		}
		refs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimRef, error) {
			var c claimRef
			return c, r.Scan(&c.tenantID, &c.id, &c.sandbox)
		})
		if err != nil {
			return fmt.Errorf("scheduler: select claims: %w", err)
		}
		if len(refs) == 0 {
			return nil
		}
		for _, sandbox := range []bool{false, true} {
			var cmds []eventstore.Command
			for _, r := range refs {
				if r.sandbox == sandbox {
					cmds = append(cmds, eventstore.On(r.tenantID, domain.StreamTypeClaim, r.id, domain.NewClaim, decide))
				}
			}
			if len(cmds) == 0 {
				continue
			}
			evs, err := s.store.Execute(ctx, s.meta(sandbox), cmds, nil)
			if err != nil {
				return fmt.Errorf("scheduler: %w", err)
			}
			res.count(evs)
		}
		last := refs[len(refs)-1]
		afterTenant, afterID = last.tenantID, last.id
		if len(refs) < s.cfg.Page {
			return nil
		}
	}
}

func (s *Scheduler) meta(sandbox bool) domain.Metadata {
	return domain.Metadata{Actor: "system:scheduler", Sandbox: sandbox}
}

// dueEnrollment is an active enrollment with a step due, with what the
// read models say about its target.
type dueEnrollment struct {
	tenantID, id, campaignID string
	sandbox                  bool
	targetType               string
	accountID, claimID       string
	disputed, statementPaid  bool
}

// journeys advances every active enrollment with a step due today or
// earlier.
func (s *Scheduler) journeys(ctx context.Context, today domain.Date, now time.Time, res *TickResult) error {
	var afterTenant, afterID string
	for {
		rows, err := s.store.Pool().Query(ctx, `
			SELECT e.tenant_id, e.id, e.campaign_id, e.sandbox, e.target_type, e.account_id, e.claim_id,
				CASE e.target_type
					WHEN 'claim' THEN EXISTS (SELECT 1 FROM disputes d WHERE d.tenant_id = e.tenant_id AND d.status = 'open'
						AND (d.claim_id = e.claim_id OR (d.claim_id = '' AND d.account_id = e.account_id)))
					WHEN 'account' THEN EXISTS (SELECT 1 FROM disputes d WHERE d.tenant_id = e.tenant_id AND d.status = 'open'
						AND d.account_id = e.account_id)
					ELSE EXISTS (SELECT 1 FROM disputes d WHERE d.tenant_id = e.tenant_id AND d.status = 'open'
						AND d.debtor_ids && e.debtor_ids)
				END,
				e.target_type = 'statement' AND coalesce((SELECT st.status = 'paid' FROM statements st
					WHERE st.tenant_id = e.tenant_id AND st.id = e.statement_id), false)
			FROM enrollments e
			WHERE e.status = 'active' AND e.next_due_date <= $1::date AND (e.tenant_id, e.id) > ($2, $3)
			ORDER BY e.tenant_id, e.id LIMIT $4`, string(today), afterTenant, afterID, s.cfg.Page)
		if err != nil {
			return fmt.Errorf("scheduler: select enrollments: %w", err)
		}
		due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dueEnrollment, error) {
			var d dueEnrollment
			return d, r.Scan(&d.tenantID, &d.id, &d.campaignID, &d.sandbox, &d.targetType, &d.accountID, &d.claimID, &d.disputed, &d.statementPaid)
		})
		if err != nil {
			return fmt.Errorf("scheduler: select enrollments: %w", err)
		}
		for _, d := range due {
			evs, err := s.store.Execute(ctx, s.meta(d.sandbox), s.advance(d, today, now), nil)
			if err != nil {
				var de *domain.Error
				if errors.As(err, &de) {
					// The enrollment's decision failed on its own data: log
					// it and go on with the others.
					s.log.Error("scheduler: advance enrollment", "tenant", d.tenantID, "enrollment", d.id, "err", err)
					continue
				}
				return fmt.Errorf("scheduler: advance %s: %w", d.id, err)
			}
			res.count(evs)
		}
		if len(due) < s.cfg.Page {
			return nil
		}
		last := due[len(due)-1]
		afterTenant, afterID = last.tenantID, last.id
	}
}

// advance is the commands of one enrollment's step: the campaign and the
// target are read under their stream locks (so a pause or a resolution
// committed before is seen), then the enrollment decides.
func (s *Scheduler) advance(d dueEnrollment, today domain.Date, now time.Time) []eventstore.Command {
	var campaign *domain.Campaign
	var gate domain.Gate
	cmds := []eventstore.Command{eventstore.On(d.tenantID, domain.StreamTypeCampaign, d.campaignID, domain.NewCampaign,
		func(c *domain.Campaign) ([]domain.NewEvent, error) { campaign = c; return nil, nil })}
	switch d.targetType {
	case "claim":
		cmds = append(cmds, eventstore.On(d.tenantID, domain.StreamTypeClaim, d.claimID, domain.NewClaim,
			func(c *domain.Claim) ([]domain.NewEvent, error) {
				gate = domain.ClaimGate(c, d.disputed)
				return nil, nil
			}))
	case "account":
		cmds = append(cmds, eventstore.On(d.tenantID, domain.StreamTypeAccount, d.accountID, domain.NewAccount,
			func(a *domain.Account) ([]domain.NewEvent, error) {
				gate = domain.AccountGate(a, d.disputed)
				return nil, nil
			}))
	default:
		switch {
		case d.statementPaid:
			gate = domain.Gate{Done: true, Reason: "statement paid"}
		case d.disputed:
			gate = domain.Gate{Held: true, Reason: "disputed"}
		}
	}
	return append(cmds, eventstore.On(d.tenantID, domain.StreamTypeEnrollment, d.id, domain.NewEnrollment,
		func(e *domain.Enrollment) ([]domain.NewEvent, error) {
			if !campaign.Created {
				return nil, domain.Errorf(domain.ENOTFOUND, "campaign %s not found", d.campaignID)
			}
			return e.Advance(campaign, gate, today, now)
		}))
}

// AwaitProjections returns once every projection in names has applied
// every event committed when it was called (or limit passed).
func AwaitProjections(ctx context.Context, store *eventstore.Store, names []string, limit time.Duration) error {
	head, err := EventStoreHead(ctx, store)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		ok, err := ProjectionsReached(ctx, store, names, head)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if !sleep(ctx, wait) {
			return fmt.Errorf("projections %v did not reach the event store's head within %s", names, limit)
		}
	}
}

// EventStoreHead is the checkpoint of the last event committed (zero if
// none). Projections reach it once every transaction older than it has
// ended.
func EventStoreHead(ctx context.Context, store *eventstore.Store) (domain.Checkpoint, error) {
	var head domain.Checkpoint
	err := store.Pool().QueryRow(ctx, `SELECT tx_id::text::bigint, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1`).
		Scan(&head.TxID, &head.Position)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return head, fmt.Errorf("read the event store's head: %w", err)
	}
	return head, nil
}

// ProjectionsReached reports whether every projection in names has
// applied the event at head (and so every event before it).
func ProjectionsReached(ctx context.Context, store *eventstore.Store, names []string, head domain.Checkpoint) (bool, error) {
	var ok bool
	err := store.Pool().QueryRow(ctx, `
		SELECT count(*) = cardinality($1::text[]) AND coalesce(bool_and((tx_id, position) >= ($2::bigint, $3::bigint)), true)
		FROM projection_checkpoints WHERE name = ANY($1)`, names, head.TxID, head.Position).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read projection checkpoints: %w", err)
	}
	return ok, nil
}

// CatchUpProjections folds the event store into the projections named
// (when no projector runs them, e.g. in a one-shot command or a test)
// until they hold every event committed when it was called, or limit
// passed: older transactions elsewhere on the server may hold the
// readable horizon back for a while.
func CatchUpProjections(ctx context.Context, store *eventstore.Store, names []string, limit time.Duration) error {
	head, err := EventStoreHead(ctx, store)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	engine := projections.NewEngine(store)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		for _, name := range names {
			p, ok := projections.ByName(name)
			if !ok {
				return fmt.Errorf("no projection %q", name)
			}
			if _, err := engine.CatchUp(ctx, p, -1, 1000); err != nil {
				return err
			}
		}
		ok, err := ProjectionsReached(ctx, store, names, head)
		if err != nil || ok {
			return err
		}
		if !sleep(ctx, wait) {
			return fmt.Errorf("projections %v did not reach the event store's head within %s", names, limit)
		}
	}
}
