package domain

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mode separates live data from sandbox data: a test key sees only sandbox
// data, a live key only live data. Modes never cross.
type Mode string

// The two modes.
const (
	ModeLive Mode = "live"
	ModeTest Mode = "test"
)

// Sandbox reports whether m is the test mode.
func (m Mode) Sandbox() bool { return m == ModeTest }

// Resources that scopes name: "<resource>:read" or "<resource>:write".
var Resources = []string{
	"accounts", "debtors", "claims", "ledgers", "payments", "campaigns",
	"disputes", "statements", "events", "webhooks", "keys",
}

// Tenant is a creditor organisation: every resource belongs to one.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// APIKey is a tenant's credential. Only the SHA-256 of the secret and a
// display prefix are stored; the secret is shown once, at creation.
type APIKey struct {
	ID         string     `json:"id"` // key_…
	TenantID   string     `json:"-"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"` // first characters of the secret, for recognition
	Mode       Mode       `json:"mode"`
	Scopes     []string   `json:"scopes"` // empty: full access
	ReadOnly   bool       `json:"read_only"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// Active reports whether the key can authenticate at now.
func (k APIKey) Active(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// Principal is who is calling: the tenant, the key (directly or through a
// token exchanged for it), its mode and what it may do.
type Principal struct {
	TenantID string
	KeyID    string
	Mode     Mode
	Scopes   []string
	ReadOnly bool
}

// Sandbox reports whether the principal sees sandbox data.
func (p Principal) Sandbox() bool { return p.Mode.Sandbox() }

// Can returns nil if the principal may perform action ("read" or "write")
// on resource, and an EFORBIDDEN error naming what is missing otherwise.
// A write scope implies read; an empty scope list is full access; a
// read-only key can never write.
func (p Principal) Can(resource, action string) error {
	if action == "write" && p.ReadOnly {
		return &Error{Code: EFORBIDDEN, Reason: "read_only_key", Message: "this API key is read-only"}
	}
	if len(p.Scopes) == 0 {
		return nil
	}
	if slices.Contains(p.Scopes, resource+":"+action) || (action == "read" && slices.Contains(p.Scopes, resource+":write")) {
		return nil
	}
	return &Error{Code: EFORBIDDEN, Reason: "missing_scope", Message: "this API key lacks the scope " + resource + ":" + action}
}

// ValidateScopes checks every scope is "<resource>:read|write".
func ValidateScopes(scopes []string) []FieldError {
	var fe []FieldError
	for i, s := range scopes {
		res, act, ok := strings.Cut(s, ":")
		if !ok || !slices.Contains(Resources, res) || (act != "read" && act != "write") {
			fe = append(fe, FieldError{Field: "scopes[" + strconv.Itoa(i) + "]", Error: "must be <resource>:read or <resource>:write with resource one of " + strings.Join(Resources, ", ")})
		}
	}
	return fe
}
