package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// entryView is a ledger entry as the API shows it; amounts are decimal
// strings in major units of its currency.
type entryView struct {
	Object            string           `json:"object"`
	AccountID         string           `json:"account_id"`
	Reference         string           `json:"reference"`
	Kind              string           `json:"kind"`
	Amount            string           `json:"amount"`
	Currency          string           `json:"currency"`
	DueDate           *string          `json:"due_date"`
	OriginalDueDate   *string          `json:"original_due_date"`
	ProductReference  string           `json:"product_reference"`
	TargetReference   string           `json:"target_reference"`
	FeeType           string           `json:"fee_type"`
	Reason            string           `json:"reason"`
	PaymentReference  string           `json:"payment_reference"`
	Provider          string           `json:"provider"`
	Meta              json.RawMessage  `json:"meta"`
	Allocations       []allocationView `json:"allocations"`
	CreditAllocations []allocationView `json:"credit_allocations"`
	Seq               int              `json:"seq"`
	PostedAt          time.Time        `json:"posted_at"`
	Paid              string           `json:"paid"`
	Remaining         string           `json:"remaining"`
	ChargedBack       string           `json:"charged_back"`
	SettledAt         *time.Time       `json:"settled_at"`
	AmendmentCount    int              `json:"amendment_count"`
}

// datePtr is a date as JSON: "" is null.
func datePtr(d domain.Date) *string {
	if d == "" {
		return nil
	}
	s := string(d)
	return &s
}

// viewEntry shows the command side's state of entry e of account a.
func viewEntry(a *domain.Account, e *domain.Entry) entryView {
	f := func(d decimal.Decimal) string { return domain.FormatAmount(d, a.Currency) }
	return entryView{Object: "ledger_entry", AccountID: a.ID, Reference: e.Reference, Kind: string(e.Kind), Amount: f(e.Amount),
		Currency: a.Currency, DueDate: datePtr(e.DueDate), OriginalDueDate: datePtr(e.OriginalDueDate), ProductReference: e.ProductReference,
		TargetReference: e.TargetReference, FeeType: e.FeeType, Reason: e.Reason, PaymentReference: e.PaymentReference, Provider: e.Provider,
		Meta: compactJSON(e.Meta), Allocations: viewAllocations(e.Allocations, a.Currency), CreditAllocations: viewAllocations(e.CreditAllocations, a.Currency),
		Seq: e.Seq, PostedAt: e.PostedAt.UTC(), Paid: f(e.Paid), Remaining: f(e.Remaining()), ChargedBack: f(e.ChargedBack),
		SettledAt: utcPtr(e.SettledAt), AmendmentCount: e.AmendmentCount}
}

const entryColumns = `account_id, reference, kind, amount::text, currency, to_char(due_date, 'YYYY-MM-DD'), to_char(original_due_date, 'YYYY-MM-DD'),
	product_reference, target_reference, fee_type, reason, payment_reference, provider, meta, allocations, credit_allocations,
	seq, posted_at, paid::text, charged_back::text, settled_at, amendment_count`

// scanEntry reads a row of entryColumns.
func scanEntry(row rowScanner) (entryView, error) {
	v := entryView{Object: "ledger_entry"}
	var amount, paid, chargedBack string
	var meta, allocs, credit []byte
	if err := row.Scan(&v.AccountID, &v.Reference, &v.Kind, &amount, &v.Currency, &v.DueDate, &v.OriginalDueDate,
		&v.ProductReference, &v.TargetReference, &v.FeeType, &v.Reason, &v.PaymentReference, &v.Provider, &meta, &allocs, &credit,
		&v.Seq, &v.PostedAt, &paid, &chargedBack, &v.SettledAt, &v.AmendmentCount); err != nil {
		return v, err
	}
	// The domain's own entry, so that paid and remaining mean what they
	// mean on the command side.
	e := domain.Entry{EntryInput: domain.EntryInput{Kind: domain.EntryKind(v.Kind)}}
	for _, x := range []struct {
		s   string
		dst *decimal.Decimal
	}{{amount, &e.Amount}, {paid, &e.Paid}, {chargedBack, &e.ChargedBack}} {
		d, err := decimal.NewFromString(x.s)
		if err != nil {
			return v, err
		}
		*x.dst = d
	}
	f := func(d decimal.Decimal) string { return domain.FormatAmount(d, v.Currency) }
	v.Amount, v.Paid, v.Remaining, v.ChargedBack = f(e.Amount), f(e.Paid), f(e.Remaining()), f(e.ChargedBack)
	for _, x := range []struct {
		raw []byte
		dst *[]allocationView
	}{{allocs, &v.Allocations}, {credit, &v.CreditAllocations}} {
		var as []domain.Allocation
		if len(x.raw) > 0 {
			if err := json.Unmarshal(x.raw, &as); err != nil {
				return v, err
			}
		}
		*x.dst = viewAllocations(as, v.Currency)
	}
	v.Meta = compactJSON(meta)
	v.PostedAt, v.SettledAt = v.PostedAt.UTC(), utcPtr(v.SettledAt)
	return v, nil
}

