// Package pgcluster creates, starts and stops a private PostgreSQL cluster from the
// PostgreSQL server binaries installed on the machine (initdb, postgres).
//
// It is meant for zero-configuration use (arrears serve without DATABASE_URL) and
// for tests on machines without a running PostgreSQL server. The cluster listens
// only on a free loopback TCP port, has no unix socket, uses trust authentication
// for the postgres superuser and writes its server log to pg.log beside the data
// directory.
//
// PostgreSQL refuses to run as root; when the current process is root, initdb and
// postgres run as the "postgres" OS user, which must exist and must be able to
// traverse every parent directory of the data directory.
package pgcluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoBinaries is returned (wrapped) by FindBinaries and Start when no PostgreSQL
// server binaries (initdb and postgres) can be found on the machine.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries found")

// searchGlob is the pattern of directories searched for initdb and postgres when
// initdb is not on PATH. Tests may override it.
var searchGlob = "/usr/lib/postgresql/*/bin"

// runUserName is the OS user initdb and postgres run as when we are root.
const runUserName = "postgres"

const (
	// readyTimeout bounds how long Start waits for the server to accept connections.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds how long a fast shutdown may take before SIGKILL.
	stopTimeout = 30 * time.Second
	// startAttempts is how many times Start retries when the chosen port was
	// taken between picking it and the server binding it.
	startAttempts = 3
	// logTailLines is how many log lines are quoted in start-up errors.
	logTailLines = 20
)

// Options configures Start.
type Options struct {
	DataDir string       // cluster data directory, e.g. "./data/pg" (created by initdb if empty/missing)
	Logger  *slog.Logger // nil = slog.Default()
	Fast    bool         // tests: fsync=off, synchronous_commit=off, full_page_writes=off
	// Attach connects to a server already running on DataDir (started by
	// another arrears process, e.g. `arrears serve`) instead of stopping it;
	// Stop then leaves that server running. Command-line tools use it.
	Attach bool
}

// Cluster is a running private PostgreSQL server started by Start.
type Cluster struct {
	dataDir string
	binDir  string
	logPath string
	port    int
	logger  *slog.Logger

	cmd     *exec.Cmd
	done    chan struct{} // closed when the server process has exited and been reaped
	waitErr error         // result of cmd.Wait, written before done is closed

	ready    atomic.Bool // set once the server has accepted a connection
	stopping atomic.Bool // set once Stop has begun; the exit is then expected
	stopMu   sync.Mutex  // serialises Stop calls
	stopped  bool        // guarded by stopMu
	attached bool        // started by another process: never stopped by us
}

// runUser is the unprivileged OS user the server runs as when we are root.
// A nil *runUser means "run as the current user".
type runUser struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
}

// FindBinaries returns the directory holding initdb and postgres.
//
// It uses the directory of initdb found on PATH (after resolving symlinks) when
// postgres is beside it, and otherwise the highest-version
// /usr/lib/postgresql/*/bin holding both. The error wraps ErrNoBinaries when
// nothing is found.
func FindBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			p = resolved
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if dir := filepath.Dir(p); hasBinaries(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(searchGlob) // the only possible error is a bad pattern
	slices.SortFunc(dirs, func(a, b string) int {
		return compareVersions(versionOf(b), versionOf(a)) // highest first
	})
	for _, dir := range dirs {
		if hasBinaries(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w (looked for initdb on PATH and in %s): install the PostgreSQL server "+
		"(Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; "+
		"macOS: brew install postgresql) or set DATABASE_URL to an existing server",
		ErrNoBinaries, searchGlob)
}

// hasBinaries reports whether dir holds executable initdb and postgres files.
func hasBinaries(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name+exeSuffix))
		if err != nil || fi.IsDir() || (exeSuffix == "" && fi.Mode().Perm()&0o111 == 0) {
			return false
		}
	}
	return true
}

// versionOf extracts the version component of a /usr/lib/postgresql/<v>/bin path.
func versionOf(binDir string) string {
	return filepath.Base(filepath.Dir(binDir))
}

// compareVersions compares dotted numeric versions ("9.6" < "15" < "16.1");
// non-numeric parts compare as strings after numeric ones.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		xi, xerr := strconv.Atoi(x)
		yi, yerr := strconv.Atoi(y)
		switch {
		case xerr == nil && yerr == nil:
			if xi != yi {
				return xi - yi
			}
		case xerr == nil:
			return 1
		case yerr == nil:
			return -1
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
		}
	}
	return 0
}

