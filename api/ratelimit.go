package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/arrears/arrears/domain"
)

// rateLimiter keeps one token bucket per API key: RateLimit.Requests tokens,
// refilled continuously over RateLimit.Per. Buckets live in this process; a
// deployment of n API processes allows n times the budget.
type rateLimiter struct {
	cfg     RateLimit
	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
	now     func() time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

func newRateLimiter(cfg RateLimit) *rateLimiter {
	return &rateLimiter{cfg: cfg, buckets: map[string]*bucket{}, now: time.Now}
}

// take spends one token of key's bucket and returns whether it was allowed,
// the tokens left, seconds until the bucket is full, and seconds until the
// next token when refused.
func (l *rateLimiter) take(key string) (ok bool, remaining int, reset, retryAfter int) {
	now := l.now()
	per := l.cfg.Per.Seconds()
	r := rate.Limit(float64(l.cfg.Requests) / per)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > l.cfg.Per {
		// Forget buckets idle long enough to be full again.
		for k, b := range l.buckets {
			if now.Sub(b.used) > l.cfg.Per {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b, found := l.buckets[key]
	if !found {
		b = &bucket{lim: rate.NewLimiter(r, l.cfg.Requests)}
		l.buckets[key] = b
	}
	b.used = now
	ok = b.lim.AllowN(now, 1)
	tokens := b.lim.TokensAt(now)
	remaining = max(0, int(math.Floor(tokens)))
	reset = int(math.Ceil((float64(l.cfg.Requests) - tokens) / float64(r)))
	if !ok {
		retryAfter = max(1, int(math.Ceil((1-tokens)/float64(r))))
	}
	return ok, remaining, reset, retryAfter
}

// rateLimit applies the per-key budget and sets X-RateLimit-Limit,
// X-RateLimit-Remaining, X-RateLimit-Reset (seconds until the budget is full
// again) on every response, and Retry-After on 429.
func (s *Server) rateLimit(next http.Handler) http.Handler {
	if s.cfg.RateLimit.Requests <= 0 || s.cfg.RateLimit.Per <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.allow(w, r, principal(r).KeyID) {
			next.ServeHTTP(w, r)
		}
	})
}

// allow spends one request of bucket's budget, sets the rate-limit headers,
// and answers 429 (returning false) when the budget is spent.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, bucket string) bool {
	if s.cfg.RateLimit.Requests <= 0 || s.cfg.RateLimit.Per <= 0 {
		return true
	}
	ok, remaining, reset, retry := s.limiter.take(bucket)
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.cfg.RateLimit.Requests))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.Itoa(reset))
	if !ok {
		h.Set("Retry-After", strconv.Itoa(retry))
		writeError(w, r, domain.Errorf(domain.ERATELIMITED, "rate limit of %d requests per %s exceeded for this credential; retry after %d s",
			s.cfg.RateLimit.Requests, s.cfg.RateLimit.Per, retry))
	}
	return ok
}
