package workers

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/arrears/arrears/webhooks"
)

// BlockedAddressError is the error of a webhook connection the address
// policy refused: the resolved address is private, loopback, link-local,
// multicast, reserved or IPv4-mapped, and not on the allowlist.
type BlockedAddressError struct {
	Address string
	Err     error
}

func (e *BlockedAddressError) Error() string { return "refused to connect: " + e.Err.Error() }

// Unwrap returns the policy's reason.
func (e *BlockedAddressError) Unwrap() error { return e.Err }

// GuardedControl is a net.Dialer Control function that refuses every
// connection to an address policy blocks. It runs after name resolution,
// for each address the dialer tries, just before connect(2): a hostname
// resolving to a private address, DNS rebinding between checks, numeric
// host forms and IPv4-mapped IPv6 addresses are all caught where it
// matters. then, if set, runs after the policy allowed the address (tests
// use it to prove no other connection is ever attempted).
func GuardedControl(policy webhooks.AddressPolicy, then func(network, address string) error) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &BlockedAddressError{Address: address, Err: fmt.Errorf("unparsable address %q", address)}
		}
		if err := policy.Check(ap.Addr()); err != nil {
			return &BlockedAddressError{Address: address, Err: err}
		}
		if then != nil {
			return then(network, address)
		}
		return nil
	}
}

// WebhookClient returns the HTTP client deliveries use: connections checked
// by policy at dial time (GuardedControl, with then), no proxy (a proxy
// would connect on our behalf, unchecked), redirects never followed (a 3xx
// is a failed attempt), at most timeout per attempt.
func WebhookClient(policy webhooks.AddressPolicy, timeout time.Duration, then func(network, address string) error) *http.Client {
	d := &net.Dialer{Timeout: min(timeout, 10*time.Second), Control: GuardedControl(policy, then)}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// blocked reports whether err is (or wraps) a refusal by the address policy.
func blocked(err error) bool {
	var b *BlockedAddressError
	return errors.As(err, &b)
}
