package projections

import (
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

// TestPgNumeric: a numeric parameter has exactly the digits of the
// decimal's String, whatever scale the decimal carries, so that a value
// copied in binary and one written as text compare equal.
func TestPgNumeric(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"54.40", "54.4"}, {"0.00", "0"}, {"100", "100"}, {"1.230", "1.23"}, {"-5.50", "-5.5"},
		{"137.050", "137.05"}, {"0.001", "0.001"}, {"1000.000", "1000"}, {"-0.10", "-0.1"},
	} {
		d := decimal.RequireFromString(tc.in)
		n := pgNumeric(d)
		v, err := n.Value()
		require.NoError(t, err)
		require.Equal(t, tc.want, v, tc.in)
		require.Equal(t, d.String(), v, tc.in)
	}
	// A decimal with a positive exponent.
	v, err := pgNumeric(decimal.New(12, 3)).Value()
	require.NoError(t, err)
	require.Equal(t, "12000", v)
}
