package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/configs"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/hubsim"
)

// qsPorts are the loopback addresses a test's quickstart config listens on.
type qsPorts struct{ lan, mqtt, http, status string }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// quickstartConfig writes the embedded quickstart config with its state in
// dir and free loopback ports instead of the fixed ones, so that tests run
// beside each other and beside a quickstart someone is running.
func quickstartConfig(t *testing.T, dir string) (string, qsPorts) {
	t.Helper()
	p := qsPorts{lan: freeAddr(t), mqtt: freeAddr(t), http: freeAddr(t), status: freeAddr(t)}
	y := string(configs.Quickstart)
	for _, r := range [][2]string{
		{"state_dir: edgegw-data", "state_dir: " + dir},
		{"listen: 127.0.0.1:9470", "listen: " + p.status},
		{"mqtt_listen: 127.0.0.1:8883", "mqtt_listen: " + p.mqtt},
		{"http_listen: 127.0.0.1:8443", "http_listen: " + p.http},
		{"listen: 127.0.0.1:1883", "listen: " + p.lan},
	} {
		if !strings.Contains(y, r[0]) {
			t.Fatalf("quickstart.yaml has no %q", r[0])
		}
		y = strings.Replace(y, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "quickstart.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: the machine may be loaded
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

func sasToken(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"sas-token"}, args...), &out, &errb); code != 0 {
		t.Fatalf("sas-token %v: exit %d: %s", args, code, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// TestQuickstartDownRoad runs the README's down-road walk-through on the
// quickstart: tokens from `edgegw sas-token` (a service token for the
// embedded hub's REST API, a device token for a keyless quickstart
// identity), then a direct method, a desired property and a C2D message
// received by a LAN device subscribed with its own client id.
func TestQuickstartDownRoad(t *testing.T) {
	dir := t.TempDir()
	cfgPath, ports := quickstartConfig(t, dir)
	hubDir := filepath.Join(dir, "hubsim")
	var out, errb bytes.Buffer
	if code := run([]string{"sas-token", "-config", cfgPath, "-identity", "demo-sensor"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), `identity "demo-sensor" has no key in the config, and the embedded hub has not registered it yet: run the gateway once`) {
		t.Fatalf("before the first run: exit %d, stderr %q", code, errb.String())
	}

	cfg, err := gateway.LoadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop within 30s")
		}
	})
	select {
	case <-gw.Ready():
	case err := <-done:
		done <- err
		t.Fatalf("gateway failed to start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway not ready within 30s")
	}
	waitFor(t, "the hub to save its registry", func() bool {
		_, err := hubsim.SavedDevice(hubDir, "demo-sensor")
		return err == nil
	})

	svc := sasToken(t, "-config", cfgPath, "-policy", "iothubowner", "-ttl", "10m")
	pem, err := os.ReadFile(filepath.Join(hubDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 40 * time.Second}
	_, httpPort, _ := net.SplitHostPort(ports.http)
	rest := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, "https://localhost:"+httpPort+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", svc)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// A direct method.
	st, body := rest("POST", "/twins/demo-boiler/methods?api-version=2021-04-12",
		`{"methodName": "setSetpoint", "payload": {"value": 65}, "responseTimeoutInSeconds": 30}`)
	var mres struct{ Status int }
	if json.Unmarshal(body, &mres); st != 200 || mres.Status != 200 {
		t.Fatalf("method: %d %s", st, body)
	}
	// A desired property, acknowledged in the reported properties.
	if st, body := rest("PATCH", "/twins/demo-boiler?api-version=2021-04-12", `{"properties": {"desired": {"setpoint": 66}}}`); st != 200 {
		t.Fatalf("desired: %d %s", st, body)
	}
	waitFor(t, "the setpoint acknowledged in the twin", func() bool {
		_, b := rest("GET", "/twins/demo-boiler?api-version=2021-04-12", "")
		var twin struct {
			Properties struct {
				Reported struct {
					Setpoint struct {
						Value float64 `json:"value"`
						AC    int     `json:"ac"`
					} `json:"setpoint"`
				} `json:"reported"`
			} `json:"properties"`
		}
		return json.Unmarshal(b, &twin) == nil && twin.Properties.Reported.Setpoint.Value == 66 && twin.Properties.Reported.Setpoint.AC == 200
	})
	// A C2D message to the LAN device, subscribed with its client id.
	got := make(chan string, 1)
	lan := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + ports.lan).SetClientID("demo-sensor").
		SetUsername("demo-sensor").SetPassword("demo-password").SetAutoReconnect(false))
	if tok := lan.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("LAN connect: %v", tok.Error())
	}
	defer lan.Disconnect(100)
	tok := lan.Subscribe("devices/demo-sensor/messages/devicebound/#", 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("LAN subscribe: %v", tok.Error())
	}
	if st, body := rest("POST", "/edgegw/devices/demo-sensor/messages", `{"open": "valve"}`); st/100 != 2 {
		t.Fatalf("c2d: %d %s", st, body)
	}
	select {
	case m := <-got:
		if m != `{"open": "valve"}` {
			t.Errorf("LAN device got %q", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no C2D message at the LAN device within 30s")
	}

	// The device token of a keyless quickstart identity is accepted by the
	// embedded hub (last: it takes the identity's connection over from the
	// gateway for a moment).
	devTok := sasToken(t, "-config", cfgPath, "-identity", "demo-sensor")
	_, mqttPort, _ := net.SplitHostPort(ports.mqtt)
	dev := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://localhost:" + mqttPort).SetClientID("demo-sensor").
		SetUsername("localhost/demo-sensor/?api-version=2021-04-12").SetPassword(devTok).
		SetTLSConfig(&tls.Config{RootCAs: roots}).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("hub refused the quickstart identity's token: %v", tok.Error())
	}
	dev.Disconnect(100)
}
