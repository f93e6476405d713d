package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/projections"
)

// disputeView is a dispute as the API shows it; text fields are "" when
// unset (claim_id "": the dispute covers the whole account).
type disputeView struct {
	Object      string          `json:"object"`
	ID          string          `json:"id"`
	AccountID   string          `json:"account_id"`
	ClaimID     string          `json:"claim_id"`
	DebtorIDs   []string        `json:"debtor_ids"`
	Reason      string          `json:"reason"`
	Description string          `json:"description"`
	Reference   string          `json:"reference"`
	Meta        json.RawMessage `json:"meta"`
	Status      string          `json:"status"`
	Outcome     *string         `json:"outcome"`
	Note        string          `json:"note"`
	OpenedAt    time.Time       `json:"opened_at"`
	ClosedAt    *time.Time      `json:"closed_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	Version     int64           `json:"version"`
}

// viewDispute shows d (the command side's state, or a disputes row read
// back by projections.ScanDispute).
func viewDispute(d *domain.Dispute) disputeView {
	v := disputeView{Object: "dispute", ID: d.ID, AccountID: d.AccountID, ClaimID: d.ClaimID, DebtorIDs: slices.Clone(d.DebtorIDs),
		Reason: d.Reason, Description: d.Description, Reference: d.Reference, Meta: compactJSON(d.Meta), Status: string(d.Status),
		Note: d.Note, OpenedAt: d.OpenedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(), Version: d.Version}
	if v.DebtorIDs == nil {
		v.DebtorIDs = []string{}
	}
	if d.Outcome != "" {
		o := d.Outcome
		v.Outcome = &o
	}
	if d.ClosedAt != nil {
		at := d.ClosedAt.UTC()
		v.ClosedAt = &at
	}
	return v
}

// scanDispute reads a row of projections.DisputeColumns into its view.
func scanDispute(row rowScanner) (disputeView, error) {
	d, err := projections.ScanDispute(row)
	if err != nil {
		return disputeView{}, err
	}
	return viewDispute(d), nil
}

// markDisputed sets Disputed on the views of claims an open dispute covers
// (on the claim, or on its whole account), reading the disputes read model
// in tx.
func markDisputed(ctx context.Context, tx pgx.Tx, tenantID string, views []*claimView) error {
	var accounts []string
	for _, v := range views {
		if !slices.Contains(accounts, v.AccountID) {
			accounts = append(accounts, v.AccountID)
		}
	}
	rows, err := tx.Query(ctx, `SELECT account_id, claim_id FROM disputes
		WHERE tenant_id = $1 AND status = 'open' AND account_id = ANY($2)`, tenantID, accounts)
	if err != nil {
		return err
	}
	var account, claim string
	_, err = pgx.ForEachRow(rows, []any{&account, &claim}, func() error {
		for _, v := range views {
			if v.AccountID == account && (claim == "" || claim == v.ID) {
				v.Disputed = true
			}
		}
		return nil
	})
	return err
}

type disputeRequest struct {
	AccountID        *string         `json:"account_id"`
	AccountReference *string         `json:"account_reference"`
	ClaimID          *string         `json:"claim_id"`
	Reason           string          `json:"reason"`
	Description      string          `json:"description"`
	Reference        string          `json:"reference"`
	Meta             json.RawMessage `json:"meta"`
}

// target returns the one field naming what the dispute is on, and its
// value; naming none or several is a 422.
func (in disputeRequest) target() (field, value string, err error) {
	for _, t := range []struct {
		field string
		v     *string
	}{{"account_id", in.AccountID}, {"account_reference", in.AccountReference}, {"claim_id", in.ClaimID}} {
		if v := trimmedOf(t.v); v != "" {
			if field != "" {
				return "", "", domain.Invalid("invalid dispute", domain.FieldError{Field: t.field, Error: "give only one of account_id, account_reference, claim_id"})
			}
			field, value = t.field, v
		}
	}
	if field == "" {
		return "", "", domain.Invalid("invalid dispute", domain.FieldError{Field: "account_id", Error: "is required: give account_id, account_reference or claim_id"})
	}
	return field, value, nil
}

// claimAccount returns the account of claim id of the caller's tenant and
// mode, from its first event in the event store (a claim's account never
// changes); ok is false for no such claim.
func (s *Server) claimAccount(ctx context.Context, p domain.Principal, id string) (account string, ok bool, err error) {
	err = s.store.Pool().QueryRow(ctx, `SELECT data->'claim'->>'account_id' FROM events
		WHERE tenant_id = $1 AND stream_id = $2 AND stream_version = 1 AND type = $3
		  AND coalesce((data->>'sandbox')::boolean, false) = $4`, p.TenantID, id, domain.EventClaimCreated, p.Sandbox()).Scan(&account)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return account, err == nil, err
}

// openDispute: POST /v1/disputes opens a dispute (dispute.opened) on an
// account (account_id or account_reference: all its claims) or on one
// claim (claim_id; its account is the claim's), which must be of the
// caller's tenant and mode (404 otherwise). It records the account's
// debtors as they are. The existence checks and the event are one
// transaction: read-only commands on the claim and the account decide
// with the dispute. A reference, if given, is unique per tenant and mode
// (409 duplicate_reference).
func (s *Server) openDispute(w http.ResponseWriter, r *http.Request) {
	var in disputeRequest
	if err := decode(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	field, target, err := in.target()
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := principal(r)
	ctx := r.Context()
	var accountID, claimID string
	switch field {
	case "account_reference":
		refs, err := s.streamsByReference(ctx, p, domain.StreamTypeAccount, []string{target})
		if err != nil {
			writeError(w, r, err)
			return
		}
		if accountID = refs[target]; accountID == "" {
			writeError(w, r, domain.Errorf(domain.ENOTFOUND, "no account with reference %q", target))
			return
		}
	case "claim_id":
		claimID = target
		account, ok, err := s.claimAccount(ctx, p, claimID)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !ok {
			writeError(w, r, domain.Errorf(domain.ENOTFOUND, "claim %s not found", claimID))
			return
		}
		accountID = account
	default:
		accountID = target
		if !domain.HasPrefix(accountID, domain.PrefixAccount) {
			writeError(w, r, domain.Errorf(domain.ENOTFOUND, "account %s not found", accountID))
			return
		}
	}
	at := debtorNow()
	id := s.ids.New(domain.PrefixDispute, at)
	dispute := domain.DisputeInput{AccountID: accountID, ClaimID: claimID, Reason: strings.TrimSpace(in.Reason),
		Description: strings.TrimSpace(in.Description), Reference: strings.TrimSpace(in.Reference), Meta: in.Meta}
	var cmds []eventstore.Command
	if claimID != "" {
		cmds = append(cmds, claimCommand(p.TenantID, claimID, func(c *domain.Claim) ([]domain.NewEvent, error) {
			if !c.Created || c.Sandbox != p.Sandbox() || c.AccountID != accountID {
				return nil, domain.Errorf(domain.ENOTFOUND, "claim %s not found", claimID)
			}
			return nil, nil
		}))
	}
	cmds = append(cmds, accountCommand(p.TenantID, accountID, func(a *domain.Account) ([]domain.NewEvent, error) {
		if !a.Opened || a.Sandbox != p.Sandbox() {
			return nil, domain.Errorf(domain.ENOTFOUND, "account %s not found", accountID)
		}
		dispute.DebtorIDs = slices.Clone(a.DebtorIDs)
		return nil, nil
	}))
	var d *domain.Dispute
	open := disputeCommand(p.TenantID, id, func(agg *domain.Dispute) ([]domain.NewEvent, error) {
		d = agg
		return d.Open(dispute, p.Sandbox(), at)
	})
	open.Reference, open.Sandbox = dispute.Reference, p.Sandbox()
	cmds = append(cmds, open)
	s.execute(w, r, cmds, func([]domain.Event) (result, error) {
		return result{Status: http.StatusCreated, Body: viewDispute(d), Location: "/v1/disputes/" + id}, nil
	})
}

// disputeAction runs a command on dispute {id} of the caller's tenant and
// mode and answers the dispute. A missing dispute — or another tenant's or
// mode's — is 404 whatever the body (bodyErr is answered only for an
// existing one).
func (s *Server) disputeAction(w http.ResponseWriter, r *http.Request, bodyErr error, decide func(d *domain.Dispute, at time.Time) ([]domain.NewEvent, error)) {
	ownedWrite(s, w, r, domain.PrefixDispute, "dispute", disputeCommand, func(d *domain.Dispute) (bool, bool) { return d.Created, d.Sandbox },
		bodyErr, decide, func(_ pgx.Tx, d *domain.Dispute) (result, error) {
			return result{Status: http.StatusOK, Body: viewDispute(d)}, nil
		})
}

type disputeResolveRequest struct {
	Outcome string `json:"outcome"`
	Note    string `json:"note"`
}

type disputeNoteRequest struct {
	Note string `json:"note"`
}

// resolveDispute: POST /v1/disputes/{id}/resolve {outcome, note} closes an
// open dispute as upheld or rejected (dispute.resolved).
func (s *Server) resolveDispute(w http.ResponseWriter, r *http.Request) {
	var in disputeResolveRequest
	bodyErr := decode(r, &in)
	s.disputeAction(w, r, bodyErr, func(d *domain.Dispute, at time.Time) ([]domain.NewEvent, error) {
		return d.Resolve(strings.TrimSpace(in.Outcome), strings.TrimSpace(in.Note), at)
	})
}

// withdrawDispute: POST /v1/disputes/{id}/withdraw {note} (body optional)
// closes an open dispute at the debtor's request (dispute.withdrawn).
func (s *Server) withdrawDispute(w http.ResponseWriter, r *http.Request) {
	var in disputeNoteRequest
	bodyErr := decodeOptional(r, &in)
	s.disputeAction(w, r, bodyErr, func(d *domain.Dispute, at time.Time) ([]domain.NewEvent, error) {
		return d.Withdraw(strings.TrimSpace(in.Note), at)
	})
}

// getDispute: GET /v1/disputes/{id}, from the disputes read model.
func (s *Server) getDispute(w http.ResponseWriter, r *http.Request) {
	readOne(s, w, r, "disputes", "dispute", projections.DisputeColumns, "disputes", scanDispute)
}

var disputeStatuses = []string{string(domain.DisputeOpen), string(domain.DisputeResolved), string(domain.DisputeWithdrawn)}

// disputeFilter is GET /v1/disputes's query.
type disputeFilter struct {
	statuses                                []string
	debtorID, accountID, claimID, reference string
}

func parseDisputeFilter(r *http.Request) (disputeFilter, error) {
	q := r.URL.Query()
	f := disputeFilter{statuses: []string{}, debtorID: strings.TrimSpace(q.Get("debtor_id")), accountID: strings.TrimSpace(q.Get("account_id")),
		claimID: strings.TrimSpace(q.Get("claim_id")), reference: strings.TrimSpace(q.Get("reference"))}
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			st = strings.TrimSpace(st)
			if !slices.Contains(disputeStatuses, st) {
				return f, domain.Invalid("invalid filter", domain.FieldError{Field: "query:status", Error: "must be a comma-separated list of open, resolved, withdrawn"})
			}
			f.statuses = append(f.statuses, st)
		}
	}
	return f, nil
}

// listDisputes: GET /v1/disputes — the tenant's disputes of the caller's
// mode by id, filtered by ?status= (comma list), ?debtor_id= (one of the
// account's debtors when opened), ?account_id= (every dispute on the
// account, on it or on one of its claims), ?claim_id= (disputes on that
// claim) and ?reference=.
func (s *Server) listDisputes(w http.ResponseWriter, r *http.Request) {
	var f disputeFilter
	pg, ok := s.startList(w, r, func() (err error) { f, err = parseDisputeFilter(r); return err }, "disputes")
	if !ok {
		return
	}
	p := principal(r)
	rows, err := s.store.Pool().Query(r.Context(), `SELECT `+projections.DisputeColumns+`
		FROM disputes
		WHERE tenant_id = $1 AND sandbox = $2 AND id > $3
		  AND (cardinality($4::text[]) = 0 OR status = ANY($4))
		  AND ($5 = '' OR $5 = ANY(debtor_ids))
		  AND ($6 = '' OR account_id = $6)
		  AND ($7 = '' OR claim_id = $7)
		  AND ($8 = '' OR reference = $8)
		ORDER BY id LIMIT $9`, p.TenantID, p.Sandbox(), pg.After, f.statuses, f.debtorID, f.accountID, f.claimID, f.reference, pg.Limit+1)
	views, err := collect(rows, err, scanDispute)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(views, pg.Limit, func(v disputeView) string { return v.ID }))
}
