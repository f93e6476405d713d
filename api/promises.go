package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/projections"
)

// promiseView is a promise to pay as the API shows it: amounts are decimal
// strings in major units of the claim's currency.
type promiseView struct {
	Object    string      `json:"object"`
	ID        string      `json:"id"`
	ClaimID   string      `json:"claim_id"`
	Amount    string      `json:"amount"`
	Currency  string      `json:"currency"`
	DueDate   domain.Date `json:"due_date"`
	Status    string      `json:"status"`
	Progress  string      `json:"progress"`
	Reason    string      `json:"reason"`
	MadeAt    time.Time   `json:"made_at"`
	DecidedAt *time.Time  `json:"decided_at"`
}

// viewPromise shows promise p of claim c. The progress of an active
// promise is what lowered the claim (payments allocated and credits) since
// it was made, as of now; a decided promise's is as of its decision.
func viewPromise(c *domain.Claim, p domain.Promise) promiseView {
	progress := p.Progress
	if p.Status == domain.PromiseActive {
		progress = c.Paid.Add(c.Credits).Sub(p.ReducedAt0)
	}
	v := promiseView{Object: "promise", ID: p.ID, ClaimID: c.ID, Amount: domain.FormatAmount(p.Amount, c.Currency), Currency: c.Currency,
		DueDate: p.DueDate, Status: string(p.Status), Progress: domain.FormatAmount(progress, c.Currency), Reason: p.Reason, MadeAt: p.MadeAt.UTC()}
	if p.DecidedAt != nil {
		at := p.DecidedAt.UTC()
		v.DecidedAt = &at
	}
	return v
}

// claimViewColumns are the claims columns a claim view reads (select them
// FROM claims, unaliased): projections.ClaimColumns, then whether an open
// dispute covers the claim — one on the claim, or on its whole account
// (claim_id ”).
const claimViewColumns = projections.ClaimColumns + `,
	EXISTS (SELECT 1 FROM disputes d WHERE d.tenant_id = claims.tenant_id AND d.account_id = claims.account_id
		AND d.status = 'open' AND (d.claim_id = '' OR d.claim_id = claims.id))`

// extraColumns scans a row whose leading columns row's reader expects,
// followed by extra.
type extraColumns struct {
	row   rowScanner
	extra []any
}

func (x extraColumns) Scan(dest ...any) error { return x.row.Scan(append(dest, x.extra...)...) }

// scanClaimRow reads a row of claimViewColumns: the claim and whether it is
// disputed.
func scanClaimRow(row rowScanner) (*domain.Claim, bool, error) {
	var disputed bool
	c, err := projections.ScanClaim(extraColumns{row, []any{&disputed}})
	return c, disputed, err
}

type promiseRequest struct {
	Amount  *string `json:"amount"`
	DueDate *string `json:"due_date"`
}

// makePromise: POST /v1/claims/{id}/promises {amount, due_date} records
// the debtor's promise to pay (claim.promise_made) on an open or paused
// claim: at most the claim's amount, due today (the server's UTC date) or
// up to domain.MaxPromiseDays later. A claim has at most one active
// promise (409 promise_active).
func (s *Server) makePromise(w http.ResponseWriter, r *http.Request) {
	var in promiseRequest
	bodyErr := decode(r, &in)
	if bodyErr == nil {
		var fe []domain.FieldError
		if in.Amount == nil {
			fe = append(fe, domain.FieldError{Field: "amount", Error: "is required"})
		}
		if in.DueDate == nil || strings.TrimSpace(*in.DueDate) == "" {
			fe = append(fe, domain.FieldError{Field: "due_date", Error: "is required (YYYY-MM-DD)"})
		} else if _, err := domain.ParseDate(strings.TrimSpace(*in.DueDate)); err != nil {
			fe = append(fe, domain.FieldError{Field: "due_date", Error: err.Error()})
		}
		if len(fe) > 0 {
			bodyErr = domain.Invalid("invalid promise to pay", fe...)
		}
	}
	var id string
	s.claimWrite(w, r, bodyErr, func(c *domain.Claim, at time.Time) ([]domain.NewEvent, error) {
		amount, bad := domain.ParseAmount("amount", *in.Amount, c.Currency)
		if bad != nil {
			return nil, domain.Invalid("invalid promise to pay", *bad)
		}
		id = s.ids.New(domain.PrefixPromise, at)
		return c.MakePromise(id, amount, domain.Date(strings.TrimSpace(*in.DueDate)), domain.DateOf(at), at)
	}, func(_ pgx.Tx, c *domain.Claim) (result, error) {
		for _, p := range c.Promises {
			if p.ID == id {
				return result{Status: http.StatusCreated, Body: viewPromise(c, p)}, nil
			}
		}
		return result{}, fmt.Errorf("claim %s: promise %s not recorded", c.ID, id)
	})
}

// listPromises: GET /v1/claims/{id}/promises — every promise to pay of the
// claim, oldest first, from the claims read model (not paginated:
// next_cursor is always null).
func (s *Server) listPromises(w http.ResponseWriter, r *http.Request) {
	if err := s.awaitPosition(r, "claims"); err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	id := chi.URLParam(r, "id")
	c, err := projections.ScanClaim(s.store.Pool().QueryRow(r.Context(), `SELECT `+projections.ClaimColumns+` FROM claims
		WHERE tenant_id = $1 AND sandbox = $2 AND id = $3`, p.TenantID, p.Sandbox(), id))
	if err != nil {
		writeError(w, r, notFound(err, "claim "+id))
		return
	}
	views := make([]promiseView, 0, len(c.Promises))
	for _, pr := range c.Promises {
		views = append(views, viewPromise(c, pr))
	}
	writeJSON(w, http.StatusOK, list[promiseView]{Data: views})
}
