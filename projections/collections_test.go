package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
	"github.com/arrears/arrears/projections/projectiontest"
)

// collectionEventTypes are the event types CollectionsWorkload must
// record: every collection event there is.
var collectionEventTypes = []string{
	domain.EventPromiseMade, domain.EventPromiseKept, domain.EventPromiseBroken, domain.EventPromiseCancelled,
	domain.EventClaimTriggered, domain.EventAccountTriggered,
	domain.EventDisputeOpened, domain.EventDisputeResolved, domain.EventDisputeWithdrawn,
	domain.EventCampaignCreated, domain.EventCampaignPaused, domain.EventCampaignResumed, domain.EventCampaignCompleted,
	domain.EventEnrollmentCreated, domain.EventEnrollmentReopened, domain.EventEnrollmentEnded, domain.EventJourneyStepDue,
}

// TestCollectionsMatchFold: after a random collections history, every row
// of claims, disputes, campaigns and enrollments equals the state of its
// stream folded from the event store by the domain aggregate's Apply
// (promises and triggers of claims included; enrollments.next_due_date as
// NextDueDate of the folded enrollment and campaign); there is a row for
// every created stream and none for anything else; accounts with triggers
// carry their stream's version. The workload exercised every collection
// event type.
func TestCollectionsMatchFold(t *testing.T) {
	seen := map[string]int{}
	projectiontest.ForSeeds(t, 3, func(t *testing.T, seed uint64) {
		ctx := context.Background()
		_, pool := testDB.Isolated(t, 4)
		store := eventstore.New(pool)
		projectiontest.CollectionsWorkload(t, projectiontest.NewRand(seed), store)
		catchUp(t, store, projections.Ledger{}, projections.Claims{}, projections.Disputes{}, projections.Campaigns{})
		for typ, n := range eventTypeCounts(t, pool) {
			seen[typ] += n
		}

		rows := map[string]int{}
		var promises, activePromises int
		campaigns := map[[2]string]*domain.Campaign{}
		var enrollments []streamRef
		for _, s := range streams(t, pool) {
			switch s.typ {
			case domain.StreamTypeClaim:
				want := domain.NewClaim(s.tenant, s.id)
				_, err := store.Load(ctx, s.tenant, s.id, want)
				require.NoError(t, err)
				got, err := projections.ScanClaim(pool.QueryRow(ctx, `SELECT `+projections.ClaimColumns+` FROM claims WHERE tenant_id = $1 AND id = $2`, s.tenant, s.id))
				if !want.Created {
					require.ErrorIs(t, err, pgx.ErrNoRows)
					continue
				}
				require.NoError(t, err, "claim %s", s.id)
				requireSameClaim(t, want, got)
				var due *string
				require.NoError(t, pool.QueryRow(ctx, `SELECT to_char(active_promise_due, 'YYYY-MM-DD') FROM claims WHERE tenant_id = $1 AND id = $2`,
					s.tenant, s.id).Scan(&due))
				if p := want.ActivePromise(); p != nil {
					require.NotNil(t, due, "claim %s: active_promise_due of its active promise", s.id)
					assert.Equal(t, string(p.DueDate), *due, s.id)
					activePromises++
				} else {
					assert.Nil(t, due, "claim %s: active_promise_due without an active promise", s.id)
				}
				promises += len(want.Promises)
				rows["claims"]++
			case domain.StreamTypeAccount:
				// account.triggered moves the account's version, nothing else.
				if a := requireAccountMatches(t, pool, store, s.tenant, s.id); a.Triggers > 0 {
					rows["accounts triggered"]++
				}
			case domain.StreamTypeDispute:
				want := domain.NewDispute(s.tenant, s.id)
				_, err := store.Load(ctx, s.tenant, s.id, want)
				require.NoError(t, err)
				got, err := projections.ScanDispute(pool.QueryRow(ctx, `SELECT `+projections.DisputeColumns+` FROM disputes WHERE tenant_id = $1 AND id = $2`, s.tenant, s.id))
				if !want.Created {
					require.ErrorIs(t, err, pgx.ErrNoRows)
					continue
				}
				require.NoError(t, err, "dispute %s", s.id)
				assert.Equal(t, foldState(t, want), foldState(t, got), "dispute %s", s.id)
				rows["disputes"]++
			case domain.StreamTypeCampaign:
				want := domain.NewCampaign(s.tenant, s.id)
				_, err := store.Load(ctx, s.tenant, s.id, want)
				require.NoError(t, err)
				got, err := projections.ScanCampaign(pool.QueryRow(ctx, `SELECT `+projections.CampaignColumns+` FROM campaigns WHERE tenant_id = $1 AND id = $2`, s.tenant, s.id))
				if !want.Created {
					require.ErrorIs(t, err, pgx.ErrNoRows)
					continue
				}
				require.NoError(t, err, "campaign %s", s.id)
				assert.Equal(t, foldState(t, want), foldState(t, got), "campaign %s", s.id)
				campaigns[[2]string{s.tenant, s.id}] = want
				rows["campaigns"]++
			case domain.StreamTypeEnrollment:
				enrollments = append(enrollments, s)
			}
		}
		var dues int
		for _, s := range enrollments {
			want := domain.NewEnrollment(s.tenant, s.id)
			_, err := store.Load(ctx, s.tenant, s.id, want)
			require.NoError(t, err)
			require.True(t, want.Created, "enrollment %s: the workload only ever records valid enrollments", s.id)
			got, next, err := projections.ScanEnrollment(pool.QueryRow(ctx, `SELECT `+projections.EnrollmentColumns+` FROM enrollments WHERE tenant_id = $1 AND id = $2`, s.tenant, s.id))
			require.NoError(t, err, "enrollment %s", s.id)
			assert.Equal(t, foldState(t, want), foldState(t, got), "enrollment %s", s.id)
			c := campaigns[[2]string{s.tenant, want.CampaignID}]
			require.NotNil(t, c, "enrollment %s: campaign %s", s.id, want.CampaignID)
			wantNext := domain.Date("")
			if want.Status == domain.EnrollmentActive && want.NextStep < len(c.Steps) {
				wantNext = want.AnchorDate.AddDays(c.Steps[want.NextStep].DayOffset)
				dues++
			}
			assert.Equal(t, wantNext, next, "enrollment %s (%s, step %d of %d): next_due_date", s.id, want.Status, want.NextStep, len(c.Steps))
			rows["enrollments"]++
		}
		for table, n := range rows {
			if table == "accounts triggered" {
				continue
			}
			var total int
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&total))
			assert.Equal(t, n, total, "%s rows of no stream", table)
		}
		for _, table := range []string{"claims", "disputes", "campaigns", "enrollments", "accounts triggered"} {
			assert.Positive(t, rows[table], "no %s", table)
		}
		assert.Positive(t, promises, "no promise")
		t.Logf("rows equal their folds: %v; %d promises (%d active), %d enrollments with a step to come", rows, promises, activePromises, dues)
	})
	if t.Failed() || len(seen) == 0 {
		return
	}
	for _, typ := range collectionEventTypes {
		assert.Positive(t, seen[typ], "the workload never recorded %s", typ)
	}
	t.Logf("events recorded: %v", seen)
}

