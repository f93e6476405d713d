// Package api is arrears' thin HTTP layer: routing, request ids, health,
// readiness and metrics. Writes go to domain commands, reads come from
// projections.
package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check: it returns details to show and an error
// when the dependency is not usable.
type Check struct {
	Name string
	Fn   func(ctx context.Context) (any, error)
}

// Server is the HTTP handler.
type Server struct {
	router chi.Router
	checks []Check
	log    *slog.Logger
}

// NewServer returns the handler serving /healthz, /readyz and /metrics.
func NewServer(log *slog.Logger, checks ...Check) *Server {
	s := &Server{router: chi.NewRouter(), checks: checks, log: log}
	s.router.Use(requestID, middleware.Recoverer)
	s.router.Get("/healthz", s.healthz)
	s.router.Get("/readyz", s.readyz)
	s.router.Handle("/metrics", promhttp.Handler())
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Router exposes the router so feature packages can mount their routes.
func (s *Server) Router() chi.Router { return s.router }

// HeaderRequestID is echoed when the client sends one, generated otherwise.
const HeaderRequestID = "X-Request-Id"

func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if id == "" || len(id) > 200 {
			id = "req_" + ulid.MustNew(ulid.Now(), rand.Reader).String()
		}
		w.Header().Set(HeaderRequestID, id)
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz runs every check (2 s each) and answers 503 if any failed.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	status, code := "ok", http.StatusOK
	results := make(map[string]any, len(s.checks))
	for _, c := range s.checks {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		detail, err := c.Fn(ctx)
		cancel()
		res := map[string]any{"status": "ok"}
		if detail != nil {
			res["detail"] = detail
		}
		if err != nil {
			res["status"], res["error"] = "unavailable", err.Error()
			status, code = "unavailable", http.StatusServiceUnavailable
		}
		results[c.Name] = res
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": results})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
