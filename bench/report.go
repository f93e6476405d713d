package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Latency is a distribution of durations, in milliseconds.
type Latency struct {
	Count  int     `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// latencies summarises ds (nearest-rank percentiles).
func latencies(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	pct := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return ms(s[max(0, min(i, len(s)-1))])
	}
	return Latency{Count: len(s), MeanMs: ms(sum / time.Duration(len(s))), P50Ms: pct(0.50), P90Ms: pct(0.90), P99Ms: pct(0.99), MaxMs: ms(s[len(s)-1])}
}

// Rate is a count done in a time, and the latency of each operation.
type Rate struct {
	Count     int     `json:"count"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	Latency   `json:"latency"`
}

// LagStats is the projection lag of a phase's batches (see LagMethod).
type LagStats struct {
	FromResponse   Latency `json:"from_response"`
	FromRecordedAt Latency `json:"from_recorded_at"`
}

// Ingest is scenario 1.
type Ingest struct {
	Entries  int `json:"entries"`
	Batches  int `json:"batches"`
	Batch    int `json:"batch"`
	Clients  int `json:"clients"`
	Accounts int `json:"accounts"`
	// Seconds is from the first request to the moment the ledger
	// projection had applied the last batch.
	Seconds           float64 `json:"seconds"`
	EntriesPerSecond  float64 `json:"entries_per_second"`
	AcceptedPerSecond float64 `json:"accepted_per_second"` // to the last response only
	// TailPerSecond is the rate over the last quarter of the batches, to the
	// ledger projection caught up (the rate falls as account histories grow).
	TailPerSecond      float64  `json:"last_quarter_entries_per_second"`
	LedgerCatchUpMs    float64  `json:"ledger_catch_up_after_last_response_ms"`
	AllCaughtUpSeconds float64  `json:"all_projections_caught_up_seconds"`
	API                Latency  `json:"api_latency"` // per batch request
	Lag                LagStats `json:"projection_lag"`
	PeakRSSBytes       int64    `json:"peak_rss_bytes"`
}

// Lag80 is scenario 1's rate-limited run.
type Lag80 struct {
	TargetEntriesPerSecond   float64  `json:"target_entries_per_second"`
	AchievedEntriesPerSecond float64  `json:"achieved_entries_per_second"`
	Entries                  int      `json:"entries"`
	Batches                  int      `json:"batches"`
	Seconds                  float64  `json:"seconds"`
	API                      Latency  `json:"api_latency"`
	Lag                      LagStats `json:"projection_lag"`
}

// Baseline is scenario 2.
type Baseline struct {
	Table  string `json:"table"`
	Copy   Rate   `json:"copy"`   // COPY per batch
	Insert Rate   `json:"insert"` // one multi-row INSERT per batch
}

// Singles is scenario 3.
type Singles struct {
	Clients  int  `json:"clients"`
	Posts    Rate `json:"posts"`
	Baseline Rate `json:"baseline_single_row_insert"`
}

// Reads is scenario 4.
type Reads struct {
	TargetPerSecond float64 `json:"target_per_second"`
	// Unanswered requests were not answered within the grace after the
	// run: their latency is counted as of its end (a lower bound).
	Unanswered int `json:"unanswered"`
	// WarmUpSeconds is the time the unmeasured warm-up took: one read of
	// each account first.
	WarmUpSeconds float64 `json:"warm_up_seconds"`
	Rate
	// BySecond is the latency of the requests due in each second of the
	// run: where in the run the slow ones were (a cold start, a stall).
	BySecond []Latency `json:"by_second"`
	// OutsidePauses is the latency of the requests not due in a machine
	// pause of 10 ms or more nor in as long again after it (InPauses of
	// them were); absent without the pause probe.
	OutsidePauses *Latency `json:"outside_machine_pauses,omitempty"`
	InPauses      int      `json:"due_in_machine_pauses"`
}

// ReplayOne is one projection in the replay of all: Seconds (and
// EventsPerSecond) count from the start of the replay to the moment it was
// swapped in.
type ReplayOne struct {
	Name            string  `json:"name"`
	Events          int64   `json:"events"`
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
}

// Replay is scenario 5: EventsPerSecond is the events in the store over
// the time to replay every projection.
type Replay struct {
	Events          int64       `json:"events"`
	Seconds         float64     `json:"seconds"`
	EventsPerSecond float64     `json:"events_per_second"`
	Projections     []ReplayOne `json:"projections"`
}

// Machine is where the figures come from.
type Machine struct {
	CPUModel   string            `json:"cpu_model"`
	CPUs       int               `json:"cpus"`
	GOMAXPROCS int               `json:"gomaxprocs"`
	MemTotal   string            `json:"mem_total"`
	Kernel     string            `json:"kernel"`
	OS         string            `json:"os"`
	PostgreSQL map[string]string `json:"postgresql"`
}

// Git is the code measured.
type Git struct {
	Commit string `json:"commit,omitempty"`
	Dirty  bool   `json:"dirty"`
}

