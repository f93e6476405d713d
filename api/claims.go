package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// claimView is a claim as the API shows it: amounts are decimal strings in
// major units of its currency; text fields are "" when unset.
type claimView struct {
	Object             string          `json:"object"`
	ID                 string          `json:"id"`
	Reference          string          `json:"reference"`
	AccountID          string          `json:"account_id"`
	EntryReference     string          `json:"entry_reference"`
	Managed            bool            `json:"managed"` // follows ledger entry entry_reference: amounts, fees and due date come from the ledger
	PrimaryDebtorID    string          `json:"primary_debtor_id"`
	Amount             string          `json:"amount"`
	OriginalAmount     string          `json:"original_amount"`
	Credits            string          `json:"credits"`
	Debits             string          `json:"debits"`
	Paid               string          `json:"paid"`
	Currency           string          `json:"currency"`
	TotalFees          string          `json:"total_fees"`
	OriginalDueDate    domain.Date     `json:"original_due_date"`
	CurrentDueDate     domain.Date     `json:"current_due_date"`
	DaysPastDue        int             `json:"days_past_due"`
	ProductReference   string          `json:"product_reference"`
	PortfolioReference string          `json:"portfolio_reference"`
	CreditorReference  string          `json:"creditor_reference"`
	Scores             json.RawMessage `json:"scores"`
	Meta               json.RawMessage `json:"meta"`
	Status             string          `json:"status"`
	Resolution         *string         `json:"resolution"`
	StatusReason       string          `json:"status_reason"`
	OverdueThresholds  []int           `json:"overdue_thresholds"`
	Recreations        int             `json:"recreations"`
	ActivePromise      *promiseView    `json:"active_promise"` // the promise to pay not yet kept, broken or cancelled
	Disputed           bool            `json:"disputed"`       // an open dispute covers the claim or its whole account
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
	ResolvedAt         *time.Time      `json:"resolved_at"`
	Version            int64           `json:"version"`
}

// viewClaim shows c (the command side's state, or a claims row read back by
// projections.ScanClaim). days_past_due counts from the original due date
// to today (UTC) while the claim is open or paused, else 0.
func viewClaim(c *domain.Claim) claimView {
	f := func(d decimal.Decimal) string { return domain.FormatAmount(d, c.Currency) }
	v := claimView{Object: "claim", ID: c.ID, Reference: c.Reference, AccountID: c.AccountID, EntryReference: c.EntryReference, Managed: c.Managed(),
		PrimaryDebtorID: c.PrimaryDebtorID, Amount: f(c.Amount), OriginalAmount: f(c.OriginalAmount), Credits: f(c.Credits),
		Debits: f(c.Debits), Paid: f(c.Paid), Currency: c.Currency, TotalFees: f(c.TotalFees), OriginalDueDate: c.OriginalDueDate,
		CurrentDueDate: c.CurrentDueDate, ProductReference: c.ProductReference, PortfolioReference: c.PortfolioReference,
		CreditorReference: c.CreditorReference, Scores: jsonList(c.Scores), Meta: compactJSON(c.Meta), Status: string(c.Status),
		StatusReason: c.StatusReason, OverdueThresholds: slices.Clone(c.Overdue), Recreations: c.Recreations,
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), Version: c.Version}
	if v.OverdueThresholds == nil {
		v.OverdueThresholds = []int{}
	}
	if c.Resolution != "" {
		res := string(c.Resolution)
		v.Resolution = &res
	}
	if c.ResolvedAt != nil {
		at := c.ResolvedAt.UTC()
		v.ResolvedAt = &at
	}
	if c.Status == domain.ClaimOpen || c.Status == domain.ClaimPaused {
		v.DaysPastDue = c.DaysPastDue(domain.DateOf(time.Now()))
	}
	if p := c.ActivePromise(); p != nil {
		pv := viewPromise(c, *p)
		v.ActivePromise = &pv
	}
	return v
}

// scanClaimView reads a row of claimViewColumns into its view.
func scanClaimView(row rowScanner) (claimView, error) {
	c, disputed, err := scanClaimRow(row)
	if err != nil {
		return claimView{}, err
	}
	v := viewClaim(c)
	v.Disputed = disputed
	return v, nil
}

