package domain

import (
	"crypto/rand"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// ID prefixes of the resources arrears names.
const (
	PrefixEvent   = "evt"
	PrefixTenant  = "ten"
	PrefixAccount = "acct"
	PrefixDebtor  = "dbt"
	PrefixClaim   = "clm"
	PrefixPayment = "pay"
	PrefixAPIKey  = "key"
	PrefixToken   = "tok"
)

// IDGenerator makes prefixed ULIDs (e.g. "evt_01JD…"), monotonic within a
// millisecond. It is safe for concurrent use.
type IDGenerator struct {
	mu      sync.Mutex
	entropy io.Reader
}

// NewIDGenerator returns a generator reading entropy from r (crypto/rand when nil).
func NewIDGenerator(r io.Reader) *IDGenerator {
	if r == nil {
		r = rand.Reader
	}
	return &IDGenerator{entropy: ulid.Monotonic(r, 0)}
}

// New returns prefix + "_" + a new ULID stamped with t.
func (g *IDGenerator) New(prefix string, t time.Time) string {
	g.mu.Lock()
	id := ulid.MustNew(ulid.Timestamp(t), g.entropy)
	g.mu.Unlock()
	return prefix + "_" + id.String()
}

// HasPrefix reports whether id is a well-formed id with the given prefix.
func HasPrefix(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix+"_")
	if !ok {
		return false
	}
	_, err := ulid.ParseStrict(rest)
	return err == nil
}
