package webhooks_test

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/webhooks"
)

// TestSignKnownAnswer: the Standard Webhooks specification's published
// example (secret, message id, timestamp, payload → signature).
func TestSignKnownAnswer(t *testing.T) {
	const (
		secret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		msgID   = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts      = int64(1614265330)
		payload = `{"test": 2432232314}`
		want    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	got, err := webhooks.Sign([]string{secret}, msgID, ts, []byte(payload))
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Two secrets (a rotation's overlap): two space-separated signatures,
	// and a receiver holding either one verifies.
	other := webhooks.NewSecret()
	both, err := webhooks.Sign([]string{other, secret}, msgID, ts, []byte(payload))
	require.NoError(t, err)
	require.Len(t, strings.Split(both, " "), 2)
	require.True(t, strings.HasSuffix(both, " "+want))
	for _, s := range []string{secret, other} {
		wh, err := standardwebhooks.NewWebhook(s)
		require.NoError(t, err)
		h := http.Header{}
		h.Set(webhooks.HeaderID, msgID)
		h.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(webhooks.HeaderSignature, both)
		require.NoError(t, wh.VerifyIgnoringTimestamp([]byte(payload), h))
		require.Error(t, wh.VerifyIgnoringTimestamp([]byte(payload+" "), h), "tampered body")
	}
}

// TestNewSecret: whsec_ and the base64 of 32 random bytes, which the
// library accepts.
func TestNewSecret(t *testing.T) {
	a, b := webhooks.NewSecret(), webhooks.NewSecret()
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, "whsec_"))
	require.Len(t, a, len("whsec_")+44)
	_, err := standardwebhooks.NewWebhook(a)
	require.NoError(t, err)
}

// TestKeyringSealsBoundToEndpoint: a sealed secret opens only with the same
// key and for the same endpoint, and does not contain the secret.
func TestKeyringSealsBoundToEndpoint(t *testing.T) {
	ctx := context.Background()
	key, err := webhooks.ParseSealingKey("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	require.NoError(t, err)
	k := webhooks.NewKeyring(nil, key)
	secret := webhooks.NewSecret()
	sealed, err := k.Seal(ctx, "whep_1", secret)
	require.NoError(t, err)
	require.NotContains(t, string(sealed), secret[6:])
	opened, err := k.Open(ctx, "whep_1", sealed)
	require.NoError(t, err)
	require.Equal(t, secret, opened)
	_, err = k.Open(ctx, "whep_2", sealed)
	require.Error(t, err, "bound to the endpoint")
	other, err := webhooks.ParseSealingKey("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=")
	require.NoError(t, err)
	_, err = webhooks.NewKeyring(nil, other).Open(ctx, "whep_1", sealed)
	require.Error(t, err, "another key")
	_, err = webhooks.ParseSealingKey("c2hvcnQ=")
	require.Error(t, err, "not 32 bytes")
}

// TestAddressPolicy: what deliveries may connect to, with and without an
// allowlist.
func TestAddressPolicy(t *testing.T) {
	none := webhooks.AddressPolicy{}
	loop, err := webhooks.ParseAllowlist("loopback, 10.1.2.0/24")
	require.NoError(t, err)
	cases := []struct {
		addr          string
		open, allowed bool // with no allowlist; with loopback and 10.1.2.0/24 allowed
	}{
		{"93.184.216.34", true, true},
		{"2606:2800:220:1:248:1893:25c8:1946", true, true},
		{"127.0.0.1", false, true},
		{"127.9.9.9", false, true},
		{"::1", false, true},
		{"10.0.0.1", false, false},
		{"10.1.2.3", false, true},
		{"172.16.0.1", false, false},
		{"172.31.255.255", false, false},
		{"172.32.0.1", true, true},
		{"192.168.1.1", false, false},
		{"100.64.0.1", false, false},
		{"169.254.169.254", false, false},
		{"0.0.0.0", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"fc00::1", false, false},
		{"fd12:3456::1", false, false},
		{"fe80::1", false, false},
		{"fe80::1%eth0", false, false},
		{"ff02::1", false, false},
		{"::ffff:127.0.0.1", false, false}, // IPv4-mapped: refused even when loopback is allowed
		{"::ffff:93.184.216.34", false, false},
		{"64:ff9b::a00:1", false, false},
	}
	for _, c := range cases {
		a := netip.MustParseAddr(c.addr)
		require.Equal(t, c.open, none.Check(a) == nil, "%s without allowlist", c.addr)
		require.Equal(t, c.allowed, loop.Check(a) == nil, "%s with allowlist", c.addr)
	}
	_, err = webhooks.ParseAllowlist("10.0.0.0/33")
	require.Error(t, err)
}

// TestCheckURL: registration refuses what obviously points inside.
func TestCheckURL(t *testing.T) {
	for _, u := range []string{"https://hooks.example.com/x", "http://hooks.example.com:8080/a?b=c", "https://93.184.216.34/x", "https://[2606:2800:220:1::1]/x"} {
		require.Empty(t, webhooks.AddressPolicy{}.CheckURL("url", u), u)
	}
	for _, u := range []string{"", "hooks.example.com", "ftp://hooks.example.com/", "https://u:p@hooks.example.com/", "https://hooks.example.com/#x",
		"http://127.0.0.1/", "http://localhost:80/", "http://app.localhost/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://2130706433/",
		"http://0x7f000001/", "http://017700000001/", "http://127.1/", "http://169.254.169.254/", "http://10.0.0.1/", "https:///x"} {
		fe := webhooks.AddressPolicy{}.CheckURL("url", u)
		require.Len(t, fe, 1, u)
		require.Equal(t, "url", fe[0].Field)
	}
	loop, err := webhooks.ParseAllowlist("loopback")
	require.NoError(t, err)
	require.Empty(t, loop.CheckURL("url", "http://127.0.0.1:9999/x"))
	require.Empty(t, loop.CheckURL("url", "http://localhost:9999/x"))
	require.NotEmpty(t, loop.CheckURL("url", "http://10.0.0.1/x"))
}
