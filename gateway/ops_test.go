package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/ops"
)

// Readiness measured on a running gateway: each test breaks one thing a
// real peer gives (the hub, the disk, the Modbus slave), waits for /readyz
// to say so with the reason, mends it, and waits for /readyz to recover by
// itself.

var opsClient = &http.Client{Timeout: 10 * time.Second}

// readyz returns /readyz's status code and body.
func readyz(t *testing.T, addr string) (int, ops.Readiness) {
	t.Helper()
	resp, err := opsClient.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var r ops.Readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return resp.StatusCode, r
}

// waitReady waits until /readyz answers ready (want "") or names a reason
// of kind want for subject.
func waitReady(t *testing.T, addr, want, subject string, timeout time.Duration) ops.Readiness {
	t.Helper()
	var last ops.Readiness
	waitCond(t, timeout, fmt.Sprintf("readyz %q %s", want, subject), func() (bool, string) {
		code, r := readyz(t, addr)
		last = r
		if want == "" {
			return code == 200 && r.Ready, fmt.Sprintf("%d %+v", code, r)
		}
		for _, x := range r.Reasons {
			if x.Kind == want && x.Subject == subject {
				return code == 503 && !r.Ready, ""
			}
		}
		return false, fmt.Sprintf("%d %+v", code, r)
	})
	return last
}

// getText returns the body of GET path on the status listener.
func getText(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := opsClient.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// lintMetrics runs promtool check metrics on /metrics and returns it.
func lintMetrics(t *testing.T, addr string) string {
	t.Helper()
	promtool := testpeer.RequireTool(t, "promtool")
	body := getText(t, addr, "/metrics")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, body)
	}
	return body
}

