package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// The peers of the side-by-side benchmarks: edgegw built from ./cmd/edgegw
// and run as its own process, as an operator runs it, and the helpers that
// wait for it and read its status.

// sbsLong skips the benchmark unless EDGEGW_BENCH_LONG is set (make bench
// sets it).
func sbsLong(b *testing.B) {
	b.Helper()
	if os.Getenv("EDGEGW_BENCH_LONG") == "" {
		b.Skip("side-by-side benchmark: set EDGEGW_BENCH_LONG=1 (make bench does)")
	}
}

// sbsBuild builds ./cmd/edgegw into a temporary directory and returns the
// binary's path.
func sbsBuild(b *testing.B) string {
	b.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		testpeer.Missing(b, "go not in PATH, cannot build edgegw")
	}
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "go.mod") {
		b.Fatalf("go env GOMOD: %q %v", out, err)
	}
	bin := filepath.Join(b.TempDir(), "edgegw")
	build := exec.Command(gobin, "build", "-o", bin, "./cmd/edgegw")
	build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if msg, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/edgegw: %v\n%s", err, msg)
	}
	return bin
}

// sbsAddr returns a loopback address whose port was free a moment ago.
func sbsAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// edgegwProc is edgegw running as its own process.
type edgegwProc struct {
	lan    string // the LAN broker's address
	status string // the status endpoint's address
	logs   string // its stdout and stderr
	pid    int
}

// cpu returns the CPU time (user and system) the process has used so far,
// from /proc/PID/stat, or 0 when it cannot be read.
func (p *edgegwProc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. utime and stime are fields 14 and 15.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

// sbsStartEdgegw writes cfg (YAML, with "STATE", "LAN" and "STATUS" to be
// replaced by the state directory and the two listen addresses) and runs
// bin on it until the benchmark ends. It returns once /healthz answers 200.
// The state directory is on the disk of b.TempDir(); a tmpfs there is
// reported, since the figures would not be a disk's.
func sbsStartEdgegw(b *testing.B, bin, cfg string) *edgegwProc {
	b.Helper()
	dir := b.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		b.Fatal(err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(state, &fs); err == nil && fs.Type == unix.TMPFS_MAGIC {
		b.Logf("NOTE: the state directory %s is on a tmpfs: edgegw's figures are not a disk's", state)
	}
	p := &edgegwProc{lan: sbsAddr(b), status: sbsAddr(b), logs: filepath.Join(dir, "edgegw.log")}
	cfg = strings.NewReplacer("STATE", state, "LAN", p.lan, "STATUS", p.status).Replace(cfg)
	path := filepath.Join(dir, "edgegw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(p.logs)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if !cmd.ProcessState.Success() {
				b.Errorf("edgegw exited with %v on SIGTERM; its log: %s", cmd.ProcessState, p.logs)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			b.Errorf("edgegw did not stop within 30s of SIGTERM")
		}
		if b.Failed() {
			b.Logf("edgegw's log:\n%s", tail(p.logs, 40))
		}
	})
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get("http://" + p.status + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			b.Fatalf("edgegw exited before it was ready (%v):\n%s", cmd.ProcessState, tail(p.logs, 40))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("edgegw not healthy within 60s:\n%s", tail(p.logs, 40))
		}
	}
}

// edgegwCounters are the parts of GET /status the benchmarks report (its
// schema is in the README).
type edgegwCounters struct {
	Buffer struct {
		Records      int64             `json:"records"`
		Appended     int64             `json:"records_appended"`
		Commits      int64             `json:"commits"`
		AppendErrors int64             `json:"append_errors"`
		Drops        map[string]uint64 `json:"drops"`
	}
	LAN struct {
		Received   uint64            `json:"publishes_received"`
		Stored     uint64            `json:"publishes_stored"`
		Refused    map[string]uint64 `json:"publishes_refused"`
		ConnErrors uint64            `json:"connection_errors"`
	}
}

