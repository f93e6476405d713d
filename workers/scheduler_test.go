package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/workers"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// collectionWorld is a tenant's claims, disputes and campaigns driven day
// by day through domain commands, with the scheduler's read models caught
// up on demand.
type collectionWorld struct {
	t      *testing.T
	store  *eventstore.Store
	ids    *domain.IDGenerator
	day0   time.Time
	tenant string
}

func (w *collectionWorld) date(n int) domain.Date { return domain.DateOf(w.at(n)) }

// at is 09:00 UTC on day n.
func (w *collectionWorld) at(n int) time.Time { return w.day0.AddDate(0, 0, n).Add(9 * time.Hour) }

// allEvents reads every event committed so far, in the global order: it
// waits until the readable horizon (held back by any older transaction on
// the server, e.g. another package's test) has passed the last of them.
func (w *collectionWorld) allEvents() []domain.Event {
	w.t.Helper()
	ctx := context.Background()
	head, err := workers.EventStoreHead(ctx, w.store)
	require.NoError(w.t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := w.store.ReadAll(ctx, domain.Checkpoint{}, 100000)
		require.NoError(w.t, err)
		if n := len(evs); n > 0 && evs[n-1].Checkpoint() == head {
			return evs
		}
		require.True(w.t, time.Now().Before(deadline), "the event store's horizon did not pass %+v within 30 s", head)
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *collectionWorld) exec(cmds ...eventstore.Command) {
	w.t.Helper()
	_, err := w.store.Execute(context.Background(), domain.Metadata{Actor: "test"}, cmds, nil)
	require.NoError(w.t, err)
}

func (w *collectionWorld) claim(id string, decide func(*domain.Claim) ([]domain.NewEvent, error)) {
	w.t.Helper()
	w.exec(eventstore.On(w.tenant, domain.StreamTypeClaim, id, domain.NewClaim, decide))
}

func (w *collectionWorld) campaign(id string, decide func(*domain.Campaign) ([]domain.NewEvent, error)) {
	w.t.Helper()
	w.exec(eventstore.On(w.tenant, domain.StreamTypeCampaign, id, domain.NewCampaign, decide))
}

func (w *collectionWorld) dispute(id string, decide func(*domain.Dispute) ([]domain.NewEvent, error)) {
	w.t.Helper()
	w.exec(eventstore.On(w.tenant, domain.StreamTypeDispute, id, domain.NewDispute, decide))
}

// enroll enrolls claim id in campaign cmp on day n (anchor: the claim's
// current due date).
func (w *collectionWorld) enroll(cmp, claimID string, n int) string {
	w.t.Helper()
	enr := domain.EnrollmentID(cmp, claimID)
	var c *domain.Campaign
	var cl *domain.Claim
	w.exec(
		eventstore.On(w.tenant, domain.StreamTypeCampaign, cmp, domain.NewCampaign,
			func(a *domain.Campaign) ([]domain.NewEvent, error) { c = a; return nil, nil }),
		eventstore.On(w.tenant, domain.StreamTypeClaim, claimID, domain.NewClaim,
			func(a *domain.Claim) ([]domain.NewEvent, error) { cl = a; return nil, nil }),
		eventstore.On(w.tenant, domain.StreamTypeEnrollment, enr, domain.NewEnrollment,
			func(e *domain.Enrollment) ([]domain.NewEvent, error) {
				target := domain.EnrollmentTarget{Type: "claim", ID: claimID, ClaimID: claimID, AccountID: cl.AccountID}
				return e.Enroll(c, target, cl.CurrentDueDate, w.date(n), false, w.at(n))
			}),
	)
	return enr
}

// TestSchedulerOverHundredTwentyDays drives claims through 120 simulated
// days with two schedulers ticking concurrently every day, and checks the
// exact set of overdue marks, journey steps, promise decisions and
// enrollment ends: none for paused, disputed, resolved or stopped claims,
// held steps fired once when collection resumes, nothing duplicated.
func TestSchedulerOverHundredTwentyDays(t *testing.T) {
	ctx := context.Background()
	url, pool := testDB.Isolated(t, 10)
	pool2, err := pgxpool.New(ctx, url) // the second scheduler: another "process"
	require.NoError(t, err)
	t.Cleanup(pool2.Close)

	w := &collectionWorld{t: t, store: eventstore.New(pool),
		ids: domain.NewIDGenerator(nil), day0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), tenant: "ten_sched"}
	clock := &fakeClock{}
	ready := func(ctx context.Context) error {
		return workers.CatchUpProjections(ctx, w.store, workers.SchedulerProjections, 30*time.Second)
	}
	schedulers := []*workers.Scheduler{
		workers.NewScheduler(eventstore.New(pool), clock, workers.SchedulerConfig{Ready: ready, Page: 3}, logger),
		workers.NewScheduler(eventstore.New(pool2), clock, workers.SchedulerConfig{Ready: ready, Page: 2}, logger),
	}

	// Claims due on day 10, each with its own story.
	names := []string{"open", "paused", "disputed", "sold", "promise_broken", "promise_kept", "stopped", "campaign_paused"}
	claims := map[string]string{}
	accounts := map[string]string{}
	for _, name := range names {
		claims[name] = w.ids.New(domain.PrefixClaim, w.at(0))
		accounts[name] = w.ids.New(domain.PrefixAccount, w.at(0))
		w.claim(claims[name], func(c *domain.Claim) ([]domain.NewEvent, error) {
			return c.Create(domain.ClaimInput{Reference: "C-" + name, AccountID: accounts[name], Amount: decimal.RequireFromString("100.00"),
				Currency: "EUR", OriginalDueDate: w.date(10)}, false, w.at(0))
		})
	}
	// Journey: due date −3, 0, +7, +30, +60 → days 7, 10, 17, 40, 70.
	journey := w.ids.New(domain.PrefixCampaign, w.at(0))
	w.campaign(journey, func(c *domain.Campaign) ([]domain.NewEvent, error) {
		return c.Create(domain.CampaignInput{Name: "Dunning", Type: "collection", Steps: []domain.CampaignStep{
			{DayOffset: -3, Action: "email", Name: "reminder"}, {DayOffset: 0, Action: "email"}, {DayOffset: 7, Action: "sms"},
			{DayOffset: 30, Action: "call"}, {DayOffset: 60, Action: "letter"}}}, false, w.at(0))
	})
	// A second campaign, paused from day 5 to day 12: its day-10 step waits.
	short := w.ids.New(domain.PrefixCampaign, w.at(0))
	w.campaign(short, func(c *domain.Campaign) ([]domain.NewEvent, error) {
		return c.Create(domain.CampaignInput{Name: "Short", Type: "collection", Steps: []domain.CampaignStep{{DayOffset: 0, Action: "sms"}}}, false, w.at(0))
	})
	enrollments := map[string]string{}
	for _, name := range names {
		cmp := journey
		if name == "campaign_paused" {
			cmp = short
		}
		enrollments[name] = w.enroll(cmp, claims[name], 0)
	}
	disputeID := w.ids.New(domain.PrefixDispute, w.at(0))
	ptpBroken, ptpKept := w.ids.New(domain.PrefixPromise, w.at(0)), w.ids.New(domain.PrefixPromise, w.at(0))

	// What happens on each day before the schedulers tick.
	script := map[int]func(){
		5: func() {
			w.claim(claims["stopped"], func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Stop("written off", w.at(5)) })
			w.campaign(short, func(c *domain.Campaign) ([]domain.NewEvent, error) { return c.Pause("holiday", w.at(5)) })
		},
		12: func() {
			w.campaign(short, func(c *domain.Campaign) ([]domain.NewEvent, error) { return c.Resume(w.at(12)) })
			w.claim(claims["promise_broken"], func(c *domain.Claim) ([]domain.NewEvent, error) {
				return c.MakePromise(ptpBroken, decimal.RequireFromString("50.00"), w.date(20), w.date(12), w.at(12))
			})
			w.claim(claims["promise_kept"], func(c *domain.Claim) ([]domain.NewEvent, error) {
				return c.MakePromise(ptpKept, decimal.RequireFromString("100.00"), w.date(30), w.date(12), w.at(12))
			})
		},
		15: func() {
			w.claim(claims["paused"], func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Pause("debtor in hospital", w.at(15)) })
			w.claim(claims["promise_broken"], func(c *domain.Claim) ([]domain.NewEvent, error) {
				return c.Credit(decimal.RequireFromString("20.00"), "partial payment", w.at(15))
			})
		},
		20: func() {
			w.dispute(disputeID, func(d *domain.Dispute) ([]domain.NewEvent, error) {
				return d.Open(domain.DisputeInput{AccountID: accounts["disputed"], Reason: "incorrect_amount"}, false, w.at(20))
			})
		},
		25: func() {
			w.claim(claims["sold"], func(c *domain.Claim) ([]domain.NewEvent, error) {
				return c.Resolve(domain.ResolutionSold, "sold to agency", w.at(25))
			})
			w.claim(claims["promise_kept"], func(c *domain.Claim) ([]domain.NewEvent, error) {
				return c.Credit(decimal.RequireFromString("100.00"), "paid in full", w.at(25))
			})
		},
		45: func() {
			w.dispute(disputeID, func(d *domain.Dispute) ([]domain.NewEvent, error) {
				return d.Resolve("rejected", "amount correct", w.at(45))
			})
		},
		50: func() {
			w.claim(claims["paused"], func(c *domain.Claim) ([]domain.NewEvent, error) { return c.Resume(w.at(50)) })
		},
	}

	for day := 0; day <= 120; day++ {
		if f := script[day]; f != nil {
			f()
		}
		clock.Set(w.at(day).Add(time.Hour))
		var wg sync.WaitGroup
		errs := make([]error, len(schedulers))
		for i, s := range schedulers {
			wg.Go(func() { _, errs[i] = s.Tick(ctx) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err, "day %d", day)
		}
	}

	// Every event the schedulers (and the promise decisions of the
	// claims' own commands) recorded, as "subject kind detail @day".
	dayOf := func(d domain.Date) int { return d.DaysAfter(w.date(0)) }
	nameOf := map[string]string{}
	for name, id := range claims {
		nameOf[id] = name
	}
	for name, id := range enrollments {
		nameOf[id] = name
	}
	var got []string
	evs := w.allEvents()
	for _, e := range evs {
		switch e.Type {
		case domain.EventClaimOverdue:
			var d domain.ClaimOverdue
			require.NoError(t, json.Unmarshal(e.Data, &d))
			require.Equal(t, "system:scheduler", e.Metadata.Actor)
			got = append(got, fmt.Sprintf("%s overdue %d @%d", nameOf[e.StreamID], d.Threshold, dayOf(d.Date)))
		case domain.EventJourneyStepDue:
			var d domain.StepDue
			require.NoError(t, json.Unmarshal(e.Data, &d))
			require.Equal(t, "system:scheduler", e.Metadata.Actor)
			require.Equal(t, claims[nameOf[e.StreamID]], d.Target.ClaimID)
			got = append(got, fmt.Sprintf("%s step %d @%d", nameOf[e.StreamID], d.Step, dayOf(d.Date)))
		case domain.EventEnrollmentEnded:
			var d domain.EnrollmentEnded
			require.NoError(t, json.Unmarshal(e.Data, &d))
			got = append(got, fmt.Sprintf("%s ended (%s) @%d", nameOf[e.StreamID], d.Reason, dayOf(domain.DateOf(d.At))))
		case domain.EventPromiseKept, domain.EventPromiseBroken:
			var d domain.PromiseDecided
			require.NoError(t, json.Unmarshal(e.Data, &d))
			got = append(got, fmt.Sprintf("%s %s @%d", nameOf[e.StreamID], e.Type, dayOf(domain.DateOf(d.At))))
		}
	}
	want := []string{
		// Days past due cross 1, 30, 60, 90 on days 11, 40, 70, 100.
		"open overdue 1 @11", "open overdue 30 @40", "open overdue 60 @70", "open overdue 90 @100",
		// Paused days 15–50: the 30-day mark is recorded on resumption.
		"paused overdue 1 @11", "paused overdue 30 @50", "paused overdue 60 @70", "paused overdue 90 @100",
		// Disputed days 20–45.
		"disputed overdue 1 @11", "disputed overdue 30 @45", "disputed overdue 60 @70", "disputed overdue 90 @100",
		"sold overdue 1 @11",
		"promise_broken overdue 1 @11", "promise_broken overdue 30 @40", "promise_broken overdue 60 @70", "promise_broken overdue 90 @100",
		"promise_kept overdue 1 @11",
		"campaign_paused overdue 1 @11", "campaign_paused overdue 30 @40", "campaign_paused overdue 60 @70", "campaign_paused overdue 90 @100",
		// Steps on days 7, 10, 17, 40, 70; held ones fire once when collection resumes.
		"open step 0 @7", "open step 1 @10", "open step 2 @17", "open step 3 @40", "open step 4 @70", "open ended (journey finished) @70",
		"paused step 0 @7", "paused step 1 @10", "paused step 2 @50", "paused step 3 @50", "paused step 4 @70", "paused ended (journey finished) @70",
		"disputed step 0 @7", "disputed step 1 @10", "disputed step 2 @17", "disputed step 3 @45", "disputed step 4 @70", "disputed ended (journey finished) @70",
		"sold step 0 @7", "sold step 1 @10", "sold step 2 @17", "sold ended (claim resolved: sold) @40",
		// A promise made on day 12 holds the journey until it is broken (day 21, the day after it was due).
		"promise_broken step 0 @7", "promise_broken step 1 @10", "promise_broken claim.promise_broken @21", "promise_broken step 2 @21",
		"promise_broken step 3 @40", "promise_broken step 4 @70", "promise_broken ended (journey finished) @70",
		// Kept (and resolved paid) by the day-25 payment: the journey ends.
		"promise_kept step 0 @7", "promise_kept step 1 @10", "promise_kept claim.promise_kept @25", "promise_kept ended (claim resolved: paid) @25",
		// Stopped on day 5: no mark, no step; the journey ends when its first step comes due.
		"stopped ended (claim stopped) @7",
		// Its campaign paused on days 5–12: the day-10 step fires on day 12.
		"campaign_paused step 0 @12", "campaign_paused ended (journey finished) @12",
	}
	sort.Strings(got)
	sort.Strings(want)
	require.Equal(t, want, got)
}

