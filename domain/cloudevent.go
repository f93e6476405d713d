package domain

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// CloudEvent is the public envelope of an event on NATS (and in webhook
// payloads): CloudEvents 1.0 structured JSON mode, with arrears' extension
// attributes. It is a published contract: fields are only ever added.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`

	TenantID      string `json:"tenantid"`
	StreamType    string `json:"streamtype"`
	StreamID      string `json:"streamid"`
	StreamVersion int64  `json:"streamversion"`
	Position      int64  `json:"position"`
	SchemaVersion int    `json:"schemaversion"`
	Sandbox       bool   `json:"sandbox"`
}

// CloudEventSource is the CloudEvents source of every arrears event; the
// tenant is appended as a path segment.
const CloudEventSource = "/arrears/tenants/"

// ToCloudEvent returns e's public envelope.
func (e Event) ToCloudEvent() CloudEvent {
	return CloudEvent{
		SpecVersion:     "1.0",
		ID:              e.ID,
		Source:          CloudEventSource + e.TenantID,
		Type:            e.Type,
		Subject:         e.StreamID,
		Time:            e.RecordedAt.UTC(),
		DataContentType: "application/json",
		Data:            e.Data,
		TenantID:        e.TenantID,
		StreamType:      e.StreamType,
		StreamID:        e.StreamID,
		StreamVersion:   e.StreamVersion,
		Position:        e.Position,
		SchemaVersion:   e.SchemaVersion,
		Sandbox:         e.Metadata.Sandbox,
	}
}

// Event returns the event carried by a CloudEvent. Metadata other than the
// sandbox flag, the transaction id and the hash are not carried: consumers
// that need them read the event store.
func (c CloudEvent) Event() (Event, error) {
	if c.SpecVersion != "1.0" || c.ID == "" || c.TenantID == "" || c.StreamID == "" || c.StreamVersion <= 0 || c.Position <= 0 {
		return Event{}, fmt.Errorf("cloudevent %q: missing required attributes", c.ID)
	}
	return Event{
		Position:      c.Position,
		ID:            c.ID,
		TenantID:      c.TenantID,
		StreamType:    c.StreamType,
		StreamID:      c.StreamID,
		StreamVersion: c.StreamVersion,
		Type:          c.Type,
		SchemaVersion: max(c.SchemaVersion, 1),
		Data:          c.Data,
		Metadata:      Metadata{Sandbox: c.Sandbox},
		RecordedAt:    c.Time,
	}, nil
}

// Subject returns the NATS subject of e under prefix (default
// "arrears.events"): <prefix>.<tenant>.<stream_type>.<event type tokens>.
func (e Event) Subject(prefix string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(e.TenantID) + len(e.StreamType) + len(e.Type) + 3)
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteString(e.TenantID)
	b.WriteByte('.')
	b.WriteString(e.StreamType)
	b.WriteByte('.')
	b.WriteString(e.Type)
	return b.String()
}
