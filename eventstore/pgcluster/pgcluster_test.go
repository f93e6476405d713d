package pgcluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dataDir returns a fresh data directory path whose parents the postgres user
// can traverse (t.TempDir's own directories are 0700, owned by root).
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	return filepath.Join(dir, "pg")
}

// skipWithoutBinaries skips the test when the machine has no PostgreSQL server.
func skipWithoutBinaries(t *testing.T) {
	t.Helper()
	if _, err := FindBinaries(); err != nil {
		t.Skip(err)
	}
}

// start starts a Fast cluster on dir and registers its Stop with t.Cleanup.
func start(t *testing.T, dir string) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{DataDir: dir, Fast: true})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, c.Stop(context.Background()))
		requireGone(t, c.cmd.Process.Pid)
	})
	return c
}

// requireGone asserts that process pid has exited.
func requireGone(t *testing.T, pid int) {
	t.Helper()
	require.False(t, processAlive(pid), "postgres pid %d still running", pid)
}

// connect connects to database db of c and closes the connection at cleanup.
func connect(t *testing.T, c *Cluster, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), c.URL(db))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestStartStopRestart(t *testing.T) {
	skipWithoutBinaries(t)
	t.Parallel()
	ctx := t.Context()
	dir := dataDir(t)

	c := start(t, dir)
	require.True(t, filepath.IsAbs(c.DataDir()))
	require.Equal(t, filepath.Join(filepath.Dir(dir), "pg.log"), c.LogPath())
	require.FileExists(t, filepath.Join(dir, "PG_VERSION"))
	require.True(t, strings.HasPrefix(c.URL("x"), "postgres://postgres@127.0.0.1:"), c.URL("x"))
	require.True(t, strings.HasSuffix(c.URL("x"), "/x?sslmode=disable"), c.URL("x"))

	require.NoError(t, c.EnsureDatabase(ctx, "x"))
	require.NoError(t, c.EnsureDatabase(ctx, "x")) // idempotent

	conn, err := pgx.Connect(ctx, c.URL("x"))
	require.NoError(t, err)
	var one int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)
	var settings [4]string
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT current_setting('fsync'), current_setting('max_connections'), current_setting('unix_socket_directories'), current_setting('listen_addresses')").
		Scan(&settings[0], &settings[1], &settings[2], &settings[3]))
	require.Equal(t, [4]string{"off", "200", "", "127.0.0.1"}, settings)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	pid := c.cmd.Process.Pid
	require.NoError(t, c.Stop(ctx))
	require.NoError(t, c.Stop(ctx)) // idempotent
	requireGone(t, pid)
	require.NoFileExists(t, filepath.Join(dir, "postmaster.pid"), "clean shutdown removes the pid file")

	// Restart on the same data directory reuses the cluster.
	version, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	require.NoError(t, err)
	c2 := start(t, dir)
	again, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	require.NoError(t, err)
	require.Equal(t, version.ModTime(), again.ModTime(), "initdb must not run again")
	var v string
	require.NoError(t, connect(t, c2, "x").QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	require.Equal(t, "hello", v)
}

