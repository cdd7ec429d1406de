package hubsim

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// needTool skips the test when a tool is missing, unless CI is set: then
// it fails, so CI never skips silently.
func needTool(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TestNodeSDK runs the official Azure IoT Node.js SDKs (azure-iot-device,
// azure-iot-device-mqtt, azure-iothub, pinned in sdktest/package.json)
// against hubsim. Run `npm ci --prefix hubsim/sdktest` first.
func TestNodeSDK(t *testing.T) {
	dir, err := filepath.Abs("sdktest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "azure-iot-device")); err != nil {
		needTool(t, "hubsim/sdktest/node_modules missing: run `npm ci --prefix hubsim/sdktest` to test with the Node SDKs")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		needTool(t, "node not found in PATH: install Node.js 20 to test with the Node SDKs")
	}
	h := startHub(t, func(h *Hub) { h.ClockSkew = -1 })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, h.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	owner, _ := h.Policy("iothubowner")
	svcToken, err := NewSAS(h.HostName, owner.Name, owner.PrimaryKey, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, httpPort, _ := strings.Cut(h.HTTPAddress(), ":")
	_, mqttPort, _ := strings.Cut(h.MQTTAddress(), ":")
	baseEnv := append(os.Environ(),
		"NODE_EXTRA_CA_CERTS="+caFile,
		"NODE_OPTIONS=--require "+filepath.Join(dir, "port-shim.js"),
		"HUBSIM_HOST="+h.HostName,
		"HUBSIM_HTTP_PORT="+httpPort,
		"HUBSIM_SERVICE_TOKEN="+svcToken,
		"SERVICE_CS="+h.ServiceConnectionString(),
	)
	sasCS := func(id string) string {
		mustDevice(t, h, id)
		cs, err := h.DeviceConnectionString(id, "")
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	runNode := func(t *testing.T, script string, env ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, script)
		cmd.Dir = dir
		cmd.Env = append(append([]string(nil), baseEnv...), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("node %s: %v\n%s", script, err, out.String())
		}
		t.Logf("node %s: %s", script, strings.TrimSpace(out.String()))
	}

	t.Run("telemetry", func(t *testing.T) {
		t.Parallel()
		runNode(t, "telemetry.js", "DEVICE_CS="+sasCS("node-tel"))
		got := h.Telemetry("node-tel")
		if len(got) != 3 {
			t.Fatalf("got %d messages, want 3", len(got))
		}
		m := got[0]
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
		st, _ := h.Status("node-tel", "")
		if st.Connects != 1 {
			t.Errorf("connects = %d", st.Connects)
		}
	})
	t.Run("c2d", func(t *testing.T) {
		t.Parallel()
		cs := sasCS("node-c2d")
		if _, err := h.SendC2D("node-c2d", C2DMessage{Body: []byte("hello device"), MessageID: "c2d-1", CorrelationID: "corr-1",
			ContentType: "text/plain", Properties: []edgegw.Property{{Key: "color", Value: "blue & green"}}}); err != nil {
			t.Fatal(err)
		}
		runNode(t, "c2d.js", "DEVICE_CS="+cs, "DEVICE_ID=node-c2d")
		waitFor(t, "c2d completed", func() bool { return len(h.PendingC2D("node-c2d")) == 0 })
	})
	t.Run("twin", func(t *testing.T) {
		t.Parallel()
		cs := sasCS("node-twin")
		if _, err := h.PatchDesired("node-twin", "", map[string]any{"interval": 5}); err != nil {
			t.Fatal(err)
		}
		runNode(t, "twin.js", "DEVICE_CS="+cs, "DEVICE_ID=node-twin")
		tw, _ := h.Twin("node-twin", "")
		if tw.Properties.Reported["fw"] != "1.0" || tw.Properties.Desired["mode"] != "eco" || tw.Tags["site"] != "plant-1" {
			t.Errorf("twin = %+v", tw)
		}
	})
	t.Run("method", func(t *testing.T) {
		t.Parallel()
		runNode(t, "method.js", "DEVICE_CS="+sasCS("node-method"), "DEVICE_ID=node-method")
	})
	t.Run("renewal", func(t *testing.T) {
		t.Parallel()
		runNode(t, "renewal.js", "DEVICE_CS="+sasCS("node-renew"))
		st, _ := h.Status("node-renew", "")
		if st.Connects < 3 {
			t.Errorf("connects = %d, want >= 3 (a new token every 2 s for 8 s)", st.Connects)
		}
		if n := len(h.Telemetry("node-renew")); n != 8 {
			t.Errorf("telemetry = %d, want 8", n)
		}
	})
	t.Run("x509", func(t *testing.T) {
		t.Parallel()
		certPEM, keyPEM, tp, err := NewSelfSignedCert("node-x509")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.AddDevice(Device{ID: "node-x509", Auth: AuthSelfSigned, PrimaryThumbprint: tp}); err != nil {
			t.Fatal(err)
		}
		tmp := t.TempDir()
		cert, key := filepath.Join(tmp, "cert.pem"), filepath.Join(tmp, "key.pem")
		os.WriteFile(cert, certPEM, 0o600)
		os.WriteFile(key, keyPEM, 0o600)
		// The connection string hubsim prints for an X.509 device works as is.
		cs, err := h.DeviceConnectionString("node-x509", "")
		if err != nil || cs != "HostName=localhost:"+mqttPort+";DeviceId=node-x509;x509=true" {
			t.Fatalf("connection string %q, %v", cs, err)
		}
		runNode(t, "x509.js", "DEVICE_CS="+cs, "CERT_FILE="+cert, "KEY_FILE="+key)
		if n := len(h.Telemetry("node-x509")); n != 1 {
			t.Errorf("telemetry = %d, want 1", n)
		}
	})
	t.Run("x509-ca", func(t *testing.T) {
		t.Parallel()
		if _, err := h.AddDevice(Device{ID: "node-x509ca", Auth: AuthCA}); err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, err := h.IssueDeviceCert("node-x509ca")
		if err != nil {
			t.Fatal(err)
		}
		tmp := t.TempDir()
		cert, key := filepath.Join(tmp, "cert.pem"), filepath.Join(tmp, "key.pem")
		os.WriteFile(cert, certPEM, 0o600)
		os.WriteFile(key, keyPEM, 0o600)
		cs, err := h.DeviceConnectionString("node-x509ca", "")
		if err != nil {
			t.Fatal(err)
		}
		runNode(t, "x509.js", "DEVICE_CS="+cs, "CERT_FILE="+cert, "KEY_FILE="+key)
	})
	t.Run("badkey", func(t *testing.T) {
		t.Parallel()
		mustDevice(t, h, "node-bad")
		cs := "HostName=localhost;DeviceId=node-bad;SharedAccessKey=" + NewKey() + ";GatewayHostName=localhost:" + mqttPort
		runNode(t, "badkey.js", "DEVICE_CS="+cs)
	})
}
