// Package api is arrears' thin HTTP layer: authentication, scopes, tenant
// and mode scoping, idempotency, rate limits, validation, problem+json
// errors, pagination and read-your-writes. Writes go to domain commands,
// reads come from projections.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/webhooks"
)

// Check is one readiness check: it returns details to show and an error
// when the dependency is not usable.
type Check struct {
	Name string
	Fn   func(ctx context.Context) (any, error)
}

// RateLimit is a per-key request budget: Requests per Per, refilled
// continuously. Zero Requests disables limiting.
type RateLimit struct {
	Requests int
	Per      time.Duration
}

// Config tunes the API.
type Config struct {
	BodyLimit      int64           // request body bytes; default 1 MiB
	RateLimit      RateLimit       // per API key
	IdempotencyTTL time.Duration   // how long Idempotency-Key records are kept; default 24 h (the minimum)
	WaitLimit      time.Duration   // longest min_position wait; default 5 s
	Webhooks       webhooks.Config // secrets key, URL address policy, rotation overlap
}

func (c Config) withDefaults() Config {
	if c.BodyLimit <= 0 {
		c.BodyLimit = 1 << 20
	}
	if c.IdempotencyTTL < 24*time.Hour {
		c.IdempotencyTTL = 24 * time.Hour
	}
	if c.WaitLimit <= 0 {
		c.WaitLimit = 5 * time.Second
	}
	return c
}

// Deps is what the server needs. Without a Store only health, readiness and
// metrics are served (relay and worker processes).
type Deps struct {
	Log    *slog.Logger
	Store  *eventstore.Store
	Auth   *eventstore.Authenticator
	Checks []Check
	Config Config
}

// Server is the HTTP handler.
type Server struct {
	router  chi.Router
	checks  []Check
	log     *slog.Logger
	store   *eventstore.Store
	auth    *eventstore.Authenticator
	cfg     Config
	limiter *rateLimiter
	ids     *domain.IDGenerator
	hooks   *webhooks.Service
}

