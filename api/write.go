package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
)

// HeaderPosition carries, on every write response, the global position of
// the last event the write recorded: pass it as ?min_position= to a read to
// see the write reflected.
const HeaderPosition = "Arrears-Position"

// result is what a command returns to be written as the response.
type result struct {
	Status int
	Body   any
	// Replay, if set, is stored for Idempotency-Key replays instead of Body:
	// for responses that carry a one-time secret, which is never stored.
	Replay   any
	Position int64  // of the last event recorded (0: none)
	Location string // of a created resource
}

// maxConflictRetries bounds re-running a command that lost an optimistic
// concurrency race (it re-reads the state each time).
const maxConflictRetries = 3

// commit runs a command in one transaction and writes its result. If the
// request carries an Idempotency-Key, the response is stored in the same
// transaction as the events, so the effect and its replay commit together: a
// crash in between cannot make a retry apply the effect twice.
func (s *Server) commit(w http.ResponseWriter, r *http.Request, cmd func(tx pgx.Tx) (result, error)) {
	ctx := r.Context()
	var res result
	var body []byte
	var hdr http.Header
	var err error
	for attempt := 0; ; attempt++ {
		err = s.store.WithTx(ctx, func(tx pgx.Tx) error {
			var err error
			if res, err = cmd(tx); err != nil {
				return err
			}
			body, hdr, err = render(ctx, tx, res)
			return err
		})
		var vc *domain.VersionConflictError
		if err == nil || !errors.As(err, &vc) || attempt == maxConflictRetries {
			break
		}
	}
	writeResult(w, r, res, hdr, body, err)
}

// render encodes a command's result and, for a request with an
// Idempotency-Key, stores the response (or its Replay form) in tx.
func render(ctx context.Context, tx pgx.Tx, res result) ([]byte, http.Header, error) {
	body, err := json.Marshal(res.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("encode response: %w", err)
	}
	body = append(body, '\n')
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	if res.Position > 0 {
		hdr.Set(HeaderPosition, strconv.FormatInt(res.Position, 10))
	}
	if res.Location != "" {
		hdr.Set("Location", res.Location)
	}
	c := claimFrom(ctx)
	if c == nil {
		return body, hdr, nil
	}
	stored := body
	if res.Replay != nil {
		if stored, err = json.Marshal(res.Replay); err != nil {
			return nil, nil, fmt.Errorf("encode response: %w", err)
		}
		stored = append(stored, '\n')
	}
	return body, hdr, c.completeTx(ctx, tx, res.Status, hdr, stored)
}

// writeResult writes a committed result, or err as a problem.
func writeResult(w http.ResponseWriter, r *http.Request, res result, hdr http.Header, body []byte, err error) {
	if err != nil {
		writeError(w, r, err)
		return
	}
	for k, v := range hdr {
		w.Header()[k] = v
	}
	w.WriteHeader(res.Status)
	_, _ = w.Write(body)
}