func TestStartStopsOrphan(t *testing.T) {
	skipWithoutBinaries(t)
	t.Parallel()
	ctx := t.Context()
	dir := dataDir(t)

	first := start(t, dir)
	require.NoError(t, first.EnsureDatabase(ctx, "x"))
	conn, err := pgx.Connect(ctx, first.URL("x"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')")
	require.NoError(t, err)
	// Leave the connection open: the orphan has a live backend when it is stopped.
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	// As if we had been SIGKILLed: a new Start while the first server still runs.
	orphanPid := first.cmd.Process.Pid
	second := start(t, dir)
	requireGone(t, orphanPid)
	select {
	case <-first.done:
	case <-time.After(10 * time.Second):
		t.Fatal("first cluster's process was not reaped")
	}

	var v string
	require.NoError(t, connect(t, second, "x").QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	require.Equal(t, "survives", v)

	require.NoError(t, first.Stop(ctx)) // already gone: no error, and must not touch the second server
	var one int
	require.NoError(t, connect(t, second, "x").QueryRow(ctx, "SELECT 1").Scan(&one))
}

func TestStartStalePidFile(t *testing.T) {
	skipWithoutBinaries(t)
	t.Parallel()
	ctx := t.Context()
	dir := dataDir(t)

	c := start(t, dir)
	require.NoError(t, c.Stop(ctx))
	// A pid file naming a live process that is not a postgres server for dir
	// (our own test process's parent, say) must not block the start or be killed.
	pid := os.Getppid()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(strconv.Itoa(pid)+"\n"+dir+"\n"), 0o600))
	c2 := start(t, dir)
	require.True(t, processAlive(pid))
	var one int
	require.NoError(t, connect(t, c2, "postgres").QueryRow(ctx, "SELECT 1").Scan(&one))
}

func TestStartUntraversableParent(t *testing.T) {
	skipWithoutBinaries(t)
	if os.Geteuid() != 0 {
		t.Skip("the parent check applies only when running as root")
	}
	t.Parallel()
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked")
	require.NoError(t, os.Mkdir(locked, 0o700))
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))

	c, err := Start(t.Context(), Options{DataDir: filepath.Join(locked, "pg"), Fast: true})
	if c != nil {
		t.Cleanup(func() { _ = c.Stop(context.Background()) })
	}
	require.Error(t, err)
	require.Contains(t, err.Error(), locked+" is not traversable")
	require.Contains(t, err.Error(), "ARREARS_DATA_DIR")
}

func TestStartInitdbFailureReportsLog(t *testing.T) {
	skipWithoutBinaries(t)
	t.Parallel()
	dir := dataDir(t)
	// A non-empty directory without PG_VERSION: initdb refuses it.
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk"), []byte("x"), 0o600))

	c, err := Start(t.Context(), Options{DataDir: dir, Fast: true})
	if c != nil {
		t.Cleanup(func() { _ = c.Stop(context.Background()) })
	}
	require.Error(t, err)
	require.Contains(t, err.Error(), "initdb")
	require.Contains(t, err.Error(), "not empty")
}

func TestFindBinaries(t *testing.T) {
	skipWithoutBinaries(t)
	dir, err := FindBinaries()
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(dir, "initdb"))
	require.FileExists(t, filepath.Join(dir, "postgres"))

	// Without PATH, the glob finds them.
	t.Setenv("PATH", t.TempDir())
	if matches, _ := filepath.Glob(searchGlob); len(matches) > 0 {
		dir, err := FindBinaries()
		require.NoError(t, err)
		require.FileExists(t, filepath.Join(dir, "initdb"))
	}
}

func TestFindBinariesNone(t *testing.T) {
	// Not parallel: overrides searchGlob and PATH.
	t.Setenv("PATH", t.TempDir())
	old := searchGlob
	searchGlob = filepath.Join(t.TempDir(), "nonexistent", "*", "bin")
	t.Cleanup(func() { searchGlob = old })

	_, err := FindBinaries()
	require.ErrorIs(t, err, ErrNoBinaries)
	require.Contains(t, err.Error(), "apt-get install postgresql")
	require.Contains(t, err.Error(), "DATABASE_URL")

	_, err = Start(t.Context(), Options{DataDir: filepath.Join(t.TempDir(), "pg")})
	require.ErrorIs(t, err, ErrNoBinaries)
}

func TestFindBinariesPicksHighestVersion(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "16", "17"} {
		bin := filepath.Join(root, v, "bin")
		require.NoError(t, os.MkdirAll(bin, 0o755))
		names := []string{"initdb", "postgres"}
		if v == "17" {
			names = names[:1] // incomplete: no postgres
		}
		for _, name := range names {
			require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	old := searchGlob
	searchGlob = filepath.Join(root, "*", "bin")
	t.Cleanup(func() { searchGlob = old })

	dir, err := FindBinaries()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "16", "bin"), dir)
}

func TestCompareVersions(t *testing.T) {
	require.Negative(t, compareVersions("9.6", "15"))
	require.Positive(t, compareVersions("16", "15"))
	require.Positive(t, compareVersions("16.1", "16"))
	require.Zero(t, compareVersions("15", "15"))
	require.Positive(t, compareVersions("10", "devel"))
}

