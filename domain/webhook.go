package domain

import (
	"crypto/sha256"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Webhook identifiers and event types.
const (
	PrefixWebhookEndpoint = "whep" // whep_…: a webhook endpoint
	PrefixWebhookDelivery = "whdl" // whdl_…: one delivery of one message to one endpoint (the webhook-id header)

	StreamTypeWebhookEndpoint = "webhook_endpoint"

	EventWebhookEndpointCreated       = "webhook_endpoint.created"
	EventWebhookEndpointUpdated       = "webhook_endpoint.updated"
	EventWebhookEndpointSecretRotated = "webhook_endpoint.secret_rotated"
	EventWebhookEndpointDisabled      = "webhook_endpoint.disabled"
	EventWebhookEndpointDeleted       = "webhook_endpoint.deleted"

	// WebhookTestEventType is the type of the message POST
	// /v1/webhook-endpoints/{id}/test sends.
	WebhookTestEventType = "test.ping"

	// MaxWebhookEventTypes bounds an endpoint's filter list.
	MaxWebhookEventTypes = 50
)

// WebhookEndpointState is an endpoint's subscription as its events record it:
// the data of webhook_endpoint.created and webhook_endpoint.updated (the
// whole state each time). The signing secret is never part of it: the event
// stream is exported to auditors.
type WebhookEndpointState struct {
	URL         string   `json:"url"`
	Description string   `json:"description"`
	EventTypes  []string `json:"event_types"`
	Enabled     bool     `json:"enabled"`
}

// WebhookSecretRotated is the data of webhook_endpoint.secret_rotated.
type WebhookSecretRotated struct {
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at"`
}

// WebhookEndpointDisabled is the data of webhook_endpoint.disabled (the
// dispatcher disables an endpoint whose receiver answered 410 Gone).
type WebhookEndpointDisabled struct {
	Reason string `json:"reason"`
}

// ValidateWebhookEventTypes checks an endpoint's event type filters: each is
// "*", an exact event type ("payment.completed") or a prefix wildcard
// ("payment.*": every type under payment.). field names the list in errors.
func ValidateWebhookEventTypes(field string, types []string) []FieldError {
	if len(types) == 0 {
		return []FieldError{{Field: field, Error: `must list at least one event type (or "*")`}}
	}
	if len(types) > MaxWebhookEventTypes {
		return []FieldError{{Field: field, Error: "must list at most 50 event types"}}
	}
	var fe []FieldError
	for i, t := range types {
		if !validEventFilter(t) {
			fe = append(fe, FieldError{Field: field + "[" + strconv.Itoa(i) + "]",
				Error: `must be "*", an event type such as "payment.completed", or a prefix wildcard such as "payment.*"`})
		}
	}
	return fe
}

func validEventFilter(t string) bool {
	if t == "*" {
		return true
	}
	if len(t) > 200 {
		return false
	}
	t = strings.TrimSuffix(t, ".*")
	if t == "" {
		return false
	}
	for _, tok := range strings.Split(t, ".") {
		if tok == "" {
			return false
		}
		for _, c := range tok {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// MatchWebhookEventType reports whether an event of type typ passes any of
// the filters.
func MatchWebhookEventType(filters []string, typ string) bool {
	for _, f := range filters {
		switch {
		case f == "*":
			return true
		case strings.HasSuffix(f, ".*"):
			if strings.HasPrefix(typ, f[:len(f)-1]) {
				return true
			}
		case f == typ:
			return true
		}
	}
	return false
}

// WebhookDeliveryID is the stable id of the delivery of event eventID to
// endpoint endpointID (salt "" for the outbox; a replay passes its own): a
// ULID stamped with the event's time whose random part is a hash of the
// three, so rebuilding the outbox yields the same ids and ids still sort by
// event time.
func WebhookDeliveryID(endpointID, eventID, salt string, at time.Time) string {
	h := sha256.Sum256([]byte(endpointID + "\x00" + eventID + "\x00" + salt))
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(at))
	_ = id.SetEntropy(h[:10])
	return PrefixWebhookDelivery + "_" + id.String()
}
