package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/api"
	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// BenchmarkRequests compares an authenticated read (key lookup by SHA-256,
// rate limit, tenant query) with /healthz through the same server: the
// baseline of HTTP and routing alone, in the same run.
func BenchmarkRequests(b *testing.B) {
	_, pool := testDB.Isolated(b, 8)
	store := eventstore.New(pool)
	srv, secret, client := benchServer(b, store)
	for _, c := range []struct{ name, path, key string }{
		{"baseline_healthz", "/healthz", ""},
		{"organization", "/v1/organization", secret},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
					if c.key != "" {
						req.Header.Set("Authorization", "Bearer "+c.key)
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("%s: %d", c.path, resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkBatchIngest posts batches of 1,000 invoices spread over 1,000
// accounts (named by reference, as a bulk import names them) through POST
// /v1/ledger-entries/batch, from 1 and from 4 concurrent clients; and, in
// the same run, the physical limit it is judged against: COPY of the same
// number of event-shaped rows (id, tenant, stream, version, type, JSON
// data, time) into a plain table, one transaction per batch, from as many
// connections. The ratio metric is the API's entries/s over the COPY's
// rows/s.
func BenchmarkBatchIngest(b *testing.B) {
	const accounts, batch = 1000, 1000
	_, pool := testDB.Isolated(b, 16)
	store := eventstore.New(pool)
	ctx := context.Background()
	srv, secret, client := benchServer(b, store)
	post := func(path string, body []byte, want int) ([]byte, error) {
		req, _ := http.NewRequest("POST", srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != want {
			err = fmt.Errorf("POST %s: %d %.300s", path, resp.StatusCode, out)
		}
		return out, err
	}
	for i := range accounts {
		body, err := post("/v1/debtors", fmt.Appendf(nil, `{"reference":"D-%d","first_name":"Bench","last_name":"Debtor"}`, i), http.StatusCreated)
		if err != nil {
			b.Fatal(err)
		}
		var d struct{ ID string }
		if err := json.Unmarshal(body, &d); err != nil {
			b.Fatal(err)
		}
		if _, err := post("/v1/accounts", fmt.Appendf(nil, `{"reference":"A-%d","currency":"EUR","debtor_ids":[%q]}`, i, d.ID), http.StatusCreated); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	// body is a batch of invoices, each client on its own accounts (as
	// concurrent importers of different portfolios would be).
	body := func(buf []byte, client, clients int) []byte {
		buf = append(buf[:0], `{"entries":[`...)
		for j := range batch {
			n := next.Add(1)
			if j > 0 {
				buf = append(buf, ',')
			}
			acct := client + (j*clients)%accounts
			buf = fmt.Appendf(buf, `{"account_reference":"A-%d","reference":"INV-%d","kind":"invoice","amount":"%d.%02d","due_date":"2026-%02d-%02d"}`,
				acct, n, 10+n%900, n%100, 1+n%12, 1+n%28)
		}
		return append(buf, "]}"...)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_copy (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text, tenant_id text,
		stream_id text, stream_version bigint, type text, data jsonb, recorded_at timestamptz)`); err != nil {
		b.Fatal(err)
	}
	data := `{"entry":{"reference":"INV-000123","kind":"invoice","amount":"125.5","due_date":"2026-12-01","original_due_date":"2026-12-01"},"credit_applied":"0","to_credit":"0","at":"2026-11-21T08:00:00.123456Z"}`
	rates := map[int]float64{}
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("copy_baseline/clients=%d", clients), func(b *testing.B) {
			runClients(b, clients, func(c int) error {
				rows := make([][]any, batch)
				now := time.Now()
				for j := range rows {
					rows[j] = []any{fmt.Sprintf("evt_%d_%d", c, next.Add(1)), "ten_bench", fmt.Sprintf("acct_%d", j), int64(j), "ledger_entry.posted", data, now}
				}
				_, err := pool.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, []string{"id", "tenant_id", "stream_id", "stream_version", "type", "data", "recorded_at"},
					pgx.CopyFromRows(rows))
				return err
			})
			rates[clients] = float64(batch*b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rates[clients], "rows/s")
		})
		b.Run(fmt.Sprintf("http/clients=%d", clients), func(b *testing.B) {
			bufs := make([][]byte, clients)
			runClients(b, clients, func(c int) error {
				bufs[c] = body(bufs[c], c, clients)
				_, err := post("/v1/ledger-entries/batch", bufs[c], http.StatusCreated)
				return err
			})
			r := float64(batch*b.N) / b.Elapsed().Seconds()
			b.ReportMetric(r, "entries/s")
			b.ReportMetric(r/rates[clients], "x_copy")
		})
	}
}

// runClients runs b.N calls of f spread over clients goroutines (f gets
// the client's number).
func runClients(b *testing.B, clients int, f func(client int) error) {
	var n atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range clients {
		wg.Go(func() {
			for n.Add(1) <= int64(b.N) {
				if err := f(c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// benchServer serves the API over store with a live key of a new tenant
// (its secret returned) and a client keeping up to 64 connections.
func benchServer(b *testing.B, store *eventstore.Store) (*httptest.Server, string, *http.Client) {
	ctx := context.Background()
	var secret string
	if err := store.WithTx(ctx, func(tx pgx.Tx) error {
		t, _, err := store.CreateTenantTx(ctx, tx, "Bench", domain.Metadata{})
		if err != nil {
			return err
		}
		_, secret, _, err = store.CreateKeyTx(ctx, tx, eventstore.NewKey{TenantID: t.ID, Mode: domain.ModeLive}, domain.Metadata{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.NewServer(api.Deps{Log: logger, Store: store, Auth: eventstore.NewAuthenticator(store), Config: api.Config{RateLimit: generous}}))
	b.Cleanup(srv.Close)
	return srv, secret, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}
