package opcua

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

// One node-opcua server is shared by the tests that do not stop it: it
// takes seconds to start.
var (
	sharedMu  sync.Mutex
	sharedSrv *testpeer.OPCUAServer
	sharedDir string
)

// TestMain stops the shared server, then checks that no goroutine of the
// adapters (nor of gopcua's clients they closed) outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	if sharedSrv != nil {
		sharedSrv.Stop()
		os.RemoveAll(sharedDir)
	}
	sharedMu.Unlock()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// boilerServer returns the shared server, starting it on first use.
func boilerServer(t *testing.T) *testpeer.OPCUAServer {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedSrv != nil {
		return sharedSrv
	}
	dir, err := os.MkdirTemp("", "opcua-server-")
	if err != nil {
		t.Fatal(err)
	}
	s, err := testpeer.NewOPCUAServer(t, dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	sharedSrv, sharedDir = s, dir
	return s
}

// trustServer puts the server's certificate in pki/trusted.
func trustServer(t *testing.T, pki string, s *testpeer.OPCUAServer) {
	t.Helper()
	data, err := os.ReadFile(s.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(pki, "trusted"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pki, "trusted", "server.pem"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// newAdapter builds an adapter from cfg (defaults applied here) with a
// PKI folder in the test's temporary directory.
func newAdapter(t testing.TB, name string, cfg Config, log *slog.Logger) *Adapter {
	t.Helper()
	if cfg.PKIDir == "" {
		cfg.PKIDir = t.TempDir()
	}
	cfg.SetDefaults()
	a, err := New(name, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// logBuffer is a slog handler target that tests can read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond every 20ms until it holds or timeout passes, then
// fails with what and cond's last state.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, state)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// latest returns the newest value of each point of device in the
// readings.
func latest(rs []edgegw.Reading, device string) map[string]edgegw.Value {
	out := map[string]edgegw.Value{}
	for _, r := range rs {
		if r.Device != device {
			continue
		}
		for _, p := range r.Points {
			out[p.Name] = p.Value
		}
	}
	return out
}

// values returns every value of one point, in order.
func values(rs []edgegw.Reading, device, point string) []edgegw.Value {
	var out []edgegw.Value
	for _, r := range rs {
		if r.Device != device {
			continue
		}
		for _, p := range r.Points {
			if p.Name == point {
				out = append(out, p.Value)
			}
		}
	}
	return out
}

func describe(m map[string]edgegw.Value) string {
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "%s=%s ", k, v)
	}
	return b.String()
}
