package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// debtorView is a debtor as the API shows it. Text fields are "" when
// unset; birth_date, address and meta are null.
type debtorView struct {
	Object      string            `json:"object"`
	ID          string            `json:"id"`
	Reference   string            `json:"reference"`
	Type        domain.DebtorType `json:"type"`
	FirstName   string            `json:"first_name"`
	LastName    string            `json:"last_name"`
	CompanyName string            `json:"company_name"`
	Name        string            `json:"name"`
	Email       string            `json:"email"`
	Phone       string            `json:"phone"`
	BirthDate   *string           `json:"birth_date"`
	Address     *domain.Address   `json:"address"`
	Locale      string            `json:"locale"`
	Meta        json.RawMessage   `json:"meta"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	Version     int64             `json:"version"`
}

// viewDebtor shows the command side's state of d.
func viewDebtor(d *domain.Debtor) debtorView {
	v := debtorView{Object: "debtor", ID: d.ID, Reference: d.Reference, Type: d.Type, FirstName: d.FirstName, LastName: d.LastName,
		CompanyName: d.CompanyName, Name: d.Name(), Email: d.Email, Phone: d.Phone, Locale: d.Locale,
		Meta: compactJSON(d.Meta), CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(), Version: d.Version}
	if d.BirthDate != "" {
		b := string(d.BirthDate)
		v.BirthDate = &b
	}
	if d.Address != nil {
		a := *d.Address
		v.Address = &a
	}
	return v
}

// compactJSON returns j without insignificant white space (jsonb prints
// some), nil for none.
func compactJSON(j []byte) json.RawMessage {
	if len(j) == 0 || string(j) == "null" {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, j); err != nil {
		return json.RawMessage(j)
	}
	return b.Bytes()
}

// debtorNow is the time a debtor command records, at the read model's
// (timestamptz) precision so that writes and reads show the same instant.
func debtorNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// createDebtor: POST /v1/debtors records debtor.created, in the caller's
// mode; a reference is unique per tenant and mode (409 otherwise).
func (s *Server) createDebtor(w http.ResponseWriter, r *http.Request) {
	var f domain.DebtorFields
	if err := decode(r, &f); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	at := debtorNow()
	id := s.ids.New(domain.PrefixDebtor, at)
	var ref string
	if f.Reference != nil {
		ref = strings.TrimSpace(*f.Reference)
	}
	var d *domain.Debtor
	cmd := debtorCommand(p.TenantID, id, func(agg *domain.Debtor) ([]domain.NewEvent, error) {
		d = agg
		return d.Create(f, p.Sandbox(), at)
	})
	cmd.Reference, cmd.Sandbox = ref, p.Sandbox()
	s.execute(w, r, []eventstore.Command{cmd}, func([]domain.Event) (result, error) {
		return result{Status: http.StatusCreated, Body: viewDebtor(d), Location: "/v1/debtors/" + id}, nil
	})
}

// updateDebtor: PATCH /v1/debtors/{id} changes the fields the body sets
// (absent: unchanged) and records debtor.updated. A change to nothing
// records nothing and answers the debtor without Arrears-Position. The
// reference, claimed at creation, cannot be changed. A missing debtor is
// 404 whatever the body.
func (s *Server) updateDebtor(w http.ResponseWriter, r *http.Request) {
	var f domain.DebtorFields
	invalid := decode(r, &f) // answered after "not found", so a missing debtor is never told apart by its body
	p := principal(r)
	id := chi.URLParam(r, "id")
	missing := domain.Errorf(domain.ENOTFOUND, "debtor %s not found", id)
	if !domain.HasPrefix(id, domain.PrefixDebtor) {
		writeError(w, r, missing)
		return
	}
	at := debtorNow()
	var d *domain.Debtor
	cmd := debtorCommand(p.TenantID, id, func(agg *domain.Debtor) ([]domain.NewEvent, error) {
		d = agg
		if !d.Created || d.Sandbox != p.Sandbox() {
			return nil, missing // another mode's debtor answers like a missing one
		}
		if invalid != nil {
			return nil, invalid
		}
		if f.Reference != nil && strings.TrimSpace(*f.Reference) != d.Reference {
			return nil, domain.Invalid("invalid debtor", domain.FieldError{Field: "reference", Error: "cannot be changed"})
		}
		return d.Update(f, at)
	})
	s.execute(w, r, []eventstore.Command{cmd}, func([]domain.Event) (result, error) {
		return result{Status: http.StatusOK, Body: viewDebtor(d)}, nil
	})
}

const debtorColumns = `id, reference, type, first_name, last_name, company_name, email, phone,
	to_char(birth_date, 'YYYY-MM-DD'), address, locale, meta, created_at, updated_at, version`

type rowScanner interface{ Scan(dest ...any) error }

func scanDebtor(row rowScanner) (debtorView, error) {
	v := debtorView{Object: "debtor"}
	var address, meta []byte
	if err := row.Scan(&v.ID, &v.Reference, &v.Type, &v.FirstName, &v.LastName, &v.CompanyName, &v.Email, &v.Phone,
		&v.BirthDate, &address, &v.Locale, &meta, &v.CreatedAt, &v.UpdatedAt, &v.Version); err != nil {
		return v, err
	}
	if len(address) > 0 && string(address) != "null" {
		v.Address = &domain.Address{}
		if err := json.Unmarshal(address, v.Address); err != nil {
			return v, err
		}
	}
	v.Meta = compactJSON(meta)
	v.CreatedAt, v.UpdatedAt = v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	d := domain.Debtor{Type: v.Type, FirstName: v.FirstName, LastName: v.LastName, CompanyName: v.CompanyName}
	v.Name = d.Name()
	return v, nil
}

// getDebtor: GET /v1/debtors/{id}, from the debtors projection.
func (s *Server) getDebtor(w http.ResponseWriter, r *http.Request) {
	readOne(s, w, r, "debtors", "debtor", debtorColumns, "debtors", scanDebtor)
}

// listDebtors: GET /v1/debtors — the tenant's debtors of the caller's mode,
// by id (oldest first), optionally only those with ?reference= or matching
// ?search= (case-insensitive, in names, company name and email).
func (s *Server) listDebtors(w http.ResponseWriter, r *http.Request) {
	pg, err := parsePage(r)
	if err == nil {
		err = s.awaitPosition(r, "debtors")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	q := r.URL.Query()
	views, err := s.debtors(r.Context(), p, pg, strings.TrimSpace(q.Get("reference")), strings.TrimSpace(q.Get("search")))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v debtorView) string { return v.ID }))
}

func (s *Server) debtors(ctx context.Context, p domain.Principal, pg page, reference, search string) ([]debtorView, error) {
	rows, err := s.store.Pool().Query(ctx, `SELECT `+debtorColumns+`
		FROM debtors
		WHERE tenant_id = $1 AND sandbox = $2 AND id > $3
		  AND ($4 = '' OR reference = $4)
		  AND ($5 = '' OR strpos(lower(first_name || ' ' || last_name || ' ' || company_name || ' ' || email), lower($5)) > 0)
		ORDER BY id LIMIT $6`, p.TenantID, p.Sandbox(), pg.After, reference, search, pg.Limit+1)
	return collect(rows, err, scanDebtor)
}