// claimRequest is a claim as created, recreated or imported. Optional text
// fields are pointers: on import, absent means "unchanged".
type claimRequest struct {
	Reference          *string         `json:"reference"`
	AccountID          *string         `json:"account_id"`
	AccountReference   *string         `json:"account_reference"`
	Amount             *string         `json:"amount"`
	Currency           string          `json:"currency"`
	TotalFees          *string         `json:"total_fees"`
	OriginalDueDate    *string         `json:"original_due_date"`
	CurrentDueDate     *string         `json:"current_due_date"`
	ProductReference   *string         `json:"product_reference"`
	PortfolioReference *string         `json:"portfolio_reference"`
	CreditorReference  *string         `json:"creditor_reference"`
	PrimaryDebtorID    *string         `json:"primary_debtor_id"`
	Scores             *[]domain.Score `json:"scores"`
	Meta               json.RawMessage `json:"meta"`
}

func trimmedOf(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

func (in claimRequest) reference() string { return trimmedOf(in.Reference) }

// hasAccount reports whether the request names an account (by id or by
// reference), and which field it used.
func (in claimRequest) account() (field, value string) {
	switch {
	case trimmedOf(in.AccountID) != "":
		return "account_id", trimmedOf(in.AccountID)
	case trimmedOf(in.AccountReference) != "":
		return "account_reference", trimmedOf(in.AccountReference)
	}
	return "", ""
}

// syntax checks what needs no state: dates, exclusive account fields.
func (in claimRequest) syntax(prefix string) []domain.FieldError {
	var fe []domain.FieldError
	if trimmedOf(in.AccountID) != "" && trimmedOf(in.AccountReference) != "" {
		fe = append(fe, domain.FieldError{Field: prefix + "account_id", Error: "give account_id or account_reference, not both"})
	}
	for _, d := range []struct {
		field string
		v     *string
	}{{"original_due_date", in.OriginalDueDate}, {"current_due_date", in.CurrentDueDate}} {
		if d.v != nil && *d.v != "" {
			if _, err := domain.ParseDate(*d.v); err != nil {
				fe = append(fe, domain.FieldError{Field: prefix + d.field, Error: err.Error()})
			}
		}
	}
	return fe
}

// input is the request as a domain.ClaimInput on account accountID in
// currency (the claim's when the request names none). Amount problems are
// named with prefix.
func (in claimRequest) input(prefix, accountID, currency string) (domain.ClaimInput, []domain.FieldError) {
	var fe []domain.FieldError
	if c := strings.TrimSpace(in.Currency); c != "" {
		currency = c
	}
	out := domain.ClaimInput{Reference: in.reference(), AccountID: accountID, Currency: currency,
		OriginalDueDate: domain.Date(trimmedOf(in.OriginalDueDate)), CurrentDueDate: domain.Date(trimmedOf(in.CurrentDueDate)),
		ProductReference: trimmedOf(in.ProductReference), PortfolioReference: trimmedOf(in.PortfolioReference),
		CreditorReference: trimmedOf(in.CreditorReference), PrimaryDebtorID: trimmedOf(in.PrimaryDebtorID), Meta: in.Meta}
	if in.Scores != nil {
		out.Scores = *in.Scores
	}
	if _, ok := domain.MinorUnits(currency); !ok {
		return out, nil // validateClaim names the currency
	}
	if in.Amount == nil {
		fe = append(fe, domain.FieldError{Field: prefix + "amount", Error: "is required"})
	} else if d, bad := domain.ParseAmount(prefix+"amount", *in.Amount, currency); bad != nil {
		fe = append(fe, *bad)
	} else {
		out.Amount = d
	}
	if in.TotalFees != nil {
		if d, bad := domain.ParseAmount(prefix+"total_fees", *in.TotalFees, currency); bad != nil {
			fe = append(fe, *bad)
		} else {
			out.TotalFees = d
		}
	}
	return out, fe
}

// prefixed names every field of a domain error with prefix (the claim's
// index in an import); an error without fields gets one naming the claim.
func prefixed(err error, prefix string) error {
	var de *domain.Error
	if prefix == "" || !errors.As(err, &de) {
		return err
	}
	out := *de
	out.Fields = make([]domain.FieldError, 0, len(de.Fields)+1)
	for _, f := range de.Fields {
		if !strings.HasPrefix(f.Field, prefix) {
			f.Field = prefix + f.Field
		}
		out.Fields = append(out.Fields, f)
	}
	if len(out.Fields) == 0 {
		out.Fields = append(out.Fields, domain.FieldError{Field: strings.TrimSuffix(prefix, "."), Error: de.Message})
	}
	return &out
}

// existingDebtors returns which of ids are debtors of the caller's tenant and
// mode, from the event store (consistent with the write that created them).
func (s *Server) existingDebtors(ctx context.Context, p domain.Principal, ids []string) (map[string]bool, error) {
	found := map[string]bool{}
	if len(ids) == 0 {
		return found, nil
	}
	rows, err := s.store.Pool().Query(ctx, `SELECT stream_id FROM events
		WHERE tenant_id = $1 AND stream_id = ANY($3) AND stream_version = 1 AND type = 'debtor.created'
		  AND coalesce((data->>'sandbox')::boolean, false) = $2`, p.TenantID, p.Sandbox(), ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		found[id] = true
	}
	return found, rows.Err()
}

// streamsByReference maps creditor references of streamType to their
// streams, in the caller's tenant and mode.
func (s *Server) streamsByReference(ctx context.Context, p domain.Principal, streamType string, refs []string) (map[string]string, error) {
	out := map[string]string{}
	if len(refs) == 0 {
		return out, nil
	}
	rows, err := s.store.Pool().Query(ctx, `SELECT reference, stream_id FROM stream_references
		WHERE tenant_id = $1 AND sandbox = $2 AND stream_type = $3 AND reference = ANY($4)`, p.TenantID, p.Sandbox(), streamType, refs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var ref, id string
		if err := rows.Scan(&ref, &id); err != nil {
			return nil, err
		}
		out[ref] = id
	}
	return out, rows.Err()
}

// claimPlan is one claim of a create or an import, turned into commands.
type claimPlan struct {
	index  int    // in the request (import), -1 for a single create
	prefix string // field prefix: "" or "claims[i]."
	in     claimRequest
	id     string // the claim
	exists bool   // the reference names an existing claim (import)
	// The account: an existing one (checked by an account command shared by
	// the plans on it) or an implicit one opened with the claim.
	accountID string
	implicit  bool
	currency  *string // the account's currency, set when its command decides
	claim     *domain.Claim
	outcome   string // created, updated, unchanged
}

// accountCheck is one existing account that claims of a request name.
type accountCheck struct {
	id       string
	currency string
	uses     []string // the fields that named it (for "not found")
}

// planClaims resolves references, debtors and accounts for reqs and
// returns their commands: account commands first (so that each claim's
// decision knows its account's currency), then one per claim. Problems
// that need no event store are returned as a 422 listing every one.
func (s *Server) planClaims(ctx context.Context, p domain.Principal, reqs []claimRequest, single bool, at time.Time) ([]*claimPlan, []eventstore.Command, error) {
	var fe []domain.FieldError
	plans := make([]*claimPlan, len(reqs))
	var claimRefs, accountRefs, debtorIDs []string
	seenRef := map[string]int{}
	for i, in := range reqs {
		pl := &claimPlan{index: i, in: in}
		if !single {
			pl.prefix = fmt.Sprintf("claims[%d].", i)
		} else {
			pl.index = -1
		}
		plans[i] = pl
		fe = append(fe, in.syntax(pl.prefix)...)
		ref := in.reference()
		if ref == "" {
			fe = append(fe, domain.FieldError{Field: pl.prefix + "reference", Error: "is required, at most 200 characters"})
		} else if j, dup := seenRef[ref]; dup {
			fe = append(fe, domain.FieldError{Field: pl.prefix + "reference", Error: fmt.Sprintf("appears twice (also claims[%d])", j)})
		} else {
			seenRef[ref] = i
			claimRefs = append(claimRefs, ref)
		}
		if field, v := in.account(); field == "account_reference" {
			accountRefs = append(accountRefs, v)
		} else if field == "account_id" && !domain.HasPrefix(v, domain.PrefixAccount) {
			fe = append(fe, domain.FieldError{Field: pl.prefix + "account_id", Error: "no account " + v})
		}
		if d := trimmedOf(in.PrimaryDebtorID); d != "" {
			debtorIDs = append(debtorIDs, d)
		}
		if cur := strings.TrimSpace(in.Currency); cur != "" {
			if _, ok := domain.MinorUnits(cur); ok {
				_, bad := in.input(pl.prefix, "", cur) // amounts, early: so that an import lists every problem at once
				fe = append(fe, bad...)
			}
		}
	}
	existingClaims := map[string]string{}
	var err error
	if !single {
		if existingClaims, err = s.streamsByReference(ctx, p, domain.StreamTypeClaim, claimRefs); err != nil {
			return nil, nil, err
		}
	}
	accountsByRef, err := s.streamsByReference(ctx, p, domain.StreamTypeAccount, accountRefs)
	if err != nil {
		return nil, nil, err
	}
	debtors, err := s.existingDebtors(ctx, p, debtorIDs)
	if err != nil {
		return nil, nil, err
	}
	checks := map[string]*accountCheck{}
	var checkOrder []*accountCheck
	for _, pl := range plans {
		in := pl.in
		if d := trimmedOf(in.PrimaryDebtorID); d != "" && !debtors[d] {
			fe = append(fe, domain.FieldError{Field: pl.prefix + "primary_debtor_id", Error: "no debtor " + d})
		}
		if id, ok := existingClaims[in.reference()]; ok {
			pl.id, pl.exists = id, true
		} else {
			pl.id = s.ids.New(domain.PrefixClaim, at)
		}
		field, v := in.account()
		switch field {
		case "account_reference":
			id, ok := accountsByRef[v]
			if !ok {
				fe = append(fe, domain.FieldError{Field: pl.prefix + field, Error: "no account with reference " + v})
				continue
			}
			pl.accountID = id
		case "account_id":
			pl.accountID = v
		default:
			if !pl.exists {
				pl.implicit = true
				pl.accountID = s.ids.New(domain.PrefixAccount, at)
			}
		}
		if pl.accountID != "" && !pl.implicit {
			ch, ok := checks[pl.accountID]
			if !ok {
				ch = &accountCheck{id: pl.accountID}
				checks[pl.accountID] = ch
				checkOrder = append(checkOrder, ch)
			}
			ch.uses = append(ch.uses, pl.prefix+field)
			pl.currency = &ch.currency
		}
	}
	if len(fe) > 0 {
		return nil, nil, domain.Invalid("invalid claims: nothing was changed", fe...)
	}
	var cmds []eventstore.Command
	for _, ch := range checkOrder {
		cmds = append(cmds, accountCommand(p.TenantID, ch.id, func(a *domain.Account) ([]domain.NewEvent, error) {
			if !a.Opened || a.Sandbox != p.Sandbox() {
				fe := make([]domain.FieldError, len(ch.uses))
				for i, f := range ch.uses {
					fe[i] = domain.FieldError{Field: f, Error: "no account " + ch.id}
				}
				return nil, domain.Invalid("invalid claims: nothing was changed", fe...)
			}
			ch.currency = a.Currency
			return nil, nil
		}))
	}
	for _, pl := range plans {
		if pl.implicit {
			cur := strings.TrimSpace(pl.in.Currency)
			pl.currency = &cur
			var dbts []string
			if d := trimmedOf(pl.in.PrimaryDebtorID); d != "" {
				dbts = []string{d}
			}
			prefix := pl.prefix
			cmds = append(cmds, accountCommand(p.TenantID, pl.accountID, func(a *domain.Account) ([]domain.NewEvent, error) {
				evs, err := a.Open(domain.OpenAccount{Currency: cur, DebtorIDs: dbts, Sandbox: p.Sandbox()}, at)
				return evs, prefixed(err, prefix)
			}))
		}
	}
	for _, pl := range plans {
		cmd := claimCommand(p.TenantID, pl.id, func(c *domain.Claim) ([]domain.NewEvent, error) {
			pl.claim = c
			var evs []domain.NewEvent
			var err error
			if pl.exists {
				evs, err = pl.upsert(c, p, at)
			} else {
				evs, err = pl.create(c, p, at)
			}
			return evs, prefixed(err, pl.prefix)
		})
		if !pl.exists {
			cmd.Reference, cmd.Sandbox = pl.in.reference(), p.Sandbox()
		}
		cmds = append(cmds, cmd)
	}
	return plans, cmds, nil
}

func (pl *claimPlan) create(c *domain.Claim, p domain.Principal, at time.Time) ([]domain.NewEvent, error) {
	in, fe := pl.in.input("", pl.accountID, *pl.currency)
	if cur := strings.TrimSpace(pl.in.Currency); cur != "" && !pl.implicit && cur != *pl.currency {
		fe = append(fe, domain.FieldError{Field: "currency", Error: fmt.Sprintf("must be the account's currency (%s)", *pl.currency)})
	}
	if in.Currency == "" {
		fe = append(fe, domain.FieldError{Field: "currency", Error: "is required"})
	}
	if len(fe) > 0 {
		return nil, domain.Invalid("invalid claim", fe...)
	}
	pl.outcome = "created"
	return c.Create(in, p.Sandbox(), at)
}

// upsert is an import of an existing claim: the same content changes
// nothing; other values of the fields Update changes update them; any
// other difference is a conflict.
func (pl *claimPlan) upsert(c *domain.Claim, p domain.Principal, at time.Time) ([]domain.NewEvent, error) {
	if !c.Created || c.Sandbox != p.Sandbox() {
		return nil, domain.Invalid("invalid claim", domain.FieldError{Field: "reference", Error: "names no claim of this mode"})
	}
	in := pl.in
	var conflicts []domain.FieldError
	differ := func(field, want, have string) {
		if want != have {
			conflicts = append(conflicts, domain.FieldError{Field: field, Error: fmt.Sprintf("is %q on claim %s and cannot be changed by an import (%q)", have, c.ID, want)})
		}
	}
	if pl.accountID != "" {
		differ("account_id", pl.accountID, c.AccountID)
	}
	if cur := strings.TrimSpace(in.Currency); cur != "" {
		differ("currency", cur, c.Currency)
	}
	if in.Amount != nil {
		d, bad := domain.ParseAmount("amount", *in.Amount, c.Currency)
		if bad != nil {
			return nil, domain.Invalid("invalid claim", *bad)
		}
		if !d.Equal(c.OriginalAmount) {
			differ("amount", domain.FormatAmount(d, c.Currency), domain.FormatAmount(c.OriginalAmount, c.Currency))
		}
	}
	if in.OriginalDueDate != nil {
		differ("original_due_date", trimmedOf(in.OriginalDueDate), string(c.OriginalDueDate))
	}
	if in.PrimaryDebtorID != nil {
		differ("primary_debtor_id", trimmedOf(in.PrimaryDebtorID), c.PrimaryDebtorID)
	}
	if len(conflicts) > 0 {
		return nil, &domain.Error{Code: domain.ECONFLICT, Reason: "claim_conflict",
			Message: fmt.Sprintf("claim %s (reference %q) differs in what an import cannot change", c.ID, c.Reference), Fields: conflicts}
	}
	f := domain.ClaimFields{TotalFees: in.TotalFees, ProductReference: in.ProductReference, PortfolioReference: in.PortfolioReference,
		CreditorReference: in.CreditorReference, Scores: in.Scores, Meta: in.Meta}
	if in.CurrentDueDate != nil && *in.CurrentDueDate != "" {
		d := domain.Date(*in.CurrentDueDate)
		f.CurrentDueDate = &d
	}
	for _, s := range []**string{&f.ProductReference, &f.PortfolioReference, &f.CreditorReference} {
		if *s != nil {
			*s = ptrTo(strings.TrimSpace(**s))
		}
	}
	// Would it change anything? Asked of a copy that may be updated, so that
	// a resolved or stopped claim imported unchanged is a no-op, not a 409.
	probe := *c
	probe.Status = domain.ClaimOpen
	evs, err := probe.Update(f, at)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		pl.outcome = "unchanged"
		return nil, nil
	}
	pl.outcome = "updated"
	return c.Update(f, at)
}

