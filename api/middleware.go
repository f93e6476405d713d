package api

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/arrears/arrears/domain"
)

// HeaderRequestID is echoed when the client sends one, generated otherwise.
const HeaderRequestID = "X-Request-Id"

func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = "req_" + ulid.MustNew(ulid.Now(), rand.Reader).String()
		}
		w.Header().Set(HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(withRequestID(r.Context(), id)))
	})
}

// validRequestID accepts client ids of printable ASCII up to 200 bytes.
func validRequestID(id string) bool {
	if id == "" || len(id) > 200 {
		return false
	}
	for _, c := range []byte(id) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// recoverer turns a panic into a logged 500 problem.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic", "request_id", w.Header().Get(HeaderRequestID), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

var (
	httpRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "arrears_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
	}, []string{"method", "route", "status"})
	httpDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "arrears_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"method", "route"})
)

// accessLog logs every request and records its metrics.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		httpRequests.WithLabelValues(r.Method, route, strconv.Itoa(status)).Inc()
		httpDuration.WithLabelValues(r.Method, route).Observe(d.Seconds())
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			return
		}
		attrs := []any{"method", r.Method, "path", r.URL.Path, "route", route, "status", status,
			"duration_ms", float64(d.Microseconds()) / 1000, "bytes", ww.BytesWritten(), "request_id", w.Header().Get(HeaderRequestID)}
		if p, ok := principalFrom(r.Context()); ok {
			attrs = append(attrs, "tenant", p.TenantID, "key", p.KeyID)
		}
		s.log.Info("http", attrs...)
	})
}

// limitBody caps request bodies at n bytes.
func limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				writeError(w, r, domain.Invalid(fmt.Sprintf("request body larger than %d bytes", n), domain.FieldError{Field: "body", Error: "too large"}))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

func notFoundRoute(r *http.Request) error {
	return domain.Errorf(domain.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path)
}
