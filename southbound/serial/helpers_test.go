package serial

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound/tty"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ptyPair is a socat-connected pair of ptys reachable through stable links.
type ptyPair struct {
	t          *testing.T
	linkA      string // the gateway's side
	linkB      string // the sensor's side
	ptsA, ptsB string // the /dev/pts paths socat reported
	stop       func() // ends socat, which removes the links
}

// startSocat starts a socat pty pair with links ttyA and ttyB in dir.
func startSocat(t *testing.T, dir string) *ptyPair {
	t.Helper()
	p := &ptyPair{t: t, linkA: filepath.Join(dir, "ttyA"), linkB: filepath.Join(dir, "ttyB")}
	p.ptsA, p.ptsB, p.stop = testpeer.PtyPair(t, p.linkA, p.linkB)
	return p
}

// peer opens the sensor's side.
func (p *ptyPair) peer() *peer {
	p.t.Helper()
	c := Config{Device: p.linkB}
	c.SetDefaults()
	f, err := tty.Open(c.settings())
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
func run(t *testing.T, cfg Config, up *testpeer.Uplink) *Adapter {
	t.Helper()
	a, err := New("ser", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	testpeer.RunAdapter(t, a, up)
	return a
}

func (a *Adapter) isOpen() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.port != nil
}