// Start initialises DataDir if needed and starts the server; returns when it accepts connections.
//
// If DataDir/postmaster.pid names a live postgres process serving DataDir (for
// example one left behind when a previous process was SIGKILLed), that server is
// shut down first. The server is a child process; call Stop to shut it down.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := platformSupported(); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.DataDir == "" {
		return nil, errors.New("pgcluster: Options.DataDir is empty")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: data directory %q: %w", opts.DataDir, err)
	}
	binDir, err := FindBinaries()
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	ru, err := lookupRunUser()
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(dataDir, ru); err != nil {
		return nil, err
	}
	logPath := filepath.Join(filepath.Dir(dataDir), "pg.log")
	if err := prepareLogFile(logPath, ru); err != nil {
		return nil, err
	}
	logger = logger.With("component", "pgcluster", "data_dir", dataDir)

	if opts.Attach {
		if port, ok := runningPort(dataDir); ok {
			logger.Info("using the PostgreSQL server already running on the data directory", "port", port)
			return &Cluster{dataDir: dataDir, binDir: binDir, logPath: logPath, port: port, logger: logger, attached: true}, nil
		}
	}
	if err := stopOrphan(dataDir, logger); err != nil {
		return nil, err
	}

	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		logger.Info("initialising PostgreSQL cluster", "bin_dir", binDir, "log", logPath)
		if err := initdb(ctx, binDir, dataDir, logPath, ru, opts.Fast); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}

	for attempt := 1; ; attempt++ {
		c, err := startServer(ctx, binDir, dataDir, logPath, ru, opts.Fast, logger)
		if err == nil {
			logger.Info("PostgreSQL started", "port", c.port, "pid", c.cmd.Process.Pid, "log", logPath)
			return c, nil
		}
		var pe *portInUseError
		if !errors.As(err, &pe) || attempt == startAttempts {
			return nil, err
		}
		logger.Warn("port taken before PostgreSQL could bind it; retrying", "port", pe.port)
	}
}

// lookupRunUser returns the user to run the server as: nil (the current user)
// unless we are root, in which case the postgres OS user.
func lookupRunUser() (*runUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(runUserName)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: PostgreSQL refuses to run as root and the %q OS user to run it as "+
			"was not found (%v): create it (e.g. useradd --system %s), run arrears as an unprivileged user, "+
			"or set DATABASE_URL to an existing server", runUserName, err, runUserName)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: user %s: bad uid %q", u.Username, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: user %s: bad gid %q", u.Username, u.Gid)
	}
	ru := &runUser{name: u.Username, uid: uint32(uid), gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.ParseUint(s, 10, 32); err == nil && uint32(g) != ru.gid {
				ru.groups = append(ru.groups, uint32(g))
			}
		}
	}
	return ru, nil
}

// prepareDataDir creates dataDir (mode 0700) and its parents and, when running the
// server as another user, checks that user can reach it and hands it over.
func prepareDataDir(dataDir string, ru *runUser) error {
	parent := filepath.Dir(dataDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("pgcluster: create %s: %w", parent, err)
	}
	if ru != nil {
		if err := checkTraversable(parent, ru); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pgcluster: create data directory %s: %w", dataDir, err)
	}
	if fi, err := os.Stat(dataDir); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("pgcluster: data directory %s is not a directory", dataDir)
	}
	if ru != nil {
		if err := chownTree(dataDir, ru); err != nil {
			return err
		}
	}
	return nil
}

// checkTraversable returns a descriptive error unless ru can search (x bit) dir
// and every one of its ancestors.
func checkTraversable(dir string, ru *runUser) error {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	for d := resolved; ; d = filepath.Dir(d) {
		ok, err := traversable(d, ru)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if !ok {
			return fmt.Errorf("pgcluster: directory %s is not traversable by the %q user PostgreSQL runs as "+
				"(PostgreSQL refuses to run as root), so it cannot reach its data directory: "+
				"set ARREARS_DATA_DIR to a directory elsewhere (e.g. under /tmp or /var/lib), "+
				"or make %s traversable (chmod o+x)", d, ru.name, d)
		}
		if next := filepath.Dir(d); next == d {
			return nil
		}
	}
}

// chownTree hands dir and everything below it to ru.
func chownTree(dir string, ru *runUser) error {
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(ru.uid), int(ru.gid))
	})
	if err != nil {
		return fmt.Errorf("pgcluster: chown %s to %s: %w", dir, ru.name, err)
	}
	return nil
}

// prepareLogFile creates the server log file if needed, owned by the run user.
func prepareLogFile(path string, ru *runUser) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("pgcluster: open log file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgcluster: open log file: %w", err)
	}
	if ru != nil {
		if err := os.Lchown(path, int(ru.uid), int(ru.gid)); err != nil {
			return fmt.Errorf("pgcluster: chown %s to %s: %w", path, ru.name, err)
		}
	}
	return nil
}