// foldState is an aggregate's state as comparable JSON: times in UTC to
// the microsecond (as PostgreSQL keeps them), JSON objects re-encoded.
func foldState(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var x any
	require.NoError(t, json.Unmarshal(b, &x))
	var norm func(any) any
	norm = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				v[k] = norm(e)
			}
		case []any:
			for i, e := range v {
				v[i] = norm(e)
			}
		case string:
			if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return ts.Round(time.Microsecond).UTC().Format(time.RFC3339Nano)
			}
		}
		return v
	}
	out, err := json.Marshal(norm(x))
	require.NoError(t, err)
	return string(out)
}

func eventTypeCounts(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT type, count(*) FROM events GROUP BY type`)
	require.NoError(t, err)
	out := map[string]int{}
	var typ string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&typ, &n}, func() error { out[typ] = n; return nil })
	require.NoError(t, err)
	return out
}

// TestClaimsRefoldPromisesExactly: a claim whose promises are read back
// from its row and folded further ends exactly as the claim folded from
// its events in one go — whatever the batches the projection saw.
func TestClaimsRefoldPromisesExactly(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 4)
	store := eventstore.New(pool)
	tenant, id := "ten_refold", "clm_01KA0000000000000000000001"
	c := domain.NewClaim(tenant, id)
	at := time.Date(2026, 1, 5, 10, 30, 0, 123456000, time.FixedZone("CET", 3600))
	var evs []domain.NewEvent
	keep := func(e []domain.NewEvent, err error) {
		require.NoError(t, err)
		evs = append(evs, e...)
	}
	keep(c.Create(domain.ClaimInput{Reference: "R-1", AccountID: "acct_1", Amount: d("100.10"), Currency: "EUR", OriginalDueDate: "2025-12-01"}, false, at))
	keep(c.MakePromise("ptp_1", d("30.00"), "2026-01-10", "2026-01-05", at))
	keep(c.AllocatePayment("pay_1", d("12.50"), at.Add(time.Hour)))
	keep(c.SettlePromise("2026-01-11", at.Add(48*time.Hour))) // broken
	keep(c.MakePromise("ptp_2", d("10"), "2026-01-20", "2026-01-11", at.Add(49*time.Hour)))
	keep(c.Credit(d("10.00"), "goodwill", at.Add(50*time.Hour))) // kept
	keep(c.Trigger("trg_1", "letter.sent", json.RawMessage(`{"n":1}`), at.Add(51*time.Hour)))
	keep(c.MakePromise("ptp_3", d("5.55"), "2026-02-01", "2026-01-12", at.Add(52*time.Hour)))
	keep(c.Stop("insolvency", at.Add(53*time.Hour))) // cancelled
	require.Equal(t, []domain.PromiseStatus{domain.PromiseBroken, domain.PromiseKept, domain.PromiseCancelled},
		[]domain.PromiseStatus{c.Promises[0].Status, c.Promises[1].Status, c.Promises[2].Status})
	for i := range evs {
		_, err := store.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: domain.StreamTypeClaim, StreamID: id,
			ExpectedVersion: int64(i), Events: evs[i : i+1]})
		require.NoError(t, err)
	}
	// One event per transaction: every event is folded onto the row the
	// previous one wrote.
	last, err := store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, store.AwaitVisible(ctx, last))
	_, err = projections.NewEngine(store).CatchUp(ctx, projections.Claims{}, -1, 1)
	require.NoError(t, err)
	got, err := projections.ScanClaim(pool.QueryRow(ctx, `SELECT `+projections.ClaimColumns+` FROM claims WHERE tenant_id = $1 AND id = $2`, tenant, id))
	require.NoError(t, err)
	wantJSON, err := json.Marshal(c.Promises)
	require.NoError(t, err)
	gotJSON, err := json.Marshal(got.Promises)
	require.NoError(t, err)
	assert.Equal(t, string(wantJSON), string(gotJSON), "promises round-trip byte for byte")
	assert.Equal(t, 1, got.Triggers)
	requireSameClaim(t, c, got)
}

// TestClaimsRefuseUnknownClaimEvent: an event type the domain does not fold
// on a created claim fails the projection, naming it — it is never
// silently skipped (a claim event type added to the domain must be folded
// here too). On a stream that never created a claim it changes nothing.
func TestClaimsRefuseUnknownClaimEvent(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 4)
	store := eventstore.New(pool)
	c := domain.NewClaim("ten_u", "clm_u")
	evs, err := c.Create(domain.ClaimInput{Reference: "R-U", AccountID: "acct_u", Amount: d("5"), Currency: "EUR", OriginalDueDate: "2026-01-01"}, false, time.Now())
	require.NoError(t, err)
	unknown := domain.NewEvent{Type: "claim.reticulated", Data: []byte(`{}`)}
	_, err = store.Append(ctx, domain.Metadata{},
		eventstore.StreamAppend{TenantID: "ten_u", StreamType: domain.StreamTypeClaim, StreamID: "clm_never", Events: []domain.NewEvent{unknown}})
	require.NoError(t, err)
	catchUp(t, store, projections.Claims{})
	_, err = store.Append(ctx, domain.Metadata{},
		eventstore.StreamAppend{TenantID: "ten_u", StreamType: domain.StreamTypeClaim, StreamID: "clm_u", Events: append(evs, unknown)})
	require.NoError(t, err)
	last, err := store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, store.AwaitVisible(ctx, last))
	_, err = projections.NewEngine(store).CatchUp(ctx, projections.Claims{}, -1, 100)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "claim.reticulated")
}

// TestEnrollmentBeforeItsCampaign: an enrollment folded before its
// campaign exists has no next_due_date; the campaign's creation sets it,
// exactly as folding them in the usual order does.
func TestEnrollmentBeforeItsCampaign(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 4)
	store := eventstore.New(pool)
	tenant, cid := "ten_order", "cmp_01KA0000000000000000000001"
	at := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	c := domain.NewCampaign(tenant, cid)
	cevs, err := c.Create(domain.CampaignInput{Name: "J", Type: "collection", Steps: []domain.CampaignStep{
		{DayOffset: 0, Action: "email"}, {DayOffset: 7, Action: "sms"}}}, false, at)
	require.NoError(t, err)
	appendTo := func(streamType, id string, version int64, evs []domain.NewEvent) {
		_, err := store.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: tenant, StreamType: streamType, StreamID: id, ExpectedVersion: version, Events: evs})
		require.NoError(t, err)
	}
	type enr struct {
		id   string
		evs  []domain.NewEvent
		next string
	}
	var enrs []enr
	for i, status := range []string{"active", "cancelled", "finished"} {
		target := domain.EnrollmentTarget{Type: "claim", ID: fmt.Sprintf("clm_%d", i), ClaimID: fmt.Sprintf("clm_%d", i)}
		e := domain.NewEnrollment(tenant, domain.EnrollmentID(cid, target.ID))
		evs, err := e.Enroll(c, target, "2026-02-01", "2026-02-01", false, at)
		require.NoError(t, err)
		more, err := e.Advance(c, domain.Gate{}, "2026-02-01", at)
		require.NoError(t, err)
		evs = append(evs, more...)
		next, more := "2026-02-08", []domain.NewEvent(nil)
		switch status {
		case "cancelled":
			more, err = e.Cancel("opted out", at)
			next = ""
		case "finished":
			more, err = e.Advance(c, domain.Gate{}, "2026-02-09", at)
			next = ""
		}
		require.NoError(t, err)
		enrs = append(enrs, enr{e.ID, append(evs, more...), next})
	}
	nextDues := func() map[string]string {
		out := map[string]string{}
		for _, e := range enrs {
			var d *string
			require.NoError(t, pool.QueryRow(ctx, `SELECT to_char(next_due_date, 'YYYY-MM-DD') FROM enrollments WHERE tenant_id = $1 AND id = $2`, tenant, e.id).Scan(&d))
			out[e.id] = ""
			if d != nil {
				out[e.id] = *d
			}
		}
		return out
	}
	want := map[string]string{}
	for _, e := range enrs {
		appendTo(domain.StreamTypeEnrollment, e.id, 0, e.evs)
		want[e.id] = e.next
	}
	catchUp(t, store, projections.Campaigns{})
	for id, d := range nextDues() {
		assert.Empty(t, d, "%s: no campaign yet", id)
	}
	appendTo(domain.StreamTypeCampaign, cid, 0, cevs)
	catchUp(t, store, projections.Campaigns{})
	assert.Equal(t, want, nextDues(), "set when the campaign comes")
	live, err := projections.Dump(ctx, pool, projections.Campaigns{})
	require.NoError(t, err)
	_, err = projections.NewEngine(store).Rebuild(ctx, projections.Campaigns{}, nil)
	require.NoError(t, err)
	rebuilt, err := projections.Dump(ctx, pool, projections.Campaigns{})
	require.NoError(t, err)
	assert.Equal(t, rebuilt, live)
}
