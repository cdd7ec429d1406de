package gateway

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/ops"
	"github.com/edgegw/edgegw/southbound/opcua"
)

// The OPC UA road end to end: a node-opcua server (third-party, npm) as
// the boiler's controller over Basic256Sha256/SignAndEncrypt, the whole
// gateway in-process with its embedded hub, and the hub's service REST API
// as the cloud side. A second OPC UA adapter points at a server that never
// answers.
const opcuaE2EConfig = `
state_dir: %s
log: {level: warn}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
status: {listen: "127.0.0.1:0"}
identities:
  - id: boiler-1
southbound:
  - name: opc
    opcua:
      endpoint: %s
      security: {policy: Basic256Sha256, mode: SignAndEncrypt}
      trusted: ["%s"]
      auth: {kind: username, username: operator, password: s3cret}
      devices:
        - name: boiler
          interval: 50ms
          points:
            - {name: temperature, node: "ns=1;s=Boiler.Temperature", type: double, unit: degC}
            - {name: temps, node: "ns=1;s=Boiler.Temps", type: double, length: 4}
            - {name: firmware, node: "ns=1;s=Boiler.Firmware", type: string}
            - {name: setpoint, node: "ns=1;s=Boiler.Setpoint", type: double, writable: true}
          methods:
            - {name: start, object: "ns=1;s=Boiler", method: "ns=1;s=Boiler.Start", inputs: [double, uint32], outputs: [accepted, message]}
  - name: hung
    opcua:
      endpoint: opc.tcp://%s/UA
      timeout: 1s
      backoff_max: 1s
      devices:
        - name: other
          points:
            - {name: x, node: "ns=1;i=5", type: double}
mapping:
  devices:
    - adapter: opc
      device: boiler
      identity: boiler-1
      body: {timestamp: ts}
      points:
        - {name: temperature}
        - {name: "temps[0]", field: t0}
        - {name: "temps[3]", field: t3}
        - {name: firmware, property: true}
        - {name: setpoint, property: true, writable: true, type: float, min: 40, max: 90}
  methods:
    - identity: boiler-1
      name: start
      params:
        - {name: power, type: float, min: 0, max: 100}
        - {name: duration, type: uint, optional: true, default: 60}
      actions:
        - {kind: call, adapter: opc, device: boiler, method: start, args: [power, duration]}
`

