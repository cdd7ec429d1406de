package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// The ARM builds run, not only compile: the armv7 (32-bit Raspberry Pi OS)
// and arm64 binaries run the quickstart under Debian's qemu-user, and a LAN
// publish and the simulated boiler's readings reach the embedded hub. This
// catches what breaks only there: 64-bit atomics on fields a 32-bit build
// leaves unaligned, badger's memory maps in a 32-bit address space.
//
// With EDGEGW_CROSS_DIR set (make test sets it to dist/, built by make
// cross just before), the binaries there are used; otherwise they are
// built into a temporary directory.
func TestARMBuildsRunQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and emulates two binaries")
	}
	for _, arch := range []struct{ name, goarch, goarm, qemu string }{
		{"armv7", "arm", "7", "qemu-arm-static"},
		{"arm64", "arm64", "", "qemu-aarch64-static"},
	} {
		t.Run(arch.name, func(t *testing.T) {
			qemu := testpeer.RequireTool(t, arch.qemu)
			bin := crossBinary(t, arch.name, arch.goarch, arch.goarm)
			runQuickstartUnder(t, qemu, bin)
		})
	}
}

// crossBinary returns dist/edgegw-linux-<name> from EDGEGW_CROSS_DIR, or
// builds it as make cross does.
func crossBinary(t *testing.T, name, goarch, goarm string) string {
	t.Helper()
	if dir := os.Getenv("EDGEGW_CROSS_DIR"); dir != "" {
		p := filepath.Join(dir, "edgegw-linux-"+name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("EDGEGW_CROSS_DIR is set but: %v", err)
		}
		return p
	}
	out := filepath.Join(t.TempDir(), "edgegw-linux-"+name)
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build for %s: %v\n%s", name, err, b)
	}
	return out
}

func runQuickstartUnder(t *testing.T, qemu, bin string) {
	dir := t.TempDir()
	cfgPath, ports := quickstartConfig(t, dir)
	logs := &testpeer.Buffer{}
	cmd := exec.Command(qemu, bin, "run", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("gateway output:\n%s", logs.String())
		}
	})
	waitFor(t, "the emulated gateway to serve /healthz", func() bool {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("gateway exited: %v", err)
		default:
		}
		resp, err := http.Get("http://" + ports.status + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	const n = 50
	lan := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + ports.lan).SetClientID("demo-sensor").
		SetUsername("demo-sensor").SetPassword("demo-password").SetAutoReconnect(false).
		SetConnectTimeout(30 * time.Second).SetWriteTimeout(30 * time.Second))
	if tok := lan.Connect(); !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
		t.Fatalf("LAN connect: %v", tok.Error())
	}
	for i := range n {
		tok := lan.Publish("devices/demo-sensor/messages/events/", 1, false, fmt.Sprintf(`{"n":%d}`, i))
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	lan.Disconnect(100)

	// What the hub received, read with a service token from the state the
	// emulated gateway's hub saved (sas-token runs natively).
	var token string
	waitFor(t, "the hub to save its policies", func() bool {
		var out, errb bytes.Buffer
		if run([]string{"sas-token", "-config", cfgPath, "-policy", "service"}, &out, &errb) != 0 {
			return false
		}
		token = strings.TrimSpace(out.String())
		return true
	})
	pem, err := os.ReadFile(filepath.Join(dir, "hubsim", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	_, httpPort, _ := net.SplitHostPort(ports.http)
	seen, boiler := map[string]bool{}, 0
	waitFor(t, fmt.Sprintf("%d LAN messages and a boiler reading at the hub", n), func() bool {
		req, _ := http.NewRequest("GET", "https://localhost:"+httpPort+"/edgegw/telemetry", nil)
		req.Header.Set("Authorization", token)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		seen, boiler = map[string]bool{}, 0
		sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
		for sc.Scan() {
			var line struct {
				Device string `json:"deviceId"`
				Text   string `json:"body"` // a UTF-8 body as text
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Device {
			case "demo-sensor":
				seen[line.Text] = true
			case "demo-boiler":
				boiler++
			}
		}
		return len(seen) >= n && boiler > 0
	})
	for i := range n {
		if !seen[fmt.Sprintf(`{"n":%d}`, i)] {
			t.Errorf("LAN message %d missing at the hub", i)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no exit within 60s of SIGTERM")
	}
	if !strings.Contains(logs.String(), `msg="gateway stopped" queued=`) {
		t.Errorf("no final log line:\n%s", logs.String())
	}
}
