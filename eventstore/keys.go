package eventstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// Secret prefixes: sk_live_…, sk_test_… (API keys) and tok_… (access tokens).
const (
	SecretPrefixLive = "sk_live_"
	SecretPrefixTest = "sk_test_"
	TokenPrefix      = "tok_"
	secretChars      = 40 // from 62 symbols: ≈ 238 bits
	displayChars     = 16 // of the secret kept for display, e.g. "sk_live_Ab12Cd34"
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newSecret returns prefix + secretChars random alphanumerics.
func newSecret(prefix string) string {
	b := make([]byte, secretChars)
	out := make([]byte, 0, len(prefix)+secretChars)
	out = append(out, prefix...)
	for len(out) < len(prefix)+secretChars {
		if _, err := rand.Read(b); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		for _, c := range b {
			if c < 248 { // 248 = 4×62: no modulo bias
				out = append(out, alphabet[c%62])
				if len(out) == len(prefix)+secretChars {
					break
				}
			}
		}
	}
	return string(out)
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// WithTx runs fn in a transaction and commits it; after a commit that
// appended events it wakes the relay. Use the *Tx methods inside.
func (s *Store) WithTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, s.pool, fn); err != nil {
		return err
	}
	s.Notify()
	return nil
}

// CreateTenantTx records a new tenant (event tenant.created on its stream).
func (s *Store) CreateTenantTx(ctx context.Context, tx pgx.Tx, name string, meta domain.Metadata) (domain.Tenant, domain.Event, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return domain.Tenant{}, domain.Event{}, domain.Invalid("invalid tenant", domain.FieldError{Field: "name", Error: "must be 1 to 200 characters"})
	}
	now := recordedAt(s.now())
	t := domain.Tenant{ID: s.ids.New(domain.PrefixTenant, now), Name: name, CreatedAt: now}
	data, _ := json.Marshal(map[string]any{"name": name})
	evs, err := s.AppendTx(ctx, tx, meta, StreamAppend{TenantID: t.ID, StreamType: domain.StreamTypeTenant, StreamID: t.ID,
		Events: []domain.NewEvent{{Type: "tenant.created", Data: data}}})
	if err != nil {
		return t, domain.Event{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)`, t.ID, t.Name, t.CreatedAt); err != nil {
		return t, domain.Event{}, fmt.Errorf("eventstore: create tenant: %w", err)
	}
	return t, evs[0], nil
}

// Tenant returns one tenant.
func (s *Store) Tenant(ctx context.Context, id string) (domain.Tenant, error) {
	var t domain.Tenant
	err := s.pool.QueryRow(ctx, `SELECT id, name, created_at FROM tenants WHERE id = $1`, id).Scan(&t.ID, &t.Name, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, domain.Errorf(domain.ENOTFOUND, "tenant %s not found", id)
	}
	if err != nil {
		return t, fmt.Errorf("eventstore: tenant: %w", err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return t, nil
}

// Tenants returns every tenant, oldest first.
func (s *Store) Tenants(ctx context.Context) ([]domain.Tenant, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, created_at FROM tenants ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("eventstore: tenants: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Tenant, error) {
		var t domain.Tenant
		err := r.Scan(&t.ID, &t.Name, &t.CreatedAt)
		t.CreatedAt = t.CreatedAt.UTC()
		return t, err
	})
}

// NewKey describes a key to create.
type NewKey struct {
	TenantID  string
	Name      string
	Mode      domain.Mode
	Scopes    []string
	ReadOnly  bool
	ExpiresAt *time.Time
}

// Validate returns field errors for an invalid NewKey.
func (k NewKey) Validate(now time.Time) error {
	var fe []domain.FieldError
	if len(k.Name) > 200 {
		fe = append(fe, domain.FieldError{Field: "name", Error: "must be at most 200 characters"})
	}
	if k.Mode != domain.ModeLive && k.Mode != domain.ModeTest {
		fe = append(fe, domain.FieldError{Field: "mode", Error: "must be live or test"})
	}
	fe = append(fe, domain.ValidateScopes(k.Scopes)...)
	if k.ExpiresAt != nil && !k.ExpiresAt.After(now) {
		fe = append(fe, domain.FieldError{Field: "expires_at", Error: "must be in the future"})
	}
	if len(fe) > 0 {
		return domain.Invalid("invalid API key", fe...)
	}
	return nil
}

// CreateKeyTx creates an API key and records api_key.created (without the
// secret). The secret is returned once and never stored.
func (s *Store) CreateKeyTx(ctx context.Context, tx pgx.Tx, in NewKey, meta domain.Metadata) (domain.APIKey, string, domain.Event, error) {
	now := recordedAt(s.now())
	if err := in.Validate(now); err != nil {
		return domain.APIKey{}, "", domain.Event{}, err
	}
	if in.Scopes == nil {
		in.Scopes = []string{}
	}
	prefix := SecretPrefixLive
	if in.Mode == domain.ModeTest {
		prefix = SecretPrefixTest
	}
	secret := newSecret(prefix)
	k := domain.APIKey{ID: s.ids.New(domain.PrefixAPIKey, now), TenantID: in.TenantID, Name: in.Name, Prefix: secret[:displayChars],
		Mode: in.Mode, Scopes: in.Scopes, ReadOnly: in.ReadOnly, CreatedAt: now, ExpiresAt: in.ExpiresAt}
	data, _ := json.Marshal(map[string]any{"name": k.Name, "prefix": k.Prefix, "mode": k.Mode, "scopes": k.Scopes, "read_only": k.ReadOnly, "expires_at": k.ExpiresAt})
	meta.Sandbox = in.Mode.Sandbox()
	evs, err := s.AppendTx(ctx, tx, meta, StreamAppend{TenantID: in.TenantID, StreamType: "api_key", StreamID: k.ID,
		Events: []domain.NewEvent{{Type: "api_key.created", Data: data}}})
	if err != nil {
		return k, "", domain.Event{}, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, mode, scopes, read_only, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		k.ID, k.TenantID, k.Name, k.Prefix, hashSecret(secret), string(k.Mode), k.Scopes, k.ReadOnly, k.CreatedAt, k.ExpiresAt)
	if err != nil {
		return k, "", domain.Event{}, fmt.Errorf("eventstore: create key: %w", err)
	}
	return k, secret, evs[0], nil
}

// RevokeKeyTx revokes a key of the tenant in mode (api_key.revoked); its
// access tokens stop working with it. Revoking a revoked key changes nothing
// and returns the earlier revocation event.
func (s *Store) RevokeKeyTx(ctx context.Context, tx pgx.Tx, tenantID string, mode domain.Mode, id string, meta domain.Metadata) (domain.APIKey, domain.Event, error) {
	k, err := s.Key(ctx, tenantID, mode, id)
	if err != nil {
		return k, domain.Event{}, err
	}
	if k.RevokedAt != nil {
		evs, err := s.ReadStream(ctx, tenantID, id, 1)
		if err != nil || len(evs) == 0 {
			return k, domain.Event{}, err
		}
		return k, evs[0], nil
	}
	now := recordedAt(s.now())
	meta.Sandbox = mode.Sandbox()
	evs, err := s.AppendTx(ctx, tx, meta, StreamAppend{TenantID: tenantID, StreamType: "api_key", StreamID: id, ExpectedVersion: 1,
		Events: []domain.NewEvent{{Type: "api_key.revoked", Data: json.RawMessage(`{}`)}}})
	if err != nil {
		return k, domain.Event{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1`, id, now); err != nil {
		return k, domain.Event{}, fmt.Errorf("eventstore: revoke key: %w", err)
	}
	k.RevokedAt = &now
	return k, evs[0], nil
}