func TestOPCUAEndToEnd(t *testing.T) {
	srv := testpeer.StartOPCUAServer(t, t.TempDir())
	pemData, err := os.ReadFile(srv.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	if block == nil {
		t.Fatal("server certificate is not PEM")
	}
	cfg, err := Parse("opcua-e2e.yaml", fmt.Appendf(nil, opcuaE2EConfig, t.TempDir(), srv.Endpoint,
		opcua.Thumbprint(block.Bytes), testpeer.HungServer(t)))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	hub := gw.Hub()
	svc := newServiceClient(t, hub)

	telemetry := func(t *testing.T, what string, cond func(map[string]any) bool) map[string]any {
		t.Helper()
		var found map[string]any
		waitCond(t, 30*time.Second, what, func() (bool, string) {
			msgs := hub.Telemetry("boiler-1")
			for _, m := range msgs {
				var body map[string]any
				if err := json.Unmarshal(m.Body, &body); err != nil {
					t.Fatalf("telemetry body %q: %v", m.Body, err)
				}
				if cond(body) {
					found = body
					return true, ""
				}
			}
			if len(msgs) == 0 {
				return false, "no telemetry"
			}
			return false, fmt.Sprintf("%d messages, last %s", len(msgs), msgs[len(msgs)-1].Body)
		})
		return found
	}
	reported := func(t *testing.T, what string, cond func(map[string]any) bool) map[string]any {
		t.Helper()
		var rep map[string]any
		waitCond(t, 30*time.Second, what, func() (bool, string) {
			rep = svc.reported(t, "boiler-1")
			b, _ := json.Marshal(rep)
			return cond(rep), "reported " + string(b)
		})
		return rep
	}

	t.Run("subscription values reach the hub", func(t *testing.T) {
		// Values whose source timestamps lie more than an interval apart come
		// as separate messages.
		first := telemetry(t, "the first temperature", func(b map[string]any) bool { return b["temperature"] != nil })
		if !nearFloat(first["temperature"], 20) {
			t.Errorf("first telemetry %v", first)
		}
		arr := telemetry(t, "the array", func(b map[string]any) bool { return b["t0"] != nil })
		if !nearFloat(arr["t0"], 20.5) || !nearFloat(arr["temps[1]"], 21.5) || !nearFloat(arr["t3"], 23.5) {
			t.Errorf("array telemetry %v", arr)
		}
		ts, _ := first["ts"].(string)
		if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(at) > 5*time.Minute {
			t.Errorf("ts %q (%v): want the source timestamp", ts, err)
		}
		srv.Send(t, "set Boiler.Temperature 25.5")
		telemetry(t, "the new temperature", func(b map[string]any) bool { return nearFloat(b["temperature"], 25.5) })
		reported(t, "firmware in the twin", func(r map[string]any) bool { return r["firmware"] == "V1.2" })
	})

	t.Run("desired setpoint writes the node", func(t *testing.T) {
		mark := srv.Mark()
		v := svc.patchDesired(t, "boiler-1", map[string]any{"setpoint": 95})
		rep := reported(t, "the refusal of 95", func(r map[string]any) bool { a, ok := tryAck(r, "setpoint"); return ok && a.AV == v })
		if a := ackOf(t, rep, "setpoint"); a.AC != 400 {
			t.Errorf("setpoint 95 ack %+v, want 400", a)
		}
		v = svc.patchDesired(t, "boiler-1", map[string]any{"setpoint": 55.5})
		rep = reported(t, "the ack of 55.5", func(r map[string]any) bool { a, ok := tryAck(r, "setpoint"); return ok && a.AV == v })
		if a := ackOf(t, rep, "setpoint"); a.AC != 200 || !nearFloat(a.Value, 55.5) {
			t.Errorf("setpoint 55.5 ack %+v, want 200", a)
		}
		if got := srv.Lines(mark, "WRITE"); len(got) != 1 || got[0] != "WRITE Boiler.Setpoint 55.5" {
			t.Errorf("server saw writes %q, want only 55.5", got)
		}
	})

	t.Run("method call round trip", func(t *testing.T) {
		mark := srv.Mark()
		res := svc.invoke(t, "boiler-1", "start", `{"power": 40}`)
		if res.Status != 200 || !jsonEqual(res.Payload, `{"accepted":true,"message":"burner at 40% for 60s"}`) {
			t.Errorf("start: %d %s", res.Status, res.Payload)
		}
		res = svc.invoke(t, "boiler-1", "start", `{"power": 140}`)
		if res.Status != 400 {
			t.Errorf("start 140%%: %d %s, want 400", res.Status, res.Payload)
		}
		if got := srv.Lines(mark, "CALL"); len(got) != 1 || got[0] != "CALL Boiler.Start [40,60]" {
			t.Errorf("server saw calls %q", got)
		}
	})

	t.Run("a hung server stalls nothing", func(t *testing.T) {
		waitCond(t, 30*time.Second, "failed attempts on the hung server", func() (bool, string) {
			st := gw.Adapter("hung").(*opcua.Adapter).Stats()
			return st.ConnectErrs >= 1 && !st.Connected, st.LastError
		})
		st := gw.Adapter("opc").(*opcua.Adapter).Stats()
		if !st.Connected || st.Devices[0].Readings == 0 {
			t.Errorf("opc adapter: %+v", st)
		}
		if !strings.Contains(gw.Adapter("hung").(*opcua.Adapter).Stats().LastError, "get endpoints") {
			t.Errorf("hung adapter's last error: %q", gw.Adapter("hung").(*opcua.Adapter).Stats().LastError)
		}
	})

	t.Run("status, metrics and readiness", func(t *testing.T) {
		addr := gw.StatusAddr()
		r := waitReady(t, addr, ops.AdapterUnreachable, "hung", 30*time.Second)
		for _, x := range r.Reasons {
			if x.Subject == "opc" {
				t.Errorf("the connected adapter is a reason: %+v", x)
			}
		}
		st := statusOf(t, addr) // the listener's snapshot: up to a second older than the readiness
		byName := map[string]ops.Adapter{}
		for _, a := range st.Adapters {
			byName[a.Name] = a
		}
		opc, hung := byName["opc"].OPCUA, byName["hung"].OPCUA
		if byName["opc"].Kind != "opcua" || opc == nil || hung == nil {
			t.Fatalf("adapters %+v", st.Adapters)
		}
		if !opc.Connected || opc.Connects < 1 || opc.Security != "Basic256Sha256/SignAndEncrypt" || opc.Endpoint != srv.Endpoint ||
			len(opc.Devices) != 1 || opc.Devices[0].Name != "boiler" || opc.Devices[0].Readings == 0 ||
			opc.Devices[0].Writes != 1 || opc.Devices[0].Calls != 1 {
			t.Errorf("opc adapter %+v", opc)
		}
		if hung.Connected || hung.ConnectErrors == 0 || hung.LastError == nil || hung.LastError.Cleared != nil || hung.Devices[0].Name != "other" {
			t.Errorf("hung adapter %+v", hung)
		}
		m := lintMetrics(t, addr)
		for _, want := range []string{
			`edgegw_opcua_connected{adapter="opc"} 1`,
			`edgegw_opcua_connected{adapter="hung"} 0`,
			`edgegw_opcua_error{adapter="hung"} 1`,
			`edgegw_opcua_device_calls_total{adapter="opc",device="boiler"} 1`,
			`edgegw_opcua_device_writes_total{adapter="opc",device="boiler"} 1`,
			`edgegw_opcua_device_values_total{adapter="hung",device="other"} 0`,
			`edgegw_not_ready_reasons{kind="adapter_unreachable"} 1`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		t.Logf("not ready: %+v", r.Reasons)
	})
}