// NewServer returns the handler.
func NewServer(d Deps) *Server {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &Server{router: chi.NewRouter(), checks: d.Checks, log: d.Log, store: d.Store, auth: d.Auth, cfg: d.Config.withDefaults(), ids: domain.NewIDGenerator(nil)}
	s.limiter = newRateLimiter(s.cfg.RateLimit)
	if s.store != nil {
		s.hooks = webhooks.NewService(s.store, s.cfg.Webhooks)
	}
	r := s.router
	r.Use(requestID, s.recoverer, s.accessLog)
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", promhttp.Handler())
	r.Get("/problems/{slug}", func(w http.ResponseWriter, r *http.Request) { problemPage(w, r, chi.URLParam(r, "slug")) })
	r.Get("/openapi/v1.json", serveOpenAPI)
	r.Get("/reference", serveReference)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, notFoundRoute(r))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", strings.Join(s.allowed(r.URL.Path), ", "))
		writeProblem(w, Problem{Type: ProblemTypePrefix + "method-not-allowed", Title: "Method not allowed", Status: http.StatusMethodNotAllowed,
			Detail: r.Method + " is not allowed on " + r.URL.Path, RequestID: w.Header().Get(HeaderRequestID)})
	})
	if s.store != nil {
		s.routes()
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// routes mounts the /v1 API.
func (s *Server) routes() {
	bodyLimit := limitBody(s.cfg.BodyLimit)
	s.router.Route("/v1", func(r chi.Router) {
		r.With(bodyLimit).Post("/oauth2/token", s.token)
		r.Group(func(r chi.Router) {
			// Idempotency-Key is honoured by require(…, "write"), after the
			// scope check (see there).
			r.Use(s.authenticate, s.rateLimit)
			// The batch takes up to 10,000 entries: a larger body limit.
			r.With(limitBody(max(s.cfg.BodyLimit, batchBodyLimit)), s.require("ledgers", "write")).Post("/ledger-entries/batch", s.postLedgerEntries)
			r.Group(func(r chi.Router) {
				r.Use(bodyLimit)
				r.Get("/organization", s.organization)

				r.With(s.require("keys", "read")).Get("/api-keys", s.listKeys)
				r.With(s.require("keys", "write")).Post("/api-keys", s.createKey)
				r.With(s.require("keys", "read")).Get("/api-keys/{id}", s.getKey)
				r.With(s.require("keys", "write")).Delete("/api-keys/{id}", s.revokeKey)

				r.With(s.require("debtors", "read")).Get("/debtors", s.listDebtors)
				r.With(s.require("debtors", "write")).Post("/debtors", s.createDebtor)
				r.With(s.require("debtors", "read")).Get("/debtors/{id}", s.getDebtor)
				r.With(s.require("debtors", "write")).Patch("/debtors/{id}", s.updateDebtor)

				// Claims (claims.go).
				r.With(s.require("claims", "read")).Get("/claims", s.listClaims)
				r.With(s.require("claims", "write")).Post("/claims", s.createClaim)
				r.With(s.require("claims", "write")).Post("/claims/import", s.importClaims)
				r.With(s.require("claims", "read")).Get("/claims/{id}", s.getClaim)
				r.With(s.require("claims", "write")).Patch("/claims/{id}", s.updateClaim)
				r.With(s.require("claims", "write")).Post("/claims/{id}/resolve", s.resolveClaim)
				r.With(s.require("claims", "write")).Post("/claims/{id}/credit", s.creditClaim)
				r.With(s.require("claims", "write")).Post("/claims/{id}/debit", s.debitClaim)
				r.With(s.require("claims", "write")).Post("/claims/{id}/pause", s.pauseClaim)
				r.With(s.require("claims", "write")).Post("/claims/{id}/resume", s.resumeClaim)
				r.With(s.require("claims", "write")).Post("/claims/{id}/stop", s.stopClaim)
				r.With(s.require("claims", "write")).Post("/claims/{id}/recreate", s.recreateClaim)
				r.With(s.require("claims", "read")).Get("/debtors/{id}/claims", s.debtorClaims)
				// Promises to pay (promises.go), disputes (disputes.go) and
				// custom triggers (triggers.go: the scope follows the targets).
				r.With(s.require("claims", "read")).Get("/claims/{id}/promises", s.listPromises)
				r.With(s.require("claims", "write")).Post("/claims/{id}/promises", s.makePromise)
				r.With(s.require("disputes", "read")).Get("/disputes", s.listDisputes)
				r.With(s.require("disputes", "write")).Post("/disputes", s.openDispute)
				r.With(s.require("disputes", "read")).Get("/disputes/{id}", s.getDispute)
				r.With(s.require("disputes", "write")).Post("/disputes/{id}/resolve", s.resolveDispute)
				r.With(s.require("disputes", "write")).Post("/disputes/{id}/withdraw", s.withdrawDispute)
				r.With(s.requireTriggerScopes).Post("/triggers/{name}", s.postTrigger)

				// Campaigns and their enrollments (campaigns.go).
				r.With(s.require("campaigns", "read")).Get("/campaigns", s.listCampaigns)
				r.With(s.require("campaigns", "write")).Post("/campaigns", s.createCampaign)
				r.With(s.require("campaigns", "read")).Get("/campaigns/{id}", s.getCampaign)
				r.With(s.require("campaigns", "write")).Post("/campaigns/{id}/pause", s.pauseCampaign)
				r.With(s.require("campaigns", "write")).Post("/campaigns/{id}/resume", s.resumeCampaign)
				r.With(s.require("campaigns", "write")).Post("/campaigns/{id}/complete", s.completeCampaign)
				r.With(s.require("campaigns", "read")).Get("/campaigns/{id}/enrollments", s.listEnrollments)
				r.With(s.require("campaigns", "write")).Post("/campaigns/{id}/enrollments", s.enroll)
				r.With(s.require("campaigns", "read")).Get("/campaigns/{id}/enrollments/{enrollment_id}", s.getEnrollment)
				r.With(s.require("campaigns", "write")).Delete("/campaigns/{id}/enrollments/{enrollment_id}", s.cancelEnrollment)

				r.With(s.require("accounts", "read")).Get("/accounts", s.listAccounts)
				r.With(s.require("accounts", "write")).Post("/accounts", s.createAccount)
				r.With(s.require("accounts", "read")).Get("/accounts/{id}", s.getAccount)
				r.With(s.require("accounts", "read")).Get("/accounts/{id}/balance", s.getBalance)
				r.With(s.require("accounts", "read")).Get("/accounts/{id}/history", s.accountHistory)
				// The account's attributes (account_attributes.go).
				r.With(s.require("accounts", "write")).Patch("/accounts/{id}", s.updateAccount)
				r.With(s.require("accounts", "read")).Get("/accounts/{id}/debtors", s.listAccountDebtors)
				r.With(s.require("accounts", "write")).Post("/accounts/{id}/debtors", s.addAccountDebtor)
				r.With(s.require("accounts", "write")).Delete("/accounts/{id}/debtors/{debtor_id}", s.removeAccountDebtor)
				r.With(s.require("accounts", "read")).Get("/accounts/{id}/products", s.listAccountProducts)
				r.With(s.require("accounts", "write")).Post("/accounts/{id}/products", s.addAccountProduct)
				r.With(s.require("accounts", "write")).Patch("/accounts/{id}/products/{reference}", s.updateAccountProduct)
				r.With(s.require("accounts", "write")).Delete("/accounts/{id}/products/{reference}", s.removeAccountProduct)
				r.With(s.require("accounts", "read")).Get("/accounts/{id}/scores", s.listAccountScores)
				r.With(s.require("accounts", "write")).Post("/accounts/{id}/scores", s.addAccountScore)
				r.With(s.require("accounts", "write")).Patch("/accounts/{id}/scores/{type}", s.updateAccountScore)
				r.With(s.require("accounts", "write")).Delete("/accounts/{id}/scores/{type}", s.removeAccountScore)
				r.With(s.require("accounts", "read")).Get("/accounts/{id}/mandates", s.listAccountMandates)
				r.With(s.require("accounts", "write")).Post("/accounts/{id}/mandates", s.addAccountMandate)
				r.With(s.require("accounts", "write")).Patch("/accounts/{id}/mandates/{mandate_id}", s.updateAccountMandate)
				r.With(s.require("accounts", "write")).Delete("/accounts/{id}/mandates/{mandate_id}", s.removeAccountMandate)
				r.With(s.require("payments", "write")).Post("/accounts/{id}/payments", s.createPayment)
				r.With(s.require("payments", "read")).Get("/accounts/{id}/payments", s.listAccountPayments)
				r.With(s.require("ledgers", "read")).Get("/accounts/{id}/ledger-entries", s.listEntries)
				r.With(s.require("ledgers", "read")).Get("/accounts/{id}/ledger-entries/{ref}", s.getEntry)
				r.With(s.require("ledgers", "write")).Post("/accounts/{id}/ledger-entries/{ref}/amend", s.amendEntry)

				r.With(s.require("payments", "read")).Get("/payments", s.listPayments)
				r.With(s.require("payments", "read")).Get("/payments/{id}", s.getPayment)
				r.With(s.require("payments", "write")).Post("/payments/{id}/complete", s.completePayment)
				r.With(s.require("payments", "write")).Post("/payments/{id}/fail", s.failPayment)
				r.With(s.require("payments", "write")).Post("/payments/{id}/refund", s.refundPayment)
				r.With(s.require("payments", "write")).Post("/payments/{id}/chargeback", s.chargebackPayment)

				r.With(s.require("ledgers", "read")).Get("/transactions", s.listTransactions)
				r.With(s.require("statements", "read")).Get("/statements", s.listStatements)
				r.With(s.require("statements", "read")).Get("/statements/{id}", s.getStatement)

				r.With(s.require("events", "read")).Get("/streams/{id}", s.getStream)
				r.With(s.require("events", "read")).Get("/events", s.listEvents)
				r.With(s.require("events", "read")).Get("/events/{id}", s.getEvent)

				// Webhook endpoints and their deliveries (webhooks.go).
				r.With(s.require("webhooks", "read")).Get("/webhook-endpoints", s.listWebhookEndpoints)
				r.With(s.require("webhooks", "write")).Post("/webhook-endpoints", s.createWebhookEndpoint)
				r.With(s.require("webhooks", "read")).Get("/webhook-endpoints/{id}", s.getWebhookEndpoint)
				r.With(s.require("webhooks", "write")).Patch("/webhook-endpoints/{id}", s.updateWebhookEndpoint)
				r.With(s.require("webhooks", "write")).Delete("/webhook-endpoints/{id}", s.deleteWebhookEndpoint)
				r.With(s.require("webhooks", "write")).Post("/webhook-endpoints/{id}/rotate-secret", s.rotateWebhookSecret)
				r.With(s.require("webhooks", "write")).Post("/webhook-endpoints/{id}/test", s.testWebhookEndpoint)
				r.With(s.require("webhooks", "write")).Post("/webhook-endpoints/{id}/replay", s.replayWebhooks)
				r.With(s.require("webhooks", "read")).Get("/webhook-endpoints/{id}/deliveries", s.listWebhookDeliveries)
				r.With(s.require("webhooks", "write")).Post("/webhook-deliveries/{id}/redeliver", s.redeliverWebhook)
			})
		})
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