func ptrTo[T any](v T) *T { return &v }

// createClaim: POST /v1/claims creates a direct claim (claim.created) on an
// account named by account_id or account_reference, or — with neither — on
// an implicit account opened in the same transaction in the claim's
// currency with its primary debtor. The reference is unique per tenant and
// mode (409 duplicate_reference).
func (s *Server) createClaim(w http.ResponseWriter, r *http.Request) {
	var in claimRequest
	if err := decode(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	at := debtorNow()
	plans, cmds, err := s.planClaims(r.Context(), p, []claimRequest{in}, true, at)
	if err != nil {
		writeError(w, r, err)
		return
	}
	pl := plans[0]
	s.executeTx(w, r, cmds, func(tx pgx.Tx, _ []domain.Event) (result, error) {
		v := viewClaim(pl.claim)
		err := markDisputed(r.Context(), tx, p.TenantID, []*claimView{&v})
		return result{Status: http.StatusCreated, Body: v, Location: "/v1/claims/" + pl.id}, err
	})
}

// maxImportClaims bounds one POST /v1/claims/import.
const maxImportClaims = 500

type claimImportRequest struct {
	Claims []claimRequest `json:"claims"`
}

type claimImportItem struct {
	Index   int       `json:"index"`
	Outcome string    `json:"outcome"`
	Claim   claimView `json:"claim"`
}

type claimImportResult struct {
	Object    string            `json:"object"`
	Created   int               `json:"created"`
	Updated   int               `json:"updated"`
	Unchanged int               `json:"unchanged"`
	Data      []claimImportItem `json:"data"`
}

// importClaims: POST /v1/claims/import upserts up to 500 claims by
// reference, all or nothing in one transaction: a new reference creates
// the claim (as POST /v1/claims), an existing one with the same content
// changes nothing, with other values of what PATCH changes updates it, and
// with a different amount, currency, account, original due date or
// primary debtor is a 409. Every problem is named by the claim's index.
func (s *Server) importClaims(w http.ResponseWriter, r *http.Request) {
	var in claimImportRequest
	if err := decode(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	switch {
	case len(in.Claims) == 0:
		writeError(w, r, domain.Invalid("invalid import", domain.FieldError{Field: "claims", Error: "must have at least one claim"}))
		return
	case len(in.Claims) > maxImportClaims:
		writeError(w, r, domain.Invalid("invalid import", domain.FieldError{Field: "claims", Error: fmt.Sprintf("must have at most %d claims", maxImportClaims)}))
		return
	}
	p := principal(r)
	at := debtorNow()
	plans, cmds, err := s.planClaims(r.Context(), p, in.Claims, false, at)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.executeTx(w, r, cmds, func(tx pgx.Tx, _ []domain.Event) (result, error) {
		res := claimImportResult{Object: "claim_import", Data: make([]claimImportItem, len(plans))}
		for i, pl := range plans {
			switch pl.outcome {
			case "created":
				res.Created++
			case "updated":
				res.Updated++
			default:
				res.Unchanged++
			}
			res.Data[i] = claimImportItem{Index: i, Outcome: pl.outcome, Claim: viewClaim(pl.claim)}
		}
		views := make([]*claimView, len(res.Data))
		for i := range res.Data {
			views[i] = &res.Data[i].Claim
		}
		err := markDisputed(r.Context(), tx, p.TenantID, views)
		return result{Status: http.StatusOK, Body: res}, err
	})
}

// claimAction runs a command on claim {id} of the caller's tenant and mode
// and answers the claim. A missing claim — or another tenant's or mode's —
// is 404 whatever the body (bodyErr is answered only for an existing one).
func (s *Server) claimAction(w http.ResponseWriter, r *http.Request, bodyErr error, decide func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error)) {
	s.claimWrite(w, r, bodyErr, decide, func(tx pgx.Tx, c *domain.Claim) (result, error) {
		v := viewClaim(c)
		err := markDisputed(r.Context(), tx, c.TenantID, []*claimView{&v})
		return result{Status: http.StatusOK, Body: v}, err
	})
}

// claimWrite is claimAction answering what respond builds from the claim as
// decided (in the command's transaction, tx).
func (s *Server) claimWrite(w http.ResponseWriter, r *http.Request, bodyErr error, decide func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error),
	respond func(tx pgx.Tx, c *domain.Claim) (result, error)) {
	ownedWrite(s, w, r, domain.PrefixClaim, "claim", claimCommand, func(c *domain.Claim) (bool, bool) { return c.Created, c.Sandbox },
		bodyErr, decide, respond)
}

