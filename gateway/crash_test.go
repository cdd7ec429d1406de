package gateway

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// childEnv, when set, makes the test binary run a gateway on the config
// file it names instead of the tests (see TestMain).
const childEnv = "EDGEGW_TEST_GATEWAY_CONFIG"

// runChild runs the gateway as the crash test's child process: it prints
// "ADDR host:port" (the LAN broker) once ready and runs until killed.
func runChild(path string) int {
	cfg, err := LoadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	gw, err := New(cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	select {
	case <-gw.Ready():
		fmt.Printf("ADDR %s\n", gw.Adapter("lan").(*lanmqtt.Adapter).Addr())
	case err := <-done:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type child struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(t testing.TB, cfgPath string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgPath)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("gateway child exited before it was ready: %v", cmd.ProcessState)
		}
		return &child{cmd: cmd, addr: a}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("gateway child not ready within 60s")
	}
	return nil
}

func (c *child) kill9() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// TestKill9LosesNothingAcknowledged runs the gateway as a child process, has
// a LAN device publish QoS 1 messages with a window of 20 unacknowledged
// (pipelined intake: kills land while several wait for the disk), kills
// the gateway with SIGKILL at random moments and restarts it, and cuts the
// hub off for a while. Every
// message the gateway PUBACKed must reach the hub, in order of first
// arrival; duplicates are allowed (at-least-once).
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	const kills = 6
	hub := &hubsim.Hub{Logger: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	dev, err := hub.CreateDevice("sensor-1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "hub-ca.pem")
	if err := os.WriteFile(caFile, hub.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "gateway.yaml")
	cfgYAML := fmt.Sprintf(`
state_dir: %s
log: {level: warn}
hub: {host: localhost, port: %d, ca_file: %s}
identities:
  - {id: sensor-1, key: %s}
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: sensor-1, password: pw, device: sensor-1}
`, filepath.Join(dir, "state"), portOf(hub.MQTTAddress()), caFile, dev.PrimaryKey)
	if err := os.WriteFile(cfgPath, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}

	dev1 := newSeqDevice("sensor-1", "pw", 20)
	publish := dev1.publish
	for round := 0; round <= kills; round++ {
		ch := startChild(t, cfgPath)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { publish(ch.addr, stop) })
		if round == kills/2 {
			hub.SetFaults(hubsim.Faults{RefuseConnect: 3}) // the hub goes away...
			hub.DropConnections()
		}
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond) // run for a random while, then crash
		if round == kills/2 {
			hub.SetFaults(hubsim.Faults{}) // ...and comes back while the gateway is down
		}
		if round == kills {
			close(stop)
			wg.Wait()
			defer ch.kill9()
			break
		}
		ch.kill9()
		close(stop)
		wg.Wait()
	}

	want := dev1.ackedCount()
	if want < 50 {
		t.Fatalf("only %d messages were acknowledged; the test proves little", want)
	}
	dev1.waitAllAtHub(t, hub, 60*time.Second)
	t.Logf("%d acknowledged messages all arrived across %d kill -9 restarts and a hub outage", want, kills)
}

func propValue(props []edgegw.Property, key string) string {
	for _, p := range props {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}
