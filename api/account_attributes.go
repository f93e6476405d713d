package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// Account attributes: PATCH /v1/accounts/{id} and the account's debtors,
// products, scores and mandates as sub-resources. Every write is
// account.updated, decided on the account's current state inside the
// account's command (so concurrent edits serialise on the account); every
// read of a sub-resource folds the account from the event store, so it
// shows the write just before it without min_position.

// Account statuses, derived from the outstanding balance.
const (
	accountOpen     = "open"      // outstanding > 0
	accountSettled  = "settled"   // outstanding = 0
	accountInCredit = "in_credit" // outstanding < 0
)

// accountStatus is the status of an account that owes outstanding.
func accountStatus(outstanding decimal.Decimal) string {
	switch outstanding.Sign() {
	case 1:
		return accountOpen
	case 0:
		return accountSettled
	}
	return accountInCredit
}

// accountFilter is what GET /v1/accounts selects ("" / nil: any).
type accountFilter struct {
	reference, debtorID, status, search string
	overdueOnly                         bool
	amountMin, amountMax                *string // decimal strings, compared to outstanding
	today                               time.Time
}

// amountSyntax is a decimal amount as the API writes them.
var amountSyntax = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// parseAccountFilter reads ?reference=, ?debtor_id=, ?status= (open,
// settled, in_credit), ?overdue_only=true, ?amount_min= and ?amount_max=
// (bounds of outstanding, inclusive) and ?search= (case-insensitive part of
// the reference, or the exact id).
func parseAccountFilter(q url.Values) (accountFilter, error) {
	f := accountFilter{reference: strings.TrimSpace(q.Get("reference")), debtorID: strings.TrimSpace(q.Get("debtor_id")),
		status: strings.TrimSpace(q.Get("status")), search: strings.TrimSpace(q.Get("search")),
		today: domain.DateOf(time.Now()).Time()}
	var fe []domain.FieldError
	switch f.status {
	case "", accountOpen, accountSettled, accountInCredit:
	default:
		fe = append(fe, domain.FieldError{Field: "query:status", Error: "must be one of open, settled, in_credit"})
	}
	switch v := q.Get("overdue_only"); v {
	case "", "false":
	case "true":
		f.overdueOnly = true
	default:
		fe = append(fe, domain.FieldError{Field: "query:overdue_only", Error: "must be true or false"})
	}
	var bounds [2]decimal.Decimal
	for i, b := range []struct {
		name string
		dst  **string
	}{{"amount_min", &f.amountMin}, {"amount_max", &f.amountMax}} {
		v := strings.TrimSpace(q.Get(b.name))
		if v == "" {
			continue
		}
		d, err := decimal.NewFromString(v)
		if !amountSyntax.MatchString(v) || err != nil {
			fe = append(fe, domain.FieldError{Field: "query:" + b.name, Error: `must be a decimal amount, e.g. "100.00"`})
			continue
		}
		bounds[i], *b.dst = d, &v
	}
	if f.amountMin != nil && f.amountMax != nil && bounds[1].LessThan(bounds[0]) {
		fe = append(fe, domain.FieldError{Field: "query:amount_max", Error: "must not be less than amount_min"})
	}
	if len(fe) > 0 {
		return f, domain.Invalid("invalid query", fe...)
	}
	return f, nil
}

// accountFilterSQL is the part of the accounts query (FROM accounts a) that
// applies accountFilter.args ($7 …). An account is overdue if a debit
// (invoice, fee or positive adjustment) due before today still has
// something unpaid.
const accountFilterSQL = `($7 = '' OR ($7 = 'open' AND a.outstanding > 0) OR ($7 = 'settled' AND a.outstanding = 0)
		       OR ($7 = 'in_credit' AND a.outstanding < 0))
		  AND (NOT $8::boolean OR EXISTS (SELECT 1 FROM ledger_entries le
		       WHERE le.tenant_id = a.tenant_id AND le.account_id = a.id AND le.due_date < $9::date AND le.amount - le.paid > 0
		         AND (le.kind IN ('invoice', 'fee') OR (le.kind = 'adjustment' AND le.amount > 0))))
		  AND ($10::text IS NULL OR a.outstanding >= $10::text::numeric)
		  AND ($11::text IS NULL OR a.outstanding <= $11::text::numeric)
		  AND ($12 = '' OR a.id = $12 OR strpos(lower(a.reference), lower($12)) > 0)`