// updateClaim: PATCH /v1/claims/{id} changes current_due_date, total_fees,
// product_reference, portfolio_reference, creditor_reference, scores and
// meta (absent: unchanged) of an open or paused claim (claim.updated); a
// change to nothing records nothing.
func (s *Server) updateClaim(w http.ResponseWriter, r *http.Request) {
	var f domain.ClaimFields
	bodyErr := decode(r, &f)
	if bodyErr == nil && f.CurrentDueDate != nil {
		if _, err := domain.ParseDate(string(*f.CurrentDueDate)); err != nil {
			bodyErr = domain.Invalid("invalid claim update", domain.FieldError{Field: "current_due_date", Error: err.Error()})
		}
	}
	s.claimAction(w, r, bodyErr, func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error) { return c.Update(f, at) })
}

type claimResolveRequest struct {
	Resolution domain.ClaimResolution `json:"resolution"`
	Reason     string                 `json:"reason"`
}

type claimAmountRequest struct {
	Amount *string `json:"amount"`
	Reason string  `json:"reason"`
}

// resolveClaim: POST /v1/claims/{id}/resolve {resolution, reason}.
func (s *Server) resolveClaim(w http.ResponseWriter, r *http.Request) {
	var in claimResolveRequest
	bodyErr := decode(r, &in)
	s.claimAction(w, r, bodyErr, func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error) {
		return c.Resolve(in.Resolution, strings.TrimSpace(in.Reason), at)
	})
}

