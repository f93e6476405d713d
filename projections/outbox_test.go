package projections_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
)

// TestWebhookOutboxMatches: which (endpoint, event) pairs the outbox makes —
// tenant and mode, filters with wildcards, only events after the endpoint's
// creation and while it is enabled, none after deletion, never endpoint
// events — and that the ids are those domain.WebhookDeliveryID gives, equal
// after a rebuild.
func TestWebhookOutboxMatches(t *testing.T) {
	ctx := context.Background()
	_, pool := testDB.Isolated(t, 4)
	store := eventstore.New(pool)
	ids := domain.NewIDGenerator(nil)
	versions := map[string]int64{}
	appendOne := func(tenant, streamType, stream, typ string, sandbox bool, data any) domain.Event {
		b, err := json.Marshal(data)
		require.NoError(t, err)
		evs, err := store.Append(ctx, domain.Metadata{Sandbox: sandbox}, eventstore.StreamAppend{TenantID: tenant, StreamType: streamType, StreamID: stream,
			ExpectedVersion: versions[stream], Events: []domain.NewEvent{{Type: typ, Data: b}}})
		require.NoError(t, err)
		versions[stream]++
		return evs[0]
	}
	endpoint := func(tenant string, sandbox bool, types ...string) string {
		id := ids.New(domain.PrefixWebhookEndpoint, time.Now())
		appendOne(tenant, domain.StreamTypeWebhookEndpoint, id, domain.EventWebhookEndpointCreated, sandbox,
			domain.WebhookEndpointState{URL: "https://x.example/" + id, EventTypes: types, Enabled: true})
		return id
	}
	acct, acctB, acctTest := ids.New("acct", time.Now()), ids.New("acct", time.Now()), ids.New("acct", time.Now())
	business := func(stream, tenant, typ string, sandbox bool) domain.Event {
		return appendOne(tenant, "account", stream, typ, sandbox, map[string]int{"n": 1})
	}

	before := business(acct, "ten_a", "payment.completed", false) // before any endpoint: never delivered
	all := endpoint("ten_a", false, "*")
	payments := endpoint("ten_a", false, "payment.*")
	exact := endpoint("ten_a", false, "claim.resolved")
	sandbox := endpoint("ten_a", true, "*")
	toggled := endpoint("ten_a", false, "*")

	want := map[[2]string]bool{}
	expect := func(e domain.Event, endpoints ...string) {
		for _, ep := range endpoints {
			want[[2]string{ep, e.ID}] = true
		}
	}
	expect(business(acct, "ten_a", "payment.completed", false), all, payments, toggled)
	expect(business(acct, "ten_a", "payment.refund.requested", false), all, payments, toggled) // payment.* covers deeper types
	expect(business(acct, "ten_a", "paymentx.created", false), all, toggled)                   // not payment.*
	expect(business(acct, "ten_a", "claim.resolved", false), all, exact, toggled)
	expect(business(acctTest, "ten_a", "payment.completed", true), sandbox) // sandbox to sandbox only
	expect(business(acctB, "ten_b", "payment.completed", false))            // another tenant's
	appendOne("ten_a", domain.StreamTypeWebhookEndpoint, toggled, domain.EventWebhookEndpointDisabled, false, domain.WebhookEndpointDisabled{Reason: "410"})
	expect(business(acct, "ten_a", "payment.completed", false), all, payments)
	appendOne("ten_a", domain.StreamTypeWebhookEndpoint, toggled, domain.EventWebhookEndpointUpdated, false,
		domain.WebhookEndpointState{URL: "https://x.example/t", EventTypes: []string{"claim.*"}, Enabled: true})
	expect(business(acct, "ten_a", "claim.created", false), all, toggled)
	appendOne("ten_a", domain.StreamTypeWebhookEndpoint, all, domain.EventWebhookEndpointDeleted, false, struct{}{})
	expect(business(acct, "ten_a", "claim.created", false), toggled)

	last, err := store.LastTxID(ctx)
	require.NoError(t, err)
	require.NoError(t, store.AwaitVisible(ctx, last))
	engine := projections.NewEngine(store)
	_, err = engine.CatchUp(ctx, projections.WebhookOutbox{}, -1, 3) // small batches: endpoint changes mid-batch and across
	require.NoError(t, err)

	type row struct{ ID, Endpoint, Event string }
	read := func() []row {
		rows, err := pool.Query(ctx, `SELECT id, endpoint_id, event_id FROM webhook_outbox ORDER BY id`)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		require.NoError(t, err)
		return out
	}
	got := read()
	gotPairs := map[[2]string]bool{}
	for _, r := range got {
		gotPairs[[2]string{r.Endpoint, r.Event}] = true
		ev, err := store.Event(ctx, "ten_a", r.Event)
		require.NoError(t, err)
		require.Equal(t, domain.WebhookDeliveryID(r.Endpoint, r.Event, "", ev.RecordedAt), r.ID)
	}
	require.Equal(t, want, gotPairs)
	require.NotContains(t, gotPairs, [2]string{all, before.ID})
	require.Len(t, got, len(want), "one row per pair")

	_, err = engine.Rebuild(ctx, projections.WebhookOutbox{}, nil)
	require.NoError(t, err)
	again := read()
	require.Equal(t, got, again, "a rebuild gives the same ids")
}
