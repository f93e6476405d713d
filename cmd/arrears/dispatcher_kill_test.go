package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/webhooks"
)

// killReceiver is a webhook receiver that verifies every request, keeps what
// it got by webhook-id, and can hold one request open (so the test can kill
// the dispatcher in the middle of a delivery).
type killReceiver struct {
	*httptest.Server
	secret  string
	mu      sync.Mutex
	byID    map[string]string // webhook-id → event id
	events  map[string]bool
	total   int
	invalid []string

	hold    atomic.Bool
	held    chan string
	release chan struct{}
}

func newKillReceiver(t *testing.T) *killReceiver {
	rc := &killReceiver{byID: map[string]string{}, events: map[string]bool{}, held: make(chan string, 1), release: make(chan struct{})}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("webhook-id")
		var ce domain.CloudEvent
		err := json.Unmarshal(body, &ce)
		if err == nil {
			var wh *standardwebhooks.Webhook
			if wh, err = standardwebhooks.NewWebhook(rc.secret); err == nil {
				err = wh.Verify(body, r.Header)
			}
		}
		rc.mu.Lock()
		rc.total++
		if err != nil {
			rc.invalid = append(rc.invalid, fmt.Sprintf("%s: %v", id, err))
		} else {
			rc.byID[id] = ce.ID
			rc.events[ce.ID] = true
		}
		rc.mu.Unlock()
		if rc.hold.CompareAndSwap(true, false) {
			rc.held <- id
			<-rc.release // the dispatcher is killed meanwhile: this answer goes nowhere
			return
		}
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() {
		select {
		case <-rc.release:
		default:
			close(rc.release)
		}
		rc.Close()
	})
	return rc
}

func (rc *killReceiver) counts() (distinct, events, total int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.byID), len(rc.events), rc.total
}

// TestDispatcherSIGKILLMidDelivery SIGKILLs `arrears worker` (projections and
// the webhook dispatcher) while a delivery's HTTP request is open at the
// receiver, restarts it, three times, with events appended throughout: in
// the end every event reached the receiver at least once, with a valid
// signature, and deduplicating by webhook-id leaves exactly one delivery
// per event; the deliveries cut short by the kills were sent again.
func TestDispatcherSIGKILLMidDelivery(t *testing.T) {
	const (
		kills     = 3
		perPhase  = 160 // events appended before each kill, and after the last
		nStreams  = 40
		perStream = 2 // events per stream per batch
		batch     = 4 // streams per batch
	)
	in := newInstallation(t)
	env := in.env("ARREARS_RELAY_POLL_INTERVAL=20ms", "ARREARS_PROJECTION_BATCH_SIZE=50",
		"ARREARS_WEBHOOK_ALLOW_NETS=loopback", "ARREARS_WEBHOOK_POLL_INTERVAL=20ms", "ARREARS_WEBHOOK_TIMEOUT=1s")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	rc := newKillReceiver(t)
	loopback, err := webhooks.ParseAllowlist("loopback")
	require.NoError(t, err)
	svc := webhooks.NewService(in.store, webhooks.Config{Policy: loopback})
	require.NoError(t, svc.Ready(ctx))
	const tenant = "ten_dispatch_kill"
	require.NoError(t, in.store.WithTx(ctx, func(tx pgx.Tx) error {
		_, secret, _, err := svc.CreateTx(ctx, tx, webhooks.NewEndpoint{TenantID: tenant, Mode: domain.ModeLive, URL: rc.URL + "/hooks"}, domain.Metadata{})
		rc.secret = secret
		return err
	}))

	relay := startProc(t, "relay", "", env, "relay")
	relay.waitReady(30 * time.Second)
	worker := startProc(t, "worker-0", "", env, "worker")
	worker.waitReady(30 * time.Second)

	a := newAppender(in.store, tenant, nStreams, 7)
	appendPhase := func() {
		t.Helper()
		for n := 0; n < perPhase; {
			streams := make([]string, batch)
			for i := range streams {
				streams[i] = a.streams[(n/perStream+i)%nStreams]
			}
			k, err := a.appendBatch(ctx, streams, perStream)
			require.NoError(t, err)
			n += k
		}
	}
	status := func() string {
		d, ev, tot := rc.counts()
		return fmt.Sprintf("receiver: %d distinct webhook-ids, %d events, %d requests; %d events appended; outbox checkpoint %d; deliveries %d succeeded, %d pending",
			d, ev, tot, a.n, in.scalar(t, `SELECT coalesce((SELECT seq FROM projection_checkpoints WHERE name = 'webhook_outbox'), 0)`),
			in.scalar(t, `SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`), in.scalar(t, `SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'`))
	}
	for i := range kills {
		appendPhase()
		// Once this worker has delivered something of the new phase, hold
		// the next request open and kill the worker while it waits for it.
		_, before, _ := rc.counts()
		waitFor(t, 30*time.Second, status, func() bool { _, ev, _ := rc.counts(); return ev > before })
		rc.hold.Store(true)
		var heldID string
		select {
		case heldID = <-rc.held:
		case <-time.After(30 * time.Second):
			t.Fatalf("kill %d: no request to hold; %s; worker log:\n%s", i+1, status(), worker.tail(30))
		}
		worker.Kill()
		rc.release <- struct{}{}
		t.Logf("kill %d: SIGKILLed the worker (pid %d) while delivery %s was open at the receiver; %s", i+1, worker.pid(), heldID, status())
		worker = startProc(t, "worker-"+strconv.Itoa(i+1), "", env, "worker")
		worker.waitReady(30 * time.Second)
	}
	appendPhase()
	total := int(a.n)
	start := time.Now()
	waitFor(t, 60*time.Second, status, func() bool { _, ev, _ := rc.counts(); return ev == total })
	t.Logf("all %d events delivered %s after the last append; %s", total, time.Since(start).Round(time.Millisecond), status())

	rc.mu.Lock()
	invalid, distinct, requests := rc.invalid, len(rc.byID), rc.total
	eventOf := map[string]string{}
	for id, ev := range rc.byID {
		require.Empty(t, eventOf[ev], "event %s came under two webhook-ids: %s and %s", ev, eventOf[ev], id)
		eventOf[ev] = id
	}
	rc.mu.Unlock()
	require.Empty(t, invalid, "deliveries that failed verification")
	require.Equal(t, total, distinct, "deduplicated by webhook-id: one per event")
	require.GreaterOrEqual(t, requests-distinct, kills, "each delivery cut short by a kill was sent again")
	rows, err := in.pool.Query(ctx, `SELECT id FROM events WHERE tenant_id = $1 AND stream_type = 'account'`, tenant)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, ids, total)
	for _, id := range ids {
		require.NotEmpty(t, eventOf[id], "event %s never delivered", id)
	}
	waitFor(t, 10*time.Second, status, func() bool {
		return in.scalar(t, `SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`) == int64(total)
	})
	require.Zero(t, in.scalar(t, `SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded'`))
	worker.Stop(30 * time.Second)
	relay.Stop(30 * time.Second)
}