// creditClaim: POST /v1/claims/{id}/credit {amount, reason} lowers the
// amount; reaching zero resolves the claim as paid.
func (s *Server) creditClaim(w http.ResponseWriter, r *http.Request) { s.changeClaimAmount(w, r, true) }

// debitClaim: POST /v1/claims/{id}/debit {amount, reason} raises the amount.
func (s *Server) debitClaim(w http.ResponseWriter, r *http.Request) { s.changeClaimAmount(w, r, false) }

func (s *Server) changeClaimAmount(w http.ResponseWriter, r *http.Request, credit bool) {
	var in claimAmountRequest
	bodyErr := decode(r, &in)
	if bodyErr == nil && in.Amount == nil {
		bodyErr = domain.Invalid("invalid amount", domain.FieldError{Field: "amount", Error: "is required"})
	}
	s.claimAction(w, r, bodyErr, func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error) {
		amount, bad := domain.ParseAmount("amount", *in.Amount, c.Currency)
		if bad != nil {
			return nil, domain.Invalid("invalid amount", *bad)
		}
		if credit {
			return c.Credit(amount, strings.TrimSpace(in.Reason), at)
		}
		return c.Debit(amount, strings.TrimSpace(in.Reason), at)
	})
}

// pauseClaim: POST /v1/claims/{id}/pause {reason} (body optional).
func (s *Server) pauseClaim(w http.ResponseWriter, r *http.Request) {
	reason, bodyErr := optionalReason(r)
	s.claimAction(w, r, bodyErr, func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error) {
		return c.Pause(reason, at)
	})
}

