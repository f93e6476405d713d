package projections

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// StreamHeads projects every stream's head: version, event count, last event.
type StreamHeads struct{}

// Name implements Projection.
func (StreamHeads) Name() string { return "stream_heads" }

// Tables implements Projection.
func (StreamHeads) Tables() []Table {
	return []Table{{Name: "stream_heads", Key: []string{"tenant_id", "stream_id"}}}
}

// Apply implements Projection: one upsert per stream touched by the batch.
func (StreamHeads) Apply(ctx context.Context, tx pgx.Tx, events []domain.Event) error {
	type head struct {
		e     domain.Event
		count int64
		first time.Time
	}
	idx := make(map[[2]string]int, len(events))
	heads := make([]head, 0, len(events))
	for _, e := range events {
		k := [2]string{e.TenantID, e.StreamID}
		if i, ok := idx[k]; ok {
			heads[i].e = e
			heads[i].count++
			continue
		}
		idx[k] = len(heads)
		heads = append(heads, head{e: e, count: 1, first: e.RecordedAt})
	}
	n := len(heads)
	tenant, stream, stype, lastID, lastType := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	version, count, pos := make([]int64, n), make([]int64, n), make([]int64, n)
	first, last := make([]time.Time, n), make([]time.Time, n)
	sandbox := make([]bool, n)
	for i, h := range heads {
		sandbox[i] = h.e.Metadata.Sandbox
		tenant[i], stream[i], stype[i], lastID[i], lastType[i] = h.e.TenantID, h.e.StreamID, h.e.StreamType, h.e.ID, h.e.Type
		version[i], count[i], pos[i] = h.e.StreamVersion, h.count, h.e.Position
		first[i], last[i] = h.first, h.e.RecordedAt
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO stream_heads AS h (tenant_id, stream_id, stream_type, version, event_count,
		                               last_event_id, last_event_type, last_position, first_recorded, last_recorded, sandbox)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
		                     $6::text[], $7::text[], $8::bigint[], $9::timestamptz[], $10::timestamptz[], $11::boolean[])
		ON CONFLICT (tenant_id, stream_id) DO UPDATE SET
			version = EXCLUDED.version,
			event_count = h.event_count + EXCLUDED.event_count,
			last_event_id = EXCLUDED.last_event_id,
			last_event_type = EXCLUDED.last_event_type,
			last_position = EXCLUDED.last_position,
			last_recorded = EXCLUDED.last_recorded,
			sandbox = EXCLUDED.sandbox`,
		tenant, stream, stype, version, count, lastID, lastType, pos, first, last, sandbox)
	return err
}

// All returns every projection arrears runs, by name.
func All() []Projection {
	return []Projection{StreamHeads{}, Debtors{}, Ledger{}, Claims{}, Disputes{}, Campaigns{}, WebhookOutbox{}}
}

// ByName returns the projection called name.
func ByName(name string) (Projection, bool) {
	for _, p := range All() {
		if p.Name() == name {
			return p, true
		}
	}
	return nil, false
}
