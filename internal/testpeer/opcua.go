package testpeer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// OPCUAServer is the node-opcua boiler server of
// southbound/opcua/testdata/server.js, run as a child process on a
// loopback port. Its address space is documented in the script.
type OPCUAServer struct {
	Endpoint string // opc.tcp://127.0.0.1:<port>/UA/Boiler
	Port     int
	PKI      string // its PKI folder (server/own/certs/certificate.pem)

	args  []string
	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines []string // every line printed since the first start
	done  chan struct{}
	cond  *sync.Cond
}

// opcuaDir is southbound/opcua/testdata, found from this file's place.
func opcuaDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "southbound", "opcua", "testdata")
}

// StartOPCUAServer starts the boiler server with a PKI folder in dir on a
// free loopback port and waits until it listens (node-opcua takes a few
// seconds, more on the first start, which makes its certificate). extra
// are more arguments for the script (--bench N). The server is stopped
// when the test ends. Without node or node_modules (scripts/deps.sh
// installs them) the test is skipped, or fails when CI is set.
func StartOPCUAServer(t testing.TB, dir string, extra ...string) *OPCUAServer {
	t.Helper()
	s, err := NewOPCUAServer(t, dir, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// NewOPCUAServer is StartOPCUAServer without the cleanup, for a server
// shared by the tests of a package (stop it in TestMain). t may be nil
// only when node and node_modules are known to be there.
func NewOPCUAServer(t testing.TB, dir string, extra ...string) (*OPCUAServer, error) {
	if t != nil {
		t.Helper()
		RequireTool(t, "node")
		if _, err := os.Stat(filepath.Join(opcuaDir(), "node_modules", "node-opcua")); err != nil {
			Missing(t, "southbound/opcua/testdata/node_modules missing (scripts/deps.sh runs npm ci there)")
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &OPCUAServer{Port: port, PKI: dir}
	s.cond = sync.NewCond(&s.mu)
	s.args = append([]string{filepath.Join(opcuaDir(), "server.js"), "--port", fmt.Sprint(port), "--pki", dir}, extra...)
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the server process (again, after Stop: same port, same
// certificate) and waits up to 60s for it to listen.
func (s *OPCUAServer) Start() error {
	cmd := exec.Command("node", s.args...)
	cmd.Dir = opcuaDir()
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node-opcua server: %w", err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.stdin, s.done = cmd, stdin, done
	mark := len(s.lines)
	s.mu.Unlock()
	go func() { // ends when the process closes its stdout; Stop waits for it
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.cond.Broadcast()
			s.mu.Unlock()
		}
		_ = cmd.Wait()
		s.mu.Lock()
		s.lines = append(s.lines, "EXIT")
		s.cond.Broadcast()
		s.mu.Unlock()
	}()
	line, ok := s.WaitLine(mark, 60*time.Second, func(l string) bool {
		return strings.HasPrefix(l, "READY ") || l == "EXIT"
	})
	if !ok || line == "EXIT" {
		s.Stop()
		return fmt.Errorf("node-opcua server did not start (%q)", line)
	}
	s.Endpoint = strings.TrimPrefix(line, "READY ")
	return nil
}

// Stop ends the server process and waits for it. It may be called twice.
func (s *OPCUAServer) Stop() {
	s.mu.Lock()
	cmd, stdin, done := s.cmd, s.stdin, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	stdin.Close()
	_ = cmd.Process.Kill()
	<-done
}

// Running reports whether the server process was started and not stopped.
func (s *OPCUAServer) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Send writes one command line to the server (set, bad, cert) and waits
// for its OK.
func (s *OPCUAServer) Send(t testing.TB, line string) {
	t.Helper()
	s.mu.Lock()
	mark, stdin := len(s.lines), s.stdin
	s.mu.Unlock()
	if _, err := io.WriteString(stdin, line+"\n"); err != nil {
		t.Fatalf("opcua server: %s: %v", line, err)
	}
	got, ok := s.WaitLine(mark, 30*time.Second, func(l string) bool {
		return l == "OK "+line || strings.HasPrefix(l, "ERR ") || strings.HasPrefix(l, "CERT ")
	})
	if !ok || strings.HasPrefix(got, "ERR ") {
		t.Fatalf("opcua server: %s: %q", line, got)
	}
}

// Mark is the number of lines printed so far, for WaitLine.
func (s *OPCUAServer) Mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// WaitLine waits up to timeout for a line after the first mark lines that
// satisfies match, and returns it.
func (s *OPCUAServer) WaitLine(mark int, timeout time.Duration, match func(string) bool) (string, bool) {
	deadline := time.Now().Add(timeout)
	stop := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := mark; ; {
		for ; i < len(s.lines); i++ {
			if match(s.lines[i]) {
				return s.lines[i], true
			}
		}
		if !time.Now().Before(deadline) {
			return "", false
		}
		s.cond.Wait()
	}
}

// Lines returns the lines printed after mark that start with prefix.
func (s *OPCUAServer) Lines(mark int, prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines[min(mark, len(s.lines)):] {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// CertFile is the server's certificate (PEM), made on its first start.
func (s *OPCUAServer) CertFile() string {
	return filepath.Join(s.PKI, "server", "own", "certs", "certificate.pem")
}