func (f accountFilter) args() []any {
	return []any{f.status, f.overdueOnly, f.today, f.amountMin, f.amountMax, f.search}
}

// writeAccount runs decide on account {id} of the caller's tenant and mode
// and answers the result it built. A missing account — none, another
// tenant's or mode's, or an id that is no account's — answers 404 whatever
// the request: invalid (the request's own error, e.g. its body's) is
// answered only after that. decide runs inside the account's command, so it
// sees the current state and concurrent writes to the account serialise.
func (s *Server) writeAccount(w http.ResponseWriter, r *http.Request, invalid error,
	decide func(a *domain.Account, at time.Time) (result, []domain.NewEvent, error)) {
	p := principal(r)
	id := chi.URLParam(r, "id")
	missing := domain.Errorf(domain.ENOTFOUND, "account %s not found", id)
	if !domain.HasPrefix(id, domain.PrefixAccount) {
		writeError(w, r, missing)
		return
	}
	at := debtorNow()
	var res result
	cmd := accountCommand(p.TenantID, id, func(a *domain.Account) ([]domain.NewEvent, error) {
		if !a.Opened || a.Sandbox != p.Sandbox() {
			return nil, missing
		}
		if invalid != nil {
			return nil, invalid
		}
		var evs []domain.NewEvent
		var err error
		res, evs, err = decide(a, at)
		return evs, err
	})
	s.execute(w, r, []eventstore.Command{cmd}, func([]domain.Event) (result, error) { return res, nil })
}

// ---- PATCH /v1/accounts/{id} ----

type updateAccountRequest struct {
	Reference *string           `json:"reference"`
	Currency  *string           `json:"currency"`
	DebtorIDs *[]string         `json:"debtor_ids"`
	Products  *[]domain.Product `json:"products"`
	Scores    *[]domain.Score   `json:"scores"`
	Mandates  *[]domain.Mandate `json:"mandates"`
	Meta      json.RawMessage   `json:"meta"`
}

// updateAccount: PATCH /v1/accounts/{id} replaces meta (whole, like a
// debtor's) and any of debtor_ids, products, scores and mandates (each a
// whole list) the body sets, and records account.updated with what
// changed. A change to nothing records nothing and answers the account
// without Arrears-Position. The reference and the currency cannot be
// changed (422 if the body gives others). A missing account is 404
// whatever the body.
func (s *Server) updateAccount(w http.ResponseWriter, r *http.Request) {
	var in updateAccountRequest
	invalid := decode(r, &in)
	p := principal(r)
	var debtorsErr error
	if invalid == nil && in.DebtorIDs != nil {
		debtorsErr = s.checkDebtors(r, p, *in.DebtorIDs) // the event store: debtors are never removed
	}
	s.writeAccount(w, r, invalid, func(a *domain.Account, at time.Time) (result, []domain.NewEvent, error) {
		var fe []domain.FieldError
		if in.Reference != nil && strings.TrimSpace(*in.Reference) != a.Reference {
			fe = append(fe, domain.FieldError{Field: "reference", Error: "cannot be changed"})
		}
		if in.Currency != nil && strings.TrimSpace(*in.Currency) != a.Currency {
			fe = append(fe, domain.FieldError{Field: "currency", Error: "cannot be changed"})
		}
		if debtorsErr != nil {
			var de *domain.Error
			if !errors.As(debtorsErr, &de) || de.Code != domain.EINVALID {
				return result{}, nil, debtorsErr
			}
			fe = append(fe, de.Fields...)
		}
		if len(fe) > 0 {
			return result{}, nil, domain.Invalid("invalid account update", fe...)
		}
		evs, err := a.Update(domain.AccountUpdated{Meta: in.Meta, DebtorIDs: in.DebtorIDs, Products: in.Products,
			Scores: in.Scores, Mandates: in.Mandates}, at)
		if err != nil {
			return result{}, nil, err
		}
		return result{Status: http.StatusOK, Body: viewAccount(a, at)}, evs, nil
	})
}

// ---- /v1/accounts/{id}/debtors ----