// pathParam is URL parameter name, percent-decoded: chi matches on the
// escaped path when the request has one (a reference with a "/" or "%").
func pathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if r.URL.RawPath != "" {
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
	}
	return v
}

// dateRange is an inclusive range of UTC calendar dates from ?from= and
// ?to=, as the half-open instant range [from, until) (nil: unbounded).
type dateRange struct {
	from, until *time.Time
}

// parseDateRange reads ?from= and ?to= (YYYY-MM-DD, both inclusive).
func parseDateRange(q url.Values) (dateRange, []domain.FieldError) {
	var dr dateRange
	var fe []domain.FieldError
	for _, p := range []struct {
		name string
		dst  **time.Time
		days int
	}{{"from", &dr.from, 0}, {"to", &dr.until, 1}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		d, err := domain.ParseDate(v)
		if err != nil {
			fe = append(fe, domain.FieldError{Field: "query:" + p.name, Error: err.Error()})
			continue
		}
		t := d.Time().AddDate(0, 0, p.days)
		*p.dst = &t
	}
	if dr.from != nil && dr.until != nil && !dr.from.Before(*dr.until) {
		fe = append(fe, domain.FieldError{Field: "query:to", Error: "must not be before from"})
	}
	return dr, fe
}

// seqKey is an entry's cursor key: its seq, zero-padded so that the
// string order of keys is the posting order.
func seqKey(v entryView) string { return fmt.Sprintf("%010d", v.Seq) }

// entryFilter is what GET /v1/accounts/{id}/ledger-entries selects.
type entryFilter struct {
	kind, reference string
	posted          dateRange
	afterSeq        int
}

// parseEntryFilter reads ?kind=, ?reference=, ?from=, ?to= and the cursor.
func parseEntryFilter(r *http.Request, pg page) (entryFilter, error) {
	q := r.URL.Query()
	f := entryFilter{kind: strings.TrimSpace(q.Get("kind")), reference: strings.TrimSpace(q.Get("reference"))}
	var fe []domain.FieldError
	if f.kind != "" && !slices.Contains(domain.EntryKinds, domain.EntryKind(f.kind)) {
		fe = append(fe, domain.FieldError{Field: "query:kind", Error: "must be one of invoice, fee, payment, adjustment, chargeback, discount, reporting"})
	}
	dr, dfe := parseDateRange(q)
	f.posted = dr
	fe = append(fe, dfe...)
	if pg.After != "" {
		n, err := strconv.Atoi(pg.After)
		if err != nil || n < 0 {
			fe = append(fe, domain.FieldError{Field: "query:cursor", Error: "is not a cursor this API returned"})
		}
		f.afterSeq = n
	}
	if len(fe) > 0 {
		return f, domain.Invalid("invalid query", fe...)
	}
	return f, nil
}

// readAccount requires account id of the caller's tenant and mode in the
// accounts read model: none is "not found".
func (s *Server) readAccount(ctx context.Context, p domain.Principal, id string) error {
	var one int
	err := s.store.Pool().QueryRow(ctx, `SELECT 1 FROM accounts WHERE tenant_id = $1 AND sandbox = $2 AND id = $3`,
		p.TenantID, p.Sandbox(), id).Scan(&one)
	return notFound(err, "account "+id)
}

// listEntries: GET /v1/accounts/{id}/ledger-entries — the account's
// ledger entries in posting order, from the ledger projection, optionally
// only those of ?kind=, with ?reference=, or posted ?from= ?to= (UTC
// dates, inclusive).
func (s *Server) listEntries(w http.ResponseWriter, r *http.Request) {
	pg, err := parsePage(r)
	var f entryFilter
	if err == nil {
		f, err = parseEntryFilter(r, pg)
	}
	if err == nil {
		err = s.awaitPosition(r, "ledger")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	if err := s.readAccount(r.Context(), p, id); err != nil {
		writeError(w, r, err)
		return
	}
	views, err := s.entries(r.Context(), p, id, f, pg.Limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, seqKey))
}