func TestStopOrphanIgnoresGarbage(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, stopOrphan(dir, slog.Default())) // no pid file
	require.NoError(t, os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte("garbage\n"), 0o600))
	require.NoError(t, stopOrphan(dir, slog.Default()))
	require.FileExists(t, filepath.Join(dir, "postmaster.pid"))
}

func TestStartRetriesTakenPort(t *testing.T) {
	skipWithoutBinaries(t)
	// Not parallel: overrides pickPort.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	taken := l.Addr().(*net.TCPAddr).Port
	calls := 0
	old := pickPort
	pickPort = func() (int, error) {
		calls++
		if calls == 1 {
			return taken, nil
		}
		return freePort()
	}
	t.Cleanup(func() { pickPort = old })

	dir := dataDir(t)
	c := start(t, dir)
	require.Equal(t, 2, calls)
	require.NotEqual(t, taken, c.port)
	log, err := os.ReadFile(c.LogPath())
	require.NoError(t, err)
	require.Contains(t, string(log), "could not bind")
}

// TestServerDiesWithSIGKILLedParent starts a cluster in a child process (this
// test binary, running TestHelperProcess), SIGKILLs that process and checks the
// server shuts down by itself (parent-death signal), leaving a usable cluster.
func TestServerDiesWithSIGKILLedParent(t *testing.T) {
	skipWithoutBinaries(t)
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signal is Linux-only")
	}
	t.Parallel()
	dir := dataDir(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "PGCLUSTER_HELPER_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	pid := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "POSTGRES_PID="); ok {
			pid, err = strconv.Atoi(s)
			require.NoError(t, err)
			break
		}
	}
	require.NotZero(t, pid, "helper did not report the server pid")
	go func() { _, _ = io.Copy(io.Discard, out) }()
	require.True(t, processAlive(pid))

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.Eventually(t, func() bool { return !processAlive(pid) }, 30*time.Second, 50*time.Millisecond,
		"postgres (pid %d) outlived its SIGKILLed parent", pid)

	c := start(t, dir)
	var v string
	require.NoError(t, connect(t, c, "x").QueryRow(t.Context(), "SELECT v FROM kept").Scan(&v))
	require.Equal(t, "helper", v)
}

// TestHelperProcess is the child of TestServerDiesWithSIGKILLedParent.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("PGCLUSTER_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestServerDiesWithSIGKILLedParent")
	}
	ctx := t.Context()
	c, err := Start(ctx, Options{DataDir: dir, Fast: true})
	require.NoError(t, err)
	require.NoError(t, c.EnsureDatabase(ctx, "x"))
	conn, err := pgx.Connect(ctx, c.URL("x"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('helper')")
	require.NoError(t, err)
	fmt.Printf("POSTGRES_PID=%d\n", c.cmd.Process.Pid)
	select {} // wait to be SIGKILLed
}

func TestStartRelativeDataDir(t *testing.T) {
	skipWithoutBinaries(t)
	// Not parallel: changes the working directory.
	base := filepath.Dir(dataDir(t))
	t.Chdir(base)
	c := start(t, "./data/pg") // parent "data" does not exist yet
	require.Equal(t, filepath.Join(base, "data", "pg"), c.DataDir())
	require.Equal(t, filepath.Join(base, "data", "pg.log"), c.LogPath())
	require.FileExists(t, filepath.Join(base, "data", "pg", "PG_VERSION"))
	require.NoError(t, c.EnsureDatabase(t.Context(), `odd "name"`))
	var one int
	require.NoError(t, connect(t, c, `odd "name"`).QueryRow(t.Context(), "SELECT 1").Scan(&one))
}

func TestAttachLeavesServerRunning(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	owner, err := Start(ctx, Options{DataDir: dir + "/pg", Fast: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = owner.Stop(context.Background()) })

	tool, err := Start(ctx, Options{DataDir: dir + "/pg", Fast: true, Attach: true})
	require.NoError(t, err)
	assert.Equal(t, owner.URL("postgres"), tool.URL("postgres"))
	require.NoError(t, tool.Stop(ctx))

	conn, err := pgx.Connect(ctx, owner.URL("postgres"))
	require.NoError(t, err, "the owner's server must still run after the attached tool stopped")
	require.NoError(t, conn.Close(ctx))
}
