package main

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTuneGC: without GOGC or GOMEMLIMIT in the environment a long-running
// process runs with GOGC 400 and a memory limit of half the memory
// available; either variable leaves the runtime alone.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	limitBefore := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(before); debug.SetMemoryLimit(limitBefore) })

	t.Setenv("GOGC", "150")
	require.Empty(t, tuneGC())
	require.Equal(t, 100, debug.SetGCPercent(100), "GOGC in the environment: untouched")

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "1GiB")
	require.Empty(t, tuneGC())

	t.Setenv("GOMEMLIMIT", "")
	got := tuneGC()
	require.True(t, strings.HasPrefix(got, "GOGC=400"), got)
	require.Equal(t, 400, debug.SetGCPercent(400))
	avail := availableMemory()
	require.Positive(t, avail, "the memory of this machine or its cgroup")
	require.Equal(t, avail/2, debug.SetMemoryLimit(-1))
	require.Contains(t, got, "GOMEMLIMIT=")
}
