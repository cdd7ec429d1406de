package gateway

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// sdkRig is a gateway between the official Azure IoT Node SDKs
// (hubsim/sdktest) and a hubsim: devices connect to the gateway's LAN TLS
// listener with GatewayHostName, as leaf devices of a transparent
// gateway; the service side (azure-iothub) talks to hubsim.
type sdkRig struct {
	hub   *hubsim.Hub
	gw    *Gateway
	dir   string // hubsim/sdktest
	node  string
	env   []string
	keys  map[string]string
	lanTo string // GatewayHostName value
}

func newSDKRig(t *testing.T, devices ...string) *sdkRig {
	t.Helper()
	dir, err := filepath.Abs("../hubsim/sdktest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "azure-iot-device")); err != nil {
		testpeer.Missing(t, "hubsim/sdktest/node_modules missing: run `npm ci --prefix hubsim/sdktest` (make deps)")
	}
	node := testpeer.RequireTool(t, "node")
	hub := &hubsim.Hub{Logger: testLogger(t)}
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	tmp := t.TempDir()
	hubCA := filepath.Join(tmp, "hub-ca.pem")
	if err := os.WriteFile(hubCA, hub.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	lanCA, cert, key := testpeer.ServerCert(t, tmp, "localhost", "127.0.0.1")
	r := &sdkRig{hub: hub, dir: dir, node: node, keys: map[string]string{}}
	var ids, users strings.Builder
	for _, id := range devices {
		d, err := hub.CreateDevice(id)
		if err != nil {
			t.Fatal(err)
		}
		r.keys[id] = d.PrimaryKey
		fmt.Fprintf(&ids, "  - {id: %s, key: %s}\n", id, d.PrimaryKey)
		fmt.Fprintf(&users, "        - {username: %s, device: %s, sas_key: %s}\n", id, id, d.PrimaryKey)
	}
	y := fmt.Sprintf(`
state_dir: %s
log: {level: warn}
hub: {host: localhost, port: %d, ca_file: %s}
identities:
%ssouthbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      tls: {cert_file: %s, key_file: %s}
      method_timeout: 5s
      users:
%s`, filepath.Join(tmp, "state"), portOf(hub.MQTTAddress()), hubCA, ids.String(), cert, key, users.String())
	cfg, err := Parse("sdk.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	r.gw = startGateway(t, cfg)
	r.lanTo = fmt.Sprintf("localhost:%d", portOf(r.gw.Adapter("lan").(*lanmqtt.Adapter).Addr().String()))

	// Node trusts one extra CA file: both the hub's (service REST) and the
	// gateway's LAN CA.
	cas := filepath.Join(tmp, "cas.pem")
	lanPEM, _ := os.ReadFile(lanCA)
	if err := os.WriteFile(cas, append(hub.CACertPEM(), lanPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	owner, _ := hub.Policy("iothubowner")
	svcToken, err := hubsim.NewSAS(hub.HostName, owner.Name, owner.PrimaryKey, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, httpPort, _ := strings.Cut(hub.HTTPAddress(), ":")
	r.env = append(os.Environ(),
		"NODE_EXTRA_CA_CERTS="+cas,
		"NODE_OPTIONS=--require "+filepath.Join(dir, "port-shim.js"),
		"HUBSIM_HOST="+hub.HostName,
		"HUBSIM_HTTP_PORT="+httpPort,
		"HUBSIM_SERVICE_TOKEN="+svcToken,
		"SERVICE_CS="+hub.ServiceConnectionString(),
	)
	return r
}

// cs is a device connection string that reaches the hub through the
// gateway.
func (r *sdkRig) cs(id string) string {
	return fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s;GatewayHostName=%s", r.hub.HostName, id, r.keys[id], r.lanTo)
}

// run runs a scenario script of hubsim/sdktest as device id.
func (r *sdkRig) run(t *testing.T, script, id string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.node, script)
	cmd.Dir = r.dir
	cmd.Env = append(append(append([]string(nil), r.env...), "DEVICE_CS="+r.cs(id), "DEVICE_ID="+id), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out.String())
	}
	t.Logf("node %s: %s", script, strings.TrimSpace(out.String()))
}

// TestRelayNodeSDK runs the official Azure IoT Node SDK scenarios that
// pass against hubsim directly through the gateway instead: the device
// takes the gateway as its hub (GatewayHostName, the gateway's LAN TLS,
// its own SAS key) and the service side talks to the hub.
func TestRelayNodeSDK(t *testing.T) {
	r := newSDKRig(t, "node-tel", "node-twin", "node-method", "node-c2d", "node-renew")
	t.Run("telemetry", func(t *testing.T) {
		r.run(t, "telemetry.js", "node-tel")
		waitCond(t, 10*time.Second, "3 messages at the hub", func() (bool, string) {
			n := len(r.hub.Telemetry("node-tel"))
			return n == 3, fmt.Sprintf("%d", n)
		})
		m := r.hub.Telemetry("node-tel")[0]
		if string(m.Body) != `{"temperature":21.5}` || m.MessageID != "mid-1" || m.CorrelationID != "cid 1" ||
			m.ContentType != "application/json" || m.ContentEncoding != "utf-8" {
			t.Errorf("message = %+v", m)
		}
		if v, _ := m.Property("alert"); v != "yes&no=maybe/so" {
			t.Errorf("alert = %q (%v)", v, m.Properties)
		}
		if v, _ := m.Property("unit"); v != "°C" {
			t.Errorf("unit = %q", v)
		}
	})
	t.Run("twin", func(t *testing.T) {
		if _, err := r.hub.PatchDesired("node-twin", "", map[string]any{"interval": 5}); err != nil {
			t.Fatal(err)
		}
		// The gateway learns the desired section when its identity
		// connects; the device reads it from the gateway.
		waitCond(t, 10*time.Second, "the gateway's twin of node-twin", func() (bool, string) {
			doc := string(r.gw.twinsForTest().Twin(edgegw.DeviceID("node-twin")))
			return strings.Contains(doc, `"interval":5`), doc
		})
		r.run(t, "relay-twin.js", "node-twin")
		tw, _ := r.hub.Twin("node-twin", "")
		if tw.Properties.Reported["fw"] != "1.0" || tw.Properties.Desired["mode"] != "eco" {
			t.Errorf("twin = %+v", tw.Properties)
		}
	})
	t.Run("method", func(t *testing.T) {
		r.run(t, "method.js", "node-method")
	})
	t.Run("c2d", func(t *testing.T) {
		if _, err := r.hub.SendC2D("node-c2d", hubsim.C2DMessage{Body: []byte("hello device"), MessageID: "c2d-1", CorrelationID: "corr-1",
			ContentType: "text/plain", Properties: []edgegw.Property{{Key: "color", Value: "blue & green"}}}); err != nil {
			t.Fatal(err)
		}
		r.run(t, "c2d.js", "node-c2d")
		waitCond(t, 10*time.Second, "c2d completed", func() (bool, string) {
			n := len(r.hub.PendingC2D("node-c2d"))
			return n == 0, fmt.Sprintf("%d pending", n)
		})
	})
	t.Run("badkey", func(t *testing.T) {
		good := r.keys["node-tel"]
		r.keys["node-tel"] = hubsim.NewKey() // a key the gateway's LAN user does not have
		defer func() { r.keys["node-tel"] = good }()
		r.run(t, "badkey.js", "node-tel")
	})
	t.Run("renewal", func(t *testing.T) {
		r.run(t, "renewal.js", "node-renew")
		waitCond(t, 10*time.Second, "8 messages at the hub", func() (bool, string) {
			n := len(r.hub.Telemetry("node-renew"))
			return n == 8, fmt.Sprintf("%d", n)
		})
	})
}
