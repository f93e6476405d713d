package bench

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTick = 100

// CPUUse is how many cores were busy on average during a scenario.
type CPUUse struct {
	Seconds      float64 `json:"seconds"`
	ProcessCores float64 `json:"process_cores"` // this process
	// PostgresCores is the private cluster's server processes (absent with
	// DATABASE_URL: that server is not ours to account).
	PostgresCores *float64 `json:"postgres_cores,omitempty"`
	MachineCores  float64  `json:"machine_cores"` // every process on the machine
	// OtherCores is what neither this process nor its private PostgreSQL
	// used (absent with DATABASE_URL): other work on the machine, which
	// the scenario's figures then understate.
	OtherCores *float64 `json:"other_cores,omitempty"`
}

type cpuSnap struct{ proc, pg, busy float64 } // seconds

// procCPU returns the user and system CPU seconds of process pid (with
// children: also those of its children it has reaped) and its parent's
// pid.
func procCPU(pid string, children bool) (secs float64, ppid string, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, "", false
	}
	// Fields after the command (which may hold spaces): state, ppid, …;
	// utime and stime are the 14th and 15th fields, cutime and cstime the
	// 16th and 17th.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 15 {
		return 0, "", false
	}
	n := 2
	if children {
		n = 4
	}
	for _, v := range f[11 : 11+n] {
		x, _ := strconv.ParseFloat(v, 64)
		secs += x
	}
	return secs / clockTick, f[1], true
}

// postgresCPU is the CPU time of the postmaster pid (with its reaped
// children) and of its live children.
func postgresCPU(pid int) float64 {
	p := strconv.Itoa(pid)
	total, _, ok := procCPU(p, true)
	if !ok {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if secs, ppid, ok := procCPU(e.Name(), false); ok && ppid == p {
			total += secs
		}
	}
	return total
}

// cpuNow reads this process's, the private PostgreSQL's (postmaster pid,
// 0 for none) and the machine's CPU time (zero where /proc is missing).
func cpuNow(postmaster int) cpuSnap {
	var c cpuSnap
	c.proc, _, _ = procCPU("self", false)
	if postmaster > 0 {
		c.pg = postgresCPU(postmaster)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) > 5 && f[0] == "cpu" {
			var busy float64
			for i, v := range f[1:] {
				n, _ := strconv.ParseFloat(v, 64)
				if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are already in user
					continue
				}
				busy += n
			}
			c.busy = busy / clockTick
		}
	}
	return c
}

func (c cpuSnap) since(before cpuSnap, d time.Duration) CPUUse {
	s := d.Seconds()
	u := CPUUse{Seconds: s, ProcessCores: (c.proc - before.proc) / s, MachineCores: (c.busy - before.busy) / s}
	if c.pg > 0 {
		pg := (c.pg - before.pg) / s
		other := max(0, u.MachineCores-u.ProcessCores-pg)
		u.PostgresCores, u.OtherCores = &pg, &other
	}
	return u
}

// startProfile writes a CPU profile of this process to dir/name until the
// returned function is called; with no dir it does nothing.
func startProfile(dir, name string) (stop func(), err error) {
	return startCapture(dir, name, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// startTrace writes a runtime execution trace to dir/name until the
// returned function is called (go tool trace: goroutine scheduling, GC
// phases, syscalls and blocking, for latency stalls a CPU profile does not
// show); with no dir it does nothing.
func startTrace(dir, name string) (stop func(), err error) {
	return startCapture(dir, name, trace.Start, trace.Stop)
}

// startCapture creates dir/name and starts a capture into it.
func startCapture(dir, name string, start func(io.Writer) error, end func()) (stop func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { end(); f.Close() }, nil
}

// writeHeapProfile writes a heap profile (after a GC) to dir/name; with no
// dir it does nothing.
func writeHeapProfile(dir, name string) error {
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}

// DBUse is what PostgreSQL did during a scenario, to the projections
// caught up, read from the server's counters — exact, but for the whole
// server (with DATABASE_URL, other databases' work counts too): write
// transactions (transaction ids assigned) and WAL written.
type DBUse struct {
	WriteTransactions int64   `json:"write_transactions"`
	WALMB             float64 `json:"wal_mb"`
}

type dbSnap struct {
	xid int64
	lsn string
}

func (r *runner) dbNow(ctx context.Context) dbSnap {
	var d dbSnap
	_ = r.env.Pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, pg_current_wal_lsn()::text`).Scan(&d.xid, &d.lsn)
	return d
}

func (r *runner) dbSince(ctx context.Context, before dbSnap) DBUse {
	now := r.dbNow(ctx)
	u := DBUse{WriteTransactions: now.xid - before.xid}
	var wal float64
	if before.lsn != "" && now.lsn != "" {
		if err := r.env.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::float8`, now.lsn, before.lsn).Scan(&wal); err == nil {
			u.WALMB = wal / (1 << 20)
		}
	}
	return u
}
