package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/projections"
)

// account is one account the scenarios write to and read.
type account struct {
	id, ref string
}

type runner struct {
	env      Env
	o        Options
	client   *http.Client
	accounts []account
	// owned[c] are client c's accounts: clients never write the same
	// account, as independent creditor systems would not.
	owned [][]account
	// nextRef numbers entry references across scenarios (unique per run).
	nextRef atomic.Int64
	names   []string // every projection
	idem    atomic.Int64
	probe   *pauseProbe // nil without Env.PauseProbe
}

func newRunner(env Env, o Options) (*runner, error) {
	if env.BaseURL == "" || env.APIKey == "" || env.Pool == nil || env.Store == nil {
		return nil, errors.New("bench: Env needs BaseURL, APIKey, Pool and Store")
	}
	if env.Log == nil {
		env.Log = io.Discard
	}
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute, DisableCompression: true}
	r := &runner{env: env, o: o, client: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
	for _, p := range projections.All() {
		r.names = append(r.names, p.Name())
	}
	return r, nil
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.env.Log, "bench: "+format+"\n", args...)
}

// progressEvery is how often a long phase says how far it got.
const progressEvery = 10 * time.Second

// progress logs what() every progressEvery until the returned function is
// called.
func (r *runner) progress(what func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.logf("  … %s", what())
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// httpError is a response other than the one expected.
type httpError struct {
	method, path string
	status       int
	body         string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %.500s", e.method, e.path, e.status, e.body)
}

// do sends one request and reads the whole response; a status other than
// want is an error.
func (r *runner) do(ctx context.Context, method, path string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.env.BaseURL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.env.APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if r.o.Idempotency {
			req.Header.Set("Idempotency-Key", "bench-"+strconv.FormatInt(r.idem.Add(1), 10))
		}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return out, &httpError{method: method, path: path, status: resp.StatusCode, body: string(out)}
	}
	return out, nil
}

// parallel runs fn(i) for i in [0, n) on k goroutines; the first error
// stops the others and is returned.
func parallel(ctx context.Context, n, k int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(k, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// setup creates the accounts, each with its own debtor, and shares them
// out between the clients.
func (r *runner) setup(ctx context.Context) error {
	r.accounts = make([]account, r.o.Accounts)
	err := parallel(ctx, r.o.Accounts, r.o.Clients, func(ctx context.Context, i int) error {
		body, err := r.do(ctx, http.MethodPost, "/v1/debtors", fmt.Appendf(nil,
			`{"reference":"BENCH-D-%05d","first_name":"Bench","last_name":"Debtor %d"}`, i, i), http.StatusCreated)
		if err != nil {
			return err
		}
		var d struct{ ID string }
		if err := json.Unmarshal(body, &d); err != nil {
			return err
		}
		ref := fmt.Sprintf("BENCH-A-%05d", i)
		body, err = r.do(ctx, http.MethodPost, "/v1/accounts", fmt.Appendf(nil,
			`{"reference":%q,"currency":"EUR","debtor_ids":[%q]}`, ref, d.ID), http.StatusCreated)
		if err != nil {
			return err
		}
		var a struct{ ID string }
		if err := json.Unmarshal(body, &a); err != nil {
			return err
		}
		r.accounts[i] = account{id: a.ID, ref: ref}
		return nil
	})
	if err != nil {
		return err
	}
	r.owned = make([][]account, r.o.Clients)
	for i, a := range r.accounts {
		r.owned[i%r.o.Clients] = append(r.owned[i%r.o.Clients], a)
	}
	return nil
}

// globalPos is a place in the global order of events: (transaction id,
// position), as projection checkpoints record it.
type globalPos struct{ tx, pos int64 }

func (a globalPos) before(b globalPos) bool {
	return a.tx < b.tx || (a.tx == b.tx && a.pos < b.pos)
}

// lastEvent returns the last committed event's place in the global order.
func (r *runner) lastEvent(ctx context.Context) (globalPos, error) {
	var g globalPos
	err := r.env.Pool.QueryRow(ctx, `SELECT tx_id::text::bigint, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1`).Scan(&g.tx, &g.pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return g, nil
	}
	return g, err
}

// checkpoints returns every projection's checkpoint.
func (r *runner) checkpoints(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (map[string]globalPos, error) {
	rows, err := q.Query(ctx, `SELECT name, tx_id, position FROM projection_checkpoints`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]globalPos{}
	for rows.Next() {
		var name string
		var g globalPos
		if err := rows.Scan(&name, &g.tx, &g.pos); err != nil {
			return nil, err
		}
		out[name] = g
	}
	return out, rows.Err()
}

// quiesce waits until every projection has applied every committed event
// (so no scenario pays for the previous one's backlog), then asks for a
// CHECKPOINT (so none pays for its dirty pages either; refused without the
// privilege, which is fine).
func (r *runner) quiesce(ctx context.Context) error {
	last, err := r.lastEvent(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Minute)
	for {
		cps, err := r.checkpoints(ctx, r.env.Pool)
		if err != nil {
			return err
		}
		var behind []string
		for _, n := range r.names {
			if cps[n].before(last) {
				behind = append(behind, n)
			}
		}
		if len(behind) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("projections %v have not applied the event at position %d within 30 minutes", behind, last.pos)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	_, _ = r.env.Pool.Exec(ctx, `CHECKPOINT`)
	return nil
}