// TestSchedulerAccountJourneys runs account enrollments: a dispute on the
// account holds its steps, settling the account ends its journey, and a
// second tick on the same day records nothing.
func TestSchedulerAccountJourneys(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 10)
	w := &collectionWorld{t: t, store: eventstore.New(pool), ids: domain.NewIDGenerator(nil),
		day0: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), tenant: "ten_acct"}
	clock := &fakeClock{}
	sched := workers.NewScheduler(w.store, clock, workers.SchedulerConfig{Ready: func(ctx context.Context) error {
		return workers.CatchUpProjections(ctx, w.store, workers.SchedulerProjections, 30*time.Second)
	}}, logger)
	tick := func(day int) workers.TickResult {
		t.Helper()
		clock.Set(w.at(day).Add(time.Hour))
		res, err := sched.Tick(ctx)
		require.NoError(t, err)
		return res
	}
	account := func(id string, decide func(*domain.Account) ([]domain.NewEvent, error)) {
		t.Helper()
		w.exec(eventstore.On(w.tenant, domain.StreamTypeAccount, id, domain.NewAccount, decide))
	}
	cmp := w.ids.New(domain.PrefixCampaign, w.at(0))
	w.campaign(cmp, func(c *domain.Campaign) ([]domain.NewEvent, error) {
		return c.Create(domain.CampaignInput{Name: "Accounts", Type: "collection", Steps: []domain.CampaignStep{
			{DayOffset: 1, Action: "email"}, {DayOffset: 10, Action: "letter"}}}, false, w.at(0))
	})
	accts := map[string]string{}
	enrs := map[string]string{}
	for _, name := range []string{"disputed", "settled"} {
		id := w.ids.New(domain.PrefixAccount, w.at(0))
		accts[name] = id
		account(id, func(a *domain.Account) ([]domain.NewEvent, error) {
			evs, err := a.Open(domain.OpenAccount{Reference: "A-" + name, Currency: "EUR"}, w.at(0))
			if err != nil {
				return nil, err
			}
			more, err := a.PostEntries([]domain.EntryInput{{Reference: "INV-1", Kind: domain.KindInvoice, Amount: decimal.RequireFromString("80.00"),
				DueDate: w.date(5)}}, w.at(0), nil)
			return append(evs, more...), err
		})
		enrs[name] = domain.EnrollmentID(cmp, id)
		var c *domain.Campaign
		var acct *domain.Account
		w.exec(
			eventstore.On(w.tenant, domain.StreamTypeCampaign, cmp, domain.NewCampaign, func(a *domain.Campaign) ([]domain.NewEvent, error) { c = a; return nil, nil }),
			eventstore.On(w.tenant, domain.StreamTypeAccount, id, domain.NewAccount, func(a *domain.Account) ([]domain.NewEvent, error) { acct = a; return nil, nil }),
			eventstore.On(w.tenant, domain.StreamTypeEnrollment, enrs[name], domain.NewEnrollment, func(e *domain.Enrollment) ([]domain.NewEvent, error) {
				return e.Enroll(c, domain.EnrollmentTarget{Type: "account", ID: id, AccountID: id}, acct.OldestDueDate(), w.date(0), false, w.at(0))
			}),
		)
	}
	dispute := w.ids.New(domain.PrefixDispute, w.at(0))
	w.dispute(dispute, func(d *domain.Dispute) ([]domain.NewEvent, error) {
		return d.Open(domain.DisputeInput{AccountID: accts["disputed"], Reason: "not_mine"}, false, w.at(0))
	})

	// Day 6: the undisputed account gets its email; the disputed one waits.
	require.Equal(t, 1, tick(6).Steps)
	require.Zero(t, tick(6).Events(), "a second tick the same day records nothing")
	// Day 8: the settled account pays in full; day 15 its journey ends
	// instead of sending the letter. The dispute is withdrawn on day 15:
	// both held steps (days 6 and 15) fire.
	account(accts["settled"], func(a *domain.Account) ([]domain.NewEvent, error) {
		_, evs, err := a.RecordPayment(w.ids.New(domain.PrefixPayment, w.at(8)), domain.PaymentInput{Reference: "P-1",
			Amount: decimal.RequireFromString("80.00"), Status: domain.PaymentCompleted}, w.at(8))
		return evs, err
	})
	w.dispute(dispute, func(d *domain.Dispute) ([]domain.NewEvent, error) { return d.Withdraw("paid elsewhere", w.at(15)) })
	res := tick(15)
	require.Equal(t, workers.TickResult{Date: w.date(15), Steps: 2, Ended: 2, Position: res.Position}, res)

	var got []string
	evs := w.allEvents()
	for _, e := range evs {
		switch e.Type {
		case domain.EventJourneyStepDue:
			var d domain.StepDue
			require.NoError(t, json.Unmarshal(e.Data, &d))
			require.Equal(t, e.StreamID, enrs[map[bool]string{true: "disputed", false: "settled"}[d.Target.AccountID == accts["disputed"]]])
			got = append(got, fmt.Sprintf("%s %s @%s", d.Target.AccountID, d.Action, d.Date))
		case domain.EventEnrollmentEnded:
			var d domain.EnrollmentEnded
			require.NoError(t, json.Unmarshal(e.Data, &d))
			got = append(got, fmt.Sprintf("%s ended (%s)", e.StreamID, d.Reason))
		}
	}
	want := []string{
		fmt.Sprintf("%s email @%s", accts["settled"], w.date(6)),
		fmt.Sprintf("%s email @%s", accts["disputed"], w.date(15)),
		fmt.Sprintf("%s letter @%s", accts["disputed"], w.date(15)),
		fmt.Sprintf("%s ended (journey finished)", enrs["disputed"]),
		fmt.Sprintf("%s ended (account settled)", enrs["settled"]),
	}
	sort.Strings(got)
	sort.Strings(want)
	require.Equal(t, want, got)
}
