package domain_test

import (
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

func TestParseAmount(t *testing.T) {
	tests := []struct {
		in, currency, want, err string
	}{
		{"1250.50", "EUR", "1250.5", ""},
		{"1250.500", "EUR", "1250.5", ""},
		{"0.01", "EUR", "0.01", ""},
		{"-3.00", "EUR", "-3", ""},
		{"1250.505", "EUR", "", "more than 2 decimal places"},
		{"100", "JPY", "100", ""},
		{"100.5", "JPY", "", "more than 0 decimal places"},
		{"1.234", "KWD", "1.234", ""},
		{"1.2345", "KWD", "", "more than 3 decimal places"},
		{"1e3", "EUR", "", "decimal string"},
		{"12,50", "EUR", "", "decimal string"},
		{" 1", "EUR", "", "decimal string"},
		{"NaN", "EUR", "", "decimal string"},
		{"", "EUR", "", "decimal string"},
		{"1", "EURO", "", "unknown currency"},
		{"1", "eur", "", "unknown currency"},
	}
	for _, tc := range tests {
		t.Run(tc.in+" "+tc.currency, func(t *testing.T) {
			d, fe := domain.ParseAmount("amount", tc.in, tc.currency)
			if tc.err != "" {
				require.NotNil(t, fe)
				assert.Equal(t, "amount", fe.Field)
				assert.Contains(t, fe.Error, tc.err)
				return
			}
			require.Nil(t, fe)
			assert.True(t, d.Equal(decimal.RequireFromString(tc.want)), "%s != %s", d, tc.want)
		})
	}
}

func TestMinorUnitsAndFormatting(t *testing.T) {
	for code, want := range map[string]int32{"EUR": 2, "USD": 2, "JPY": 0, "KWD": 3, "CLF": 4, "GBP": 2} {
		u, ok := domain.MinorUnits(code)
		require.True(t, ok, code)
		assert.Equal(t, want, u, code)
	}
	_, ok := domain.MinorUnits("XXX")
	assert.False(t, ok)
	assert.Equal(t, "12.50", domain.FormatAmount(decimal.RequireFromString("12.5"), "EUR"))
	assert.Equal(t, "12", domain.FormatAmount(decimal.RequireFromString("12"), "JPY"))
	assert.Equal(t, "0.100", domain.FormatAmount(decimal.RequireFromString("0.1"), "KWD"))
	d, err := domain.FromMinor(13025, "EUR")
	require.NoError(t, err)
	assert.Equal(t, "130.25", domain.FormatAmount(d, "EUR"))
	m, err := domain.ToMinor(decimal.RequireFromString("130.25"), "EUR")
	require.NoError(t, err)
	assert.Equal(t, int64(13025), m)
	_, err = domain.ToMinor(decimal.RequireFromString("130.255"), "EUR")
	assert.Error(t, err)
}
