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
	"github.com/shopspring/decimal"

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

// BenchmarkBalanceRead measures reading the current balance of an account
// of 5,001 events (opened, 2,500 invoices, 1,250 completed payments), the
// old way and the new, in the same run: "store/full_fold" folds the whole
// stream (Store.Load, what GET balance did on every request) and computes
// the balance; "store/cached" is Store.Read — one query for the events
// after the cached state (none here) — and the same computation, which is
// what a read costs after the account changed; "store/cached_derived" is
// Store.ReadDerived, as GET balance uses it: the balance kept with the
// cached state is not computed again while the account is unchanged;
// "store/balance_only" is the computation alone, on the folded account.
// "http/…" are the same through GET /v1/accounts/{id}/balance
// (authentication, routing, JSON): the fold through ?as_of_position=<the
// last event> (LoadAsOf: the whole stream, as the old handler; plus one
// query for the date), the cached read without it, and the cached read's
// throughput from 16 concurrent clients. The cached sub-benchmarks report
// x_full_fold, the full fold's ns/op over theirs.
func BenchmarkBalanceRead(b *testing.B) {
	const invoices, payments = 2500, 1250
	_, pool := testDB.Isolated(b, 8)
	store := eventstore.New(pool)
	ctx := context.Background()
	srv, secret, client := benchServer(b, store)
	do := func(method, path string, body []byte, want int) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != want {
			err = fmt.Errorf("%s %s: %d %.300s", method, path, resp.StatusCode, out)
		}
		return resp, out, err
	}
	_, out, err := do("POST", "/v1/accounts", []byte(`{"reference":"A-1","currency":"EUR"}`), http.StatusCreated)
	if err != nil {
		b.Fatal(err)
	}
	var acct struct{ ID, TenantID string }
	if err := json.Unmarshal(out, &acct); err != nil {
		b.Fatal(err)
	}
	var tenant string
	if err := pool.QueryRow(ctx, `SELECT tenant_id FROM events WHERE stream_id = $1`, acct.ID).Scan(&tenant); err != nil {
		b.Fatal(err)
	}
	batch := []byte(`{"entries":[`)
	for i := range invoices {
		if i > 0 {
			batch = append(batch, ',')
		}
		batch = fmt.Appendf(batch, `{"account_id":%q,"reference":"INV-%05d","kind":"invoice","amount":"%d.%02d","due_date":"2026-%02d-%02d"}`,
			acct.ID, i, 10+i%900, i%100, 1+i%12, 1+i%28)
	}
	if _, _, err := do("POST", "/v1/ledger-entries/batch", append(batch, "]}"...), http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if _, err := store.Execute(ctx, domain.Metadata{}, []eventstore.Command{eventstore.On(tenant, domain.StreamTypeAccount, acct.ID, domain.NewAccount,
		func(a *domain.Account) ([]domain.NewEvent, error) {
			var evs []domain.NewEvent
			for i := range payments {
				_, more, err := a.RecordPayment(fmt.Sprintf("pay_%05d", i), domain.PaymentInput{Amount: decimal.RequireFromString("7.50")}, now)
				if err != nil {
					return nil, err
				}
				evs = append(evs, more...)
			}
			return evs, nil
		})}, nil); err != nil {
		b.Fatal(err)
	}
	var events, head int64
	if err := pool.QueryRow(ctx, `SELECT count(*), max(position) FROM events WHERE stream_id = $1`, acct.ID).Scan(&events, &head); err != nil {
		b.Fatal(err)
	}
	if events != 1+invoices+2*payments {
		b.Fatalf("%d events", events)
	}
	today := domain.DateOf(now)
	var sink domain.Balance
	cmd := eventstore.On(tenant, domain.StreamTypeAccount, acct.ID, domain.NewAccount, nil)
	cached := func(agg domain.Aggregate, _ int64) error {
		sink = agg.(*domain.Account).Balance(today)
		return nil
	}
	if err := store.Read(ctx, cmd, cached); err != nil { // the first read takes Execute's aggregate
		b.Fatal(err)
	}
	full := map[string]float64{}
	ratio := func(b *testing.B, of string) {
		b.ReportMetric(full[of]/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "x_full_fold")
	}
	b.Run("store/full_fold", func(b *testing.B) {
		for b.Loop() {
			a := domain.NewAccount(tenant, acct.ID)
			if _, err := store.Load(ctx, tenant, acct.ID, a); err != nil {
				b.Fatal(err)
			}
			sink = a.Balance(today)
		}
		full["store"] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("store/cached", func(b *testing.B) {
		for b.Loop() {
			if err := store.Read(ctx, cmd, cached); err != nil {
				b.Fatal(err)
			}
		}
		ratio(b, "store")
	})
	b.Run("store/cached_derived", func(b *testing.B) {
		for b.Loop() {
			v, err := store.ReadDerived(ctx, cmd, "balance", func(agg domain.Aggregate, _ int64) (any, error) {
				return agg.(*domain.Account).Balance(today), nil
			})
			if err != nil {
				b.Fatal(err)
			}
			sink = v.(domain.Balance)
		}
		ratio(b, "store")
	})
	b.Run("store/balance_only", func(b *testing.B) {
		a := domain.NewAccount(tenant, acct.ID)
		if _, err := store.Load(ctx, tenant, acct.ID, a); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			sink = a.Balance(today)
		}
	})
	get := func(b *testing.B, path string) {
		for b.Loop() {
			if _, _, err := do("GET", path, nil, http.StatusOK); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("http/full_fold", func(b *testing.B) {
		get(b, fmt.Sprintf("/v1/accounts/%s/balance?as_of_position=%d", acct.ID, head))
		full["http"] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("http/cached", func(b *testing.B) {
		get(b, "/v1/accounts/"+acct.ID+"/balance")
		ratio(b, "http")
	})
	// Capacity: as many requests as 16 clients get answered (the client
	// shares the machine with the server and PostgreSQL).
	b.Run("http/cached_parallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := do("GET", "/v1/accounts/"+acct.ID+"/balance", nil, http.StatusOK); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
	_ = sink
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
