package api

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/webhooks"
)

// Webhook endpoints and their deliveries (issue 6). Endpoints are
// command-side rows written with the webhook_endpoint.* events that record
// each change (webhooks.Service); the events never carry the secret.
// Deliveries are the dispatcher's state: reads of both need no min_position.

// endpointView is an endpoint as the API shows it; Secret only in the
// response that created it (or rotated it).
type endpointView struct {
	webhooks.Endpoint
	Secret                  string     `json:"secret,omitempty"`
	SecretWithheld          bool       `json:"secret_withheld,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
}

// withheld is the form of a response with a secret stored for
// Idempotency-Key replays: the secret is shown once and stored nowhere.
func withheld(v endpointView) endpointView {
	v.Secret, v.SecretWithheld = "", true
	return v
}

type createEndpointRequest struct {
	URL         string   `json:"url"`
	Description string   `json:"description"`
	EventTypes  []string `json:"event_types"`
	Enabled     *bool    `json:"enabled"`
}

// createWebhookEndpoint: POST /v1/webhook-endpoints. The endpoint has the
// caller's mode: sandbox events go to endpoints created with test keys,
// live events to those created with live keys.
func (s *Server) createWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	var req createEndpointRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.hooks.Ready(r.Context()); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	s.commit(w, r, func(tx pgx.Tx) (result, error) {
		e, secret, ev, err := s.hooks.CreateTx(r.Context(), tx, webhooks.NewEndpoint{TenantID: p.TenantID, Mode: p.Mode, URL: req.URL,
			Description: req.Description, EventTypes: req.EventTypes, Enabled: req.Enabled}, metadata(r))
		if err != nil {
			return result{}, err
		}
		v := endpointView{Endpoint: e, Secret: secret}
		return result{Status: http.StatusCreated, Body: v, Replay: withheld(v), Position: ev.Position, Location: "/v1/webhook-endpoints/" + e.ID}, nil
	})
}

// listWebhookEndpoints: GET /v1/webhook-endpoints.
func (s *Server) listWebhookEndpoints(w http.ResponseWriter, r *http.Request) {
	pg, err := parsePage(r)
	if err == nil {
		err = s.awaitPosition(r)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	es, err := s.hooks.List(r.Context(), p.TenantID, p.Mode, pg.After, pg.Limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	views := make([]endpointView, len(es))
	for i, e := range es {
		views[i] = endpointView{Endpoint: e}
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v endpointView) string { return v.ID }))
}

// getWebhookEndpoint: GET /v1/webhook-endpoints/{id}.
func (s *Server) getWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	if err := s.awaitPosition(r); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	e, err := s.hooks.Get(r.Context(), s.store.Pool(), p.TenantID, p.Mode, chi.URLParam(r, "id"), false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, endpointView{Endpoint: e})
}

type updateEndpointRequest struct {
	URL         *string  `json:"url"`
	Description *string  `json:"description"`
	EventTypes  []string `json:"event_types"`
	Enabled     *bool    `json:"enabled"`
}

// updateWebhookEndpoint: PATCH /v1/webhook-endpoints/{id}. Enabling an
// endpoint the dispatcher disabled (410 Gone) clears disabled_reason.
func (s *Server) updateWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	var req updateEndpointRequest
	invalid := decode(r, &req) // answered after "not found", so a missing endpoint is never told apart by its body
	p := principal(r)
	id := chi.URLParam(r, "id")
	s.commit(w, r, func(tx pgx.Tx) (result, error) {
		if _, err := s.hooks.Get(r.Context(), tx, p.TenantID, p.Mode, id, false); err != nil {
			return result{}, err
		}
		if invalid != nil {
			return result{}, invalid
		}
		e, ev, err := s.hooks.UpdateTx(r.Context(), tx, p.TenantID, p.Mode, id,
			webhooks.Patch{URL: req.URL, Description: req.Description, EventTypes: req.EventTypes, Enabled: req.Enabled}, metadata(r))
		if err != nil {
			return result{}, err
		}
		return result{Status: http.StatusOK, Body: endpointView{Endpoint: e}, Position: ev.Position}, nil
	})
}

// deleteWebhookEndpoint: DELETE /v1/webhook-endpoints/{id}; its pending
// deliveries are cancelled.
func (s *Server) deleteWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	s.commit(w, r, func(tx pgx.Tx) (result, error) {
		e, ev, err := s.hooks.DeleteTx(r.Context(), tx, p.TenantID, p.Mode, chi.URLParam(r, "id"), metadata(r))
		if err != nil {
			return result{}, err
		}
		return result{Status: http.StatusOK, Body: endpointView{Endpoint: e}, Position: ev.Position}, nil
	})
}

type rotateRequest struct {
	// OverlapSeconds is how long the previous secret keeps signing beside
	// the new one; 0: the server's default (24 h).
	OverlapSeconds int64 `json:"overlap_seconds"`
}

// rotateWebhookSecret: POST /v1/webhook-endpoints/{id}/rotate-secret. The
// new secret is shown once; both sign until previous_secret_expires_at.
func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	var req rotateRequest
	invalid := decodeOptional(r, &req)
	if invalid == nil && (req.OverlapSeconds < 0 || time.Duration(req.OverlapSeconds)*time.Second > webhooks.MaxRotationOverlap) {
		invalid = domain.Invalid("invalid rotation", domain.FieldError{Field: "overlap_seconds", Error: "must be from 0 to 604800 (7 days)"})
	}
	if err := s.hooks.Ready(r.Context()); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	s.commit(w, r, func(tx pgx.Tx) (result, error) {
		if _, err := s.hooks.Get(r.Context(), tx, p.TenantID, p.Mode, id, false); err != nil {
			return result{}, err
		}
		if invalid != nil {
			return result{}, invalid
		}
		rot, err := s.hooks.RotateTx(r.Context(), tx, p.TenantID, p.Mode, id, time.Duration(req.OverlapSeconds)*time.Second, metadata(r))
		if err != nil {
			return result{}, err
		}
		v := endpointView{Endpoint: rot.Endpoint, Secret: rot.Secret, PreviousSecretExpiresAt: &rot.PreviousSecretExpiresAt}
		return result{Status: http.StatusOK, Body: v, Replay: withheld(v), Position: rot.Event.Position}, nil
	})
}

// testWebhookEndpoint: POST /v1/webhook-endpoints/{id}/test queues a
// test.ping message and answers 202 with its delivery.
func (s *Server) testWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	s.commit(w, r, func(tx pgx.Tx) (result, error) {
		d, err := s.hooks.TestPingTx(r.Context(), tx, p.TenantID, p.Mode, chi.URLParam(r, "id"))
		if err != nil {
			return result{}, err
		}
		return result{Status: http.StatusAccepted, Body: d}, nil
	})
}

// listWebhookDeliveries: GET /v1/webhook-endpoints/{id}/deliveries, newest
// first; ?status= filters.
func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	pg, err := parsePage(r)
	status := r.URL.Query().Get("status")
	if err == nil && status != "" && status != webhooks.StatusPending && status != webhooks.StatusSucceeded &&
		status != webhooks.StatusFailed && status != webhooks.StatusCancelled {
		err = domain.Invalid("invalid filter", domain.FieldError{Field: "query:status", Error: "must be pending, succeeded, failed or cancelled"})
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	if _, err := s.hooks.Get(r.Context(), s.store.Pool(), p.TenantID, p.Mode, id, false); err != nil {
		writeError(w, r, err)
		return
	}
	ds, err := s.hooks.Deliveries(r.Context(), id, webhooks.DeliveryFilter{Status: status, Before: pg.After, Limit: pg.Limit + 1})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(ds, pg.Limit, func(d webhooks.Delivery) string { return d.ID }))
}

// redeliverWebhook: POST /v1/webhook-deliveries/{id}/redeliver sends a
// delivery again (same webhook-id, fresh retry schedule).
func (s *Server) redeliverWebhook(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	s.commit(w, r, func(tx pgx.Tx) (result, error) {
		d, err := s.hooks.RedeliverTx(r.Context(), tx, p.TenantID, p.Mode, chi.URLParam(r, "id"))
		if err != nil {
			return result{}, err
		}
		return result{Status: http.StatusAccepted, Body: d}, nil
	})
}

type replayRequest struct {
	From *time.Time `json:"from"`
	To   *time.Time `json:"to"`
}

// replayWebhooks: POST /v1/webhook-endpoints/{id}/replay queues the events
// recorded in [from, to) (to defaults to now) that the endpoint's filters
// match, as new deliveries; at most webhooks.MaxReplay per request.
func (s *Server) replayWebhooks(w http.ResponseWriter, r *http.Request) {
	var req replayRequest
	invalid := decode(r, &req)
	now := time.Now().UTC()
	if invalid == nil {
		var fe []domain.FieldError
		if req.From == nil {
			fe = append(fe, domain.FieldError{Field: "from", Error: "is required (RFC 3339)"})
		}
		if req.To == nil {
			req.To = &now
		}
		if req.From != nil && !req.From.Before(*req.To) {
			fe = append(fe, domain.FieldError{Field: "to", Error: "must be after from"})
		}
		if len(fe) > 0 {
			invalid = domain.Invalid("invalid replay", fe...)
		}
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	s.commit(w, r, func(tx pgx.Tx) (result, error) {
		if _, err := s.hooks.Get(r.Context(), tx, p.TenantID, p.Mode, id, false); err != nil {
			return result{}, err
		}
		if invalid != nil {
			return result{}, invalid
		}
		rp, err := s.hooks.ReplayTx(r.Context(), tx, p.TenantID, p.Mode, id, *req.From, *req.To)
		if err != nil {
			return result{}, err
		}
		return result{Status: http.StatusAccepted, Body: rp}, nil
	})
}
