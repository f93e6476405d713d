package domain

import (
	"encoding/json"
	"time"
)

// Stream types. A stream is one aggregate's ordered event history; its id
// carries a type prefix (acct_…, clm_…), unique within a tenant.
const (
	StreamTypeAccount = "account"
	StreamTypeDebtor  = "debtor"
	StreamTypeClaim   = "claim"
	StreamTypeTenant  = "tenant"
)

// Metadata is the context recorded with every event: who did it, under which
// request, and why. It is never part of the business data.
type Metadata struct {
	RequestID      string `json:"request_id,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	Actor          string `json:"actor,omitempty"` // API key id, or "system:<worker>"
	CausationID    string `json:"causation_id,omitempty"`
	CorrelationID  string `json:"correlation_id,omitempty"`
	Sandbox        bool   `json:"sandbox,omitempty"`
}

// NewEvent is an event a command produced, not yet recorded.
type NewEvent struct {
	Type          string          // e.g. "ledger_entry.posted"; dots become NATS subject tokens
	SchemaVersion int             // 0 means 1
	Data          json.RawMessage // JSON object
}

// Event is a recorded event, as stored in the event store.
type Event struct {
	Position      int64           `json:"position"` // global, assigned at insert; gaps possible (rolled back transactions)
	TxID          int64           `json:"-"`        // xid8 of the appending transaction: with Position, the gap-free global order
	ID            string          `json:"id"`       // evt_<ULID>
	TenantID      string          `json:"tenant_id"`
	StreamType    string          `json:"stream_type"`
	StreamID      string          `json:"stream_id"`
	StreamVersion int64           `json:"stream_version"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	Data          json.RawMessage `json:"data"`
	Metadata      Metadata        `json:"metadata"`
	RecordedAt    time.Time       `json:"recorded_at"`
	Hash          []byte          `json:"hash,omitempty"` // SHA-256(previous hash ‖ canonical event), per stream
}

// Checkpoint is a position in the gap-free global order of events:
// (transaction id, position) of the last event read. The zero value is the
// beginning of history.
type Checkpoint struct {
	TxID     int64 `json:"tx_id"`
	Position int64 `json:"position"`
}

// Checkpoint returns the checkpoint just after e.
func (e Event) Checkpoint() Checkpoint { return Checkpoint{TxID: e.TxID, Position: e.Position} }

// Less reports whether c is before o in the global order.
func (c Checkpoint) Less(o Checkpoint) bool {
	return c.TxID < o.TxID || (c.TxID == o.TxID && c.Position < o.Position)
}

// Aggregate is anything rebuilt by folding its stream's events.
type Aggregate interface {
	Apply(typ string, data json.RawMessage) error
	// AppliedEvents counts the events applied so far (it tells whether a
	// failed command changed the aggregate).
	AppliedEvents() int64
}
