package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// TestLoadAccountRoundTrip: an account's events, stored as jsonb and read
// back, fold into the same state the commands produced.
func TestLoadAccountRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 4)
	id := newStream("acct")
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	live := domain.NewAccount("ten_load", id)
	evs, err := live.Open(domain.OpenAccount{Reference: "L-1", Currency: "EUR"}, at)
	require.NoError(t, err)
	more, err := live.PostEntries([]domain.EntryInput{{Reference: "inv", Kind: domain.KindInvoice, Amount: decimal.RequireFromString("99.90"), DueDate: "2026-03-15"}}, at, nil)
	require.NoError(t, err)
	evs = append(evs, more...)
	_, more, err = live.RecordPayment("pay_1", domain.PaymentInput{Amount: decimal.RequireFromString("40.00")}, at)
	require.NoError(t, err)
	evs = append(evs, more...)
	_, err = s.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_load", StreamType: domain.StreamTypeAccount, StreamID: id, Events: evs})
	require.NoError(t, err)

	loaded := domain.NewAccount("ten_load", id)
	v, err := s.Load(ctx, "ten_load", id, loaded)
	require.NoError(t, err)
	assert.Equal(t, int64(len(evs)), v)
	assert.Equal(t, live.Balance("2026-04-01"), loaded.Balance("2026-04-01"))
	assert.Equal(t, "59.9", loaded.Outstanding().String())

	empty := domain.NewAccount("ten_load", "acct_missing")
	v, err = s.Load(ctx, "ten_load", "acct_missing", empty)
	require.NoError(t, err)
	assert.Zero(t, v)
	assert.False(t, empty.Opened)
}