// resumeClaim: POST /v1/claims/{id}/resume (body optional, {}).
func (s *Server) resumeClaim(w http.ResponseWriter, r *http.Request) {
	var in struct{}
	bodyErr := decodeOptional(r, &in)
	s.claimAction(w, r, bodyErr, func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error) { return c.Resume(at) })
}

// stopClaim: POST /v1/claims/{id}/stop {reason} (body optional).
func (s *Server) stopClaim(w http.ResponseWriter, r *http.Request) {
	reason, bodyErr := optionalReason(r)
	s.claimAction(w, r, bodyErr, func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error) {
		return c.Stop(reason, at)
	})
}

// recreateClaim: POST /v1/claims/{id}/recreate restarts a resolved or
// stopped claim with new content (claim.recreated): its reference and
// account stay (omit them, or repeat them).
func (s *Server) recreateClaim(w http.ResponseWriter, r *http.Request) {
	var in claimRequest
	bodyErr := decode(r, &in)
	if bodyErr == nil {
		if fe := in.syntax(""); len(fe) > 0 {
			bodyErr = domain.Invalid("invalid claim", fe...)
		} else if in.AccountReference != nil {
			bodyErr = domain.Invalid("invalid claim", domain.FieldError{Field: "account_reference", Error: "cannot change on recreate: omit it"})
		}
	}
	var debtorErr error
	if d := trimmedOf(in.PrimaryDebtorID); bodyErr == nil && d != "" {
		found, err := s.existingDebtors(r.Context(), principal(r), []string{d})
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !found[d] {
			debtorErr = domain.Invalid("invalid claim", domain.FieldError{Field: "primary_debtor_id", Error: "no debtor " + d})
		}
	}
	s.claimAction(w, r, bodyErr, func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error) {
		if debtorErr != nil {
			return nil, debtorErr
		}
		req := in
		if req.Reference == nil {
			req.Reference = &c.Reference
		}
		account := c.AccountID
		if v := trimmedOf(in.AccountID); v != "" {
			account = v
		}
		cin, fe := req.input("", account, c.Currency)
		if len(fe) > 0 {
			return nil, domain.Invalid("invalid claim", fe...)
		}
		if cin.Currency != c.Currency {
			return nil, domain.Invalid("invalid claim", domain.FieldError{Field: "currency", Error: fmt.Sprintf("must be the account's currency (%s)", c.Currency)})
		}
		return c.Recreate(cin, at)
	})
}

