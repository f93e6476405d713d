package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

// TestTail: `arrears tail` prints the live events the relay publishes, one
// line each, filtered by --subject; --raw prints the CloudEvents; --count
// makes it exit.
func TestTail(t *testing.T) {
	in := newInstallation(t)
	env := in.env("ARREARS_RELAY_POLL_INTERVAL=20ms")
	relay := startProc(t, "relay", "", env, "relay")
	relay.waitReady(30 * time.Second)

	// Only ten_tail's claim events, and every event raw.
	lines := startProc(t, "tail", "", env, "tail", "--subject", in.topo.SubjectPrefix+".ten_tail.claim.>", "--count", "2")
	raw := startProc(t, "tail-raw", "", env, "tail", "--raw", "--count", "3")
	for _, p := range []*proc{lines, raw} {
		waitFor(t, 20*time.Second, func() string { return p.name + " not listening: " + p.tail(10) }, func() bool { return strings.Contains(p.log(), "listening on") })
	}
	ctx := context.Background()
	ids := domain.NewIDGenerator(nil)
	claim, acct := ids.New(domain.PrefixClaim, time.Now()), ids.New(domain.PrefixAccount, time.Now())
	for i, a := range []struct{ typ, streamType, stream string }{
		{"claim.created", "claim", claim}, {"account.opened", "account", acct}, {"claim.resolved", "claim", claim},
	} {
		v := int64(0)
		if a.stream == claim && i > 0 {
			v = 1
		}
		_, err := in.store.Append(ctx, domain.Metadata{}, eventstore.StreamAppend{TenantID: "ten_tail", StreamType: a.streamType, StreamID: a.stream,
			ExpectedVersion: v, Events: []domain.NewEvent{{Type: a.typ, Data: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i))}}})
		require.NoError(t, err)
	}
	for _, p := range []*proc{lines, raw} {
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not exit after its --count: %s", p.name, p.tail(20))
		}
		require.NoError(t, p.waitErr, "%s: %s", p.name, p.tail(20))
	}
	out := stdoutLines(t, lines)
	require.Len(t, out, 2, "%q", out)
	require.Contains(t, out[0], "claim.created")
	require.Contains(t, out[0], claim+"#1")
	require.Contains(t, out[0], `{"n":0}`)
	require.Contains(t, out[1], "claim.resolved")
	require.Contains(t, out[1], claim+"#2")
	rawOut := stdoutLines(t, raw)
	require.Len(t, rawOut, 3)
	for i, l := range rawOut {
		var ce domain.CloudEvent
		require.NoError(t, json.Unmarshal([]byte(l), &ce), l)
		_, err := ce.Event()
		require.NoError(t, err)
		require.Equal(t, []string{"claim.created", "account.opened", "claim.resolved"}[i], ce.Type)
	}
	relay.Stop(30 * time.Second)
}

// stdoutLines returns the lines a finished tail printed to stdout (its log
// holds stdout and stderr; the "listening" notice is the only stderr line).
func stdoutLines(t *testing.T, pr *proc) []string {
	b, err := os.ReadFile(pr.logPath)
	require.NoError(t, err)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(l, "listening on ") && l != "" {
			out = append(out, l)
		}
	}
	return out
}
