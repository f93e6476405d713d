package domain

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/shopspring/decimal"
)

// minorUnits holds the ISO 4217 currencies whose minor unit is not 2; every
// other code in currencyCodes has 2.
var minorUnits = map[string]int32{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
}

// currencyCodes lists the active ISO 4217 currency codes (list one, 2024),
// without funds codes for precious metals and testing (XAU, XTS, XXX …).
var currencyCodes = strings.Fields(`
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV
BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK
DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL
HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG
XOF XPF YER ZAR ZMW ZWG`)

var currencies = func() map[string]int32 {
	m := make(map[string]int32, len(currencyCodes))
	for _, c := range currencyCodes {
		u, ok := minorUnits[c]
		if !ok {
			u = 2
		}
		m[c] = u
	}
	return m
}()

// MinorUnits returns the number of decimal places of an ISO 4217 currency
// and whether the code is known.
func MinorUnits(currency string) (int32, bool) {
	u, ok := currencies[currency]
	return u, ok
}

// ValidateCurrency returns a field error for an unknown currency code.
func ValidateCurrency(field, currency string) *FieldError {
	if _, ok := currencies[currency]; !ok {
		return &FieldError{Field: field, Error: fmt.Sprintf("%q is not an ISO 4217 currency code (e.g. EUR, USD, JPY)", currency)}
	}
	return nil
}

var amountSyntax = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// ParseAmount parses a decimal amount in major units ("1250.50") of
// currency, refusing exponents, more decimals than the currency has (EUR 2,
// JPY 0, KWD 3; trailing zeros beyond them are fine) and unknown currencies.
func ParseAmount(field, s, currency string) (decimal.Decimal, *FieldError) {
	units, ok := MinorUnits(currency)
	if !ok {
		return decimal.Zero, &FieldError{Field: field, Error: fmt.Sprintf("cannot be checked: unknown currency %q", currency)}
	}
	if !amountSyntax.MatchString(s) || len(s) > 40 {
		return decimal.Zero, &FieldError{Field: field, Error: "must be a decimal string in major units, e.g. \"1250.50\""}
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Zero, &FieldError{Field: field, Error: "must be a decimal string in major units, e.g. \"1250.50\""}
	}
	if !d.Shift(units).IsInteger() {
		return decimal.Zero, &FieldError{Field: field, Error: fmt.Sprintf("has more than %d decimal places, the minor unit of %s", units, currency)}
	}
	return d, nil
}

// FromMinor converts an integer amount in minor units (cents) of currency.
func FromMinor(minor int64, currency string) (decimal.Decimal, error) {
	units, ok := MinorUnits(currency)
	if !ok {
		return decimal.Zero, fmt.Errorf("unknown currency %q", currency)
	}
	return decimal.New(minor, -units), nil
}

// ToMinor converts an amount to integer minor units; it must be exact.
func ToMinor(d decimal.Decimal, currency string) (int64, error) {
	units, ok := MinorUnits(currency)
	if !ok {
		return 0, fmt.Errorf("unknown currency %q", currency)
	}
	s := d.Shift(units)
	if !s.IsInteger() {
		return 0, fmt.Errorf("%s has more than %d decimal places", d, units)
	}
	return s.IntPart(), nil
}

// FormatAmount renders d with exactly the currency's decimal places
// ("12.5" EUR → "12.50"), as the API shows amounts.
func FormatAmount(d decimal.Decimal, currency string) string {
	units, ok := MinorUnits(currency)
	if !ok {
		return d.String()
	}
	return d.StringFixed(units)
}