// counters reads GET /status.
func (p *edgegwProc) counters(b *testing.B) edgegwCounters {
	b.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + p.status + "/status")
	if err != nil {
		b.Fatalf("edgegw status: %v", err)
	}
	defer resp.Body.Close()
	var st struct {
		Buffer   json.RawMessage `json:"buffer"`
		Adapters []struct {
			Name string          `json:"name"`
			LAN  json.RawMessage `json:"lanmqtt"`
		} `json:"adapters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		b.Fatalf("edgegw status: %v", err)
	}
	var c edgegwCounters
	_ = json.Unmarshal(st.Buffer, &c.Buffer)
	for _, a := range st.Adapters {
		if a.Name == "lan" {
			_ = json.Unmarshal(a.LAN, &c.LAN)
		}
	}
	return c
}

func (c edgegwCounters) String() string {
	per := 0.0
	if c.Buffer.Commits > 0 {
		per = float64(c.Buffer.Appended) / float64(c.Buffer.Commits)
	}
	return fmt.Sprintf("LAN received %d, stored %d, refused %v, connections ended by an error %d; "+
		"queue appended %d in %d commits (%.1f a commit), %d queued, %d append errors, drops %v",
		c.LAN.Received, c.LAN.Stored, c.LAN.Refused, c.LAN.ConnErrors,
		c.Buffer.Appended, c.Buffer.Commits, per, c.Buffer.Records, c.Buffer.AppendErrors, c.Buffer.Drops)
}

// logSummary counts the lines of edgegw's log by level and quotes the
// first two distinct warnings or errors, on one line (a benchmark's log is
// cut after ten lines).
func (p *edgegwProc) logSummary() string {
	f, err := os.Open(p.logs)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	levels := map[string]int{}
	var seen []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for lines := 0; sc.Scan() && lines < 1_000_000; lines++ {
		line := sc.Text()
		level := "other"
		if _, rest, ok := strings.Cut(line, "level="); ok {
			level, _, _ = strings.Cut(rest, " ")
		}
		levels[level]++
		if level != "WARN" && level != "ERROR" {
			continue
		}
		msg := line
		if _, rest, ok := strings.Cut(line, "msg="); ok {
			msg = level + " " + rest
		}
		if len(msg) > 110 {
			msg = msg[:110] + "..."
		}
		key := msg[:min(len(msg), 40)]
		if len(seen) < 2 && !slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, key) }) {
			seen = append(seen, msg)
		}
	}
	out := fmt.Sprintf("edgegw's log, lines by level: %v", levels)
	if len(seen) > 0 {
		out += "; " + strings.Join(seen, " | ")
	}
	return out
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// sbsWait polls cond every 20ms until it holds or timeout passes.
func sbsWait(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
	return true
}

// sbsLoadAvg returns the 1-minute load average, to tell other work on the
// machine from the benchmark's own: the peers share its CPUs with anything
// else running.
func sbsLoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	avg, _, _ := strings.Cut(string(data), " ")
	return avg
}

// sbsMachine describes the machine for the tables.
func sbsMachine(avgAtStart string) string {
	return fmt.Sprintf("%d CPUs; 1-minute load average %s before the peers started, %s now", runtime.NumCPU(), avgAtStart, sbsLoadAvg())
}

// sbsMeter counts, at the hub, the telemetry of the devices whose ids
// start with one prefix, and when the first and last of it arrived.
type sbsMeter struct {
	mu          sync.Mutex
	prefix      string
	n           int64
	first, last time.Time
}

// reset starts counting the devices whose ids start with prefix.
func (m *sbsMeter) reset(prefix string) {
	m.mu.Lock()
	m.prefix, m.n, m.first, m.last = prefix, 0, time.Time{}, time.Time{}
	m.mu.Unlock()
}

// seen is the hub's OnTelemetry.
func (m *sbsMeter) seen(deviceID string, at time.Time) {
	m.mu.Lock()
	if m.prefix != "" && strings.HasPrefix(deviceID, m.prefix) {
		if m.n == 0 {
			m.first = at
		}
		m.n++
		m.last = at
	}
	m.mu.Unlock()
}

func (m *sbsMeter) get() (n int64, first, last time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n, m.first, m.last
}
