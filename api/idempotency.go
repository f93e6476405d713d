package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// Idempotency headers (IETF httpapi Idempotency-Key draft).
const (
	HeaderIdempotencyKey     = "Idempotency-Key"
	HeaderIdempotentReplayed = "Idempotent-Replayed"
	// inFlightLock is how long a claim blocks retries before a crashed
	// request's key may be taken over (the effect of a request that crashed
	// before committing never happened, so taking over is safe).
	inFlightLock = 2 * time.Minute
)

// replayedHeaders are the response headers stored with a response and
// replayed with it.
var replayedHeaders = []string{"Content-Type", "Location", HeaderPosition}

// idempotencyClaim is a request's hold on its Idempotency-Key.
type idempotencyClaim struct {
	tenantID, key string
	done          bool // the response was stored in the handler's own transaction
}

func claimFrom(ctx context.Context) *idempotencyClaim {
	c, _ := ctx.Value(claimKey).(*idempotencyClaim)
	return c
}

// completeTx stores the response in the handler's transaction, so the effect
// and the response that replays it commit together or not at all.
func (c *idempotencyClaim) completeTx(ctx context.Context, tx pgx.Tx, status int, header http.Header, body []byte) error {
	h, _ := json.Marshal(pick(header))
	if _, err := tx.Exec(ctx, `UPDATE idempotency_keys SET state = 'complete', locked_until = NULL,
		response_status = $3, response_headers = $4, response_body = $5 WHERE tenant_id = $1 AND key = $2`,
		c.tenantID, c.key, status, h, body); err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	}
	c.done = true
	return nil
}

func pick(h http.Header) map[string]string {
	out := map[string]string{}
	for _, k := range replayedHeaders {
		if v := h.Get(k); v != "" {
			out[k] = v
		}
	}
	return out
}

// idempotency implements Idempotency-Key on POST, PUT, PATCH and DELETE:
// keys are scoped by tenant and mode and kept for Config.IdempotencyTTL; the
// same key with the same request replays the stored response with
// Idempotent-Replayed: true; with a different request it is refused (422);
// while the first request is in flight a retry gets 409.
func (s *Server) idempotency(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			next.ServeHTTP(w, r)
			return
		}
		key := r.Header.Get(HeaderIdempotencyKey)
		if key == "" {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 255 || !printableASCII(key) {
			writeError(w, r, domain.Invalid("invalid Idempotency-Key", domain.FieldError{Field: "header:Idempotency-Key", Error: "must be 1 to 255 printable ASCII characters"}))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeError(w, r, jsonError(err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		p := principal(r)
		h := sha256.New()
		fmt.Fprintf(h, "%s\n%s\n", r.Method, r.URL.RequestURI())
		h.Write(body)
		claim := &idempotencyClaim{tenantID: p.TenantID, key: string(p.Mode) + ":" + key}

		stored, err := s.claim(r.Context(), claim, h.Sum(nil), r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if stored != nil {
			for k, v := range stored.headers {
				w.Header().Set(k, v)
			}
			w.Header().Set(HeaderIdempotentReplayed, "true")
			w.WriteHeader(stored.status)
			_, _ = w.Write(stored.body)
			return
		}

		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), claimKey, claim)))
		if claim.done {
			return
		}
		// Not stored in a transaction by the handler: store deterministic
		// outcomes; release the key after transient ones so a retry runs.
		ctx := context.WithoutCancel(r.Context())
		if rec.status >= 500 || rec.status == http.StatusConflict || rec.status == http.StatusTooManyRequests {
			_, err = s.store.Pool().Exec(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND state = 'in_flight'`, claim.tenantID, claim.key)
		} else {
			hb, _ := json.Marshal(pick(rec.Header()))
			_, err = s.store.Pool().Exec(ctx, `UPDATE idempotency_keys SET state = 'complete', locked_until = NULL,
				response_status = $3, response_headers = $4, response_body = $5 WHERE tenant_id = $1 AND key = $2`,
				claim.tenantID, claim.key, rec.status, hb, rec.body.Bytes())
		}
		if err != nil {
			s.log.Error("idempotency: record outcome", "err", err, "request_id", requestIDFrom(r.Context()))
		}
	})
}

// printableASCII reports whether s is only visible ASCII (0x21-0x7e).
func printableASCII(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

type storedResponse struct {
	status  int
	headers map[string]string
	body    []byte
}

// claim takes the key for this request, or returns the stored response to
// replay, or an error (reused with another request, or in flight).
func (s *Server) claim(ctx context.Context, c *idempotencyClaim, hash []byte, r *http.Request) (*storedResponse, error) {
	ttl := s.cfg.IdempotencyTTL
	for attempt := 0; attempt < 3; attempt++ {
		var claimed bool
		err := s.store.Pool().QueryRow(ctx, `
			INSERT INTO idempotency_keys AS k (tenant_id, key, request_hash, method, path, state, locked_until, expires_at)
			VALUES ($1, $2, $3, $4, $5, 'in_flight', now() + $6 * interval '1 second', now() + $7 * interval '1 second')
			ON CONFLICT (tenant_id, key) DO UPDATE SET
				request_hash = EXCLUDED.request_hash, method = EXCLUDED.method, path = EXCLUDED.path,
				state = 'in_flight', locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at,
				response_status = NULL, response_headers = NULL, response_body = NULL, created_at = now()
			WHERE k.expires_at < now()
			   OR (k.state = 'in_flight' AND k.locked_until < now() AND k.request_hash = EXCLUDED.request_hash)
			RETURNING true`,
			c.tenantID, c.key, hash, r.Method, r.URL.Path, inFlightLock.Seconds(), ttl.Seconds()).Scan(&claimed)
		if err == nil && claimed {
			return nil, nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("idempotency: claim: %w", err)
		}
		var state string
		var stored []byte
		var resp storedResponse
		var hdr []byte
		var status *int
		err = s.store.Pool().QueryRow(ctx, `SELECT state, request_hash, response_status, response_headers, response_body
			FROM idempotency_keys WHERE tenant_id = $1 AND key = $2`, c.tenantID, c.key).Scan(&state, &stored, &status, &hdr, &resp.body)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // released in between: claim again
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency: look up: %w", err)
		}
		if !bytes.Equal(stored, hash) {
			return nil, &domain.Error{Code: domain.EINVALID, Reason: "idempotency_key_reused",
				Message: "this Idempotency-Key was used with a different request (method, path or body); use a new key for a new request",
				Fields:  []domain.FieldError{{Field: "header:Idempotency-Key", Error: "already used for a different request"}}}
		}
		if state == "in_flight" {
			return nil, &domain.Error{Code: domain.ECONFLICT, Reason: "idempotency_in_progress",
				Message: "a request with this Idempotency-Key is still being processed; retry shortly"}
		}
		resp.status = *status
		_ = json.Unmarshal(hdr, &resp.headers)
		return &resp, nil
	}
	return nil, domain.Errorf(domain.ECONFLICT, "Idempotency-Key contended; retry")
}

// recorder captures a response while writing it through.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
