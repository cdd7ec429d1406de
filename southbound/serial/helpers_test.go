package serial

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgegw/edgegw"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// needTool skips when a Debian tool is missing, or fails under CI.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (required under CI): %v", name, err)
		}
		t.Skipf("%s not installed (apt-get install %s); skipping", name, name)
	}
	return p
}

// ptyPair is a socat-connected pair of ptys reachable through stable links.
type ptyPair struct {
	t          *testing.T
	linkA      string // the gateway's side
	linkB      string // the sensor's side
	cmd        *exec.Cmd
	ptsA, ptsB string // the /dev/pts paths socat reported
}

var ptyRE = regexp.MustCompile(`PTY is (\S+)`)

// startSocat starts `socat -d -d pty,raw,echo=0 pty,raw,echo=0` with links
// in dir and waits until it transfers data.
func startSocat(t *testing.T, dir string) *ptyPair {
	t.Helper()
	socat := needTool(t, "socat")
	p := &ptyPair{t: t, linkA: filepath.Join(dir, "ttyA"), linkB: filepath.Join(dir, "ttyB")}
	p.cmd = exec.Command(socat, "-d", "-d", "pty,raw,echo=0,link="+p.linkA, "pty,raw,echo=0,link="+p.linkB)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan []string, 1)
	go func() {
		var pts []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := ptyRE.FindStringSubmatch(sc.Text()); m != nil {
				pts = append(pts, m[1])
			}
			if strings.Contains(sc.Text(), "starting data transfer loop") {
				ready <- pts
			}
		}
	}()
	select {
	case pts := <-ready:
		if len(pts) != 2 {
			t.Fatalf("socat reported %v", pts)
		}
		p.ptsA, p.ptsB = pts[0], pts[1]
	case <-time.After(5 * time.Second):
		p.stop()
		t.Fatal("socat did not start")
	}
	t.Cleanup(p.stop)
	return p
}

// stop ends socat with SIGTERM, so it removes its links.
func (p *ptyPair) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// peer opens the sensor's side.
func (p *ptyPair) peer() *peer {
	p.t.Helper()
	c := Config{Device: p.linkB}
	c.SetDefaults()
	f, err := openTTY(&c)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { f.Close() })
	return &peer{t: p.t, f: f, r: bufio.NewReader(f)}
}

type peer struct {
	t *testing.T
	f *os.File
	r *bufio.Reader
}

func (p *peer) write(s string) {
	p.t.Helper()
	_ = p.f.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.f.WriteString(s); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) readLine() string {
	p.t.Helper()
	_ = p.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("peer read: %v (got %q)", err, s)
	}
	return s
}

type recorder struct {
	mu sync.Mutex
	rs []edgegw.Reading
}

func (r *recorder) Submit(_ context.Context, rd edgegw.Reading) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rs = append(r.rs, rd)
	return nil
}

func (r *recorder) get() []edgegw.Reading {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]edgegw.Reading(nil), r.rs...)
}

func (r *recorder) wait(t *testing.T, n int) []edgegw.Reading {
	t.Helper()
	eventually(t, "readings", func() bool { return len(r.get()) >= n })
	return r.get()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testConfig(device string) Config {
	return Config{
		Device: device,
		Devices: []Device{
			{Name: "thermo", Pattern: `T=(?P<temp>-?\d+\.\d+)`, Points: []Point{{Name: "temp", Unit: "degC"}}},
			{Name: "hygro", Pattern: `H=(?P<rh>\d+)% (?P<ok>\w+)`, Points: []Point{{Name: "rh", Kind: "int", Unit: "%"}, {Name: "ok", Kind: "bool"}}},
		},
		ReopenMax: 200 * time.Millisecond,
	}
}

// run starts an adapter until the test ends.
func run(t *testing.T, cfg Config, up *recorder) *Adapter {
	t.Helper()
	a, err := New("ser", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, up) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return a
}

func (a *Adapter) isOpen() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.port != nil
}
