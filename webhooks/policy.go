package webhooks

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/arrears/arrears/domain"
)

func unix(ts int64) time.Time { return time.Unix(ts, 0) }

// blocked are the networks a webhook may never reach unless allowed
// explicitly: this host, private and shared address space, link-local
// (cloud metadata at 169.254.169.254), multicast, reserved, and the IPv6
// forms that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) so a private
// IPv4 address cannot be dressed up as IPv6.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",         // "this network"
		"10.0.0.0/8",        // RFC 1918
		"100.64.0.0/10",     // RFC 6598 shared (carrier-grade NAT)
		"127.0.0.0/8",       // loopback
		"169.254.0.0/16",    // link-local, cloud metadata
		"172.16.0.0/12",     // RFC 1918
		"192.0.0.0/24",      // IETF protocol assignments
		"192.0.2.0/24",      // TEST-NET-1
		"192.168.0.0/16",    // RFC 1918
		"198.18.0.0/15",     // benchmarking
		"198.51.100.0/24",   // TEST-NET-2
		"203.0.113.0/24",    // TEST-NET-3
		"224.0.0.0/4",       // multicast
		"240.0.0.0/4",       // reserved, and 255.255.255.255 broadcast
		"::/128",            // unspecified
		"::1/128",           // loopback
		"::ffff:0.0.0.0/96", // IPv4-mapped
		"64:ff9b::/96",      // NAT64
		"64:ff9b:1::/48",    // local-use NAT64
		"100::/64",          // discard-only
		"2001:db8::/32",     // documentation
		"2002::/16",         // 6to4
		"fc00::/7",          // unique local
		"fe80::/10",         // link-local
		"ff00::/8",          // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// AddressPolicy decides which IP addresses a webhook delivery may connect
// to: every address outside the blocked networks, and those inside only when
// Allow covers them (for development and tests: loopback, or a private
// network of one's own).
type AddressPolicy struct {
	Allow []netip.Prefix
}

// ParseAllowlist parses ARREARS_WEBHOOK_ALLOW_NETS: comma-separated CIDRs or
// addresses, and the word "loopback" for 127.0.0.0/8 and ::1.
func ParseAllowlist(s string) (AddressPolicy, error) {
	var p AddressPolicy
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case f == "loopback":
			p.Allow = append(p.Allow, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		case strings.Contains(f, "/"):
			pr, err := netip.ParsePrefix(f)
			if err != nil {
				return p, fmt.Errorf("webhook allowlist: %q: %w", f, err)
			}
			p.Allow = append(p.Allow, pr.Masked())
		default:
			a, err := netip.ParseAddr(f)
			if err != nil {
				return p, fmt.Errorf("webhook allowlist: %q: %w", f, err)
			}
			p.Allow = append(p.Allow, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return p, nil
}

// Check returns nil when a delivery may connect to addr, and otherwise why
// not. An address in a zone (fe80::1%eth0) is checked without it.
func (p AddressPolicy) Check(addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("webhook address %q is not an IP address", addr)
	}
	addr = addr.WithZone("")
	for _, a := range p.Allow {
		if a.Contains(addr) {
			return nil
		}
	}
	for _, b := range blocked {
		if b.Contains(addr) {
			return fmt.Errorf("webhook address %s is in %s, which deliveries may not reach (allow it with ARREARS_WEBHOOK_ALLOW_NETS)", addr, b)
		}
	}
	return nil
}

// CheckURL validates an endpoint URL at registration: http or https, a host,
// no credentials, no fragment; a host written as an IP address must pass the
// policy, as must "localhost", and numeric host forms that resolvers read
// as IPv4 addresses ("2130706433", "0x7f.1", "127.1") are refused outright.
// Hostnames are checked again, resolved, at every connection (workers'
// dialer): this check only catches the obvious early.
func (p AddressPolicy) CheckURL(field, raw string) []domain.FieldError {
	bad := func(msg string) []domain.FieldError { return []domain.FieldError{{Field: field, Error: msg}} }
	if raw == "" {
		return bad("is required")
	}
	if len(raw) > 2048 {
		return bad("must be at most 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return bad("must be an absolute http or https URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad("must use http or https")
	}
	if u.User != nil {
		return bad("must not carry credentials")
	}
	if u.Fragment != "" {
		return bad("must not have a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return bad("must name a host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := p.Check(a); err != nil {
			return bad("must not point at a private, loopback, link-local or reserved address")
		}
		return nil
	}
	if numericHost(host) {
		return bad("must not write an IP address in numeric shorthand; use a hostname or a dotted address")
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		if p.Check(netip.MustParseAddr("127.0.0.1")) != nil {
			return bad("must not point at this host")
		}
	}
	return nil
}

// numericHost reports whether host is made only of numbers (decimal, octal
// or hex) and dots: forms inet_aton reads as an IPv4 address.
func numericHost(host string) bool {
	for _, part := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if part == "" {
			return false
		}
		p := strings.ToLower(part)
		if strings.HasPrefix(p, "0x") {
			p = p[2:]
			if p == "" {
				return true
			}
			for _, c := range p {
				if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
					return false
				}
			}
			continue
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}
