package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// maxBatchEntries bounds one POST /v1/ledger-entries/batch.
const maxBatchEntries = 10_000

// batchBodyLimit is the body limit of POST /v1/ledger-entries/batch (10,000
// entries do not fit the default 1 MiB).
const batchBodyLimit = 4 << 20

type batchEntry struct {
	AccountID        *string          `json:"account_id"`
	AccountReference *string          `json:"account_reference"`
	Reference        string           `json:"reference"`
	Kind             domain.EntryKind `json:"kind"`
	Amount           *string          `json:"amount"`
	DueDate          domain.Date      `json:"due_date"`
	OriginalDueDate  domain.Date      `json:"original_due_date"`
	ProductReference string           `json:"product_reference"`
	TargetReference  string           `json:"target_reference"`
	FeeType          string           `json:"fee_type"`
	Reason           string           `json:"reason"`
	PaymentReference string           `json:"payment_reference"`
	Provider         string           `json:"provider"`
	Meta             json.RawMessage  `json:"meta"`
}

type batchRequest struct {
	Entries []batchEntry `json:"entries"`
}

type batchResult struct {
	Object   string `json:"object"`
	Posted   int    `json:"posted"`
	Position *int64 `json:"position"`
}

// accountEntries is one account's part of a batch: its entries and their
// indexes in the request.
type accountEntries struct {
	id      string
	field   string // "account_id" or "account_reference", as the entries named it
	entries []batchEntry
	index   []int
}

