package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/arrears/arrears/domain"
)

// Problem is an RFC 9457 problem details document.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Reason    string              `json:"reason,omitempty"`
	Errors    []domain.FieldError `json:"errors,omitempty"`
	RequestID string              `json:"request_id,omitempty"`
}

// problemType describes one error code as HTTP: the stable type URI (a
// page served by /problems/{slug}), title and status.
type problemType struct {
	Slug   string
	Title  string
	Status int
	About  string
}

// problemTypes is the one place error codes become HTTP.
var problemTypes = map[string]problemType{
	domain.EINVALID:      {"invalid", "Invalid request", http.StatusUnprocessableEntity, "The request was understood but something in it is invalid: `errors` lists each field (JSON pointer-like path) and what is wrong with it. Nothing was changed."},
	domain.ENOTFOUND:     {"not-found", "Not found", http.StatusNotFound, "No such resource exists for the calling tenant and mode. Another tenant's resource answers exactly like a missing one."},
	domain.ECONFLICT:     {"conflict", "Conflict", http.StatusConflict, "The request conflicts with the current state: a concurrent change, a duplicate business identity, a state transition not allowed from the current state, or an Idempotency-Key whose first request is still in flight."},
	domain.EFORBIDDEN:    {"forbidden", "Forbidden", http.StatusForbidden, "The API key is valid but may not do this: it lacks the scope (`reason: missing_scope`) or is read-only (`reason: read_only_key`)."},
	domain.EUNAUTHORIZED: {"unauthorized", "Unauthorized", http.StatusUnauthorized, "No API key or token, or one that is invalid, expired or revoked. Send `Authorization: Bearer sk_live_…|sk_test_…|tok_…` or `X-Api-Key`."},
	domain.ERATELIMITED:  {"rate-limited", "Too many requests", http.StatusTooManyRequests, "The API key exceeded its request rate. Wait `Retry-After` seconds; `X-RateLimit-*` headers tell the budget."},
	domain.EUNAVAILABLE:  {"unavailable", "Temporarily unavailable", http.StatusServiceUnavailable, "A dependency is behind or unreachable, e.g. a projection has not reached the requested min_position within the wait limit. Retry after `Retry-After` seconds."},
	"bad_request":        {"bad-request", "Bad request", http.StatusBadRequest, "The request is not in the form the endpoint takes (for POST /v1/oauth2/token: OAuth2's `invalid_request` and `unsupported_grant_type`, also given as `error` and `error_description`)."},
	"method_not_allowed": {"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed, "The path exists, but not with this method: the `Allow` header lists the methods it has."},
	domain.EINTERNAL:     {"internal", "Internal error", http.StatusInternalServerError, "Something failed on our side. Nothing you can fix by changing the request; quote the `request_id` when reporting it."},
}

// ProblemTypePrefix prefixes every problem type URI; /problems/{slug}
// documents each.
const ProblemTypePrefix = "/problems/"

// problemFor builds the problem document for err.
func problemFor(err error, requestID string) Problem {
	code := domain.ErrorCode(err)
	pt, ok := problemTypes[code]
	if !ok {
		pt = problemTypes[domain.EINTERNAL]
	}
	p := Problem{Type: ProblemTypePrefix + pt.Slug, Title: pt.Title, Status: pt.Status, Detail: domain.ErrorMessage(err), RequestID: requestID}
	var de *domain.Error
	if errors.As(err, &de) {
		p.Errors, p.Reason = de.Fields, de.Reason
	}
	return p
}

// writeError writes err as application/problem+json. Internal errors are
// logged with the request id and shown without details.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	id := w.Header().Get(HeaderRequestID)
	p := problemFor(err, id)
	if p.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if p.Status >= 500 && p.Status != http.StatusServiceUnavailable {
		slog.Default().ErrorContext(r.Context(), "request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeProblem(w, p)
}

func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// problemPage documents one problem type (the target of its type URI).
func problemPage(w http.ResponseWriter, r *http.Request, slug string) {
	for code, pt := range problemTypes {
		if pt.Slug == slug {
			writeJSON(w, http.StatusOK, map[string]any{"type": ProblemTypePrefix + slug, "code": code, "title": pt.Title, "status": pt.Status, "description": pt.About})
			return
		}
	}
	writeError(w, r, domain.Errorf(domain.ENOTFOUND, "no problem type %q", slug))
}
