package api

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// execute runs domain commands through the event store (eventstore.Store.
// Execute) and writes the result respond builds from the events they
// recorded. Like commit, it stores an Idempotency-Key's response in the
// same transaction as the events. respond runs inside that transaction,
// after the commands decided (possibly more than once, when Execute retries
// a lost concurrency race), so it must only build the response. Without a
// Position of its own, the result carries that of the last event recorded;
// a command that recorded nothing answers without Arrears-Position.
func (s *Server) execute(w http.ResponseWriter, r *http.Request, cmds []eventstore.Command, respond func(events []domain.Event) (result, error)) {
	s.executeTx(w, r, cmds, func(_ pgx.Tx, events []domain.Event) (result, error) { return respond(events) })
}

// executeTx is execute for a respond that also reads read models: it reads
// them in tx, the commands' transaction (never on a second connection of
// the pool while holding this one).
func (s *Server) executeTx(w http.ResponseWriter, r *http.Request, cmds []eventstore.Command, respond func(tx pgx.Tx, events []domain.Event) (result, error)) {
	ctx := r.Context()
	var res result
	var body []byte
	var hdr http.Header
	_, err := s.store.Execute(ctx, metadata(r), cmds, func(tx pgx.Tx, events []domain.Event) error {
		var err error
		if res, err = respond(tx, events); err != nil {
			return err
		}
		if res.Position == 0 && len(events) > 0 {
			res.Position = events[len(events)-1].Position
		}
		body, hdr, err = render(ctx, tx, res)
		return err
	})
	writeResult(w, r, res, hdr, body, err)
}

// accountCommand, debtorCommand, claimCommand, disputeCommand,
// campaignCommand and enrollmentCommand are commands on the aggregate id of
// tenantID: decide gets it in its current state.
func accountCommand(tenantID, id string, decide func(*domain.Account) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.On(tenantID, domain.StreamTypeAccount, id, domain.NewAccount, decide)
}

func debtorCommand(tenantID, id string, decide func(*domain.Debtor) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.On(tenantID, domain.StreamTypeDebtor, id, domain.NewDebtor, decide)
}

func claimCommand(tenantID, id string, decide func(*domain.Claim) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.On(tenantID, domain.StreamTypeClaim, id, domain.NewClaim, decide)
}

func disputeCommand(tenantID, id string, decide func(*domain.Dispute) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.On(tenantID, domain.StreamTypeDispute, id, domain.NewDispute, decide)
}

func campaignCommand(tenantID, id string, decide func(*domain.Campaign) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.On(tenantID, domain.StreamTypeCampaign, id, domain.NewCampaign, decide)
}

func enrollmentCommand(tenantID, id string, decide func(*domain.Enrollment) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.On(tenantID, domain.StreamTypeEnrollment, id, domain.NewEnrollment, decide)
}

// ownedWrite runs decide on the aggregate {id} (an id with prefix, found
// by command) of the caller's tenant and mode, and answers what respond
// builds from it in the command's transaction. A missing aggregate — or
// another tenant's or mode's (owned reports whether it was created and its
// mode) — is 404 whatever the body: bodyErr is answered only for an
// existing one.
func ownedWrite[A domain.Aggregate](s *Server, w http.ResponseWriter, r *http.Request, prefix, noun string,
	command func(tenantID, id string, decide func(A) ([]domain.NewEvent, error)) eventstore.Command,
	owned func(A) (created, sandbox bool), bodyErr error,
	decide func(a A, at time.Time) ([]domain.NewEvent, error), respond func(tx pgx.Tx, a A) (result, error)) {
	p := principal(r)
	id := chi.URLParam(r, "id")
	missing := domain.Errorf(domain.ENOTFOUND, "%s %s not found", noun, id)
	if !domain.HasPrefix(id, prefix) {
		writeError(w, r, missing)
		return
	}
	at := debtorNow()
	var agg A
	cmd := command(p.TenantID, id, func(a A) ([]domain.NewEvent, error) {
		agg = a
		if created, sandbox := owned(a); !created || sandbox != p.Sandbox() {
			return nil, missing
		}
		if bodyErr != nil {
			return nil, bodyErr
		}
		return decide(a, at)
	})
	s.executeTx(w, r, []eventstore.Command{cmd}, func(tx pgx.Tx, _ []domain.Event) (result, error) { return respond(tx, agg) })
}
