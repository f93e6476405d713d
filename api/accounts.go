package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// accountView is an account as the API shows it: its attributes and money
// sums (decimal strings in major units of its currency).
type accountView struct {
	Object      string          `json:"object"`
	ID          string          `json:"id"`
	Reference   string          `json:"reference"`
	Currency    string          `json:"currency"`
	Status      string          `json:"status"` // from outstanding: see accountStatus
	DebtorIDs   []string        `json:"debtor_ids"`
	Products    json.RawMessage `json:"products"`
	Scores      json.RawMessage `json:"scores"`
	Mandates    json.RawMessage `json:"mandates"`
	Meta        json.RawMessage `json:"meta"`
	Invoiced    string          `json:"invoiced"`
	Fees        string          `json:"fees"`
	Paid        string          `json:"paid"`
	Adjustments string          `json:"adjustments"`
	Discounts   string          `json:"discounts"`
	Chargebacks string          `json:"chargebacks"`
	Refunded    string          `json:"refunded"`
	Credit      string          `json:"credit"`
	Outstanding string          `json:"outstanding"`
	OpenedAt    time.Time       `json:"opened_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	Version     int64           `json:"version"`
}

func jsonList[T any](v []T) json.RawMessage {
	if v == nil {
		v = []T{}
	}
	b, _ := json.Marshal(v)
	return compactJSON(b)
}

// viewAccount shows the command side's state of a, its balance as of at.
func viewAccount(a *domain.Account, at time.Time) accountView {
	b := a.Balance(domain.DateOf(at))
	f := func(d decimal.Decimal) string { return domain.FormatAmount(d, a.Currency) }
	ids := a.DebtorIDs
	if ids == nil {
		ids = []string{}
	}
	return accountView{Object: "account", ID: a.ID, Reference: a.Reference, Currency: a.Currency, Status: accountStatus(b.Outstanding), DebtorIDs: ids,
		Products: jsonList(a.Products), Scores: jsonList(a.Scores), Mandates: jsonList(a.Mandates), Meta: compactJSON(a.Meta),
		Invoiced: f(b.Invoiced), Fees: f(b.Fees), Paid: f(b.Paid), Adjustments: f(b.Adjustments), Discounts: f(b.Discounts),
		Chargebacks: f(b.Chargebacks), Refunded: f(b.Refunded), Credit: f(b.Credit), Outstanding: f(b.Outstanding),
		OpenedAt: a.OpenedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(), Version: a.Version}
}

type createAccountRequest struct {
	Reference *string          `json:"reference"`
	Currency  string           `json:"currency"`
	DebtorIDs []string         `json:"debtor_ids"`
	Products  []domain.Product `json:"products"`
	Scores    []domain.Score   `json:"scores"`
	Mandates  []domain.Mandate `json:"mandates"`
	Meta      json.RawMessage  `json:"meta"`
}

// createAccount: POST /v1/accounts records account.opened in the caller's
// mode. Every debtor id must name a debtor of the tenant and mode (checked
// in the event store, so a debtor created a moment ago counts); a reference
// is unique per tenant and mode (409).
func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) {
	var in createAccountRequest
	if err := decode(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	if err := s.checkDebtors(r, p, in.DebtorIDs); err != nil {
		writeError(w, r, err)
		return
	}
	at := debtorNow()
	id := s.ids.New(domain.PrefixAccount, at)
	var ref string
	if in.Reference != nil {
		ref = strings.TrimSpace(*in.Reference)
	}
	var a *domain.Account
	cmd := accountCommand(p.TenantID, id, func(agg *domain.Account) ([]domain.NewEvent, error) {
		a = agg
		return a.Open(domain.OpenAccount{Reference: ref, Currency: strings.TrimSpace(in.Currency), DebtorIDs: in.DebtorIDs,
			Products: in.Products, Scores: in.Scores, Mandates: in.Mandates, Meta: in.Meta, Sandbox: p.Sandbox()}, at)
	})
	cmd.Reference, cmd.Sandbox = ref, p.Sandbox()
	s.execute(w, r, []eventstore.Command{cmd}, func([]domain.Event) (result, error) {
		return result{Status: http.StatusCreated, Body: viewAccount(a, at), Location: "/v1/accounts/" + id}, nil
	})
}

// checkDebtors answers 422 naming debtor_ids[i] for each id that is not a
// debtor of the caller's tenant and mode (or appears twice).
func (s *Server) checkDebtors(r *http.Request, p domain.Principal, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	// The event store, not the debtors read model: consistent with the
	// write that created the debtor, however recent.
	found := map[string]bool{}
	rows, err := s.store.Pool().Query(r.Context(), `SELECT stream_id FROM events
		WHERE tenant_id = $1 AND stream_id = ANY($3) AND stream_version = 1 AND type = 'debtor.created'
		  AND coalesce((data->>'sandbox')::boolean, false) = $2`,
		p.TenantID, p.Sandbox(), ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		found[id] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var fe []domain.FieldError
	seen := map[string]bool{}
	for i, id := range ids {
		field := fmt.Sprintf("debtor_ids[%d]", i)
		switch {
		case !found[id]:
			fe = append(fe, domain.FieldError{Field: field, Error: fmt.Sprintf("no debtor %s", id)})
		case seen[id]:
			fe = append(fe, domain.FieldError{Field: field, Error: "appears twice"})
		}
		seen[id] = true
	}
	if len(fe) > 0 {
		return domain.Invalid("invalid account", fe...)
	}
	return nil
}

const accountColumns = `id, reference, currency, debtor_ids, products, scores, mandates, meta, invoiced::text, fees::text, paid::text,
	adjustments::text, discounts::text, chargebacks::text, refunded::text, credit::text, outstanding::text, opened_at, updated_at, version`

func scanAccount(row rowScanner) (accountView, error) {
	v := accountView{Object: "account"}
	var products, scores, mandates, meta []byte
	sums := make([]string, 9)
	if err := row.Scan(&v.ID, &v.Reference, &v.Currency, &v.DebtorIDs, &products, &scores, &mandates, &meta,
		&sums[0], &sums[1], &sums[2], &sums[3], &sums[4], &sums[5], &sums[6], &sums[7], &sums[8], &v.OpenedAt, &v.UpdatedAt, &v.Version); err != nil {
		return v, err
	}
	for i, dst := range []*string{&v.Invoiced, &v.Fees, &v.Paid, &v.Adjustments, &v.Discounts, &v.Chargebacks, &v.Refunded, &v.Credit, &v.Outstanding} {
		d, err := decimal.NewFromString(sums[i])
		if err != nil {
			return v, err
		}
		*dst = domain.FormatAmount(d, v.Currency)
		if dst == &v.Outstanding {
			v.Status = accountStatus(d)
		}
	}
	if v.DebtorIDs == nil {
		v.DebtorIDs = []string{}
	}
	// Through the domain types, so the read model's lists look exactly like
	// the command side's (jsonb reorders object keys).
	var err error
	if v.Products, err = relist[domain.Product](products); err == nil {
		if v.Scores, err = relist[domain.Score](scores); err == nil {
			v.Mandates, err = relist[domain.Mandate](mandates)
		}
	}
	if err != nil {
		return v, fmt.Errorf("account %s: %w", v.ID, err)
	}
	v.Meta = compactJSON(meta)
	v.OpenedAt, v.UpdatedAt = v.OpenedAt.UTC(), v.UpdatedAt.UTC()
	return v, nil
}

// relist re-encodes a stored JSON list through its domain type (NULL: []).
func relist[T any](stored []byte) (json.RawMessage, error) {
	var items []T
	if len(stored) > 0 {
		if err := json.Unmarshal(stored, &items); err != nil {
			return nil, err
		}
	}
	return jsonList(items), nil
}

// getAccount: GET /v1/accounts/{id}, from the ledger projection.
func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) {
	readOne(s, w, r, "ledger", "account", accountColumns, "accounts", scanAccount)
}

// listAccounts: GET /v1/accounts — the tenant's accounts of the caller's
// mode by id, filtered as parseAccountFilter reads.
func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) {
	pg, err := parsePage(r)
	var f accountFilter
	if err == nil {
		f, err = parseAccountFilter(r.URL.Query())
	}
	if err == nil {
		err = s.awaitPosition(r, "ledger")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	views, err := s.accounts(r.Context(), p, pg, f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v accountView) string { return v.ID }))
}

func (s *Server) accounts(ctx context.Context, p domain.Principal, pg page, f accountFilter) ([]accountView, error) {
	rows, err := s.store.Pool().Query(ctx, `SELECT `+accountColumns+`
		FROM accounts a
		WHERE tenant_id = $1 AND sandbox = $2 AND id > $3
		  AND ($4 = '' OR reference = $4)
		  AND ($5 = '' OR $5 = ANY(debtor_ids))
		  AND `+accountFilterSQL+`
		ORDER BY id LIMIT $6`, append([]any{p.TenantID, p.Sandbox(), pg.After, f.reference, f.debtorID, pg.Limit + 1}, f.args()...)...)
	return collect(rows, err, scanAccount)
}

// loadAccount folds account id of the caller's tenant from the event store;
// another mode's account, or none, is "not found".
func (s *Server) loadAccount(ctx context.Context, p domain.Principal, id string) (*domain.Account, error) {
	missing := domain.Errorf(domain.ENOTFOUND, "account %s not found", id)
	if !domain.HasPrefix(id, domain.PrefixAccount) {
		return nil, missing
	}
	a := domain.NewAccount(p.TenantID, id)
	if _, err := s.store.Load(ctx, p.TenantID, id, a); err != nil {
		return nil, err
	}
	if !a.Opened || a.Sandbox != p.Sandbox() {
		return nil, missing
	}
	return a, nil
}

// readAccountView is loadAccount for reads: view(a) of account id in its
// current state, from the event store's cache of read aggregates
// (eventstore.Store.ReadDerived: as fresh as a fold, at the cost of the
// events since the cached state, not of the whole stream). The view is
// made again only when the account changed, or key — what view depends on
// besides the account — is another; it is shared by concurrent readers:
// view must only read the account, and nobody may modify the view.
func readAccountView[V any](ctx context.Context, s *Server, p domain.Principal, id, key string, view func(a *domain.Account) V) (V, error) {
	var zero V
	missing := domain.Errorf(domain.ENOTFOUND, "account %s not found", id)
	if !domain.HasPrefix(id, domain.PrefixAccount) {
		return zero, missing
	}
	key = fmt.Sprintf("%s/sandbox=%t", key, p.Sandbox()) // the check below depends on it
	v, err := s.store.ReadDerived(ctx, accountCommand(p.TenantID, id, nil), key, func(agg domain.Aggregate, _ int64) (any, error) {
		a := agg.(*domain.Account)
		if !a.Opened || a.Sandbox != p.Sandbox() {
			return nil, missing
		}
		return view(a), nil
	})
	if err != nil {
		return zero, err
	}
	return v.(V), nil
}

type agingView struct {
	Current    string `json:"current"`
	Days1to30  string `json:"days_1_30"`
	Days31to60 string `json:"days_31_60"`
	Days61to90 string `json:"days_61_90"`
	Over90     string `json:"days_over_90"`
}

type productBalanceView struct {
	ProductReference string    `json:"product_reference"`
	Invoiced         string    `json:"invoiced"`
	Fees             string    `json:"fees"`
	Outstanding      string    `json:"outstanding"`
	Overdue          string    `json:"overdue"`
	DaysPastDue      int       `json:"days_past_due"`
	Aging            agingView `json:"aging"`
}

type balanceView struct {
	Object      string               `json:"object"`
	AccountID   string               `json:"account_id"`
	Currency    string               `json:"currency"`
	AsOf        domain.Date          `json:"as_of"`
	Invoiced    string               `json:"invoiced"`
	Fees        string               `json:"fees"`
	Paid        string               `json:"paid"`
	Adjustments string               `json:"adjustments"`
	Discounts   string               `json:"discounts"`
	Chargebacks string               `json:"chargebacks"`
	Refunded    string               `json:"refunded"`
	Outstanding string               `json:"outstanding"`
	Overdue     string               `json:"overdue"`
	Credit      string               `json:"credit"`
	DaysPastDue int                  `json:"days_past_due"`
	Aging       agingView            `json:"aging"`
	Products    []productBalanceView `json:"products"`
	Version     int64                `json:"version"`
}

func viewBalance(a *domain.Account, b domain.Balance) balanceView {
	f := func(d decimal.Decimal) string { return domain.FormatAmount(d, a.Currency) }
	ag := func(g domain.Aging) agingView {
		return agingView{f(g.Current), f(g.Days1to30), f(g.Days31to60), f(g.Days61to90), f(g.Over90)}
	}
	v := balanceView{Object: "balance", AccountID: a.ID, Currency: a.Currency, AsOf: b.AsOf, Invoiced: f(b.Invoiced), Fees: f(b.Fees),
		Paid: f(b.Paid), Adjustments: f(b.Adjustments), Discounts: f(b.Discounts), Chargebacks: f(b.Chargebacks), Refunded: f(b.Refunded),
		Outstanding: f(b.Outstanding), Overdue: f(b.Overdue), Credit: f(b.Credit), DaysPastDue: b.DaysPastDue, Aging: ag(b.Aging),
		Products: []productBalanceView{}, Version: a.Version}
	for _, p := range b.Products {
		v.Products = append(v.Products, productBalanceView{ProductReference: p.ProductReference, Invoiced: f(p.Invoiced), Fees: f(p.Fees),
			Outstanding: f(p.Outstanding), Overdue: f(p.Overdue), DaysPastDue: p.DaysPastDue, Aging: ag(p.Aging)})
	}
	return v
}

// getBalance: GET /v1/accounts/{id}/balance, computed from the event store
// (consistent with every write; no min_position needed) as of ?as_of= (a
// date, default today, UTC; or a timestamp) or ?as_of_position= — see
// parsePointInTime (history.go). With every event (no timestamp or
// position), from the store's cached state of the account, caught up with
// one query for the events since: O(new events) per request, not
// O(history).
func (s *Server) getBalance(w http.ResponseWriter, r *http.Request) {
	pit, err := parsePointInTime(r, time.Now())
	p, id := principal(r), chi.URLParam(r, "id")
	var v balanceView
	switch {
	case err != nil:
	case pit.cut == (eventstore.Cut{}):
		// Every event: the cached state, caught up; the view computed
		// again only when it or the date changed.
		v, err = readAccountView(r.Context(), s, p, id, "balance/"+string(pit.date), func(a *domain.Account) balanceView {
			return viewBalance(a, a.Balance(pit.date))
		})
	default:
		// A cut: folded from the start to exactly there.
		var a *domain.Account
		if a, err = s.loadAccountAt(r.Context(), p, id, &pit); err == nil {
			v = viewBalance(a, a.Balance(pit.date))
		}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