// openLog opens the log file for appending and returns it with its current size,
// so that later output can be told apart from earlier runs.
func openLog(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, 0, fmt.Errorf("pgcluster: open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("pgcluster: open log file: %w", err)
	}
	return f, fi.Size(), nil
}

// logTail returns the last n lines written to the log file at or after offset.
func logTail(path string, offset int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// command builds an exec.Cmd running binary name from binDir, in directory dir
// (which must be reachable by the run user: the working directory is changed
// after switching user), with output appended to the log file.
func command(ctx context.Context, binDir, name, dir string, logFile *os.File, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name+exeSuffix), args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	return cmd
}

// childEnv is our environment without PG* variables (PGDATA, PGPORT, ...), which
// could otherwise change what initdb and postgres do.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// initdb creates a new cluster in dataDir.
func initdb(ctx context.Context, binDir, dataDir, logPath string, ru *runUser, fast bool) error {
	logFile, offset, err := openLog(logPath)
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	args := []string{"-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}
	if fast {
		args = append(args, "--no-sync")
	}
	cmd := command(ctx, binDir, "initdb", dataDir, logFile, args...)
	cmd.SysProcAttr = procAttr(ru, false)
	// On cancellation interrupt initdb rather than kill it, so that it removes
	// the half-made cluster (a killed initdb leaves PG_VERSION behind, and the
	// next Start would take the debris for a cluster).
	cmd.Cancel = func() error { return interrupt(cmd.Process) }
	cmd.WaitDelay = stopTimeout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgcluster: initdb %s: %w; log %s:\n%s", dataDir, err, logPath, logTail(logPath, offset, logTailLines))
	}
	return nil
}

// portInUseError reports that the server could not bind its port, which Start retries.
type portInUseError struct {
	port int
	err  error
}

func (e *portInUseError) Error() string { return e.err.Error() }
func (e *portInUseError) Unwrap() error { return e.err }

// pickPort chooses the server's port; tests may override it.
var pickPort = freePort

// freePort returns a currently unused loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: pick a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pgcluster: pick a free port: %w", err)
	}
	return port, nil
}

// startServer runs postgres on a free port and waits until it accepts connections.
func startServer(ctx context.Context, binDir, dataDir, logPath string, ru *runUser, fast bool, logger *slog.Logger) (*Cluster, error) {
	port, err := pickPort()
	if err != nil {
		return nil, err
	}
	logFile, offset, err := openLog(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{
		"-D", dataDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port=" + strconv.Itoa(port),
		"-c", "unix_socket_directories=", // no unix socket: avoids path-length and permission problems
		"-c", "max_connections=200",
	}
	if fast {
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
		)
	}
	// Not ctx: the server must outlive it; ctx only bounds Start.
	cmd := command(context.Background(), binDir, "postgres", dataDir, logFile, args...)
	cmd.SysProcAttr = procAttr(ru, true)
	err = cmd.Start()
	_ = logFile.Close() // the child holds its own descriptor
	if err != nil {
		return nil, fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c := &Cluster{
		dataDir: dataDir,
		binDir:  binDir,
		logPath: logPath,
		port:    port,
		logger:  logger,
		cmd:     cmd,
		done:    make(chan struct{}),
	}
	go c.wait()

	if err := c.waitReady(ctx); err != nil {
		select {
		case <-c.done:
			tail := logTail(logPath, offset, logTailLines)
			err = fmt.Errorf("pgcluster: postgres exited during start-up (%v); log %s:\n%s", c.waitErr, logPath, tail)
			if strings.Contains(tail, "could not bind") && strings.Contains(tail, "could not create any TCP/IP sockets") {
				err = &portInUseError{port: port, err: err}
			}
		default:
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			_ = c.Stop(stopCtx)
			cancel()
			err = fmt.Errorf("pgcluster: postgres did not accept connections: %w; log %s:\n%s", err, logPath, logTail(logPath, offset, logTailLines))
		}
		return nil, err
	}
	c.ready.Store(true)
	return c, nil
}

// wait reaps the server process and records its exit.
func (c *Cluster) wait() {
	c.waitErr = c.cmd.Wait()
	close(c.done)
	if c.ready.Load() && !c.stopping.Load() {
		c.logger.Warn("PostgreSQL server exited unexpectedly", "err", c.waitErr, "log", c.logPath)
	}
}

// waitReady polls the server with pgx until it accepts a connection, the server
// exits, readyTimeout passes or ctx ends.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	go func() { // abandon a pending connection attempt when the server exits
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	cfg, err := pgx.ParseConfig(c.URL("postgres"))
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = 2 * time.Second
	var lastErr error
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		lastErr = err
		select {
		case <-c.done:
			return errors.New("server exited")
		default:
		}
		select {
		case <-c.done:
			return errors.New("server exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URL returns a pgx connection URL for database dbname (user postgres, trust auth, sslmode=disable).
func (c *Cluster) URL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// DataDir returns the absolute path of the cluster's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// LogPath returns the path of the server log file.
func (c *Cluster) LogPath() string { return c.logPath }

// EnsureDatabase creates database name if it does not exist.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("pgcluster: empty database name")
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("pgcluster: look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
			return nil
		}
		return fmt.Errorf("pgcluster: create database %q: %w", name, err)
	}
	return nil
}

// Stop performs a fast shutdown and waits for the server to exit (idempotent).
//
// It sends SIGINT (fast shutdown: sessions are disconnected, a shutdown
// checkpoint is written) and waits up to 30 s, or until ctx is done if that is
// sooner, then kills the server's process group with SIGKILL. A ctx that is
// already cancelled therefore means an immediate kill; pass
// context.WithoutCancel(ctx) or context.Background() to get a clean shutdown
// during program exit. Calls after the first return nil.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if c.stopped || c.attached {
		return nil
	}
	c.stopped = true
	c.stopping.Store(true)

	select {
	case <-c.done:
		return nil // already exited (e.g. shut down as an orphan by another Start)
	default:
	}
	if err := interrupt(c.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.logger.Warn("signal PostgreSQL", "err", err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-c.done:
		c.logger.Info("PostgreSQL stopped")
		return nil
	case <-timer.C:
		c.kill()
		return fmt.Errorf("pgcluster: PostgreSQL did not shut down within %s; killed it", stopTimeout)
	case <-ctx.Done():
		c.kill()
		return fmt.Errorf("pgcluster: stop: %w; killed PostgreSQL", ctx.Err())
	}
}

