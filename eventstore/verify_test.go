package eventstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

func TestVerifyChainsFindsTampering(t *testing.T) {
	ctx := context.Background()
	url, pool := testDB.Isolated(t, 4)
	s := eventstore.New(pool)

	victim := newStream("acct")
	for _, id := range []string{newStream("acct"), victim, newStream("acct")} {
		var version int64
		for range 3 {
			evs, err := s.Append(ctx, domain.Metadata{Actor: "key_1"}, eventstore.StreamAppend{TenantID: "ten_a", StreamType: "account", StreamID: id, ExpectedVersion: version,
				Events: []domain.NewEvent{ev("ledger_entry.posted", map[string]any{"amount": "10.00", "nested": map[string]any{"b": 1, "a": []any{1.5, "x<y"}}})}})
			require.NoError(t, err)
			version = evs[0].StreamVersion
		}
	}
	rep, err := s.VerifyChains(ctx, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%+v", rep.Problems)
	assert.Equal(t, int64(3), rep.Streams)
	assert.Equal(t, int64(9), rep.Events)

	// A superuser bypasses the guard and changes one amount.
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `ALTER TABLE events DISABLE TRIGGER events_no_update_delete`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `UPDATE events SET data = jsonb_set(data, '{amount}', '"1000.00"') WHERE stream_id = $1 AND stream_version = 2`, victim)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete`)
	require.NoError(t, err)

	rep, err = s.VerifyChains(ctx, nil)
	require.NoError(t, err)
	require.Len(t, rep.Problems, 1, "%+v", rep.Problems)
	assert.Equal(t, victim, rep.Problems[0].StreamID)
	assert.Equal(t, int64(2), rep.Problems[0].Version)
}

// TestCanonicalHashSurvivesJSONB: whatever JSON text a writer used, the hash
// computed at append equals the one recomputed from jsonb's own text.
func TestCanonicalHashSurvivesJSONB(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 2)
	for _, data := range []string{
		`{"b":1,"a":2}`,
		`{ "amount" : "12.50", "n": 12.50, "e": 1e2, "neg": -0.0, "big": 123456789012345678901234567890 }`,
		`{"s":"quote\" backslash\\ tab\t nl\n uni é \u00e9 \u2028 <>&","arr":[1,{"z":null,"y":true}]}`,
		`{"dup":1,"dup":2}`,
	} {
		stream := newStream("acct")
		_, err := s.Append(ctx, domain.Metadata{RequestID: "r<&>"}, eventstore.StreamAppend{TenantID: "ten_canon", StreamType: "account", StreamID: stream,
			Events: []domain.NewEvent{{Type: "x.y", Data: []byte(data)}}})
		require.NoError(t, err, data)
	}
	rep, err := s.VerifyChains(ctx, nil)
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%+v", rep.Problems)
}
