package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/eventstore"
)

// TestBalanceReadDuringPayments: GET balance (the event store's cached
// read) while payments are recorded on the same account, under the race
// detector. Writers record payments and, after each, read the balance: it
// includes the payment (its version is at least the version as of the
// payment's position, folded from the start). Readers poll the balance:
// paid, invoiced and the version never go back; outstanding + paid =
// invoiced + fees; two reads of one version are identical. Afterwards
// every version read is compared with the balance as_of_position of that
// version's event — a fold of the stream to exactly there.
func TestBalanceReadDuringPayments(t *testing.T) {
	t.Parallel()
	writers, each, readers := 6, 25, 4
	if testing.Short() {
		writers, each = 3, 10
	}
	e := newEnv(t, envOptions{maxConns: 20})
	ten := e.tenant(t, "Balance reads")
	k := e.key(t, ten.ID, eventstore.NewKey{Name: "live"})
	acct := e.createAccount(t, k.Secret, map[string]any{"currency": "EUR"})
	// Due far ahead: the figures do not depend on the day the test runs.
	e.postEntries(t, k.Secret,
		map[string]any{"account_id": acct.ID, "reference": "INV-1", "kind": "invoice", "amount": "900.00", "due_date": "2030-01-01"},
		map[string]any{"account_id": acct.ID, "reference": "INV-2", "kind": "invoice", "amount": "100.00", "due_date": "2030-02-01"})
	path := "/v1/accounts/" + acct.ID + "/balance"

	var failOnce sync.Once
	fail := func(format string, args ...any) { failOnce.Do(func() { t.Errorf(format, args...) }) }
	type view = map[string]any
	get := func(p string) (view, bool) {
		r, err := e.trySend(req{Method: http.MethodGet, Path: p, Auth: k.Secret})
		if err != nil || r.Status != http.StatusOK {
			fail("GET %s: %v %v", p, r, err)
			return nil, false
		}
		var v view
		if err := json.Unmarshal(r.Body, &v); err != nil {
			fail("GET %s: %v", p, err)
			return nil, false
		}
		delete(v, "as_of") // today: the one field a later fold may not share
		return v, true
	}
	num := func(v view, field string) decimal.Decimal { return decimal.RequireFromString(v[field].(string)) }
	version := func(v view) int64 { return int64(v["version"].(float64)) }

	var mu sync.Mutex
	observed := map[int64]view{}
	observe := func(v view) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := observed[version(v)]; ok && !maps.EqualFunc(prev, v, func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
			fail("two reads of version %d differ:\n%v\n%v", version(v), prev, v)
		}
		observed[version(v)] = v
	}
	check := func(v view) {
		if !num(v, "outstanding").Add(num(v, "paid")).Equal(num(v, "invoiced").Add(num(v, "fees"))) {
			fail("version %d: outstanding + paid ≠ invoiced + fees: %v", version(v), v)
		}
		observe(v)
	}

	done := make(chan struct{})
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			var last view
			for {
				select {
				case <-done:
					return
				default:
				}
				v, ok := get(path)
				if !ok {
					return
				}
				check(v)
				if last != nil && (version(v) < version(last) || num(v, "paid").LessThan(num(last, "paid")) || num(v, "invoiced").LessThan(num(last, "invoiced"))) {
					fail("went back:\n%v\n%v", last, v)
				}
				last = v
			}
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf(`{"amount":"1.25","reference":"PAY-%d-%d"}`, w, i)
				if i%5 == 4 { // now and then a fee: invoiced + fees moves too
					body = fmt.Sprintf(`{"entries":[{"account_id":%q,"reference":"FEE-%d-%d","kind":"fee","amount":"2.50","target_reference":"INV-2"}]}`, acct.ID, w, i)
				}
				p := "/v1/accounts/" + acct.ID + "/payments"
				if i%5 == 4 {
					p = "/v1/ledger-entries/batch"
				}
				r, err := e.trySend(req{Method: http.MethodPost, Path: p, Auth: k.Secret, Body: body})
				if err != nil || r.Status != http.StatusCreated {
					fail("POST %s: %v %v", p, r, err)
					return
				}
				pos := r.Header.Get("Arrears-Position")
				at, ok := get(path + "?as_of_position=" + pos)
				if !ok {
					return
				}
				now, ok := get(path)
				if !ok {
					return
				}
				check(at)
				check(now)
				if version(now) < version(at) || num(now, "paid").LessThan(num(at, "paid")) {
					fail("a read after the write at position %s does not include it:\nafter %v\nat    %v", pos, now, at)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	require.False(t, t.Failed())

	// Every version read equals the fold of the stream to that version.
	versions := slices.Sorted(maps.Keys(observed))
	require.Greater(t, len(versions), writers*each/2, "the reads saw the account change")
	for _, v := range versions {
		var pos int64
		require.NoError(t, e.pool.QueryRow(t.Context(), `SELECT position FROM events WHERE tenant_id = $1 AND stream_id = $2 AND stream_version = $3`,
			ten.ID, acct.ID, v).Scan(&pos))
		folded, ok := get(fmt.Sprintf("%s?as_of_position=%d", path, pos))
		require.True(t, ok)
		require.Equal(t, folded, observed[v], "version %d", v)
	}
	final, ok := get(path)
	require.True(t, ok)
	require.Equal(t, versions[len(versions)-1], version(final))
	payments := writers * (each - each/5)
	require.Equal(t, decimal.RequireFromString("1.25").Mul(decimal.NewFromInt(int64(payments))).StringFixed(2), final["paid"])
	t.Logf("%d versions read during %d writes", len(versions), writers*each)
}