// getClaim: GET /v1/claims/{id}, from the claims projection.
func (s *Server) getClaim(w http.ResponseWriter, r *http.Request) {
	if err := s.awaitPosition(r, "disputes"); err != nil {
		writeError(w, r, err)
		return
	}
	readOne(s, w, r, "claims", "claim", claimViewColumns, "claims", scanClaimView)
}

// claimFilter is GET /v1/claims's query.
type claimFilter struct {
	statuses                                  []string
	accountID, debtorID, portfolio, reference string
	overdue                                   *bool
}

var claimStatuses = []string{string(domain.ClaimOpen), string(domain.ClaimPaused), string(domain.ClaimResolved), string(domain.ClaimStopped)}

func parseClaimFilter(r *http.Request) (claimFilter, error) {
	q := r.URL.Query()
	f := claimFilter{statuses: []string{}, accountID: strings.TrimSpace(q.Get("account_id")), debtorID: strings.TrimSpace(q.Get("debtor_id")),
		portfolio: strings.TrimSpace(q.Get("portfolio")), reference: strings.TrimSpace(q.Get("reference"))}
	var fe []domain.FieldError
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			st = strings.TrimSpace(st)
			if !slices.Contains(claimStatuses, st) {
				fe = append(fe, domain.FieldError{Field: "query:status", Error: "must be a comma-separated list of open, paused, resolved, stopped"})
				break
			}
			f.statuses = append(f.statuses, st)
		}
	}
	switch v := q.Get("overdue"); v {
	case "":
	case "true", "false":
		b := v == "true"
		f.overdue = &b
	default:
		fe = append(fe, domain.FieldError{Field: "query:overdue", Error: "must be true or false"})
	}
	if len(fe) > 0 {
		return f, domain.Invalid("invalid filter", fe...)
	}
	return f, nil
}

