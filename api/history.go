package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// historyEntryView is one event of an account's history with its effect
// on what the account owes.
type historyEntryView struct {
	Object       string           `json:"object"`
	Event        historyEventView `json:"event"`
	Effect       string           `json:"effect"`        // change in outstanding: + raised, - lowered
	BalanceAfter string           `json:"balance_after"` // outstanding after the event
	Currency     string           `json:"currency"`
}

type historyEventView struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Version    int64           `json:"version"`
	Position   int64           `json:"position"`
	RecordedAt time.Time       `json:"recorded_at"`
	Data       json.RawMessage `json:"data"`
}

// accountHistory: GET /v1/accounts/{id}/history — the account's events in
// stream order from the event store (consistent with every write), each
// with its effect on the outstanding balance and the balance after it,
// paginated by stream version. The running balance needs every earlier
// event, so each page folds the stream from its start: O(version) per
// page.
func (s *Server) accountHistory(w http.ResponseWriter, r *http.Request) {
	pg, err := parsePage(r)
	var after int64
	if err == nil && pg.After != "" {
		if after, err = strconv.ParseInt(pg.After, 10, 64); err != nil || after < 1 {
			err = domain.Invalid("invalid pagination", domain.FieldError{Field: "query:cursor", Error: "is not a cursor this API returned"})
		}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	missing := domain.Errorf(domain.ENOTFOUND, "account %s not found", id)
	if !domain.HasPrefix(id, domain.PrefixAccount) {
		writeError(w, r, missing)
		return
	}
	evs, err := s.store.ReadStream(r.Context(), p.TenantID, id, 0)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a := domain.NewAccount(p.TenantID, id)
	var out []historyEntryView
	for _, e := range evs {
		before := a.Outstanding()
		if err := a.Apply(e.Type, e.Data); err != nil {
			writeError(w, r, err)
			return
		}
		if !a.Opened || a.Sandbox != p.Sandbox() { // account.opened is version 1
			break
		}
		if e.StreamVersion <= after {
			continue
		}
		if len(out) > pg.Limit { // one more than a page: there is a next one
			break
		}
		outstanding := a.Outstanding()
		out = append(out, historyEntryView{Object: "account_history_entry",
			Event:  historyEventView{ID: e.ID, Type: e.Type, Version: e.StreamVersion, Position: e.Position, RecordedAt: e.RecordedAt.UTC(), Data: e.Data},
			Effect: domain.FormatAmount(outstanding.Sub(before), a.Currency), BalanceAfter: domain.FormatAmount(outstanding, a.Currency),
			Currency: a.Currency})
	}
	if !a.Opened || a.Sandbox != p.Sandbox() {
		writeError(w, r, missing)
		return
	}
	writeJSON(w, http.StatusOK, newList(out, pg.Limit, func(v historyEntryView) string { return strconv.FormatInt(v.Event.Version, 10) }))
}

// pointInTime is what GET /v1/accounts/{id}/balance computes as of: the
// date aging counts to, and the cut of the account's history it folds (the
// zero Cut: all of it).
type pointInTime struct {
	date domain.Date
	cut  eventstore.Cut
}

// parsePointInTime reads ?as_of= — a date (YYYY-MM-DD: aging to that date,
// every event) or an RFC 3339 timestamp (the events recorded at or before
// it, aging to its UTC date) — or ?as_of_position= (the events at positions
// up to it; the date is settled by loadAccountAt). Without either: every
// event, aging to today (UTC).
func parsePointInTime(r *http.Request, now time.Time) (pointInTime, error) {
	f := &queryFilters{r: r}
	pit := pointInTime{date: domain.DateOf(now)}
	asOf := f.text("as_of")
	switch {
	case asOf == "":
	case len(asOf) == len(time.DateOnly):
		d, err := domain.ParseDate(asOf)
		if err != nil {
			f.fe = append(f.fe, domain.FieldError{Field: "query:as_of", Error: "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp"})
		}
		pit.date = d
	default:
		if t := f.timestamp("as_of"); t != nil {
			pit.cut.At, pit.date = *t, domain.DateOf(*t)
		}
	}
	if f.text("as_of_position") != "" {
		if asOf != "" {
			f.fe = append(f.fe, domain.FieldError{Field: "query:as_of_position", Error: "cannot be combined with as_of"})
		}
		if pit.cut.Position = f.position("as_of_position"); pit.cut.Position == 0 && len(f.fe) == 0 {
			f.fe = append(f.fe, domain.FieldError{Field: "query:as_of_position", Error: "must be a positive integer (an event's position)"})
		}
	}
	if len(f.fe) > 0 {
		return pit, domain.Invalid("invalid point in time", f.fe...)
	}
	return pit, nil
}

// loadAccountAt is loadAccount as of pit: only the events within its cut
// are folded, and an account not opened by then is not found. For a cut by
// position, pit's date becomes that of the instant the position was
// written: the recording time of the tenant's last event at or before it.
func (s *Server) loadAccountAt(ctx context.Context, p domain.Principal, id string, pit *pointInTime) (*domain.Account, error) {
	if pit.cut == (eventstore.Cut{}) {
		return s.loadAccount(ctx, p, id)
	}
	missing := domain.Errorf(domain.ENOTFOUND, "account %s not found", id)
	if !domain.HasPrefix(id, domain.PrefixAccount) {
		return nil, missing
	}
	a := domain.NewAccount(p.TenantID, id)
	if _, err := s.store.LoadAsOf(ctx, p.TenantID, id, pit.cut, a); err != nil {
		return nil, err
	}
	if !a.Opened || a.Sandbox != p.Sandbox() {
		return nil, missing
	}
	if pit.cut.Position > 0 {
		var at time.Time
		// The account was opened by then: the tenant has such an event.
		if err := s.store.Pool().QueryRow(ctx, `SELECT recorded_at FROM events WHERE tenant_id = $1 AND position <= $2
			ORDER BY position DESC LIMIT 1`, p.TenantID, pit.cut.Position).Scan(&at); err != nil {
			return nil, err
		}
		pit.date = domain.DateOf(at)
	}
	return a, nil
}
