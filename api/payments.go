package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

type allocationView struct {
	Reference string `json:"reference"`
	Amount    string `json:"amount"`
}

// paymentView is a payment as the API shows it; amounts are decimal
// strings in major units of its currency.
type paymentView struct {
	Object           string           `json:"object"`
	ID               string           `json:"id"`
	AccountID        string           `json:"account_id"`
	Reference        string           `json:"reference"`
	Amount           string           `json:"amount"`
	Currency         string           `json:"currency"`
	Status           string           `json:"status"`
	Method           string           `json:"method"`
	Provider         string           `json:"provider"`
	MatchStrategy    string           `json:"match_strategy"`
	ProductReference string           `json:"product_reference"`
	FeeOrder         []string         `json:"fee_order"`
	Allocations      []allocationView `json:"allocations"`
	ToCredit         string           `json:"to_credit"`
	RecordedAt       time.Time        `json:"recorded_at"`
	CompletedAt      *time.Time       `json:"completed_at"`
	FailedAt         *time.Time       `json:"failed_at"`
	FailureReason    string           `json:"failure_reason"`
	ReversedAt       *time.Time       `json:"reversed_at"`
	ReversalReason   string           `json:"reversal_reason"`
	Meta             json.RawMessage  `json:"meta"`
}

func viewAllocations(allocs []domain.Allocation, currency string) []allocationView {
	out := make([]allocationView, len(allocs))
	for i, a := range allocs {
		out[i] = allocationView{Reference: a.Reference, Amount: domain.FormatAmount(a.Amount, currency)}
	}
	return out
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// viewPayment shows the command side's state of payment p of account a.
func viewPayment(a *domain.Account, p *domain.Payment) paymentView {
	fo := p.FeeOrder
	if fo == nil {
		fo = []string{}
	}
	toCredit := p.ToCredit
	return paymentView{Object: "payment", ID: p.ID, AccountID: a.ID, Reference: p.Reference, Amount: domain.FormatAmount(p.Amount, a.Currency),
		Currency: a.Currency, Status: string(p.Status), Method: p.Method, Provider: p.Provider, MatchStrategy: string(p.MatchStrategy),
		ProductReference: p.ProductReference, FeeOrder: fo, Allocations: viewAllocations(p.Allocations, a.Currency),
		ToCredit: domain.FormatAmount(toCredit, a.Currency), RecordedAt: p.RecordedAt.UTC(), CompletedAt: utcPtr(p.CompletedAt),
		FailedAt: utcPtr(p.FailedAt), FailureReason: p.FailureReason, ReversedAt: utcPtr(p.ReversedAt), ReversalReason: p.ReversalReason,
		Meta: compactJSON(p.Meta)}
}

type createPaymentRequest struct {
	Amount           *string              `json:"amount"`
	Reference        string               `json:"reference"`
	Method           string               `json:"method"`
	Provider         string               `json:"provider"`
	MatchStrategy    domain.MatchStrategy `json:"match_strategy"`
	ProductReference string               `json:"product_reference"`
	FeeOrder         []string             `json:"fee_order"`
	Status           domain.PaymentStatus `json:"status"`
	Meta             json.RawMessage      `json:"meta"`
}

// createPayment: POST /v1/accounts/{id}/payments records a payment (by
// default completed, and allocated at once). It may not exceed what the
// account owes less its pending payments. A missing account is 404
// whatever the body.
func (s *Server) createPayment(w http.ResponseWriter, r *http.Request) {
	var in createPaymentRequest
	invalid := decode(r, &in) // answered after "not found"
	p := principal(r)
	id := chi.URLParam(r, "id")
	missing := domain.Errorf(domain.ENOTFOUND, "account %s not found", id)
	if !domain.HasPrefix(id, domain.PrefixAccount) {
		writeError(w, r, missing)
		return
	}
	at := debtorNow()
	payID := s.ids.New(domain.PrefixPayment, at)
	var a *domain.Account
	var pay *domain.Payment
	cmd := accountCommand(p.TenantID, id, func(agg *domain.Account) ([]domain.NewEvent, error) {
		a = agg
		if !a.Opened || a.Sandbox != p.Sandbox() {
			return nil, missing
		}
		if invalid != nil {
			return nil, invalid
		}
		if in.Amount == nil {
			return nil, domain.Invalid("invalid payment", domain.FieldError{Field: "amount", Error: "is required"})
		}
		amount, bad := domain.ParseAmount("amount", *in.Amount, a.Currency)
		if bad != nil {
			return nil, domain.Invalid("invalid payment", *bad)
		}
		var evs []domain.NewEvent
		var err error
		pay, evs, err = a.RecordPayment(payID, domain.PaymentInput{Reference: strings.TrimSpace(in.Reference), Amount: amount, Method: in.Method,
			Provider: in.Provider, MatchStrategy: in.MatchStrategy, ProductReference: in.ProductReference, FeeOrder: in.FeeOrder,
			Status: in.Status, Meta: in.Meta}, at)
		return evs, err
	})
	s.execute(w, r, []eventstore.Command{cmd}, func([]domain.Event) (result, error) {
		return result{Status: http.StatusCreated, Body: viewPayment(a, pay), Location: "/v1/payments/" + pay.ID}, nil
	})
}

const paymentColumns = `id, account_id, reference, amount::text, currency, status, method, provider, match_strategy, product_reference,
	fee_order, allocations, to_credit::text, recorded_at, completed_at, failed_at, failure_reason, reversed_at, reversal_reason, meta`

func scanPayment(row rowScanner) (paymentView, error) {
	v := paymentView{Object: "payment"}
	var amount, toCredit string
	var allocs, meta []byte
	if err := row.Scan(&v.ID, &v.AccountID, &v.Reference, &amount, &v.Currency, &v.Status, &v.Method, &v.Provider, &v.MatchStrategy,
		&v.ProductReference, &v.FeeOrder, &allocs, &toCredit, &v.RecordedAt, &v.CompletedAt, &v.FailedAt, &v.FailureReason,
		&v.ReversedAt, &v.ReversalReason, &meta); err != nil {
		return v, err
	}
	for _, x := range []struct {
		s   string
		dst *string
	}{{amount, &v.Amount}, {toCredit, &v.ToCredit}} {
		d, err := decimal.NewFromString(x.s)
		if err != nil {
			return v, err
		}
		*x.dst = domain.FormatAmount(d, v.Currency)
	}
	var as []domain.Allocation
	if len(allocs) > 0 {
		if err := json.Unmarshal(allocs, &as); err != nil {
			return v, err
		}
	}
	v.Allocations = viewAllocations(as, v.Currency)
	if v.FeeOrder == nil {
		v.FeeOrder = []string{}
	}
	v.Meta = compactJSON(meta)
	v.RecordedAt = v.RecordedAt.UTC()
	v.CompletedAt, v.FailedAt, v.ReversedAt = utcPtr(v.CompletedAt), utcPtr(v.FailedAt), utcPtr(v.ReversedAt)
	return v, nil
}

// getPayment: GET /v1/payments/{id}, from the ledger projection.
func (s *Server) getPayment(w http.ResponseWriter, r *http.Request) {
	readOne(s, w, r, "ledger", "payment", paymentColumns, "payments", scanPayment)
}

// paymentTransition is what a POST /v1/payments/{id}/<action> does.
type paymentTransition func(a *domain.Account, id, reason string, at time.Time) ([]domain.NewEvent, error)

func (s *Server) completePayment(w http.ResponseWriter, r *http.Request) {
	s.transitionPayment(w, r, false, func(a *domain.Account, id, _ string, at time.Time) ([]domain.NewEvent, error) {
		return a.CompletePayment(id, at)
	})
}

func (s *Server) failPayment(w http.ResponseWriter, r *http.Request) {
	s.transitionPayment(w, r, true, (*domain.Account).FailPayment)
}

func (s *Server) refundPayment(w http.ResponseWriter, r *http.Request) {
	s.transitionPayment(w, r, true, (*domain.Account).RefundPayment)
}

func (s *Server) chargebackPayment(w http.ResponseWriter, r *http.Request) {
	s.transitionPayment(w, r, true, (*domain.Account).ChargebackPayment)
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

// transitionPayment moves a payment on: the payment's account is found in
// the ledger read model (pass the payment's Arrears-Position as
// min_position right after creating it), then the command runs on the
// account's current state. A missing payment is 404 whatever the body.
func (s *Server) transitionPayment(w http.ResponseWriter, r *http.Request, withReason bool, do paymentTransition) {
	var in reasonRequest
	var invalid error
	if withReason {
		invalid = decodeOptional(r, &in)
	} else {
		invalid = decodeOptional(r, &struct{}{})
	}
	if err := s.awaitPosition(r, "ledger"); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	var accountID string
	err := s.store.Pool().QueryRow(r.Context(), `SELECT account_id FROM payments WHERE tenant_id = $1 AND sandbox = $2 AND id = $3`,
		p.TenantID, p.Sandbox(), id).Scan(&accountID)
	if err != nil {
		writeError(w, r, notFound(err, "payment "+id))
		return
	}
	if invalid != nil {
		writeError(w, r, invalid)
		return
	}
	at := debtorNow()
	var a *domain.Account
	cmd := accountCommand(p.TenantID, accountID, func(agg *domain.Account) ([]domain.NewEvent, error) {
		a = agg
		return do(a, id, strings.TrimSpace(in.Reason), at)
	})
	s.execute(w, r, []eventstore.Command{cmd}, func([]domain.Event) (result, error) {
		pay, ok := a.Payment(id)
		if !ok {
			return result{}, domain.Errorf(domain.ENOTFOUND, "payment %s not found", id)
		}
		return result{Status: http.StatusOK, Body: viewPayment(a, pay)}, nil
	})
}

// paymentStatuses lists every payment status, for ?status=.
var paymentStatuses = []domain.PaymentStatus{domain.PaymentPending, domain.PaymentProcessing, domain.PaymentCompleted,
	domain.PaymentFailed, domain.PaymentRefunded, domain.PaymentChargedBack}

// paymentFilter is what the payment lists select ("": any).
type paymentFilter struct {
	accountID, debtorID, status, method, provider, reference string
	recorded                                                 dateRange
}

// parsePaymentFilter reads ?status=, ?method=, ?provider=, ?reference=,
// ?from= and ?to= (recorded, UTC dates, inclusive).
func parsePaymentFilter(q url.Values) (paymentFilter, error) {
	f := paymentFilter{status: strings.TrimSpace(q.Get("status")), method: strings.TrimSpace(q.Get("method")),
		provider: strings.TrimSpace(q.Get("provider")), reference: strings.TrimSpace(q.Get("reference"))}
	var fe []domain.FieldError
	if f.status != "" && !slices.Contains(paymentStatuses, domain.PaymentStatus(f.status)) {
		fe = append(fe, domain.FieldError{Field: "query:status", Error: "must be one of pending, processing, completed, failed, refunded, charged_back"})
	}
	dr, dfe := parseDateRange(q)
	f.recorded = dr
	if fe = append(fe, dfe...); len(fe) > 0 {
		return f, domain.Invalid("invalid query", fe...)
	}
	return f, nil
}

// listPayments: GET /v1/payments — the tenant's payments of the caller's
// mode by id (oldest first), from the ledger projection, filtered by
// ?account_id=, ?debtor_id= (payments of that debtor's accounts) and the
// filters of parsePaymentFilter.
func (s *Server) listPayments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f paymentFilter
	pg, ok := s.startList(w, r, func() (err error) { f, err = parsePaymentFilter(q); return err }, "ledger")
	if !ok {
		return
	}
	f.accountID, f.debtorID = strings.TrimSpace(q.Get("account_id")), strings.TrimSpace(q.Get("debtor_id"))
	s.writePayments(w, r, pg, f)
}

// listAccountPayments: GET /v1/accounts/{id}/payments — the account's
// payments by id (oldest first), from the ledger projection, filtered as
// parsePaymentFilter reads.
func (s *Server) listAccountPayments(w http.ResponseWriter, r *http.Request) {
	var f paymentFilter
	pg, ok := s.startList(w, r, func() (err error) { f, err = parsePaymentFilter(r.URL.Query()); return err }, "ledger")
	if !ok {
		return
	}
	f.accountID = chi.URLParam(r, "id")
	if err := s.readAccount(r.Context(), principal(r), f.accountID); err != nil {
		writeError(w, r, err)
		return
	}
	s.writePayments(w, r, pg, f)
}

// writePayments answers the page of the caller's payments f selects.
func (s *Server) writePayments(w http.ResponseWriter, r *http.Request, pg page, f paymentFilter) {
	p := principal(r)
	rows, err := s.store.Pool().Query(r.Context(), `SELECT `+paymentColumns+`
		FROM payments p
		WHERE tenant_id = $1 AND sandbox = $2 AND id > $3
		  AND ($4 = '' OR account_id = $4)
		  AND ($5 = '' OR status = $5)
		  AND ($6 = '' OR method = $6)
		  AND ($7 = '' OR provider = $7)
		  AND ($8 = '' OR reference = $8)
		  AND ($9::timestamptz IS NULL OR recorded_at >= $9)
		  AND ($10::timestamptz IS NULL OR recorded_at < $10)
		  AND ($11 = '' OR EXISTS (SELECT 1 FROM accounts a
				WHERE a.tenant_id = p.tenant_id AND a.id = p.account_id AND $11 = ANY(a.debtor_ids)))
		ORDER BY id LIMIT $12`, p.TenantID, p.Sandbox(), pg.After, f.accountID, f.status, f.method, f.provider, f.reference,
		f.recorded.from, f.recorded.until, f.debtorID, pg.Limit+1)
	out, err := collect(rows, err, scanPayment)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(out, pg.Limit, func(v paymentView) string { return v.ID }))
}
