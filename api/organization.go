package api

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/arrears/arrears/domain"
)

type organizationView struct {
	Object    string      `json:"object"`
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	CreatedAt time.Time   `json:"created_at"`
	Mode      domain.Mode `json:"mode"`
	Key       struct {
		ID       string   `json:"id"`
		Scopes   []string `json:"scopes"`
		ReadOnly bool     `json:"read_only"`
	} `json:"key"`
}

// organization: GET /v1/organization — the calling tenant, the key's mode
// and what the key may do. Any valid key may call it.
func (s *Server) organization(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	t, err := s.store.Tenant(r.Context(), p.TenantID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v := organizationView{Object: "organization", ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, Mode: p.Mode}
	v.Key.ID, v.Key.Scopes, v.Key.ReadOnly = p.KeyID, p.Scopes, p.ReadOnly
	if v.Key.Scopes == nil {
		v.Key.Scopes = []string{}
	}
	writeJSON(w, http.StatusOK, v)
}

type streamView struct {
	Object        string    `json:"object"`
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Version       int64     `json:"version"`
	EventCount    int64     `json:"event_count"`
	LastEventID   string    `json:"last_event_id"`
	LastEventType string    `json:"last_event_type"`
	LastPosition  int64     `json:"last_position"`
	FirstRecorded time.Time `json:"first_recorded_at"`
	LastRecorded  time.Time `json:"last_recorded_at"`
}

// getStream: GET /v1/streams/{id} — the head of one event stream (an
// account, a claim, an API key …), from the stream_heads projection; use
// ?min_position= to read your own write.
func (s *Server) getStream(w http.ResponseWriter, r *http.Request) {
	if err := s.awaitPosition(r, "stream_heads"); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	v := streamView{Object: "stream"}
	err := s.store.Pool().QueryRow(r.Context(), `
		SELECT stream_id, stream_type, version, event_count, last_event_id, last_event_type, last_position, first_recorded, last_recorded
		FROM stream_heads WHERE tenant_id = $1 AND stream_id = $2 AND sandbox = $3`, p.TenantID, id, p.Sandbox()).
		Scan(&v.ID, &v.Type, &v.Version, &v.EventCount, &v.LastEventID, &v.LastEventType, &v.LastPosition, &v.FirstRecorded, &v.LastRecorded)
	if err != nil {
		writeError(w, r, notFound(err, "stream "+id))
		return
	}
	v.FirstRecorded, v.LastRecorded = v.FirstRecorded.UTC(), v.LastRecorded.UTC()
	writeJSON(w, http.StatusOK, v)
}
