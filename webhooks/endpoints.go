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
	"github.com/arrears/arrears/eventstore"
)

// DefaultRotationOverlap is how long the previous secret keeps signing after
// a rotation, unless the request says otherwise.
const DefaultRotationOverlap = 24 * time.Hour

// MaxRotationOverlap bounds a rotation's overlap.
const MaxRotationOverlap = 7 * 24 * time.Hour

// Config tunes the webhooks service.
type Config struct {
	SecretsKey      []byte        // AES-256 key sealing secrets; nil: the installation key
	Policy          AddressPolicy // what endpoint URLs may point at
	RotationOverlap time.Duration // default 24 h
}

// Service keeps webhook endpoints (each change an event on the endpoint's
// stream, with the row in webhook_endpoints in the same transaction) and
// the operations on deliveries.
type Service struct {
	store  *eventstore.Store
	keys   *Keyring
	cfg    Config
	ids    *domain.IDGenerator
	now    func() time.Time
	policy AddressPolicy
}

// NewService returns a Service.
func NewService(store *eventstore.Store, cfg Config) *Service {
	if cfg.RotationOverlap <= 0 {
		cfg.RotationOverlap = DefaultRotationOverlap
	}
	return &Service{store: store, keys: NewKeyring(store.Pool(), cfg.SecretsKey), cfg: cfg, ids: domain.NewIDGenerator(nil),
		now: time.Now, policy: cfg.Policy}
}

// Keyring returns the service's keyring.
func (s *Service) Keyring() *Keyring { return s.keys }

// Policy returns the address policy endpoint URLs are checked against.
func (s *Service) Policy() AddressPolicy { return s.policy }

// Ready prepares the keyring (it may read or create the installation key on
// a pool connection of its own): call it before a transaction that seals.
func (s *Service) Ready(ctx context.Context) error {
	_, err := s.keys.ready(ctx)
	return err
}