const keyColumns = `id, tenant_id, name, prefix, mode, scopes, read_only, created_at, expires_at, revoked_at, last_used_at`

func scanKey(row pgx.Row) (domain.APIKey, error) {
	var k domain.APIKey
	var mode string
	err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Prefix, &mode, &k.Scopes, &k.ReadOnly, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.LastUsedAt)
	k.Mode = domain.Mode(mode)
	k.CreatedAt = k.CreatedAt.UTC()
	for _, t := range []*time.Time{k.ExpiresAt, k.RevokedAt, k.LastUsedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return k, err
}

// Key returns a key of the tenant in mode; anything else is not found.
func (s *Store) Key(ctx context.Context, tenantID string, mode domain.Mode, id string) (domain.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1 AND tenant_id = $2 AND mode = $3`, id, tenantID, string(mode)))
	if errors.Is(err, pgx.ErrNoRows) {
		return k, domain.Errorf(domain.ENOTFOUND, "API key %s not found", id)
	}
	if err != nil {
		return k, fmt.Errorf("eventstore: key: %w", err)
	}
	return k, nil
}

// KeyByID returns a key by id alone (operator tools).
func (s *Store) KeyByID(ctx context.Context, id string) (domain.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return k, domain.Errorf(domain.ENOTFOUND, "API key %s not found", id)
	}
	if err != nil {
		return k, fmt.Errorf("eventstore: key: %w", err)
	}
	return k, nil
}

// Keys lists a tenant's keys in mode (all modes when mode is ""), by id,
// after the id afterID, at most limit.
func (s *Store) Keys(ctx context.Context, tenantID string, mode domain.Mode, afterID string, limit int) ([]domain.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys
		WHERE tenant_id = $1 AND ($2 = '' OR mode = $2) AND id > $3 ORDER BY id LIMIT $4`, tenantID, string(mode), afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("eventstore: keys: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.APIKey, error) { return scanKey(r) })
}

// Authenticator turns presented secrets into principals.
type Authenticator struct {
	s        *Store
	mu       sync.Mutex
	lastUsed map[string]time.Time // key id → last time last_used_at was written
}

// NewAuthenticator returns an Authenticator over s.
func NewAuthenticator(s *Store) *Authenticator {
	return &Authenticator{s: s, lastUsed: map[string]time.Time{}}
}

var errBadCredentials = domain.Errorf(domain.EUNAUTHORIZED, "invalid, expired or revoked API key or token")

// Authenticate returns the principal for an API key (sk_live_…, sk_test_…)
// or an access token (tok_…). Only hashes are looked up, and the stored hash
// is compared in constant time.
func (a *Authenticator) Authenticate(ctx context.Context, secret string) (domain.Principal, error) {
	h := hashSecret(secret)
	var k domain.APIKey
	var stored []byte
	var err error
	now := a.s.now()
	switch {
	case strings.HasPrefix(secret, SecretPrefixLive), strings.HasPrefix(secret, SecretPrefixTest):
		k, stored, err = a.lookup(ctx, `SELECT `+keyColumns+`, secret_hash FROM api_keys WHERE secret_hash = $1`, h)
	case strings.HasPrefix(secret, TokenPrefix):
		var expires time.Time
		k, stored, err = a.lookup(ctx, `SELECT k.id, k.tenant_id, k.name, k.prefix, k.mode, k.scopes, k.read_only, k.created_at,
			k.expires_at, k.revoked_at, k.last_used_at, t.token_hash, t.expires_at
			FROM access_tokens t JOIN api_keys k ON k.id = t.key_id WHERE t.token_hash = $1`, h, &expires)
		if err == nil && !now.Before(expires) {
			return domain.Principal{}, errBadCredentials
		}
	default:
		return domain.Principal{}, errBadCredentials
	}
	if err != nil {
		return domain.Principal{}, err
	}
	if subtle.ConstantTimeCompare(stored, h) != 1 || !k.Active(now) {
		return domain.Principal{}, errBadCredentials
	}
	a.touch(k.ID, now)
	return domain.Principal{TenantID: k.TenantID, KeyID: k.ID, Mode: k.Mode, Scopes: k.Scopes, ReadOnly: k.ReadOnly}, nil
}

func (a *Authenticator) lookup(ctx context.Context, sql string, h []byte, extra ...any) (domain.APIKey, []byte, error) {
	var k domain.APIKey
	var mode string
	var stored []byte
	dest := append([]any{&k.ID, &k.TenantID, &k.Name, &k.Prefix, &mode, &k.Scopes, &k.ReadOnly, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.LastUsedAt, &stored}, extra...)
	err := a.s.pool.QueryRow(ctx, sql, h).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, nil, errBadCredentials
	}
	if err != nil {
		return k, nil, fmt.Errorf("eventstore: authenticate: %w", err)
	}
	k.Mode = domain.Mode(mode)
	return k, stored, nil
}

