package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The pause probe measures the machine's own stalls in the same run as the
// scenarios: a process of its own (not this one, whose garbage collector
// and scheduler would count) sleeps 1 ms at a time and reports every wake
// that came late. On an idle virtual machine these gaps are the vCPUs not
// being run by the host: on the README's machine both vCPUs stop together
// for 20–60 ms about every 5 seconds, which no server on it can hide from
// a latency percentile. Under load the gaps also include waiting for a
// core (the probe is an ordinary process).
const (
	probeSleep = time.Millisecond
	// probeReport: the probe reports a wake later than this after its
	// sleep ended.
	probeReport = 2 * time.Millisecond
	// probeHeartbeat: the probe reports that it ran at least this often, so
	// that its parent knows when it has heard of every pause up to a time.
	probeHeartbeat = 50 * time.Millisecond
	// PauseCounted is the shortest pause counted in the report.
	PauseCounted = 10 * time.Millisecond
)

// RunPauseProbe is the probe process's loop (`arrears bench -pause-probe`):
// it writes "ready", then for each late wake "p <unix ns at the wake> <ns
// late>" and every probeHeartbeat "h <unix ns>", one line each, until ctx
// ends or stdin reaches its end (the parent is gone).
func RunPauseProbe(ctx context.Context, stdin io.Reader, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stdin != nil {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	// The clock starts before "ready": a stall right after it counts.
	prev := time.Now()
	beat := prev
	if _, err := fmt.Fprintln(w, "ready"); err != nil {
		return err
	}
	for ctx.Err() == nil {
		time.Sleep(probeSleep)
		now := time.Now()
		if late := now.Sub(prev) - probeSleep; late > probeReport {
			if _, err := fmt.Fprintf(w, "p %d %d\n", now.UnixNano(), late.Nanoseconds()); err != nil {
				return err
			}
		}
		if now.Sub(beat) >= probeHeartbeat {
			if _, err := fmt.Fprintf(w, "h %d\n", now.UnixNano()); err != nil {
				return err
			}
			beat = now
		}
		prev = now
	}
	return nil
}

// Pause is a time the probe was not run: the Length before End.
type Pause struct {
	End    time.Time
	Length time.Duration
}

// Start is when the pause began.
func (p Pause) Start() time.Time { return p.End.Add(-p.Length) }

// PauseUse is what the probe saw during a scenario.
type PauseUse struct {
	// Count is the pauses of PauseCounted or more; MaxMs the longest.
	Count int     `json:"count_10ms_or_more"`
	MaxMs float64 `json:"max_ms"`
	// Share is the part of the scenario's wall time the probe was not run
	// (every late wake, from 2 ms).
	Share float64 `json:"share_of_time"`
}

// pauseProbe runs the probe command and collects what it reports.
type pauseProbe struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // the reader ended
	mu    sync.Mutex
	cond  *sync.Cond
	seen  time.Time // the latest time it reported running at
	list  []Pause
	err   error // why the reader ended
}

// startPauseProbe starts command (the probe: RunPauseProbe in a process
// of its own) and waits until it runs.
func startPauseProbe(command []string) (*pauseProbe, error) {
	p := &pauseProbe{cmd: exec.Command(command[0], command[1:]...), done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	p.cmd.Stderr = os.Stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the pause probe: %w", err)
	}
	ready := make(chan struct{})
	go p.read(out, ready)
	select {
	case <-ready:
		return p, nil
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("bench: the pause probe did not start within 30 s")
	}
	p.stop()
	return nil, fmt.Errorf("bench: the pause probe ended before it was ready: %w", p.err)
}

func (p *pauseProbe) read(out io.Reader, ready chan struct{}) {
	defer close(p.done)
	sc := bufio.NewScanner(out)
	var err error
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && f[0] == "ready":
			close(ready)
		case len(f) == 2 && f[0] == "h":
			var at int64
			if at, err = strconv.ParseInt(f[1], 10, 64); err == nil {
				p.mu.Lock()
				p.seen = time.Unix(0, at)
				p.cond.Broadcast()
				p.mu.Unlock()
			}
		case len(f) == 3 && f[0] == "p":
			var at, late int64
			if at, err = strconv.ParseInt(f[1], 10, 64); err == nil {
				late, err = strconv.ParseInt(f[2], 10, 64)
			}
			if err == nil {
				p.mu.Lock()
				p.list = append(p.list, Pause{End: time.Unix(0, at), Length: time.Duration(late)})
				p.seen = time.Unix(0, at)
				p.cond.Broadcast()
				p.mu.Unlock()
			}
		default:
			err = fmt.Errorf("unexpected line %q", sc.Text())
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		err = sc.Err()
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	p.mu.Lock()
	p.err = fmt.Errorf("bench: pause probe: %w", err)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// pauses returns the pauses that overlap [from, to], once the probe has
// reported running after to (or ended; then with the error).
func (p *pauseProbe) pauses(from, to time.Time) ([]Pause, error) {
	deadline := time.AfterFunc(5*time.Second, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer deadline.Stop()
	limit := time.Now().Add(5 * time.Second)
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.seen.After(to) && p.err == nil {
		if time.Now().After(limit) {
			return nil, errors.New("bench: the pause probe did not report within 5 s")
		}
		p.cond.Wait()
	}
	if !p.seen.After(to) {
		return nil, p.err
	}
	var out []Pause
	for _, x := range p.list {
		if x.End.After(from) && x.Start().Before(to) {
			out = append(out, x)
		}
	}
	return out, nil
}

// stop ends the probe: its stdin closes, it exits.
func (p *pauseProbe) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
	}
	_ = p.cmd.Wait()
}

// pauseUse sums up pauses (those overlapping [from, to]) over [from, to].
func pauseUse(pauses []Pause, from, to time.Time) PauseUse {
	var u PauseUse
	var paused time.Duration
	for _, x := range pauses {
		start, end := x.Start(), x.End
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		if !end.After(start) {
			continue
		}
		paused += end.Sub(start)
		if x.Length >= PauseCounted {
			u.Count++
		}
		u.MaxMs = max(u.MaxMs, ms(x.Length))
	}
	if d := to.Sub(from); d > 0 {
		u.Share = float64(paused) / float64(d)
	}
	return u
}

// inPause reports, for each due time, whether it fell in a pause of
// PauseCounted or more or in as long again after it (the backlog the pause
// left draining): a request due then waits for the machine, not for the
// server.
func inPause(due []time.Time, pauses []Pause) []bool {
	var windows [][2]time.Time
	for _, x := range pauses {
		if x.Length >= PauseCounted {
			windows = append(windows, [2]time.Time{x.Start(), x.End.Add(x.Length)})
		}
	}
	slices.SortFunc(windows, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	out := make([]bool, len(due))
	for i, d := range due {
		for _, w := range windows {
			if w[0].After(d) {
				break
			}
			if !d.After(w[1]) {
				out[i] = true
				break
			}
		}
	}
	return out
}