func statusOf(t *testing.T, addr string) ops.Status {
	t.Helper()
	var st ops.Status
	if err := json.Unmarshal([]byte(getText(t, addr, "/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

const simConfig = `
state_dir: %s
log: {level: warn}
%s
status: {listen: "127.0.0.1:0", stall_after: 2s, plot_resolution: 1s}
identities:
  - {id: sim-1 %s}
southbound:
  - name: sim
    simulator:
      devices:
        - name: boiler
          interval: 100ms
          points:
            - {name: count, kind: counter}
            - {name: temperature, kind: sine, min: 60, max: 80, period: 20s, unit: degC}
mapping:
  devices:
    - {adapter: sim, device: boiler, identity: sim-1}
`

// TestReadyzHubStopped stops the hub (a hubsim process-in-process with its
// state on disk) while a simulated device keeps reporting: readiness fails
// within stall_after, names the identity, and recovers once the same hub
// is back.
func TestReadyzHubStopped(t *testing.T) {
	dir := t.TempDir()
	hubDir := filepath.Join(dir, "hub")
	hub := &hubsim.Hub{DataDir: hubDir, Logger: testLogger(t)}
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	d, err := hub.CreateDevice("sim-1")
	if err != nil {
		t.Fatal(err)
	}
	mqttAddr := hub.MQTTAddress()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, hub.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(simConfig, filepath.Join(dir, "state"),
		fmt.Sprintf("hub: {host: localhost, port: %d, ca_file: %s, backoff_max: 1s}", portOf(mqttAddr), caFile),
		", key: "+d.PrimaryKey)
	cfg, err := Parse("ready-hub.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	addr := gw.StatusAddr()
	waitCond(t, 30*time.Second, "telemetry at the hub", func() (bool, string) {
		n := len(hub.Telemetry("sim-1"))
		return n >= 5, fmt.Sprintf("%d messages", n)
	})
	waitReady(t, addr, "", "", 30*time.Second)
	// Counters of closed reason sets are there at 0 before the first
	// event, so that a scraper's increase() sees the first one.
	m := lintMetrics(t, addr)
	for _, want := range []string{
		`edgegw_identity_reconnects_total{identity="sim-1",reason="connection_lost"} 0`,
		`edgegw_identity_reconnects_total{identity="sim-1",reason="token_renewal"} 0`,
		`edgegw_identity_buffer_dropped_messages_total{identity="sim-1",reason="full"} 0`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics before any reconnect or drop lack %s", want)
		}
	}

	hub.Close()
	stopped := time.Now()
	r := waitReady(t, addr, ops.IdentityStalled, "sim-1", 60*time.Second)
	t.Logf("not ready %v after the hub stopped: %+v", time.Since(stopped).Round(100*time.Millisecond), r.Reasons)
	if hz := getText(t, addr, "/healthz"); hz != "ok\n" {
		t.Errorf("healthz while the hub is away = %q; liveness must not follow the hub", hz)
	}
	if m := lintMetrics(t, addr); !strings.Contains(m, "edgegw_ready 0") || !strings.Contains(m, `edgegw_identity_connected{identity="sim-1"} 0`) {
		t.Errorf("metrics while the hub is away lack edgegw_ready 0 or connected 0")
	}

	hub2 := &hubsim.Hub{DataDir: hubDir, MQTTAddr: mqttAddr, Logger: testLogger(t)}
	if err := hub2.Start(context.Background()); err != nil {
		t.Fatalf("restart the hub on %s: %v", mqttAddr, err)
	}
	t.Cleanup(func() { hub2.Close() })
	back := time.Now()
	waitReady(t, addr, "", "", 60*time.Second)
	t.Logf("ready %v after the hub came back", time.Since(back).Round(100*time.Millisecond))
	st := statusOf(t, addr)
	id := st.Identities[0]
	if !id.Connected || id.LastError == nil || id.LastError.Cleared == nil || id.LastError.Cleared.Before(id.LastError.Time) {
		t.Errorf("identity after recovery: connected %v, last error %+v; want connected with the error cleared", id.Connected, id.LastError)
	}
	if id.ReconnectsByReason[northboundLost] < 1 || id.Reconnects < 1 {
		t.Errorf("reconnects %d by reason %v; want one after %s", id.Reconnects, id.ReconnectsByReason, northboundLost)
	}
}

const northboundLost = "connection_lost"

// TestReadyzDiskFull fills the buffer's filesystem (a real tmpfs): the
// queue refuses appends and readiness says disk_full; with the space back
// it recovers.
func TestReadyzDiskFull(t *testing.T) {
	mnt := testpeer.Tmpfs(t, 64<<20)
	y := fmt.Sprintf(simConfig, mnt, `buffer: {min_free_bytes: 16777216}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}`, "")
	cfg, err := Parse("ready-disk.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	addr := gw.StatusAddr()
	waitReady(t, addr, "", "", 30*time.Second)
	ballast := testpeer.FillTo(t, mnt, 8<<20) // below the 16 MiB reserve
	r := waitReady(t, addr, ops.DiskFull, "", 60*time.Second)
	t.Logf("not ready: %+v", r.Reasons)
	waitCond(t, 30*time.Second, "refused appends counted", func() (bool, string) {
		st := statusOf(t, addr)
		return st.Buffer.DiskFull && st.Buffer.AppendErrors > 0, fmt.Sprintf("%+v", st.Buffer)
	})
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitReady(t, addr, "", "", 60*time.Second)
}

const deadSlaveConfig = `
state_dir: %s
log: {level: warn}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
status: {listen: "127.0.0.1:0", stall_after: 30s}
identities:
  - id: boiler-1
southbound:
  - name: plc
    modbus:
      tcp: %s
      timeout: 300ms
      backoff_max: 1s
      devices:
        - name: boiler
          unit: 1
          poll: 100ms
          points:
            - {name: temperature, table: input, address: 0, type: int16, scale: 0.1, unit: degC}
            - {name: missing, table: holding, address: 300}
            - {name: running, table: coil, address: 0, writable: true}
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: boiler-1, password: pw, device: boiler-1}
mapping:
  devices:
    - adapter: plc
      device: boiler
      identity: boiler-1
      points:
        - {name: temperature}
        - {name: running, writable: true, type: bool}
  methods:
    - identity: boiler-1
      name: start
      actions:
        - {kind: write, adapter: plc, device: boiler, point: running, value: true}
      response: '{"running":true}'
`

// TestReadyzDeadModbusSlave stops the Modbus slave (simonvetter/modbus):
// the adapter reaches none of its devices and readiness says so; the slave
// back on its address, readiness recovers. Before that, /metrics of this
// gateway (Modbus with an exception every poll, a LAN broker, a method
// call) passes promtool.
func TestReadyzDeadModbusSlave(t *testing.T) {
	slave := startE2ESlave(t)
	slave.setInput(0, 215)
	cfg, err := Parse("ready-modbus.yaml", fmt.Appendf(nil, deadSlaveConfig, t.TempDir(), slave.addr))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	addr := gw.StatusAddr()
	waitReady(t, addr, "", "", 30*time.Second)
	svc := newServiceClient(t, gw.Hub())
	if res := svc.invoke(t, "boiler-1", "start", "{}"); res.Status != 200 {
		t.Fatalf("method start: %+v", res)
	}
	// The listener answers from a snapshot up to a second old: wait until
	// one holds all of it, then lint the metrics of that snapshot.
	waitCond(t, 30*time.Second, "an exception counted, a request timed, the command recorded", func() (bool, string) {
		st := statusOf(t, addr)
		method := slices.ContainsFunc(st.Commands.Recent, func(c ops.CommandRecord) bool { return c.Kind == "method" && c.Name == "start" })
		if len(st.Identities) != 1 || !st.Identities[0].Connected || !method {
			return false, fmt.Sprintf("identities %+v, commands %+v", st.Identities, st.Commands)
		}
		for _, a := range st.Adapters {
			if a.Modbus != nil && len(a.Modbus.Devices) == 1 {
				d := a.Modbus.Devices[0]
				return d.Exceptions["2"] > 0 && d.Latency.Count > 0, fmt.Sprintf("%+v", d)
			}
		}
		return false, "no modbus adapter"
	})
	m := lintMetrics(t, addr)
	for _, want := range []string{
		`edgegw_modbus_device_exceptions_total{adapter="plc",code="2",device="boiler"}`,
		`edgegw_modbus_device_request_duration_seconds_bucket{adapter="plc",device="boiler",le="+Inf"}`,
		`edgegw_modbus_device_up{adapter="plc",device="boiler"} 1`,
		`edgegw_commands_total{kind="method",status="200"} 1`,
		`edgegw_lan_clients{adapter="lan"} 0`,
		`edgegw_identity_connected{identity="boiler-1"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if st := statusOf(t, addr); !slices.ContainsFunc(st.Commands.Recent, func(c ops.CommandRecord) bool {
		return c.Kind == "method" && c.Name == "start" && c.Status == 200
	}) {
		t.Errorf("recent commands: %+v", st.Commands.Recent)
	}

	slave.stop()
	r := waitReady(t, addr, ops.AdapterUnreachable, "plc", 30*time.Second)
	t.Logf("not ready: %+v", r.Reasons)
	startE2ESlaveAt(t, slave.addr)
	waitReady(t, addr, "", "", 30*time.Second)
}
