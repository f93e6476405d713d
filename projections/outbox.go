package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// WebhookOutbox turns events into webhook deliveries: one webhook_outbox
// row per event and matching endpoint — of the event's tenant and mode
// (sandbox events only to endpoints created with test keys), enabled, its
// filters matching the event's type — with a deterministic id
// (domain.WebhookDeliveryID), so a rebuild yields the same rows and the
// dispatcher, which takes rows in from here into webhook_deliveries by id,
// never sends one twice. It follows the endpoints through their own events
// (webhook_subscriptions), so an endpoint gets only the events recorded
// after it was created and while it was enabled, in every replay as live.
// Events of webhook endpoints themselves are not delivered.
type WebhookOutbox struct{}

// Name implements Projection.
func (WebhookOutbox) Name() string { return "webhook_outbox" }

// Tables implements Projection.
func (WebhookOutbox) Tables() []Table {
	return []Table{{Name: "webhook_subscriptions", Key: []string{"endpoint_id"}}, {Name: "webhook_outbox", Key: []string{"id"}}}
}

type subscription struct {
	endpointID, tenantID string
	sandbox              bool
	eventTypes           []string
	enabled, deleted     bool
}

// Apply implements Projection.
func (WebhookOutbox) Apply(ctx context.Context, tx pgx.Tx, events []domain.Event) error {
	tenants := map[string]bool{}
	for _, e := range events {
		tenants[e.TenantID] = true
	}
	ids := make([]string, 0, len(tenants))
	for t := range tenants {
		ids = append(ids, t)
	}
	rows, err := tx.Query(ctx, `SELECT endpoint_id, tenant_id, sandbox, event_types, enabled, deleted FROM webhook_subscriptions
		WHERE tenant_id = ANY($1) AND NOT deleted ORDER BY endpoint_id`, ids)
	if err != nil {
		return fmt.Errorf("webhook_outbox: subscriptions: %w", err)
	}
	byTenant := map[string][]*subscription{}
	for rows.Next() {
		s := &subscription{}
		if err := rows.Scan(&s.endpointID, &s.tenantID, &s.sandbox, &s.eventTypes, &s.enabled, &s.deleted); err != nil {
			rows.Close()
			return err
		}
		byTenant[s.tenantID] = append(byTenant[s.tenantID], s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	find := func(tenant, id string) *subscription {
		for _, s := range byTenant[tenant] {
			if s.endpointID == id {
				return s
			}
		}
		return nil
	}

	changed := map[string]*subscription{}
	var out struct {
		id, tenant, endpoint, event, typ []string
		sandbox                          []bool
		tx, pos                          []int64
	}
	for _, e := range events {
		if e.StreamType == domain.StreamTypeWebhookEndpoint {
			s := find(e.TenantID, e.StreamID)
			switch e.Type {
			case domain.EventWebhookEndpointCreated, domain.EventWebhookEndpointUpdated:
				var st domain.WebhookEndpointState
				if err := json.Unmarshal(e.Data, &st); err != nil {
					return fmt.Errorf("webhook_outbox: %s %s: %w", e.Type, e.ID, err)
				}
				if s == nil {
					s = &subscription{endpointID: e.StreamID, tenantID: e.TenantID, sandbox: e.Metadata.Sandbox}
					byTenant[e.TenantID] = append(byTenant[e.TenantID], s)
				}
				s.eventTypes, s.enabled = st.EventTypes, st.Enabled
			case domain.EventWebhookEndpointDisabled:
				if s != nil {
					s.enabled = false
				}
			case domain.EventWebhookEndpointDeleted:
				if s != nil {
					s.enabled, s.deleted = false, true
				}
			}
			if s != nil {
				changed[s.endpointID] = s
			}
			continue
		}
		for _, s := range byTenant[e.TenantID] {
			if !s.enabled || s.deleted || s.sandbox != e.Metadata.Sandbox || !domain.MatchWebhookEventType(s.eventTypes, e.Type) {
				continue
			}
			out.id = append(out.id, domain.WebhookDeliveryID(s.endpointID, e.ID, "", e.RecordedAt))
			out.tenant, out.endpoint, out.event, out.typ = append(out.tenant, e.TenantID), append(out.endpoint, s.endpointID), append(out.event, e.ID), append(out.typ, e.Type)
			out.sandbox, out.tx, out.pos = append(out.sandbox, e.Metadata.Sandbox), append(out.tx, e.TxID), append(out.pos, e.Position)
		}
	}

	if len(changed) > 0 {
		keys := make([]string, 0, len(changed))
		for k := range changed {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b := &pgx.Batch{}
		for _, k := range keys {
			s := changed[k]
			b.Queue(`INSERT INTO webhook_subscriptions (endpoint_id, tenant_id, sandbox, event_types, enabled, deleted) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (endpoint_id) DO UPDATE SET event_types = EXCLUDED.event_types, enabled = EXCLUDED.enabled, deleted = EXCLUDED.deleted`,
				s.endpointID, s.tenantID, s.sandbox, s.eventTypes, s.enabled, s.deleted)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("webhook_outbox: subscriptions: %w", err)
		}
	}
	if len(out.id) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO webhook_outbox (id, tenant_id, sandbox, endpoint_id, event_id, event_type, tx_id, position)
		SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
		ON CONFLICT (id) DO NOTHING`, out.id, out.tenant, out.sandbox, out.endpoint, out.event, out.typ, out.tx, out.pos)
	if err != nil {
		return fmt.Errorf("webhook_outbox: insert: %w", err)
	}
	return nil
}
