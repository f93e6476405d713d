package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// keyView is an API key as the API shows it; Secret only in the response
// that created it.
type keyView struct {
	Object string `json:"object"`
	domain.APIKey
	Secret string `json:"secret,omitempty"`
	// SecretWithheld marks an Idempotency-Key replay of the creation: the
	// secret is shown once and stored nowhere, so a client that lost the
	// first response should revoke this key and create another.
	SecretWithheld bool `json:"secret_withheld,omitempty"`
}

func viewKey(k domain.APIKey, secret string) keyView {
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	return keyView{Object: "api_key", APIKey: k, Secret: secret}
}

type createKeyRequest struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ReadOnly  bool       `json:"read_only"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// createKey: POST /v1/api-keys. The key has the caller's mode; a key limited
// to scopes can only create keys within those scopes (no escalation).
func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req createKeyRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	if len(p.Scopes) > 0 {
		if len(req.Scopes) == 0 {
			writeError(w, r, domain.Invalid("a scoped key cannot create a full-access key",
				domain.FieldError{Field: "scopes", Error: "must list scopes, each held by the calling key"}))
			return
		}
		for i, sc := range req.Scopes {
			res, act, _ := strings.Cut(sc, ":")
			if p.Can(res, act) != nil || !slices.Contains(domain.Resources, res) {
				writeError(w, r, domain.Invalid("scope not held by the calling key",
					domain.FieldError{Field: "scopes[" + itoa(i) + "]", Error: "the calling key does not hold " + sc}))
				return
			}
		}
	}
	req.Name = strings.TrimSpace(req.Name)
	s.commit(w, r, func(tx pgx.Tx) (result, error) {
		k, secret, ev, err := s.store.CreateKeyTx(r.Context(), tx, eventstore.NewKey{TenantID: p.TenantID, Name: req.Name, Mode: p.Mode,
			Scopes: req.Scopes, ReadOnly: req.ReadOnly || p.ReadOnly, ExpiresAt: req.ExpiresAt}, metadata(r))
		if err != nil {
			return result{}, err
		}
		replay := viewKey(k, "")
		replay.SecretWithheld = true
		return result{Status: http.StatusCreated, Body: viewKey(k, secret), Replay: replay, Position: ev.Position, Location: "/v1/api-keys/" + k.ID}, nil
	})
}

// listKeys: GET /v1/api-keys — the tenant's keys of the caller's mode.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	pg, err := parsePage(r)
	if err == nil {
		err = s.awaitPosition(r)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	keys, err := s.store.Keys(r.Context(), p.TenantID, p.Mode, pg.After, pg.Limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	views := make([]keyView, len(keys))
	for i, k := range keys {
		views[i] = viewKey(k, "")
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v keyView) string { return v.ID }))
}

// getKey: GET /v1/api-keys/{id}.
func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	if err := s.awaitPosition(r); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	k, err := s.store.Key(r.Context(), p.TenantID, p.Mode, chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewKey(k, ""))
}

// revokeKey: DELETE /v1/api-keys/{id} revokes the key (and its tokens).
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	s.commit(w, r, func(tx pgx.Tx) (result, error) {
		k, ev, err := s.store.RevokeKeyTx(r.Context(), tx, p.TenantID, p.Mode, chi.URLParam(r, "id"), metadata(r))
		if err != nil {
			return result{}, err
		}
		return result{Status: http.StatusOK, Body: viewKey(k, ""), Position: ev.Position}, nil
	})
}

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// token: POST /v1/oauth2/token — the OAuth2 client-credentials grant. The
// client id is the key's id, the client secret the key itself, sent with
// HTTP Basic or as form fields. Errors are problem+json carrying RFC 6749's
// error and error_description members too, for OAuth2 client libraries.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	oauthErr := func(status int, code, desc string) {
		w.Header().Set("Content-Type", "application/problem+json")
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="arrears"`)
		}
		w.Header().Set("Cache-Control", "no-store")
		pt := problemTypes["bad_request"]
		if status == http.StatusUnauthorized {
			pt = problemTypes[domain.EUNAUTHORIZED]
		}
		writeJSONType(w, status, "application/problem+json", map[string]any{
			"type": ProblemTypePrefix + pt.Slug, "title": pt.Title, "status": status, "detail": desc,
			"error": code, "error_description": desc, "request_id": w.Header().Get(HeaderRequestID)})
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "" && gt != "client_credentials" {
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || secret == "" {
		oauthErr(http.StatusUnauthorized, "invalid_client", "client credentials required: HTTP Basic client_id:client_secret, or client_id and client_secret form fields")
		return
	}
	if !s.allow(w, r, "oauth:"+id) {
		return
	}
	tok, expires, err := s.auth.IssueToken(r.Context(), id, secret)
	if err != nil {
		if domain.ErrorCode(err) == domain.EUNAUTHORIZED {
			oauthErr(http.StatusUnauthorized, "invalid_client", "unknown client, wrong secret, or a revoked or expired key")
			return
		}
		writeError(w, r, err)
		return
	}
	k, err := s.store.KeyByID(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok, TokenType: "Bearer",
		ExpiresIn: int(time.Until(expires).Round(time.Second).Seconds()), Scope: strings.Join(k.Scopes, " ")})
}
