package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// BenchmarkAppend measures appends of batches of the given size (events per
// transaction, one per stream), reporting events/s.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := newStoreB(b)
			ctx := context.Background()
			data := json.RawMessage(`{"amount":"125.50","currency":"EUR","reference":"inv-000123","due_date":"2026-12-01"}`)
			b.ResetTimer()
			for b.Loop() {
				appends := make([]eventstore.StreamAppend, size)
				for i := range appends {
					appends[i] = eventstore.StreamAppend{TenantID: "ten_bench", StreamType: "account", StreamID: ids.New("acct", time.Now()),
						Events: []domain.NewEvent{{Type: "ledger_entry.posted", Data: data}}}
				}
				if _, err := s.Append(ctx, domain.Metadata{RequestID: "req_bench"}, appends...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkReadAll measures the gap-free global read in pages of 1000.
func BenchmarkReadAll(b *testing.B) {
	s := newStoreB(b)
	ctx := context.Background()
	var have int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	for ; have < 50_000; have += 1000 {
		appends := make([]eventstore.StreamAppend, 1000)
		for i := range appends {
			appends[i] = eventstore.StreamAppend{TenantID: "ten_bench", StreamType: "account", StreamID: ids.New("acct", time.Now()),
				Events: []domain.NewEvent{{Type: "ledger_entry.posted", Data: json.RawMessage(`{"amount":"125.50","currency":"EUR"}`)}}}
		}
		if _, err := s.Append(ctx, domain.Metadata{}, appends...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		var cp domain.Checkpoint
		for {
			evs, err := s.ReadAll(ctx, cp, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			n += len(evs)
			cp = evs[len(evs)-1].Checkpoint()
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

func newStoreB(b *testing.B) *eventstore.Store {
	b.Helper()
	return newStore(b, 8)
}

// BenchmarkBaselineInsert is the physical limit BenchmarkAppend is judged
// against, measured in the same run: the same rows inserted into a plain
// table (no hash chain, no triggers, no version check) with the same unnest
// statement, one transaction per batch.
func BenchmarkBaselineInsert(b *testing.B) {
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := newStoreB(b)
			ctx := context.Background()
			if _, err := s.Pool().Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_plain (
				position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text, tenant_id text, stream_id text,
				stream_version bigint, type text, data jsonb, recorded_at timestamptz)`); err != nil {
				b.Fatal(err)
			}
			data := `{"amount":"125.50","currency":"EUR","reference":"inv-000123","due_date":"2026-12-01"}`
			b.ResetTimer()
			for b.Loop() {
				id, tenant, stream, typ, d := make([]string, size), make([]string, size), make([]string, size), make([]string, size), make([]string, size)
				version := make([]int64, size)
				for i := range size {
					id[i], tenant[i], stream[i], typ[i], d[i], version[i] = ids.New("evt", time.Now()), "ten_bench", ids.New("acct", time.Now()), "ledger_entry.posted", data, 1
				}
				if _, err := s.Pool().Exec(ctx, `INSERT INTO bench_plain (id, tenant_id, stream_id, stream_version, type, data, recorded_at)
					SELECT id, t, s, v, ty, d::jsonb, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[]) AS u(id, t, s, v, ty, d)`,
					id, tenant, stream, version, typ, d); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
