package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// maxTriggerTargets bounds the claims and accounts of one trigger call.
const maxTriggerTargets = 500

// triggerRequest is the body of POST /v1/triggers/{name}: its targets, by
// id or by the creditor's reference, and an optional JSON object payload.
type triggerRequest struct {
	ClaimIDs          []string        `json:"claim_ids"`
	ClaimReferences   []string        `json:"claim_references"`
	AccountIDs        []string        `json:"account_ids"`
	AccountReferences []string        `json:"account_references"`
	Payload           json.RawMessage `json:"payload"`
}

type triggerEventView struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	StreamType string `json:"stream_type"`
	StreamID   string `json:"stream_id"`
	Position   int64  `json:"position"`
}

// triggerView is a trigger call: its id (trigger_id of every event it
// recorded) and the events, one per target, in the request's order.
type triggerView struct {
	Object string             `json:"object"`
	ID     string             `json:"id"`
	Name   string             `json:"name"`
	Events []triggerEventView `json:"events"`
}

// requireTriggerScopes is require(…, "write") for POST /v1/triggers/{name},
// whose scope depends on its body: claims:write to name claims,
// accounts:write to name accounts (one of them when it names neither: the
// handler then refuses it). Like require, it checks before Idempotency-Key
// handling.
func (s *Server) requireTriggerScopes(next http.Handler) http.Handler {
	next = s.idempotency(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var t struct {
			ClaimIDs          json.RawMessage `json:"claim_ids"`
			ClaimReferences   json.RawMessage `json:"claim_references"`
			AccountIDs        json.RawMessage `json:"account_ids"`
			AccountReferences json.RawMessage `json:"account_references"`
		}
		_ = json.Unmarshal(body, &t) // a body that is no JSON object names no target; the handler refuses it
		named := func(raws ...json.RawMessage) bool {
			for _, raw := range raws {
				var items []json.RawMessage
				if len(raw) > 0 && string(raw) != "null" && (json.Unmarshal(raw, &items) != nil || len(items) > 0) {
					return true
				}
			}
			return false
		}
		claims, accounts := named(t.ClaimIDs, t.ClaimReferences), named(t.AccountIDs, t.AccountReferences)
		p := principal(r)
		var refused error
		switch {
		case claims || accounts:
			if claims {
				refused = p.Can("claims", "write")
			}
			if accounts && refused == nil {
				refused = p.Can("accounts", "write")
			}
		default:
			if refused = p.Can("claims", "write"); refused != nil && p.Can("accounts", "write") == nil {
				refused = nil
			}
		}
		if refused != nil {
			writeError(w, r, refused)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// triggerTarget is one claim or account a trigger call names.
type triggerTarget struct {
	field string // claim_ids[i], account_references[i], …
	claim bool
	id    string
}

// postTrigger: POST /v1/triggers/{name} records a creditor's custom trigger
// (claim.triggered, account.triggered) on each of up to 500 claims and
// accounts, named by id or reference, all or nothing in one transaction,
// with the same trigger id on every event. Every problem is named by its
// field and index (422), like a claims import.
func (s *Server) postTrigger(w http.ResponseWriter, r *http.Request) {
	var in triggerRequest
	if err := decode(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	name := chi.URLParam(r, "name")
	var fe []domain.FieldError
	if bad := domain.ValidateTriggerName(name); bad != nil {
		fe = append(fe, *bad)
	}
	if bad := domain.ValidatePayload("payload", in.Payload); bad != nil {
		fe = append(fe, *bad)
	}
	switch n := len(in.ClaimIDs) + len(in.ClaimReferences) + len(in.AccountIDs) + len(in.AccountReferences); {
	case n == 0:
		fe = append(fe, domain.FieldError{Field: "claim_ids", Error: "give at least one target: claim_ids, claim_references, account_ids or account_references"})
	case n > maxTriggerTargets:
		fe = append(fe, domain.FieldError{Field: "claim_ids", Error: fmt.Sprintf("must name at most %d targets in all (claim_ids, claim_references, account_ids, account_references): %d named", maxTriggerTargets, n)})
	}
	if len(fe) > 0 {
		writeError(w, r, domain.Invalid("invalid trigger: nothing was recorded", fe...))
		return
	}
	p := principal(r)
	ctx := r.Context()
	claimRefs, err := s.streamsByReference(ctx, p, domain.StreamTypeClaim, in.ClaimReferences)
	if err != nil {
		writeError(w, r, err)
		return
	}
	accountRefs, err := s.streamsByReference(ctx, p, domain.StreamTypeAccount, in.AccountReferences)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var targets []triggerTarget
	seen := map[string]string{} // stream → the field that named it first
	add := func(list string, values []string, claim, byRef bool, refs map[string]string) {
		what, prefix := "account", domain.PrefixAccount
		if claim {
			what, prefix = "claim", domain.PrefixClaim
		}
		for i, v := range values {
			field := fmt.Sprintf("%s[%d]", list, i)
			v = strings.TrimSpace(v)
			id := v
			switch {
			case v == "":
				fe = append(fe, domain.FieldError{Field: field, Error: "must not be empty"})
				continue
			case byRef:
				if id = refs[v]; id == "" {
					fe = append(fe, domain.FieldError{Field: field, Error: fmt.Sprintf("no %s with reference %s", what, v)})
					continue
				}
			case !domain.HasPrefix(v, prefix):
				fe = append(fe, domain.FieldError{Field: field, Error: fmt.Sprintf("no %s %s", what, v)})
				continue
			}
			if first, dup := seen[id]; dup {
				fe = append(fe, domain.FieldError{Field: field, Error: fmt.Sprintf("names %s %s again (also %s)", what, id, first)})
				continue
			}
			seen[id] = field
			targets = append(targets, triggerTarget{field: field, claim: claim, id: id})
		}
	}
	add("claim_ids", in.ClaimIDs, true, false, nil)
	add("claim_references", in.ClaimReferences, true, true, claimRefs)
	add("account_ids", in.AccountIDs, false, false, nil)
	add("account_references", in.AccountReferences, false, true, accountRefs)
	if len(fe) > 0 {
		writeError(w, r, domain.Invalid("invalid trigger: nothing was recorded", fe...))
		return
	}
	var payload json.RawMessage
	if len(in.Payload) > 0 && string(in.Payload) != "null" {
		payload = in.Payload
	}
	at := debtorNow()
	id := s.ids.New(domain.PrefixTrigger, at)
	cmds := make([]eventstore.Command, len(targets))
	for i, t := range targets {
		if t.claim {
			cmds[i] = claimCommand(p.TenantID, t.id, func(c *domain.Claim) ([]domain.NewEvent, error) {
				if !c.Created || c.Sandbox != p.Sandbox() {
					return nil, domain.Invalid("invalid trigger: nothing was recorded", domain.FieldError{Field: t.field, Error: "no claim " + t.id})
				}
				return c.Trigger(id, name, payload, at)
			})
		} else {
			cmds[i] = accountCommand(p.TenantID, t.id, func(a *domain.Account) ([]domain.NewEvent, error) {
				if !a.Opened || a.Sandbox != p.Sandbox() {
					return nil, domain.Invalid("invalid trigger: nothing was recorded", domain.FieldError{Field: t.field, Error: "no account " + t.id})
				}
				return a.Trigger(id, name, payload, at)
			})
		}
	}
	s.execute(w, r, cmds, func(events []domain.Event) (result, error) {
		v := triggerView{Object: "trigger", ID: id, Name: name, Events: make([]triggerEventView, len(events))}
		for i, e := range events {
			v.Events[i] = triggerEventView{ID: e.ID, Type: e.Type, StreamType: e.StreamType, StreamID: e.StreamID, Position: e.Position}
		}
		return result{Status: http.StatusCreated, Body: v}, nil
	})
}
