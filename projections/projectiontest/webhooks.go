package projectiontest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// WebhooksWorkload appends a random history of webhook endpoints — created
// live and sandbox with assorted filters ("*", "test.payment.*", exact types),
// updated, disabled, re-enabled, deleted, secrets rotated — interleaved with
// business events of matching and non-matching types over the same tenants
// and modes, so the webhook outbox has deliveries to make and to withhold.
func WebhooksWorkload(t *testing.T, rng *rand.Rand, store *eventstore.Store) {
	WebhooksHistory(t, rng, store, 150+rng.IntN(150))
}

// WebhooksHistory is WebhooksWorkload with a given number of steps; its
// first step creates an endpoint, so no webhook table stays empty.
func WebhooksHistory(t testing.TB, rng *rand.Rand, store *eventstore.Store, steps int) {
	ctx := context.Background()
	ids := domain.NewIDGenerator(rngReader{rng})
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	tenants := []string{"ten_hook0", "ten_hook1"}
	type endpoint struct {
		tenant, id string
		sandbox    bool
		version    int64
		state      domain.WebhookEndpointState
		deleted    bool
	}
	var endpoints []*endpoint
	// Types prefixed "test." (as GenericWorkload's): real projections ignore them.
	filters := [][]string{{"*"}, {"test.payment.*"}, {"test.ledger_entry.posted"}, {"test.payment.completed", "test.claim.*"}, {"test.claim.resolved"}}
	types := []string{"test.payment.completed", "test.payment.failed", "test.ledger_entry.posted", "test.claim.resolved", "test.claim.created", "test.account.opened"}
	type stream struct {
		tenant, id string
		version    int64
	}
	var streams []*stream
	for range 6 {
		streams = append(streams, &stream{tenant: tenants[rng.IntN(2)], id: ids.New("acct", now)})
	}
	appendEndpoint := func(ep *endpoint, typ string, data any) {
		b, err := json.Marshal(data)
		require.NoError(t, err)
		_, err = store.Append(ctx, domain.Metadata{Sandbox: ep.sandbox}, eventstore.StreamAppend{TenantID: ep.tenant,
			StreamType: domain.StreamTypeWebhookEndpoint, StreamID: ep.id, ExpectedVersion: ep.version,
			Events: []domain.NewEvent{{Type: typ, Data: b}}})
		require.NoError(t, err)
		ep.version++
	}
	for i := range steps {
		switch r := rng.IntN(20); {
		case r < 2 || len(endpoints) == 0 || i == steps/2:
			ep := &endpoint{tenant: tenants[rng.IntN(2)], id: ids.New(domain.PrefixWebhookEndpoint, now), sandbox: rng.IntN(2) == 0,
				state: domain.WebhookEndpointState{URL: "https://hooks.example/" + fmt.Sprint(i), EventTypes: filters[rng.IntN(len(filters))], Enabled: rng.IntN(5) > 0}}
			endpoints = append(endpoints, ep)
			appendEndpoint(ep, domain.EventWebhookEndpointCreated, ep.state)
		case r < 4:
			ep := endpoints[rng.IntN(len(endpoints))]
			if ep.deleted {
				continue
			}
			switch rng.IntN(5) {
			case 0:
				ep.state.EventTypes = filters[rng.IntN(len(filters))]
				appendEndpoint(ep, domain.EventWebhookEndpointUpdated, ep.state)
			case 1:
				ep.state.Enabled = !ep.state.Enabled
				appendEndpoint(ep, domain.EventWebhookEndpointUpdated, ep.state)
			case 2:
				ep.state.Enabled = false
				appendEndpoint(ep, domain.EventWebhookEndpointDisabled, domain.WebhookEndpointDisabled{Reason: "410 Gone"})
			case 3:
				appendEndpoint(ep, domain.EventWebhookEndpointSecretRotated, domain.WebhookSecretRotated{PreviousSecretExpiresAt: now})
			case 4:
				ep.deleted = true
				appendEndpoint(ep, domain.EventWebhookEndpointDeleted, struct{}{})
			}
		default:
			// One to three business events on one to two streams, in one batch.
			var appends []eventstore.StreamAppend
			used := map[string]bool{}
			for range 1 + rng.IntN(2) {
				s := streams[rng.IntN(len(streams))]
				if used[s.id] {
					continue
				}
				used[s.id] = true
				n := 1 + rng.IntN(2)
				evs := make([]domain.NewEvent, n)
				for j := range evs {
					evs[j] = domain.NewEvent{Type: types[rng.IntN(len(types))], Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
				}
				appends = append(appends, eventstore.StreamAppend{TenantID: s.tenant, StreamType: "account", StreamID: s.id, ExpectedVersion: s.version, Events: evs})
			}
			_, err := store.Append(ctx, domain.Metadata{Sandbox: rng.IntN(2) == 0}, appends...)
			require.NoError(t, err)
			for _, a := range appends {
				for _, s := range streams {
					if s.id == a.StreamID {
						s.version += int64(len(a.Events))
					}
				}
			}
		}
		now = now.Add(time.Minute)
	}
}
