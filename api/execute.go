package api

import (
	"net/http"

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

// accountCommand is a command on account id of tenantID: decide gets the
// account in its current state.
func accountCommand(tenantID, id string, decide func(*domain.Account) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.Command{TenantID: tenantID, StreamType: domain.StreamTypeAccount, StreamID: id,
		New:    func() domain.Aggregate { return domain.NewAccount(tenantID, id) },
		Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(*domain.Account)) }}
}

// debtorCommand is a command on debtor id of tenantID: decide gets the
// debtor in its current state.
func debtorCommand(tenantID, id string, decide func(*domain.Debtor) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.Command{TenantID: tenantID, StreamType: domain.StreamTypeDebtor, StreamID: id,
		New:    func() domain.Aggregate { return domain.NewDebtor(tenantID, id) },
		Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(*domain.Debtor)) }}
}

// claimCommand is a command on claim id of tenantID: decide gets the claim
// in its current state.
func claimCommand(tenantID, id string, decide func(*domain.Claim) ([]domain.NewEvent, error)) eventstore.Command {
	return eventstore.Command{TenantID: tenantID, StreamType: domain.StreamTypeClaim, StreamID: id,
		New:    func() domain.Aggregate { return domain.NewClaim(tenantID, id) },
		Decide: func(agg domain.Aggregate) ([]domain.NewEvent, error) { return decide(agg.(*domain.Claim)) }}
}
