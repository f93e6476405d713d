package main_test

// End-to-end tests of the arrears binary: it is built once, run as real
// subprocesses against a real PostgreSQL and NATS, killed and restarted.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/eventstore/pgtest"
	"github.com/arrears/arrears/workers"
	"github.com/arrears/arrears/workers/natstest"
)

var (
	testDB   *pgtest.DB
	testNATS *natstest.Server
	binary   string // the arrears binary under test
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "arrears-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "arrears test:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "arrears")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = "."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "arrears test: go build: %v\n%s", err, out)
		return 2
	}
	testDB = pgtest.MustNew()
	defer testDB.Close()
	testNATS = natstest.MustStart()
	defer testNATS.Close()
	return m.Run()
}

// baseEnv is the minimal environment of every subprocess.
func baseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if env[1] == "HOME=" {
		env[1] = "HOME=/"
	}
	return env
}

// proc is a running arrears subprocess.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time

	done    chan struct{} // closed once the process has been reaped
	waitErr error         // set before done is closed
}

// startProc starts the binary with args and exactly env (plus PATH and
// HOME), in dir ("" = a fresh temporary directory). Its stdout and stderr go
// to a log file; the process is killed at cleanup if still running, and the
// tail of its log is logged if the test failed.
func startProc(t *testing.T, name, dir string, env []string, args ...string) *proc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	defer f.Close() // the child holds its own descriptor

	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f // *os.File: passed to the child directly, no copying goroutine
	p := &proc{t: t, name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	require.NoError(t, cmd.Start(), "start %s", name)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s (pid %d) log tail:\n%s", name, cmd.Process.Pid, p.tail(40))
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// log returns everything the process wrote so far.
func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// tail returns the last n lines of the log.
func (p *proc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logLines returns the JSON log records written so far (other lines skipped).
func (p *proc) logLines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.log()))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitReady waits for the "arrears ready" log line and returns its URL.
func (p *proc) waitReady(timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range p.logLines() {
			if m["msg"] == "arrears ready" {
				u, _ := m["url"].(string)
				require.True(p.t, strings.HasPrefix(u, "http://127.0.0.1:"), "%s: ready line without a URL: %v", p.name, m)
				return u
			}
		}
		if p.exited() {
			p.t.Fatalf("%s exited before it was ready (%v); log:\n%s", p.name, p.waitErr, p.tail(40))
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready within %s; log:\n%s", p.name, timeout, p.tail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and reaps the process.
func (p *proc) Kill() {
	p.t.Helper()
	if p.exited() {
		p.t.Fatalf("%s exited before it was killed (%v); log:\n%s", p.name, p.waitErr, p.tail(40))
	}
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

// Stop sends SIGTERM and requires exit status 0 within timeout.
func (p *proc) Stop(timeout time.Duration) {
	p.t.Helper()
	if p.exited() {
		p.t.Fatalf("%s exited before it was stopped (%v); log:\n%s", p.name, p.waitErr, p.tail(40))
	}
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s of SIGTERM; log:\n%s", p.name, timeout, p.tail(40))
	}
	require.NoError(p.t, p.waitErr, "%s: exit status after SIGTERM; log:\n%s", p.name, p.tail(40))
}

// runTool runs the binary to completion (deadline timeout) and returns its
// stdout, stderr and exit code.
func runTool(t *testing.T, timeout time.Duration, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(baseEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		code = ee.ExitCode()
	default:
		t.Fatalf("arrears %s: %v (ctx: %v)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, ctx.Err(), out.String(), errb.String())
	}
	return out.String(), errb.String(), code
}

// waitFor polls cond every 20 ms until it is true; it fails the test with
// what() at the deadline.
func waitFor(t *testing.T, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// installation is one isolated arrears deployment for a test: its own
// database and its own JetStream stream and subjects.
type installation struct {
	dbURL string
	pool  *pgxpool.Pool
	store *eventstore.Store
	topo  workers.NATSConfig
}

func newInstallation(t *testing.T) *installation {
	t.Helper()
	url, pool := testDB.Isolated(t, 8)
	return &installation{dbURL: url, pool: pool, store: eventstore.New(pool), topo: natstest.Topology(t, testNATS.URL)}
}

// env is the environment of an arrears process of this installation.
func (in *installation) env(extra ...string) []string {
	return append([]string{
		"DATABASE_URL=" + in.dbURL,
		"NATS_URL=" + testNATS.URL,
		"ARREARS_NATS_STREAM=" + in.topo.Stream,
		"ARREARS_NATS_SUBJECT_PREFIX=" + in.topo.SubjectPrefix,
		"ARREARS_HTTP_ADDR=127.0.0.1:0",
		"LOG_FORMAT=json",
	}, extra...)
}

func (in *installation) scalar(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int64
	require.NoError(t, in.pool.QueryRow(ctx, sql, args...).Scan(&n), sql)
	return n
}

func (in *installation) eventCount(t *testing.T) int64 {
	return in.scalar(t, `SELECT count(*) FROM events`)
}

// appender writes events to a set of streams of one tenant, tracking each
// stream's version (one appender per stream set: no conflicts).
type appender struct {
	store   *eventstore.Store
	tenant  string
	streams []string
	version map[string]int64
	rnd     *rand.Rand
	n       int64 // events appended
}

func newAppender(store *eventstore.Store, tenant string, nStreams int, seed uint64) *appender {
	ids := domain.NewIDGenerator(nil)
	a := &appender{store: store, tenant: tenant, version: map[string]int64{}, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for range nStreams {
		a.streams = append(a.streams, ids.New(domain.PrefixAccount, time.Now()))
	}
	return a
}

// appendBatch appends, in one transaction, perStream events to each of the
// streams picked (distinct), and returns how many events it wrote.
func (a *appender) appendBatch(ctx context.Context, streams []string, perStream int) (int, error) {
	appends := make([]eventstore.StreamAppend, 0, len(streams))
	for _, s := range streams {
		evs := make([]domain.NewEvent, perStream)
		for i := range evs {
			evs[i] = domain.NewEvent{Type: "account.adjusted", Data: fmt.Appendf(nil, `{"n":%d,"stream":%q}`, a.version[s]+int64(i)+1, s)}
		}
		if a.version[s] == 0 {
			evs[0].Type = "account.created"
		}
		appends = append(appends, eventstore.StreamAppend{TenantID: a.tenant, StreamType: "account", StreamID: s,
			ExpectedVersion: a.version[s], Events: evs})
	}
	if _, err := a.store.Append(ctx, domain.Metadata{}, appends...); err != nil {
		return 0, err
	}
	for _, s := range streams {
		a.version[s] += int64(perStream)
	}
	n := len(streams) * perStream
	a.n += int64(n)
	return n, nil
}

// appendRandom appends one random batch: 1–3 distinct streams, 1–5 events each.
func (a *appender) appendRandom(ctx context.Context) (int, error) {
	k := 1 + a.rnd.IntN(3)
	perm := a.rnd.Perm(len(a.streams))[:k]
	streams := make([]string, k)
	for i, j := range perm {
		streams[i] = a.streams[j]
	}
	return a.appendBatch(ctx, streams, 1+a.rnd.IntN(5))
}

// goAppenders runs n appenders (disjoint stream sets of one tenant)
// concurrently until stop is called, which lets every append in flight
// finish and returns the number of events they appended; an append error
// fails the test.
func goAppenders(t *testing.T, store *eventstore.Store, tenant string, n, streamsEach int) (stop func() int64) {
	var stopping atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, n)
	as := make([]*appender, n)
	for i := range as {
		as[i] = newAppender(store, tenant, streamsEach, uint64(i+1))
		wg.Go(func() {
			for !stopping.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := as[i].appendRandom(ctx)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var once sync.Once
	var total int64
	stop = func() int64 {
		once.Do(func() {
			stopping.Store(true)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("appender: %v", err)
			}
			for _, a := range as {
				total += a.n
			}
		})
		return total
	}
	t.Cleanup(func() { stop() })
	return stop
}
