package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Delivery is one message to one endpoint, as the API shows it.
type Delivery struct {
	Object         string     `json:"object"`
	ID             string     `json:"id"` // the webhook-id header
	EndpointID     string     `json:"endpoint_id"`
	EventID        *string    `json:"event_id"`
	EventType      string     `json:"event_type"`
	Origin         string     `json:"origin"` // event, replay or test
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastStatusCode *int       `json:"last_status_code"`
	LastError      *string    `json:"last_error"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	CompletedAt    *time.Time `json:"completed_at"`
	CreatedAt      time.Time  `json:"created_at"`
}

const deliveryColumns = `id, endpoint_id, event_id, event_type, origin, status, attempts, last_status_code, last_error,
	last_attempt_at, next_attempt_at, completed_at, created_at`

func scanDelivery(row pgx.Row) (Delivery, error) {
	d := Delivery{Object: "webhook_delivery"}
	err := row.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Origin, &d.Status, &d.Attempts, &d.LastStatusCode, &d.LastError,
		&d.LastAttemptAt, &d.NextAttemptAt, &d.CompletedAt, &d.CreatedAt)
	for _, t := range []*time.Time{d.LastAttemptAt, d.NextAttemptAt, d.CompletedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	d.CreatedAt = d.CreatedAt.UTC()
	return d, err
}

// DeliveryFilter narrows a delivery list.
type DeliveryFilter struct {
	Status string // "" = any
	Before string // id: the page after a cursor (newest first)
	Limit  int
}

// Deliveries lists an endpoint's deliveries, newest first (by id: ids sort
// by the time of the event they carry).
func (s *Service) Deliveries(ctx context.Context, endpointID string, f DeliveryFilter) ([]Delivery, error) {
	rows, err := s.store.Pool().Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE endpoint_id = $1 AND ($2 = '' OR status = $2) AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4`,
		endpointID, f.Status, f.Before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("webhooks: deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) })
}

// Delivery returns a delivery of the tenant in mode.
func (s *Service) Delivery(ctx context.Context, q Querier, tenantID string, mode domain.Mode, id string) (Delivery, error) {
	d, err := scanDelivery(q.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d
		WHERE id = $1 AND tenant_id = $2 AND sandbox = $3
		  AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND e.deleted_at IS NULL)`, id, tenantID, mode.Sandbox()))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, domain.Errorf(domain.ENOTFOUND, "webhook delivery %s not found", id)
	}
	if err != nil {
		return d, fmt.Errorf("webhooks: delivery: %w", err)
	}
	return d, nil
}

// RedeliverTx sends a delivery again as soon as a dispatcher is free, with
// the same webhook-id (receivers deduplicate by it) and a fresh retry
// schedule; its attempts keep counting. The endpoint must be enabled.
func (s *Service) RedeliverTx(ctx context.Context, tx pgx.Tx, tenantID string, mode domain.Mode, id string) (Delivery, error) {
	d, err := s.Delivery(ctx, tx, tenantID, mode, id)
	if err != nil {
		return d, err
	}
	if err := s.requireEnabled(ctx, tx, tenantID, mode, d.EndpointID); err != nil {
		return d, err
	}
	now := s.now().UTC()
	return scanDelivery(tx.QueryRow(ctx, `UPDATE webhook_deliveries SET status = 'pending', failures = 0, next_attempt_at = $2,
		lease_until = NULL, completed_at = NULL WHERE id = $1 RETURNING `+deliveryColumns, id, now))
}

func (s *Service) requireEnabled(ctx context.Context, tx pgx.Tx, tenantID string, mode domain.Mode, endpointID string) error {
	e, err := s.Get(ctx, tx, tenantID, mode, endpointID, false)
	if err != nil {
		return err
	}
	if !e.Enabled {
		return &domain.Error{Code: domain.ECONFLICT, Reason: "endpoint_disabled",
			Message: fmt.Sprintf("webhook endpoint %s is disabled; enable it first (PATCH enabled=true)", endpointID)}
	}
	return nil
}

// TestPingTx queues a test.ping message to the endpoint and returns its
// delivery.
func (s *Service) TestPingTx(ctx context.Context, tx pgx.Tx, tenantID string, mode domain.Mode, endpointID string) (Delivery, error) {
	if err := s.requireEnabled(ctx, tx, tenantID, mode, endpointID); err != nil {
		return Delivery{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	id := s.ids.New(domain.PrefixWebhookDelivery, now)
	data, _ := json.Marshal(map[string]string{"endpoint_id": endpointID, "message": "a test message from arrears"})
	payload, err := json.Marshal(domain.CloudEvent{SpecVersion: "1.0", ID: s.ids.New(domain.PrefixEvent, now), Source: domain.CloudEventSource + tenantID,
		Type: domain.WebhookTestEventType, Subject: endpointID, Time: now, DataContentType: "application/json", Data: data,
		TenantID: tenantID, StreamType: domain.StreamTypeWebhookEndpoint, StreamID: endpointID, SchemaVersion: 1, Sandbox: mode.Sandbox()})
	if err != nil {
		return Delivery{}, err
	}
	return scanDelivery(tx.QueryRow(ctx, `INSERT INTO webhook_deliveries (id, tenant_id, sandbox, endpoint_id, event_type, payload, origin, status, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, 'test', 'pending', $7, $7) RETURNING `+deliveryColumns,
		id, tenantID, mode.Sandbox(), endpointID, domain.WebhookTestEventType, payload, now))
}

// MaxReplay bounds the events one replay request may queue.
const MaxReplay = 10_000

// Replay is the result of a replay request.
type Replay struct {
	Object     string    `json:"object"`
	ID         string    `json:"id"`
	EndpointID string    `json:"endpoint_id"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Deliveries int       `json:"deliveries"`
}

// ReplayTx queues new deliveries to the endpoint of every event of its
// tenant and mode recorded in [from, to) that its filters match now (endpoint
// events excepted, as in the outbox). Each gets a new webhook-id (the event
// id in the payload is the same): a receiver that deduplicates by webhook-id
// processes them again, which is what a replay is for.
func (s *Service) ReplayTx(ctx context.Context, tx pgx.Tx, tenantID string, mode domain.Mode, endpointID string, from, to time.Time) (Replay, error) {
	e, err := s.Get(ctx, tx, tenantID, mode, endpointID, false)
	if err != nil {
		return Replay{}, err
	}
	if err := s.requireEnabled(ctx, tx, tenantID, mode, endpointID); err != nil {
		return Replay{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	rp := Replay{Object: "webhook_replay", ID: s.ids.New("whrp", now), EndpointID: endpointID, From: from.UTC(), To: to.UTC()}
	patterns := likePatterns(e.EventTypes)
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND coalesce((metadata->>'sandbox')::boolean, false) = $2
		AND recorded_at >= $3 AND recorded_at < $4 AND stream_type <> $5 AND type LIKE ANY ($6)`,
		tenantID, mode.Sandbox(), from, to, domain.StreamTypeWebhookEndpoint, patterns).Scan(&n); err != nil {
		return rp, fmt.Errorf("webhooks: replay: %w", err)
	}
	if n > MaxReplay {
		return rp, domain.Invalid("replay range too large", domain.FieldError{Field: "to",
			Error: fmt.Sprintf("the range holds %d matching events, more than %d: split it", n, MaxReplay)})
	}
	rows, err := tx.Query(ctx, `SELECT id, type, recorded_at FROM events WHERE tenant_id = $1 AND coalesce((metadata->>'sandbox')::boolean, false) = $2
		AND recorded_at >= $3 AND recorded_at < $4 AND stream_type <> $5 AND type LIKE ANY ($6) ORDER BY recorded_at, position`,
		tenantID, mode.Sandbox(), from, to, domain.StreamTypeWebhookEndpoint, patterns)
	if err != nil {
		return rp, fmt.Errorf("webhooks: replay: %w", err)
	}
	var ids, eventIDs, types []string
	for rows.Next() {
		var id, typ string
		var at time.Time
		if err := rows.Scan(&id, &typ, &at); err != nil {
			rows.Close()
			return rp, err
		}
		ids = append(ids, domain.WebhookDeliveryID(endpointID, id, rp.ID, at))
		eventIDs, types = append(eventIDs, id), append(types, typ)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rp, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, tenant_id, sandbox, endpoint_id, event_id, event_type, origin, status, next_attempt_at, created_at)
		SELECT d.id, $4, $5, $6, d.event_id, d.type, 'replay', 'pending', $7, $7 FROM unnest($1::text[], $2::text[], $3::text[]) AS d(id, event_id, type)
		ON CONFLICT (id) DO NOTHING`, ids, eventIDs, types, tenantID, mode.Sandbox(), endpointID, now)
	if err != nil {
		return rp, fmt.Errorf("webhooks: replay: %w", err)
	}
	rp.Deliveries = int(tag.RowsAffected())
	return rp, nil
}

// likePatterns turns event type filters into SQL LIKE patterns.
func likePatterns(filters []string) []string {
	out := make([]string, 0, len(filters))
	for _, f := range filters {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
		switch {
		case f == "*":
			out = append(out, "%")
		case strings.HasSuffix(f, ".*"):
			out = append(out, esc.Replace(f[:len(f)-1])+"%")
		default:
			out = append(out, esc.Replace(f))
		}
	}
	return out
}
