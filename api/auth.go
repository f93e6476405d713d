package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/arrears/arrears/domain"
)

type ctxKey int

const (
	principalKey ctxKey = iota
	requestIDKey
	claimKey
)

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func principalFrom(ctx context.Context) (domain.Principal, bool) {
	p, ok := ctx.Value(principalKey).(domain.Principal)
	return p, ok
}

// principal returns the authenticated caller (routes behind authenticate).
func principal(r *http.Request) domain.Principal {
	p, _ := principalFrom(r.Context())
	return p
}

// credential returns the presented secret: Authorization: Bearer …, or
// X-Api-Key.
func credential(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token)
		}
		return ""
	}
	return strings.TrimSpace(r.Header.Get("X-Api-Key"))
}

// authenticate resolves the caller or answers 401.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := credential(r)
		if secret == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="arrears"`)
			writeError(w, r, domain.Errorf(domain.EUNAUTHORIZED, "missing API key: send Authorization: Bearer <key> or X-Api-Key"))
			return
		}
		p, err := s.auth.Authenticate(r.Context(), secret)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="arrears", error="invalid_token"`)
			writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
}

// require answers 403 unless the caller may do action on resource. Writes
// then go through Idempotency-Key handling: only after the scope check,
// because Idempotency-Key records are shared by the tenant's keys of a mode,
// and a replay must neither show a stored response to a key that may not make
// the request nor store a refusal that the keys that may would then get.
func (s *Server) require(resource, action string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if action == "write" {
			next = s.idempotency(next)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := principal(r).Can(resource, action); err != nil {
				writeError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// metadata is the event metadata of a request.
func metadata(r *http.Request) domain.Metadata {
	p := principal(r)
	return domain.Metadata{
		RequestID:      requestIDFrom(r.Context()),
		IdempotencyKey: r.Header.Get(HeaderIdempotencyKey),
		Actor:          p.KeyID,
		Sandbox:        p.Sandbox(),
	}
}