// entries selects a page of account accountID's entries after f.afterSeq.
func (s *Server) entries(ctx context.Context, p domain.Principal, accountID string, f entryFilter, limit int) ([]entryView, error) {
	rows, err := s.store.Pool().Query(ctx, `SELECT `+entryColumns+`
		FROM ledger_entries
		WHERE tenant_id = $1 AND sandbox = $2 AND account_id = $3 AND seq > $4
		  AND ($5 = '' OR kind = $5)
		  AND ($6 = '' OR reference = $6)
		  AND ($7::timestamptz IS NULL OR posted_at >= $7)
		  AND ($8::timestamptz IS NULL OR posted_at < $8)
		ORDER BY seq LIMIT $9`, p.TenantID, p.Sandbox(), accountID, f.afterSeq, f.kind, f.reference, f.posted.from, f.posted.until, limit+1)
	return collect(rows, err, scanEntry)
}

// getEntry: GET /v1/accounts/{id}/ledger-entries/{ref}, from the ledger
// projection.
func (s *Server) getEntry(w http.ResponseWriter, r *http.Request) {
	if err := s.awaitPosition(r, "ledger"); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id, ref := chi.URLParam(r, "id"), pathParam(r, "ref")
	if err := s.readAccount(r.Context(), p, id); err != nil {
		writeError(w, r, err)
		return
	}
	v, err := scanEntry(s.store.Pool().QueryRow(r.Context(), `SELECT `+entryColumns+` FROM ledger_entries
		WHERE tenant_id = $1 AND sandbox = $2 AND account_id = $3 AND reference = $4`, p.TenantID, p.Sandbox(), id, ref))
	if err != nil {
		writeError(w, r, notFound(err, "ledger entry "+ref))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

type amendRequest struct {
	Amount *string `json:"amount"`
	Reason string  `json:"reason"`
}

// amendEntry: POST /v1/accounts/{id}/ledger-entries/{ref}/amend changes an
// invoice's or fee's amount, with a reason (ledger_entry.amended). It
// answers the entry as the command side now sees it; the same amount again
// records nothing. A missing account or entry is 404 whatever the body;
// then the body is checked (422), then the entry (409: not an invoice or
// fee, or the amount below what is paid on it or than pending payments
// reserve).
func (s *Server) amendEntry(w http.ResponseWriter, r *http.Request) {
	var in amendRequest
	invalid := decode(r, &in) // answered after "not found"
	p := principal(r)
	id, ref := chi.URLParam(r, "id"), pathParam(r, "ref")
	missing := domain.Errorf(domain.ENOTFOUND, "account %s not found", id)
	if !domain.HasPrefix(id, domain.PrefixAccount) {
		writeError(w, r, missing)
		return
	}
	at := debtorNow()
	var a *domain.Account
	cmd := accountCommand(p.TenantID, id, func(agg *domain.Account) ([]domain.NewEvent, error) {
		a = agg
		if !a.Opened || a.Sandbox != p.Sandbox() {
			return nil, missing
		}
		if _, ok := a.Entry(ref); !ok {
			return nil, domain.Errorf(domain.ENOTFOUND, "ledger entry %s not found", ref)
		}
		if invalid != nil {
			return nil, invalid
		}
		var fe []domain.FieldError
		var amount decimal.Decimal
		if in.Amount == nil {
			fe = append(fe, domain.FieldError{Field: "amount", Error: "is required"})
		} else {
			var bad *domain.FieldError
			if amount, bad = domain.ParseAmount("amount", *in.Amount, a.Currency); bad != nil {
				fe = append(fe, *bad)
			} else if !amount.IsPositive() {
				fe = append(fe, domain.FieldError{Field: "amount", Error: "must be positive"})
			}
		}
		reason := strings.TrimSpace(in.Reason)
		if reason == "" {
			fe = append(fe, domain.FieldError{Field: "reason", Error: "is required: amounts change only with a reason"})
		}
		if len(fe) > 0 {
			return nil, domain.Invalid("invalid amendment", fe...)
		}
		return a.Amend(ref, amount, reason, at)
	})
	s.execute(w, r, []eventstore.Command{cmd}, func([]domain.Event) (result, error) {
		e, ok := a.Entry(ref)
		if !ok {
			return result{}, domain.Errorf(domain.ENOTFOUND, "ledger entry %s not found", ref)
		}
		return result{Status: http.StatusOK, Body: viewEntry(a, e)}, nil
	})
}
