package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

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
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
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
