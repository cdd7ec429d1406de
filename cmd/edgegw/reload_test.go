package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// childConfig, when set, makes the test binary run the gateway's main
// (run -config <file>) instead of the tests: a real process that gets
// real signals.
const childConfig = "EDGEGW_TEST_RUN_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(childConfig); path != "" {
		os.Exit(run([]string{"run", "-config", path}, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const hupConfig = `
state_dir: %s
log: {level: info}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
identities:
  - id: dev-1
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: dev-1, password: pw, device: dev-1}
%s`

// gatewayProcess is the gateway running as a child process, with its
// log lines.
type gatewayProcess struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced on every line
	done  chan struct{} // closed when stderr ends
}

func startProcess(t *testing.T, cfgPath string) *gatewayProcess {
	t.Helper()
	p := &gatewayProcess{more: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), childConfig+"="+cfgPath)
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("gateway log:\n%s", strings.Join(p.snapshot(), "\n"))
		}
	})
	return p
}

func (p *gatewayProcess) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitLine waits for the first line after the first `from` lines that
// matches re, and returns it with its index.
func (p *gatewayProcess) waitLine(t *testing.T, from int, re string) (string, int) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(60 * time.Second)
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if rx.MatchString(p.lines[i]) {
				l := p.lines[i]
				p.mu.Unlock()
				return l, i
			}
		}
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.done:
			t.Fatalf("the gateway exited before logging %q", re)
		case <-deadline:
			t.Fatalf("no log line %q within 60s", re)
		}
	}
}

func (p *gatewayProcess) hangup(t *testing.T) int {
	t.Helper()
	n := len(p.snapshot())
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	return n
}

func lanConnect(t *testing.T, addr, user, password string, lost *atomic.Int32) (mqtt.Client, error) {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(user).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetCleanSession(true).
		SetConnectionLostHandler(func(mqtt.Client, error) { lost.Add(1) })
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect as %s: %v", user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// TestSIGHUPReloads runs the gateway as a process and sends it real
// SIGHUPs: it no longer ends the process; an invalid file is logged with
// file, path and reason and changes nothing; a valid one adds a LAN user
// while the connected device stays connected; SIGTERM still stops it
// cleanly (exit 0).
func TestSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edgegw.yaml")
	write := func(extra string) {
		t.Helper()
		if err := os.WriteFile(cfg, fmt.Appendf(nil, hupConfig, dir, extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	p := startProcess(t, cfg)
	l, _ := p.waitLine(t, 0, `msg="lanmqtt: listening"`)
	addr := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(l)[1]
	p.waitLine(t, 0, `msg="gateway running"`)

	var lost atomic.Int32
	dev, err := lanConnect(t, addr, "dev-1", "pw", &lost)
	if err != nil {
		t.Fatal(err)
	}

	n := p.hangup(t)
	p.waitLine(t, n, `msg="config reloaded" changes=none`)

	// An invalid file: logged, nothing changes.
	if err := os.WriteFile(cfg, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n = p.hangup(t)
	l, _ = p.waitLine(t, n, `config reload refused`)
	if !strings.Contains(l, cfg+": bogus: unknown key") {
		t.Errorf("the refusal does not name file, path and reason: %s", l)
	}

	// A new adapter naming a port marked required that does not exist:
	// refused as at start (file, path, reason), nothing changes.
	write(`  - name: meter
    serial:
      device: ` + filepath.Join(dir, "no-such-tty") + `
      required: true
      devices:
        - name: m1
          pattern: 'T=(?P<temp>\d+)'
          points:
            - {name: temp, kind: int}
`)
	n = p.hangup(t)
	l, _ = p.waitLine(t, n, `config reload refused`)
	if !strings.Contains(l, "southbound[1].serial.device") || !strings.Contains(l, "no-such-tty") {
		t.Errorf("the refusal does not name the missing port: %s", l)
	}

	// A new LAN user.
	write("        - {username: dev-2, password: pw2, publish: [\"lan/dev-2/#\"]}\n")
	n = p.hangup(t)
	l, _ = p.waitLine(t, n, `msg="config reloaded"`)
	if !strings.Contains(l, `users=+lan/dev-2`) {
		t.Errorf("summary: %s", l)
	}
	var lost2 atomic.Int32
	if _, err := lanConnect(t, addr, "dev-2", "pw2", &lost2); err != nil {
		t.Errorf("the added user: %v", err)
	}
	if tok := dev.Publish("devices/dev-1/messages/events/", 1, false, "after"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Errorf("the unchanged device cannot publish after the reloads: %v", tok.Error())
	}
	if lost.Load() != 0 {
		t.Error("the unchanged device lost its connection")
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v, want 0", err)
	}
}
