package bench

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test binary is its own pause probe when asked (as `arrears bench
// -pause-probe` is the bench's).
func TestMain(m *testing.M) {
	if os.Getenv("BENCH_TEST_PAUSE_PROBE") == "1" {
		if err := RunPauseProbe(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPauseProbeSeesAStoppedProcess stops the probe process (SIGSTOP) for
// 60 ms, as a paused machine would, and expects that pause reported.
func TestPauseProbeSeesAStoppedProcess(t *testing.T) {
	t.Setenv("BENCH_TEST_PAUSE_PROBE", "1")
	p, err := startPauseProbe([]string{os.Args[0], "-test.run=^$"})
	require.NoError(t, err)
	defer p.stop()

	before := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGSTOP))
	time.Sleep(60 * time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGCONT))
	after := time.Now()

	got, err := p.pauses(before, after)
	require.NoError(t, err)
	var longest Pause
	for _, x := range got {
		if x.Length > longest.Length {
			longest = x
		}
	}
	assert.GreaterOrEqual(t, longest.Length, 50*time.Millisecond, "pauses seen: %v", got)
	assert.False(t, longest.End.Before(before), "the pause ends after the stop")
	u := pauseUse(got, before, after)
	assert.GreaterOrEqual(t, u.Count, 1)
	assert.Greater(t, u.Share, 0.5, "most of the window was the stop")

	// A window after it holds none of it.
	later := time.Now()
	got, err = p.pauses(later, later.Add(100*time.Millisecond))
	require.NoError(t, err)
	for _, x := range got {
		assert.True(t, x.End.After(later), "%v is before the window", x)
	}
}

// TestPauseProbeStopsWithItsParent: the probe ends when its stdin does
// (the bench gone), without being killed.
func TestPauseProbeStopsWithItsParent(t *testing.T) {
	t.Setenv("BENCH_TEST_PAUSE_PROBE", "1")
	p, err := startPauseProbe([]string{os.Args[0], "-test.run=^$"})
	require.NoError(t, err)
	require.NoError(t, p.stdin.Close())
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the probe went on after its stdin ended")
	}
	require.NoError(t, p.cmd.Wait(), "it exited by itself, with status 0")
}

func TestPauseUse(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	pause := func(endMs, lenMs int) Pause {
		return Pause{End: at(endMs), Length: time.Duration(lenMs) * time.Millisecond}
	}
	tests := []struct {
		name   string
		pauses []Pause
		want   PauseUse
	}{
		{"none", nil, PauseUse{}},
		{"short ones count in the share only", []Pause{pause(100, 5), pause(200, 5)}, PauseUse{MaxMs: 5, Share: 0.01}},
		{"a long one", []Pause{pause(500, 50)}, PauseUse{Count: 1, MaxMs: 50, Share: 0.05}},
		{"clipped to the window", []Pause{pause(20, 40), pause(1010, 20)}, PauseUse{Count: 2, MaxMs: 40, Share: 0.03}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pauseUse(tt.pauses, at(0), at(1000))
			assert.Equal(t, tt.want.Count, got.Count)
			assert.InDelta(t, tt.want.MaxMs, got.MaxMs, 1e-9)
			assert.InDelta(t, tt.want.Share, got.Share, 1e-9)
		})
	}
}

func TestInPause(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Pauses 100–120 ms (and its backlog to 140) and 300–305 (too short
	// to count).
	pauses := []Pause{{End: at(305), Length: 5 * time.Millisecond}, {End: at(120), Length: 20 * time.Millisecond}}
	due := []time.Time{at(99), at(100), at(119), at(120), at(140), at(141), at(302)}
	assert.Equal(t, []bool{false, true, true, true, true, false, false}, inPause(due, pauses))
}