// kill SIGKILLs the server and its process group and waits for it to be reaped.
func (c *Cluster) kill() {
	c.logger.Warn("killing PostgreSQL", "pid", c.cmd.Process.Pid)
	select {
	case <-c.done:
		return
	default:
	}
	killGroup(c.cmd.Process.Pid)
	_ = c.cmd.Process.Kill()
	<-c.done
}

// stopOrphan shuts down a server still running on dataDir from a previous run,
// as recorded in dataDir/postmaster.pid. A stale pid file (process gone) is left
// for postgres, which handles it itself.
func stopOrphan(dataDir string, logger *slog.Logger) error {
	pidPath := filepath.Join(dataDir, "postmaster.pid")
	data, err := os.ReadFile(pidPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	pid, err := strconv.Atoi(strings.TrimSpace(string(first)))
	if err != nil || pid <= 0 {
		return nil // unreadable or half-written: let postgres judge
	}
	if pid == os.Getpid() || !processAlive(pid) {
		return nil
	}
	if !isPostmasterOf(pid, dataDir) {
		// The pid was reused by an unrelated process (e.g. after a reboot or in a
		// fresh container): the file is stale, but postgres would refuse to start
		// because the pid is alive.
		logger.Warn("removing stale postmaster.pid naming an unrelated live process", "pid", pid)
		if err := os.Remove(pidPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pgcluster: remove stale %s: %w", pidPath, err)
		}
		return nil
	}

	logger.Warn("stopping PostgreSQL left running by a previous run", "pid", pid)
	if err := signalPid(pid, false); err != nil {
		return fmt.Errorf("pgcluster: signal orphaned PostgreSQL (pid %d): %w", pid, err)
	}
	if waitGone(pid, stopTimeout) {
		return nil
	}
	logger.Warn("orphaned PostgreSQL did not shut down in time; killing it", "pid", pid, "timeout", stopTimeout)
	killGroup(pid)
	_ = signalPid(pid, true)
	if waitGone(pid, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("pgcluster: PostgreSQL (pid %d) left running by a previous run on %s could not be stopped", pid, dataDir)
}

// runningPort returns the port of a live postmaster serving dataDir, read
// from its postmaster.pid (line 1: pid, line 4: port).
func runningPort(dataDir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err1 != nil || err2 != nil || pid <= 0 || port <= 0 {
		return 0, false
	}
	if !processAlive(pid) || !isPostmasterOf(pid, dataDir) {
		return 0, false
	}
	return port, true
}

// waitGone polls until process pid no longer exists or timeout passes.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !processAlive(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