// postLedgerEntries: POST /v1/ledger-entries/batch posts up to 10,000
// entries to accounts named by id or reference, all or nothing, in one
// transaction. Re-posting an entry with the same content posts nothing.
func (s *Server) postLedgerEntries(w http.ResponseWriter, r *http.Request) {
	var in batchRequest
	if err := decode(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	switch {
	case len(in.Entries) == 0:
		writeError(w, r, domain.Invalid("invalid batch", domain.FieldError{Field: "entries", Error: "must have at least one entry"}))
		return
	case len(in.Entries) > maxBatchEntries:
		writeError(w, r, domain.Invalid("invalid batch", domain.FieldError{Field: "entries", Error: fmt.Sprintf("must have at most %d entries", maxBatchEntries)}))
		return
	}
	p := principal(r)
	var fe []domain.FieldError
	var refs []string
	seenRef := map[string]bool{}
	for i, e := range in.Entries {
		hasID, hasRef := e.AccountID != nil && *e.AccountID != "", e.AccountReference != nil && strings.TrimSpace(*e.AccountReference) != ""
		switch {
		case hasID == hasRef:
			fe = append(fe, domain.FieldError{Field: fmt.Sprintf("entries[%d].account_id", i), Error: "exactly one of account_id and account_reference is required"})
		case hasID && !domain.HasPrefix(*e.AccountID, domain.PrefixAccount):
			fe = append(fe, domain.FieldError{Field: fmt.Sprintf("entries[%d].account_id", i), Error: "no account " + *e.AccountID})
		case hasRef:
			if ref := strings.TrimSpace(*e.AccountReference); !seenRef[ref] {
				seenRef[ref] = true
				refs = append(refs, ref)
			}
		}
		if e.Amount == nil {
			fe = append(fe, domain.FieldError{Field: fmt.Sprintf("entries[%d].amount", i), Error: "is required"})
		}
	}
	byRef := map[string]string{}
	if len(refs) > 0 {
		// A join with the distinct references, not reference = ANY($4):
		// with the array a parameter (a prepared statement's generic plan)
		// that probes the index once per element, ~5x slower for 1,000.
		rows, err := s.store.Pool().Query(r.Context(), `SELECT r.reference, r.stream_id FROM unnest($4::text[]) AS k (reference)
			JOIN stream_references r ON r.tenant_id = $1 AND r.sandbox = $2 AND r.stream_type = $3 AND r.reference = k.reference`,
			p.TenantID, p.Sandbox(), domain.StreamTypeAccount, refs)
		if err != nil {
			writeError(w, r, err)
			return
		}
		for rows.Next() {
			var ref, id string
			if err := rows.Scan(&ref, &id); err != nil {
				rows.Close()
				writeError(w, r, err)
				return
			}
			byRef[ref] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			writeError(w, r, err)
			return
		}
	}
	groups := map[string]*accountEntries{}
	var order []*accountEntries
	for i, e := range in.Entries {
		var id, field string
		switch {
		case e.AccountID != nil && *e.AccountID != "":
			id, field = *e.AccountID, "account_id"
		case e.AccountReference != nil:
			ref := strings.TrimSpace(*e.AccountReference)
			if ref == "" {
				continue
			}
			var ok bool
			if id, ok = byRef[ref]; !ok {
				fe = append(fe, domain.FieldError{Field: fmt.Sprintf("entries[%d].account_reference", i), Error: "no account with reference " + ref})
				continue
			}
			field = "account_reference"
		default:
			continue
		}
		g, ok := groups[id]
		if !ok {
			g = &accountEntries{id: id, field: field}
			groups[id] = g
			order = append(order, g)
		}
		g.entries = append(g.entries, e)
		g.index = append(g.index, i)
	}
	if len(fe) > 0 {
		writeError(w, r, domain.Invalid("invalid ledger entries: nothing was posted", fe...))
		return
	}
	at := debtorNow()
	cmds := make([]eventstore.Command, 0, len(order))
	for _, g := range order {
		cmds = append(cmds, accountCommand(p.TenantID, g.id, func(a *domain.Account) ([]domain.NewEvent, error) {
			return decideEntries(a, p, g, at)
		}))
	}
	s.execute(w, r, cmds, func(events []domain.Event) (result, error) {
		res := batchResult{Object: "ledger_entry_batch", Posted: len(events)}
		if len(events) > 0 {
			res.Position = &events[len(events)-1].Position
		}
		return result{Status: http.StatusCreated, Body: res}, nil
	})
}

// decideEntries posts g's entries on a, naming every problem by the
// entry's index in the request.
func decideEntries(a *domain.Account, p domain.Principal, g *accountEntries, at time.Time) ([]domain.NewEvent, error) {
	if !a.Opened || a.Sandbox != p.Sandbox() {
		fe := make([]domain.FieldError, len(g.index))
		for j, i := range g.index {
			fe[j] = domain.FieldError{Field: fmt.Sprintf("entries[%d].%s", i, g.field), Error: "no account " + g.id}
			if g.field == "account_reference" {
				fe[j].Error = "no account with reference " + strings.TrimSpace(*g.entries[j].AccountReference)
			}
		}
		return nil, domain.Invalid("invalid ledger entries: nothing was posted", fe...)
	}
	ins := make([]domain.EntryInput, len(g.entries))
	var fe []domain.FieldError
	for j, e := range g.entries {
		amount, bad := domain.ParseAmount("", *e.Amount, a.Currency)
		if bad != nil {
			bad.Field = fmt.Sprintf("entries[%d].amount", g.index[j]) // named only when needed: most batches are valid
			fe = append(fe, *bad)
			continue
		}
		ins[j] = domain.EntryInput{Reference: strings.TrimSpace(e.Reference), Kind: e.Kind, Amount: amount, DueDate: e.DueDate,
			OriginalDueDate: e.OriginalDueDate, ProductReference: e.ProductReference, TargetReference: e.TargetReference,
			FeeType: e.FeeType, Reason: e.Reason, PaymentReference: e.PaymentReference, Provider: e.Provider, Meta: e.Meta}
	}
	if len(fe) > 0 {
		return nil, domain.Invalid("invalid ledger entries: nothing was posted", fe...)
	}
	return a.PostEntries(ins, at, func(j int) string { return fmt.Sprintf("entries[%d]", g.index[j]) })
}