// Endpoint is a webhook endpoint as the API shows it.
type Endpoint struct {
	Object         string      `json:"object"`
	ID             string      `json:"id"`
	TenantID       string      `json:"-"`
	Mode           domain.Mode `json:"mode"`
	URL            string      `json:"url"`
	Description    string      `json:"description"`
	EventTypes     []string    `json:"event_types"`
	Enabled        bool        `json:"enabled"`
	DisabledReason *string     `json:"disabled_reason"`
	SecretPrefix   string      `json:"secret_prefix"`
	CreatedAt      time.Time   `json:"created_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
	Version        int64       `json:"-"`
	DeletedAt      *time.Time  `json:"-"`
}

func (e Endpoint) state() domain.WebhookEndpointState {
	return domain.WebhookEndpointState{URL: e.URL, Description: e.Description, EventTypes: e.EventTypes, Enabled: e.Enabled}
}

const endpointColumns = `id, tenant_id, mode, url, description, event_types, enabled, disabled_reason, secret_prefix, version, created_at, updated_at, deleted_at`

func scanEndpoint(row pgx.Row) (Endpoint, error) {
	e := Endpoint{Object: "webhook_endpoint"}
	var mode string
	err := row.Scan(&e.ID, &e.TenantID, &mode, &e.URL, &e.Description, &e.EventTypes, &e.Enabled, &e.DisabledReason, &e.SecretPrefix,
		&e.Version, &e.CreatedAt, &e.UpdatedAt, &e.DeletedAt)
	e.Mode = domain.Mode(mode)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	if e.EventTypes == nil {
		e.EventTypes = []string{}
	}
	return e, err
}

func notFound(id string) error {
	return domain.Errorf(domain.ENOTFOUND, "webhook endpoint %s not found", id)
}

// Get returns an endpoint of the tenant in mode; a deleted one, or anyone
// else's, is not found.
func (s *Service) Get(ctx context.Context, q Querier, tenantID string, mode domain.Mode, id string, forUpdate bool) (Endpoint, error) {
	sql := `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2 AND mode = $3 AND deleted_at IS NULL`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	e, err := scanEndpoint(q.QueryRow(ctx, sql, id, tenantID, string(mode)))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, notFound(id)
	}
	if err != nil {
		return e, fmt.Errorf("webhooks: endpoint: %w", err)
	}
	return e, nil
}

// EndpointByID returns an endpoint by id alone, deleted or not (the
// dispatcher).
func (s *Service) EndpointByID(ctx context.Context, q Querier, id string) (Endpoint, error) {
	e, err := scanEndpoint(q.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, notFound(id)
	}
	return e, err
}

// Querier is a pool or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// List returns the tenant's endpoints in mode by id, after afterID.
func (s *Service) List(ctx context.Context, tenantID string, mode domain.Mode, afterID string, limit int) ([]Endpoint, error) {
	rows, err := s.store.Pool().Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE tenant_id = $1 AND mode = $2 AND deleted_at IS NULL AND id > $3 ORDER BY id LIMIT $4`, tenantID, string(mode), afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("webhooks: endpoints: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) { return scanEndpoint(r) })
}

// NewEndpoint is what creating an endpoint takes.
type NewEndpoint struct {
	TenantID    string
	Mode        domain.Mode
	URL         string
	Description string
	EventTypes  []string // nil: ["*"]
	Enabled     *bool    // nil: true
}

func (s *Service) validate(url, description string, types []string) error {
	fe := s.policy.CheckURL("url", url)
	if len(description) > 500 {
		fe = append(fe, domain.FieldError{Field: "description", Error: "must be at most 500 characters"})
	}
	fe = append(fe, domain.ValidateWebhookEventTypes("event_types", types)...)
	if len(fe) > 0 {
		return domain.Invalid("invalid webhook endpoint", fe...)
	}
	return nil
}

func meta(m domain.Metadata, mode domain.Mode) domain.Metadata {
	m.Sandbox = mode.Sandbox()
	return m
}

// CreateTx creates an endpoint with a new secret (returned once) and records
// webhook_endpoint.created. Call Ready first.
func (s *Service) CreateTx(ctx context.Context, tx pgx.Tx, in NewEndpoint, m domain.Metadata) (Endpoint, string, domain.Event, error) {
	if in.EventTypes == nil {
		in.EventTypes = []string{"*"}
	}
	in.Description = strings.TrimSpace(in.Description)
	if err := s.validate(in.URL, in.Description, in.EventTypes); err != nil {
		return Endpoint{}, "", domain.Event{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	secret := NewSecret()
	e := Endpoint{Object: "webhook_endpoint", ID: s.ids.New(domain.PrefixWebhookEndpoint, now), TenantID: in.TenantID, Mode: in.Mode,
		URL: in.URL, Description: in.Description, EventTypes: in.EventTypes, Enabled: in.Enabled == nil || *in.Enabled,
		SecretPrefix: secret[:len(SecretPrefix)+6], CreatedAt: now, UpdatedAt: now, Version: 1}
	data, _ := json.Marshal(e.state())
	evs, err := s.store.AppendTx(ctx, tx, meta(m, in.Mode), eventstore.StreamAppend{TenantID: in.TenantID,
		StreamType: domain.StreamTypeWebhookEndpoint, StreamID: e.ID, Events: []domain.NewEvent{{Type: domain.EventWebhookEndpointCreated, Data: data}}})
	if err != nil {
		return e, "", domain.Event{}, err
	}
	sealed, err := s.keys.Seal(ctx, e.ID, secret)
	if err != nil {
		return e, "", domain.Event{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_endpoints (id, tenant_id, mode, url, description, event_types, enabled, secret_prefix, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)`,
		e.ID, e.TenantID, string(e.Mode), e.URL, e.Description, e.EventTypes, e.Enabled, e.SecretPrefix, now); err != nil {
		return e, "", domain.Event{}, fmt.Errorf("webhooks: create endpoint: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_secrets (endpoint_id, created_at, sealed) VALUES ($1, $2, $3)`, e.ID, now, sealed); err != nil {
		return e, "", domain.Event{}, fmt.Errorf("webhooks: store secret: %w", err)
	}
	return e, secret, evs[0], nil
}

// Patch is a partial update of an endpoint; nil fields stay.
type Patch struct {
	URL         *string
	Description *string
	EventTypes  []string
	Enabled     *bool
}

// UpdateTx applies p and records webhook_endpoint.updated with the whole new
// state; a patch that changes nothing records nothing (zero event).
func (s *Service) UpdateTx(ctx context.Context, tx pgx.Tx, tenantID string, mode domain.Mode, id string, p Patch, m domain.Metadata) (Endpoint, domain.Event, error) {
	e, err := s.Get(ctx, tx, tenantID, mode, id, true)
	if err != nil {
		return e, domain.Event{}, err
	}
	next := e
	if p.URL != nil {
		next.URL = *p.URL
	}
	if p.Description != nil {
		next.Description = strings.TrimSpace(*p.Description)
	}
	if p.EventTypes != nil {
		next.EventTypes = p.EventTypes
	}
	if p.Enabled != nil {
		next.Enabled = *p.Enabled
	}
	if err := s.validate(next.URL, next.Description, next.EventTypes); err != nil {
		return e, domain.Event{}, err
	}
	reenabled := p.Enabled != nil && *p.Enabled && e.DisabledReason != nil
	if next.URL == e.URL && next.Description == e.Description && equal(next.EventTypes, e.EventTypes) && next.Enabled == e.Enabled && !reenabled {
		return e, domain.Event{}, nil
	}
	if next.Enabled {
		next.DisabledReason = nil
	}
	return s.record(ctx, tx, next, domain.EventWebhookEndpointUpdated, next.state(), m)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// record appends one event to e's stream and writes e's row.
func (s *Service) record(ctx context.Context, tx pgx.Tx, e Endpoint, typ string, data any, m domain.Metadata) (Endpoint, domain.Event, error) {
	b, _ := json.Marshal(data)
	evs, err := s.store.AppendTx(ctx, tx, meta(m, e.Mode), eventstore.StreamAppend{TenantID: e.TenantID,
		StreamType: domain.StreamTypeWebhookEndpoint, StreamID: e.ID, ExpectedVersion: e.Version, Events: []domain.NewEvent{{Type: typ, Data: b}}})
	if err != nil {
		return e, domain.Event{}, err
	}
	e.Version++
	e.UpdatedAt = evs[0].RecordedAt
	if _, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, enabled = $5, disabled_reason = $6,
		version = $7, updated_at = $8, deleted_at = $9 WHERE id = $1`,
		e.ID, e.URL, e.Description, e.EventTypes, e.Enabled, e.DisabledReason, e.Version, e.UpdatedAt, e.DeletedAt); err != nil {
		return e, domain.Event{}, fmt.Errorf("webhooks: update endpoint: %w", err)
	}
	return e, evs[0], nil
}

// DeleteTx deletes an endpoint (webhook_endpoint.deleted): its pending
// deliveries are cancelled, and it is gone from the API.
func (s *Service) DeleteTx(ctx context.Context, tx pgx.Tx, tenantID string, mode domain.Mode, id string, m domain.Metadata) (Endpoint, domain.Event, error) {
	e, err := s.Get(ctx, tx, tenantID, mode, id, true)
	if err != nil {
		return e, domain.Event{}, err
	}
	now := s.now().UTC()
	e.DeletedAt = &now
	e.Enabled = false
	e, ev, err := s.record(ctx, tx, e, domain.EventWebhookEndpointDeleted, struct{}{}, m)
	if err != nil {
		return e, ev, err
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'cancelled', completed_at = $2, lease_until = NULL, next_attempt_at = NULL
		WHERE endpoint_id = $1 AND status = 'pending'`, id, now); err != nil {
		return e, ev, fmt.Errorf("webhooks: cancel deliveries: %w", err)
	}
	return e, ev, nil
}

// Rotation is the result of a secret rotation.
type Rotation struct {
	Endpoint                Endpoint
	Secret                  string
	PreviousSecretExpiresAt time.Time
	Event                   domain.Event
}

// RotateTx gives the endpoint a new secret; the previous one keeps signing
// (beside it) for overlap (0: the configured default), then stops. Call
// Ready first.
func (s *Service) RotateTx(ctx context.Context, tx pgx.Tx, tenantID string, mode domain.Mode, id string, overlap time.Duration, m domain.Metadata) (Rotation, error) {
	e, err := s.Get(ctx, tx, tenantID, mode, id, true)
	if err != nil {
		return Rotation{}, err
	}
	if overlap <= 0 {
		overlap = s.cfg.RotationOverlap
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	expires := now.Add(overlap)
	secret := NewSecret()
	sealed, err := s.keys.Seal(ctx, e.ID, secret)
	if err != nil {
		return Rotation{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_secrets SET expires_at = $2 WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > $2)`, e.ID, expires); err != nil {
		return Rotation{}, fmt.Errorf("webhooks: rotate: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_secrets (endpoint_id, created_at, sealed) VALUES ($1, $2, $3)`, e.ID, now, sealed); err != nil {
		return Rotation{}, fmt.Errorf("webhooks: rotate: %w", err)
	}
	e.SecretPrefix = secret[:len(SecretPrefix)+6]
	if _, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET secret_prefix = $2 WHERE id = $1`, e.ID, e.SecretPrefix); err != nil {
		return Rotation{}, fmt.Errorf("webhooks: rotate: %w", err)
	}
	e, ev, err := s.record(ctx, tx, e, domain.EventWebhookEndpointSecretRotated, domain.WebhookSecretRotated{PreviousSecretExpiresAt: expires}, m)
	if err != nil {
		return Rotation{}, err
	}
	return Rotation{Endpoint: e, Secret: secret, PreviousSecretExpiresAt: expires, Event: ev}, nil
}

// DisableTx disables an endpoint on the dispatcher's behalf
// (webhook_endpoint.disabled with the reason); an endpoint already disabled
// or deleted is left alone.
func (s *Service) DisableTx(ctx context.Context, tx pgx.Tx, id, reason string) error {
	e, err := scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return fmt.Errorf("webhooks: disable %s: %w", id, err)
	}
	if !e.Enabled || e.DeletedAt != nil {
		return nil
	}
	e.Enabled = false
	e.DisabledReason = &reason
	_, _, err = s.record(ctx, tx, e, domain.EventWebhookEndpointDisabled, domain.WebhookEndpointDisabled{Reason: reason},
		domain.Metadata{Actor: "system:webhook-dispatcher"})
	return err
}

// Secrets returns the endpoint's secrets that sign at now, newest first.
func (s *Service) Secrets(ctx context.Context, endpointID string, now time.Time) ([]string, error) {
	rows, err := s.store.Pool().Query(ctx, `SELECT sealed FROM webhook_secrets WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > $2)
		ORDER BY created_at DESC`, endpointID, now)
	if err != nil {
		return nil, fmt.Errorf("webhooks: secrets: %w", err)
	}
	sealed, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("webhooks: secrets: %w", err)
	}
	out := make([]string, 0, len(sealed))
	for _, b := range sealed {
		sec, err := s.keys.Open(ctx, endpointID, b)
		if err != nil {
			return nil, err
		}
		out = append(out, sec)
	}
	return out, nil
}