// listClaims: GET /v1/claims — the tenant's claims of the caller's mode by
// id, filtered by ?status= (comma list), ?account_id=, ?debtor_id= (the
// primary debtor), ?portfolio=, ?reference= and ?overdue= (true: open or
// paused with days past due > 0 today, UTC).
func (s *Server) listClaims(w http.ResponseWriter, r *http.Request) {
	var f claimFilter
	pg, ok := s.startList(w, r, func() (err error) { f, err = parseClaimFilter(r); return err }, "claims", "disputes")
	if !ok {
		return
	}
	p := principal(r)
	rows, err := s.store.Pool().Query(r.Context(), `SELECT `+claimViewColumns+`
		FROM claims
		WHERE tenant_id = $1 AND sandbox = $2 AND id > $3
		  AND (cardinality($4::text[]) = 0 OR status = ANY($4))
		  AND ($5 = '' OR account_id = $5)
		  AND ($6 = '' OR primary_debtor_id = $6)
		  AND ($7 = '' OR portfolio_reference = $7)
		  AND ($8 = '' OR reference = $8)
		  AND ($9::boolean IS NULL OR $9 = (status IN ('open', 'paused') AND original_due_date < $10::date))
		ORDER BY id LIMIT $11`, p.TenantID, p.Sandbox(), pg.After, f.statuses, f.accountID, f.debtorID, f.portfolio, f.reference,
		f.overdue, string(domain.DateOf(time.Now())), pg.Limit+1)
	views, err := collect(rows, err, scanClaimView)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v claimView) string { return v.ID }))
}

// debtorClaimsView is a debtor's accounts and claims.
type debtorClaimsView struct {
	Object   string        `json:"object"`
	DebtorID string        `json:"debtor_id"`
	Accounts []accountView `json:"accounts"`
	Claims   []claimView   `json:"claims"`
}

// maxDebtorClaims bounds each list of GET /v1/debtors/{id}/claims.
const maxDebtorClaims = 1000

// debtorClaims: GET /v1/debtors/{id}/claims — the accounts whose debtors
// include the debtor and the claims whose primary debtor it is or that are
// on one of those accounts (from the ledger and claims read models; at most
// 1,000 of each, by id).
func (s *Server) debtorClaims(w http.ResponseWriter, r *http.Request) {
	if err := s.awaitPosition(r, "ledger", "claims", "disputes"); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	ctx := r.Context()
	found, err := s.existingDebtors(ctx, p, []string{id})
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !found[id] {
		writeError(w, r, domain.Errorf(domain.ENOTFOUND, "debtor %s not found", id))
		return
	}
	v := debtorClaimsView{Object: "debtor_claims", DebtorID: id}
	rows, err := s.store.Pool().Query(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE tenant_id = $1 AND sandbox = $2 AND $3 = ANY(debtor_ids) ORDER BY id LIMIT $4`, p.TenantID, p.Sandbox(), id, maxDebtorClaims)
	if v.Accounts, err = collect(rows, err, scanAccount); err == nil {
		rows, err = s.store.Pool().Query(ctx, `SELECT `+claimViewColumns+` FROM claims
			WHERE tenant_id = $1 AND sandbox = $2 AND (primary_debtor_id = $3 OR account_id IN (
				SELECT a.id FROM accounts a WHERE a.tenant_id = $1 AND a.sandbox = $2 AND $3 = ANY(a.debtor_ids)))
			ORDER BY id LIMIT $4`, p.TenantID, p.Sandbox(), id, maxDebtorClaims)
		v.Claims, err = collect(rows, err, scanClaimView)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if v.Accounts == nil {
		v.Accounts = []accountView{}
	}
	if v.Claims == nil {
		v.Claims = []claimView{}
	}
	writeJSON(w, http.StatusOK, v)
}