// loadDebtors folds the debtors ids of the caller's tenant and mode from the
// event store, in one query; an id that is no such debtor is absent from
// the result.
func (s *Server) loadDebtors(ctx context.Context, p domain.Principal, ids []string) (map[string]*domain.Debtor, error) {
	out := map[string]*domain.Debtor{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.store.Pool().Query(ctx, `SELECT stream_id, type, data FROM events
		WHERE tenant_id = $1 AND stream_id = ANY($2) AND stream_type = $3
		ORDER BY stream_id, stream_version`, p.TenantID, ids, domain.StreamTypeDebtor)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, typ string
		var data []byte
		if err := rows.Scan(&id, &typ, &data); err != nil {
			return nil, err
		}
		d := out[id]
		if d == nil {
			d = domain.NewDebtor(p.TenantID, id)
			out[id] = d
		}
		if err := d.Apply(typ, data); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for id, d := range out {
		if !d.Created || d.Sandbox != p.Sandbox() {
			delete(out, id)
		}
	}
	return out, nil
}

// listAccountDebtors: GET /v1/accounts/{id}/debtors — the account's
// debtors, in the account's order, folded from the event store.
func (s *Server) listAccountDebtors(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	a, err := s.loadAccount(r.Context(), p, chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	found, err := s.loadDebtors(r.Context(), p, a.DebtorIDs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	views := []debtorView{}
	for _, id := range a.DebtorIDs {
		if d, ok := found[id]; ok {
			views = append(views, viewDebtor(d))
		}
	}
	writeJSON(w, http.StatusOK, list[debtorView]{Data: views})
}

type addAccountDebtorRequest struct {
	DebtorID string `json:"debtor_id"`
}

// addAccountDebtor: POST /v1/accounts/{id}/debtors adds a debtor of the
// tenant and mode to the account: 201 with the debtor, or 200 if it is
// already one of the account's (nothing recorded).
func (s *Server) addAccountDebtor(w http.ResponseWriter, r *http.Request) {
	var in addAccountDebtorRequest
	invalid := decode(r, &in)
	p := principal(r)
	in.DebtorID = strings.TrimSpace(in.DebtorID)
	var d *domain.Debtor
	if invalid == nil {
		d, invalid = s.debtorToAdd(r, p, in.DebtorID)
	}
	s.writeAccount(w, r, invalid, func(a *domain.Account, at time.Time) (result, []domain.NewEvent, error) {
		added, evs, err := a.AddDebtor(in.DebtorID, at)
		if err != nil {
			return result{}, nil, err
		}
		res := result{Status: http.StatusOK, Body: viewDebtor(d)}
		if added {
			res.Status = http.StatusCreated
		}
		return res, evs, nil
	})
}

// debtorToAdd folds debtor id of the caller's tenant and mode from the event
// store; none answers 422 naming debtor_id.
func (s *Server) debtorToAdd(r *http.Request, p domain.Principal, id string) (*domain.Debtor, error) {
	if id == "" {
		return nil, domain.Invalid("invalid debtor", domain.FieldError{Field: "debtor_id", Error: "is required"})
	}
	if err := s.checkDebtors(r, p, []string{id}); err != nil {
		return nil, renameField(err, "debtor_ids[0]", "debtor_id")
	}
	found, err := s.loadDebtors(r.Context(), p, []string{id})
	if err != nil {
		return nil, err
	}
	if d, ok := found[id]; ok {
		return d, nil
	}
	return nil, domain.Errorf(domain.EINTERNAL, "debtor %s cannot be loaded", id)
}

// renameField renames field from to to in err's field errors.
func renameField(err error, from, to string) error {
	var de *domain.Error
	if !errors.As(err, &de) {
		return err
	}
	c := *de
	c.Fields = append([]domain.FieldError(nil), de.Fields...)
	for i := range c.Fields {
		if c.Fields[i].Field == from {
			c.Fields[i].Field = to
		}
	}
	return &c
}

// removeAccountDebtor: DELETE /v1/accounts/{id}/debtors/{debtor_id} removes
// the debtor from the account (the debtor itself stays) and answers it; 404
// if it is not one of the account's.
func (s *Server) removeAccountDebtor(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	debtorID := pathParam(r, "debtor_id")
	found, err := s.loadDebtors(r.Context(), p, []string{debtorID})
	s.writeAccount(w, r, err, func(a *domain.Account, at time.Time) (result, []domain.NewEvent, error) {
		evs, err := a.RemoveDebtor(debtorID, at)
		if err != nil {
			return result{}, nil, err
		}
		d, ok := found[debtorID]
		if !ok { // every debtor id was checked when it was added
			return result{}, nil, domain.Errorf(domain.EINTERNAL, "debtor %s of account %s cannot be loaded", debtorID, a.ID)
		}
		return result{Status: http.StatusOK, Body: viewDebtor(d)}, evs, nil
	})
}

// ---- products, scores and mandates ----

// attributeList answers GET /v1/accounts/{id}/<list>: the whole list, in
// the account's order, from the event store. It is not paginated:
// next_cursor is always null.
func attributeList[T any](s *Server, w http.ResponseWriter, r *http.Request, l domain.AttributeList[T]) {
	a, err := s.loadAccount(r.Context(), principal(r), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[T]{Data: l.Items(a)})
}

// addAttribute answers POST /v1/accounts/{id}/<list>: the body, made an
// item by toItem, is added (201, with its Location); an item of that key
// with the same content is a no-op (200), with other content a conflict.
func addAttribute[T, In any](s *Server, w http.ResponseWriter, r *http.Request, l domain.AttributeList[T], toItem func(In) (T, error)) {
	var in In
	invalid := decode(r, &in)
	var item T
	if invalid == nil {
		item, invalid = toItem(in)
	}
	s.writeAccount(w, r, invalid, func(a *domain.Account, at time.Time) (result, []domain.NewEvent, error) {
		created, evs, err := l.Add(a, item, at)
		if err != nil {
			return result{}, nil, err
		}
		key := l.KeyOf(item)
		cur, _ := l.Find(a, key)
		res := result{Status: http.StatusOK, Body: cur}
		if created {
			res.Status, res.Location = http.StatusCreated, "/v1/accounts/"+a.ID+"/"+l.Name+"/"+url.PathEscape(key)
		}
		return res, evs, nil
	})
}

// patchAttribute answers PATCH /v1/accounts/{id}/<list>/{param}: apply
// changes the fields the body sets (absent: unchanged) of the item; its key
// cannot be changed. A change to nothing records nothing.
func patchAttribute[T, P any](s *Server, w http.ResponseWriter, r *http.Request, l domain.AttributeList[T], param string, apply func(P, T) T) {
	var in P
	invalid := decode(r, &in)
	key := pathParam(r, param)
	s.writeAccount(w, r, invalid, func(a *domain.Account, at time.Time) (result, []domain.NewEvent, error) {
		cur, ok := l.Find(a, key)
		if !ok {
			return result{}, nil, domain.Errorf(domain.ENOTFOUND, "%s %s not found on account %s", l.Item, key, a.ID)
		}
		evs, err := l.Replace(a, key, apply(in, cur), at)
		if err != nil {
			return result{}, nil, err
		}
		cur, _ = l.Find(a, key)
		return result{Status: http.StatusOK, Body: cur}, evs, nil
	})
}

// deleteAttribute answers DELETE /v1/accounts/{id}/<list>/{param}: the item
// is removed and answered.
func deleteAttribute[T any](s *Server, w http.ResponseWriter, r *http.Request, l domain.AttributeList[T], param string) {
	key := pathParam(r, param)
	s.writeAccount(w, r, nil, func(a *domain.Account, at time.Time) (result, []domain.NewEvent, error) {
		removed, evs, err := l.Remove(a, key, at)
		if err != nil {
			return result{}, nil, err
		}
		return result{Status: http.StatusOK, Body: removed}, evs, nil
	})
}

// setIf sets *dst to *v if v is given.
func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// setMeta replaces *dst by meta if the body has it.
func setMeta(dst *json.RawMessage, meta json.RawMessage) {
	if meta != nil {
		*dst = meta
	}
}

// productPatch is the body of PATCH …/products/{reference}: nil fields
// unchanged.
type productPatch struct {
	Reference        *string         `json:"reference"`
	Type             *string         `json:"type"`
	Name             *string         `json:"name"`
	Code             *string         `json:"code"`
	PaymentReference *string         `json:"payment_reference"`
	Meta             json.RawMessage `json:"meta"`
}

func (in productPatch) apply(p domain.Product) domain.Product {
	setIf(&p.Reference, in.Reference)
	setIf(&p.Type, in.Type)
	setIf(&p.Name, in.Name)
	setIf(&p.Code, in.Code)
	setIf(&p.PaymentReference, in.PaymentReference)
	setMeta(&p.Meta, in.Meta)
	return p
}

// scoreInput is the body of POST …/scores: the value is required.
type scoreInput struct {
	Type     string           `json:"type"`
	Value    *decimal.Decimal `json:"value"`
	Provider string           `json:"provider"`
	Meta     json.RawMessage  `json:"meta"`
}

func (in scoreInput) item() (domain.Score, error) {
	sc := domain.Score{Type: in.Type, Provider: in.Provider, Meta: in.Meta}
	if in.Value == nil {
		return sc, domain.Invalid("invalid score", domain.FieldError{Field: "value", Error: "is required"})
	}
	sc.Value = *in.Value
	return sc, nil
}

// scorePatch is the body of PATCH …/scores/{type}: nil fields unchanged.
type scorePatch struct {
	Type     *string          `json:"type"`
	Value    *decimal.Decimal `json:"value"`
	Provider *string          `json:"provider"`
	Meta     json.RawMessage  `json:"meta"`
}

func (in scorePatch) apply(sc domain.Score) domain.Score {
	setIf(&sc.Type, in.Type)
	setIf(&sc.Value, in.Value)
	setIf(&sc.Provider, in.Provider)
	setMeta(&sc.Meta, in.Meta)
	return sc
}

// mandatePatch is the body of PATCH …/mandates/{mandate_id}: nil fields
// unchanged.
type mandatePatch struct {
	ID        *string         `json:"id"`
	Type      *string         `json:"type"`
	Reference *string         `json:"reference"`
	Meta      json.RawMessage `json:"meta"`
}

func (in mandatePatch) apply(m domain.Mandate) domain.Mandate {
	setIf(&m.ID, in.ID)
	setIf(&m.Type, in.Type)
	setIf(&m.Reference, in.Reference)
	setMeta(&m.Meta, in.Meta)
	return m
}

func asIs[T any](v T) (T, error) { return v, nil }

// listAccountProducts: GET /v1/accounts/{id}/products.
func (s *Server) listAccountProducts(w http.ResponseWriter, r *http.Request) {
	attributeList(s, w, r, domain.ProductList)
}

// addAccountProduct: POST /v1/accounts/{id}/products.
func (s *Server) addAccountProduct(w http.ResponseWriter, r *http.Request) {
	addAttribute(s, w, r, domain.ProductList, asIs[domain.Product])
}

// updateAccountProduct: PATCH /v1/accounts/{id}/products/{reference}.
func (s *Server) updateAccountProduct(w http.ResponseWriter, r *http.Request) {
	patchAttribute(s, w, r, domain.ProductList, "reference", productPatch.apply)
}

// removeAccountProduct: DELETE /v1/accounts/{id}/products/{reference}.
func (s *Server) removeAccountProduct(w http.ResponseWriter, r *http.Request) {
	deleteAttribute(s, w, r, domain.ProductList, "reference")
}

// listAccountScores: GET /v1/accounts/{id}/scores.
func (s *Server) listAccountScores(w http.ResponseWriter, r *http.Request) {
	attributeList(s, w, r, domain.ScoreList)
}

// addAccountScore: POST /v1/accounts/{id}/scores.
func (s *Server) addAccountScore(w http.ResponseWriter, r *http.Request) {
	addAttribute(s, w, r, domain.ScoreList, scoreInput.item)
}

// updateAccountScore: PATCH /v1/accounts/{id}/scores/{type}.
func (s *Server) updateAccountScore(w http.ResponseWriter, r *http.Request) {
	patchAttribute(s, w, r, domain.ScoreList, "type", scorePatch.apply)
}

// removeAccountScore: DELETE /v1/accounts/{id}/scores/{type}.
func (s *Server) removeAccountScore(w http.ResponseWriter, r *http.Request) {
	deleteAttribute(s, w, r, domain.ScoreList, "type")
}

// listAccountMandates: GET /v1/accounts/{id}/mandates.
func (s *Server) listAccountMandates(w http.ResponseWriter, r *http.Request) {
	attributeList(s, w, r, domain.MandateList)
}

// addAccountMandate: POST /v1/accounts/{id}/mandates.
func (s *Server) addAccountMandate(w http.ResponseWriter, r *http.Request) {
	addAttribute(s, w, r, domain.MandateList, asIs[domain.Mandate])
}

// updateAccountMandate: PATCH /v1/accounts/{id}/mandates/{mandate_id}.
func (s *Server) updateAccountMandate(w http.ResponseWriter, r *http.Request) {
	patchAttribute(s, w, r, domain.MandateList, "mandate_id", mandatePatch.apply)
}

// removeAccountMandate: DELETE /v1/accounts/{id}/mandates/{mandate_id}.
func (s *Server) removeAccountMandate(w http.ResponseWriter, r *http.Request) {
	deleteAttribute(s, w, r, domain.MandateList, "mandate_id")
}