// touch records a key's use at most once a minute, off the request path.
func (a *Authenticator) touch(id string, now time.Time) {
	a.mu.Lock()
	last := a.lastUsed[id]
	if now.Sub(last) < time.Minute {
		a.mu.Unlock()
		return
	}
	a.lastUsed[id] = now
	a.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = a.s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, id, now)
	}()
}

// TokenTTL is how long an access token from the client-credentials exchange lives.
const TokenTTL = time.Hour

// IssueToken exchanges a key's id and secret (OAuth2 client credentials) for
// a short-lived access token carrying the key's tenant, mode and scopes.
func (a *Authenticator) IssueToken(ctx context.Context, clientID, clientSecret string) (string, time.Time, error) {
	p, err := a.Authenticate(ctx, clientSecret)
	if err != nil || p.KeyID != clientID || strings.HasPrefix(clientSecret, TokenPrefix) {
		return "", time.Time{}, errBadCredentials
	}
	token := newSecret(TokenPrefix)
	expires := recordedAt(a.s.now().Add(TokenTTL))
	if _, err := a.s.pool.Exec(ctx, `INSERT INTO access_tokens (token_hash, key_id, expires_at) VALUES ($1, $2, $3)`, hashSecret(token), clientID, expires); err != nil {
		return "", time.Time{}, fmt.Errorf("eventstore: issue token: %w", err)
	}
	return token, expires, nil
}
