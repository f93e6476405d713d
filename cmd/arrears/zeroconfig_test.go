package main_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestZeroConfigServe runs `arrears serve` with nothing configured: it must
// start a private PostgreSQL cluster and an embedded NATS server under
// ./data, become ready, and on SIGTERM stop everything it started.
func TestZeroConfigServe(t *testing.T) {
	// Not t.TempDir(): its parents are 0700, and PostgreSQL runs as the
	// postgres user when we are root, so it must traverse them.
	dir, err := os.MkdirTemp("", "arrears-zeroconfig-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	dataDir := filepath.Join(dir, "data", "pg")
	t.Cleanup(func() {
		// Never leave a server behind, even when the test failed.
		for _, pid := range postmastersOf(dataDir) {
			t.Errorf("cleanup: PostgreSQL (pid %d) still running on %s: sending SIGQUIT", pid, dataDir)
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
		os.RemoveAll(dir)
	})

	p := startProc(t, "serve", dir, nil, "serve") // environment: PATH and HOME only
	url := p.waitReady(45 * time.Second)
	t.Logf("ready at %s after %s", url, time.Since(p.started).Round(time.Millisecond))
	require.NotEmpty(t, postmastersOf(dataDir), "no PostgreSQL server running on %s", dataDir)

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, []byte) {
		resp, err := client.Get(url + path)
		require.NoError(t, err, "GET %s", path)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, body
	}
	code, body := get("/healthz")
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.JSONEq(t, `{"status":"ok"}`, string(body))

	var last []byte
	waitFor(t, 20*time.Second, func() string { return "/readyz is not 200: " + string(last) }, func() bool {
		code, last = get("/readyz")
		return code == http.StatusOK
	})
	var ready struct {
		Status string `json:"status"`
	}
	require.NoError(t, json.Unmarshal(last, &ready), "%s", last)
	require.Equal(t, "ok", ready.Status, "%s", last)

	start := time.Now()
	p.Stop(30 * time.Second)
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))

	require.Empty(t, postmastersOf(dataDir), "a PostgreSQL server on %s outlived arrears serve", dataDir)
	require.NoFileExists(t, filepath.Join(dataDir, "postmaster.pid"), "PostgreSQL was not shut down cleanly")
	require.FileExists(t, filepath.Join(dataDir, "PG_VERSION"))
	require.DirExists(t, filepath.Join(dir, "data", "nats"))

	// The log says where things are.
	var sawPG, sawNATS bool
	for _, m := range p.logLines() {
		switch m["msg"] {
		case "using the private PostgreSQL cluster":
			sawPG = true
		default:
			if s, _ := m["msg"].(string); strings.HasPrefix(s, "embedded NATS server with JetStream is listening") {
				sawNATS = true
			}
		}
	}
	require.True(t, sawPG, "no log line about the private PostgreSQL cluster")
	require.True(t, sawNATS, "no log line about the embedded NATS server")
	require.Contains(t, p.log(), `"msg":"arrears stopped"`)
}

// postmastersOf returns the pids of postgres processes serving dataDir
// (command line "postgres -D dataDir …").
func postmastersOf(dataDir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		if len(args) < 3 || filepath.Base(string(args[0])) != "postgres" {
			continue
		}
		for i := 1; i+1 < len(args); i++ {
			if string(args[i]) == "-D" && string(args[i+1]) == dataDir {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