// Target is one of the goals, evaluated (goals, not assertions).
type Target struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target"`
	Met    string  `json:"met"` // yes, no, n/a
}

// Results is everything a run measured.
type Results struct {
	Date         string            `json:"date"`
	StartedAt    time.Time         `json:"started_at"`
	Seconds      float64           `json:"seconds"`
	GoVersion    string            `json:"go_version"`
	Git          Git               `json:"git"`
	Machine      Machine           `json:"machine"`
	Setup        map[string]string `json:"setup"`
	Options      Options           `json:"options"`
	Ingest       Ingest            `json:"ingest"`
	Lag80        Lag80             `json:"lag_at_80_percent"`
	LagMethod    string            `json:"lag_method"`
	Baseline     Baseline          `json:"baseline"`
	Singles      Singles           `json:"singles"`
	Reads        Reads             `json:"reads"`
	Replay       Replay            `json:"replay"`
	PeakRSSBytes int64             `json:"peak_rss_bytes"`
	PeakRSSNote  string            `json:"peak_rss_note"`
	// CPU is, per scenario, the cores this process (API, workers, NATS if
	// embedded, load generator) and the whole machine kept busy.
	CPU map[string]CPUUse `json:"cpu"`
	// DB is, per scenario (to the projections caught up), the write
	// transactions and WAL of the PostgreSQL server.
	DB map[string]DBUse `json:"postgresql_activity"`
	// Pauses is, per scenario, what the pause probe saw of the machine's
	// stalls (absent without the probe).
	Pauses  map[string]PauseUse `json:"machine_pauses,omitempty"`
	Targets []Target            `json:"targets"`
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// evaluate fills in the targets.
func (res *Results) evaluate() {
	res.LagMethod = LagMethod
	res.PeakRSSNote = "VmHWM of this process: API, relay, projectors, embedded NATS (if used) and the load generator; PostgreSQL is separate processes"
	in := res.Ingest
	copyRatio := ratio(in.EntriesPerSecond, res.Baseline.Copy.PerSecond)
	singleRatio := ratio(res.Singles.Posts.PerSecond, res.Singles.Baseline.PerSecond)
	readsMet := "n/a"
	if res.Reads.TargetPerSecond >= 2000 {
		readsMet = yesNo(res.Reads.Unanswered == 0 && res.Reads.PerSecond >= 0.98*2000 && res.Reads.P99Ms < 5)
	}
	res.Targets = []Target{
		{"batch ingest", in.EntriesPerSecond, "entries/s", "≥ 50,000", yesNo(in.EntriesPerSecond >= 50_000)},
		{"batch ingest ÷ COPY baseline", copyRatio, "×", "≥ 0.4", yesNo(copyRatio >= 0.4)},
		{"single-entry posts ÷ single-row INSERT baseline", singleRatio, "×", "≥ 0.6", yesNo(singleRatio >= 0.6)},
		{"single-entry posts p99", res.Singles.Posts.P99Ms, "ms", "< 20", yesNo(res.Singles.Posts.P99Ms < 20)},
		{"projection lag p99 at 80 % of the ingest rate", res.Lag80.Lag.FromResponse.P99Ms, "ms", "< 100", yesNo(res.Lag80.Lag.FromResponse.P99Ms < 100)},
		{"GET balance p99 at 2,000 requests/s", res.Reads.P99Ms, "ms", "< 5 (at ≥ 2,000/s)", readsMet},
		{"replay of every projection", res.Replay.EventsPerSecond, "events/s", "≥ 100,000", yesNo(res.Replay.EventsPerSecond >= 100_000)},
	}
}

// num formats f with thousands separators and no decimals.
func num(f float64) string {
	s := strconv.FormatInt(int64(math.Round(f)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func msf(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

func pair(l Latency) string { return msf(l.P50Ms) + " / " + msf(l.P99Ms) + " ms" }

// Rows is the report table: scenario, figure, measured, target, met, ratio
// to the baseline.
func (res *Results) Rows() [][]string {
	t := map[string]Target{}
	for _, x := range res.Targets {
		t[x.Name] = x
	}
	in, l80, b, s := res.Ingest, res.Lag80, res.Baseline, res.Singles
	copyRatio, insRatio := ratio(in.EntriesPerSecond, b.Copy.PerSecond), ratio(in.EntriesPerSecond, b.Insert.PerSecond)
	readPair := pair(res.Reads.Latency)
	if res.Reads.Unanswered > 0 {
		readPair = fmt.Sprintf("≥ %s / ≥ %s ms (%s of %s unanswered)", msf(res.Reads.P50Ms), msf(res.Reads.P99Ms), num(float64(res.Reads.Unanswered)), num(float64(res.Reads.Count)))
	}
	rows := [][]string{
		{"Scenario", "Figure", "Measured", "Target", "Met", "vs baseline"},
		{"1 batch ingest", fmt.Sprintf("entries/s, %s in batches of %s, %d clients, to the ledger projection caught up", num(float64(in.Entries)), num(float64(in.Batch)), in.Clients),
			num(in.EntriesPerSecond), "≥ 50,000", t["batch ingest"].Met, fmt.Sprintf("%.2f× COPY, %.2f× INSERT", copyRatio, insRatio)},
		{"", "ingest ÷ COPY baseline", fmt.Sprintf("%.2f×", copyRatio), "≥ 0.4×", t["batch ingest ÷ COPY baseline"].Met, ""},
		{"", "accepted by the API (to the last response)", num(in.AcceptedPerSecond) + " entries/s", "", "", ""},
		{"", "entries/s over the last quarter of the batches", num(in.TailPerSecond), "", "", ""},
		{"", "API latency per batch p50 / p99", pair(in.API), "", "", ""},
		{"", "projection lag p50 / p99 at full rate", pair(in.Lag.FromResponse), "", "", ""},
		{"", fmt.Sprintf("projection lag p50 / p99 at 80 %% (%s entries/s)", num(l80.AchievedEntriesPerSecond)), pair(l80.Lag.FromResponse), "p99 < 100 ms",
			t["projection lag p99 at 80 % of the ingest rate"].Met, ""},
		{"", "peak RSS (whole process, incl. load generator)", fmt.Sprintf("%.0f MiB", float64(res.PeakRSSBytes)/(1<<20)), "", "", ""},
		{"2 baseline", "COPY, batches of " + num(float64(in.Batch)) + ", same concurrency", num(b.Copy.PerSecond) + " rows/s", "", "", ""},
		{"", "one multi-row INSERT per batch", num(b.Insert.PerSecond) + " rows/s", "", "", ""},
		{"3 single posts", fmt.Sprintf("requests/s, %d clients", s.Clients), num(s.Posts.PerSecond), "≥ 0.6× baseline",
			t["single-entry posts ÷ single-row INSERT baseline"].Met, fmt.Sprintf("%.2f×", ratio(s.Posts.PerSecond, s.Baseline.PerSecond))},
		{"", "latency p50 / p99", pair(s.Posts.Latency), "p99 < 20 ms", t["single-entry posts p99"].Met, ""},
		{"", "baseline: single-row INSERT transactions", num(s.Baseline.PerSecond) + "/s, " + pair(s.Baseline.Latency), "", "", ""},
		{"4 reads", fmt.Sprintf("GET balance p50 / p99 at %s/s (answered %s/s)", num(res.Reads.TargetPerSecond), num(res.Reads.PerSecond)), readPair,
			"p99 < 5 ms at 2,000/s", t["GET balance p99 at 2,000 requests/s"].Met, ""},
	}
	if o := res.Reads.OutsidePauses; o != nil {
		rows = append(rows, []string{"", fmt.Sprintf("p50 / p99 of those not due in a machine pause (%s of %s were)", num(float64(res.Reads.InPauses)), num(float64(res.Reads.Count))),
			pair(*o), "", "", ""})
	}
	rows = append(rows, [][]string{
		{"5 replay", fmt.Sprintf("events/s, %s events into all %d projections", num(float64(res.Replay.Events)), len(res.Replay.Projections)),
			num(res.Replay.EventsPerSecond), "≥ 100,000", t["replay of every projection"].Met, ""},
	}...)
	for _, p := range res.Replay.Projections {
		rows = append(rows, []string{"", "  " + p.Name + " swapped in after", fmt.Sprintf("%.1f s", p.Seconds), "", "", ""})
	}
	return rows
}

// WriteTable writes Rows as an aligned Markdown table.
func (res *Results) WriteTable(w io.Writer) error {
	rows := res.Rows()
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	bw := bufio.NewWriter(w)
	line := func(r []string) {
		bw.WriteString("|")
		for i, c := range r {
			bw.WriteString(" " + c + strings.Repeat(" ", width[i]-len([]rune(c))) + " |")
		}
		bw.WriteString("\n")
	}
	line(rows[0])
	sep := make([]string, len(width))
	for i, n := range width {
		sep[i] = strings.Repeat("-", n)
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
	return bw.Flush()
}

// WriteJSON writes res to path atomically (path.tmp, renamed).
func (res *Results) WriteJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// peakRSS is this process's peak resident set (VmHWM), in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// machine describes the CPU, memory, kernel and the PostgreSQL server.
func machine(ctx context.Context, pool *pgxpool.Pool) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS + "/" + runtime.GOARCH, PostgreSQL: map[string]string{}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				f := strings.Fields(v)
				if n, err := strconv.ParseFloat(f[0], 64); err == nil {
					m.MemTotal = fmt.Sprintf("%.1f GiB", n/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	for _, s := range []string{"server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_wal_size", "wal_level"} {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", s).Scan(&v); err == nil {
			m.PostgreSQL[s] = v
		}
	}
	return m
}

// GitInfo returns the commit the working directory is at (from git, else
// from the build information) and whether it has uncommitted changes.
func GitInfo() Git {
	var g Git
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		g.Commit = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
			g.Dirty = len(strings.TrimSpace(string(out))) > 0
		}
		return g
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				g.Commit = s.Value
			case "vcs.modified":
				g.Dirty = s.Value == "true"
			}
		}
	}
	return g
}
