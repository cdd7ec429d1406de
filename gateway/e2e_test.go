package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// skeletonConfig is a gateway with an embedded hub, one identity, and a LAN
// broker where that identity's device may publish, all on ephemeral ports.
func skeletonConfig(t *testing.T) *Config {
	t.Helper()
	y := fmt.Sprintf(`
state_dir: %s
log: {level: warn}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
identities:
  - id: sensor-1
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: sensor-1, password: pw, device: sensor-1}
`, t.TempDir())
	cfg, err := Parse("skeleton.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startGateway runs a gateway on cfg until the test ends and waits for it
// to be ready.
func startGateway(t testing.TB, cfg *Config) *Gateway {
	t.Helper()
	gw, _ := runGateway(t, cfg)
	return gw
}

// runGateway runs a gateway on cfg, waits for it to be ready, and returns
// it with a function that stops it and waits (also called when the test
// ends).
func runGateway(t testing.TB, cfg *Config) (*Gateway, func()) {
	t.Helper()
	return runGatewayLog(t, cfg, testLogger(t))
}

// runGatewayLog is runGateway with the gateway logging to log.
func runGatewayLog(t testing.TB, cfg *Config, log *slog.Logger) (*Gateway, func()) {
	t.Helper()
	gw, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("gateway stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("gateway did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-gw.Ready():
	case err := <-done:
		done <- err // for stop
		t.Fatalf("gateway failed to start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway not ready within 30s")
	}
	return gw, stop
}

func lanClient(t testing.TB, gw *Gateway, id, password string) mqtt.Client {
	t.Helper()
	lan := gw.Adapter("lan").(*lanmqtt.Adapter)
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + lan.Addr().String()).
		SetClientID(id).SetUsername(id).SetPassword(password).
		SetAutoReconnect(false).SetCleanSession(true).SetOrderMatters(false)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("LAN connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TestSkeletonDeliversInOrder is the walking skeleton end to end: a LAN
// device publishes 1,000 QoS 1 messages to the embedded broker; each PUBACK
// means the message is in the buffer; northbound drains them over TLS with a
// SAS token to the hub emulator, which must record all 1,000 in order.
func TestSkeletonDeliversInOrder(t *testing.T) {
	const n = 1000
	gw := startGateway(t, skeletonConfig(t))
	c := lanClient(t, gw, "sensor-1", "pw")

	const window = 50 // QoS 1 publishes in flight at once
	toks := make(chan mqtt.Token, window)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for tok := range toks {
			if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
				errc <- fmt.Errorf("publish not acknowledged: %v", tok.Error())
				for range toks {
				}
				return
			}
		}
	}()
	for i := range n {
		topic := "devices/sensor-1/messages/events/seq=" + strconv.Itoa(i)
		toks <- c.Publish(topic, 1, false, fmt.Sprintf(`{"seq":%d}`, i))
	}
	close(toks)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got, err := gw.Hub().WaitTelemetry(ctx, "sensor-1", n)
	if err != nil {
		got := gw.Hub().Telemetry("sensor-1")
		seen := map[string]int{}
		for _, m := range got {
			seen[propValue(m.Properties, "seq")]++
		}
		var missing, dup []int
		for i := range n {
			switch seen[strconv.Itoa(i)] {
			case 0:
				missing = append(missing, i)
			case 1:
			default:
				dup = append(dup, i)
			}
		}
		t.Fatalf("hub received %d of %d: %v; missing %v, duplicated %v", len(got), n, err, missing, dup)
	}
	if len(got) != n {
		t.Fatalf("hub received %d messages, want exactly %d (no duplicates without a reconnect)", len(got), n)
	}
	for i, m := range got {
		var body struct{ Seq int }
		if err := json.Unmarshal(m.Body, &body); err != nil || body.Seq != i {
			t.Fatalf("message %d: body %q, want seq %d (order lost)", i, m.Body, i)
		}
		if v := propValue(m.Properties, "seq"); v != strconv.Itoa(i) {
			t.Fatalf("message %d: property seq = %q, want %d", i, v, i)
		}
	}
}

// TestStatusEndpoint checks that operations can read every room's state.
func TestStatusEndpoint(t *testing.T) {
	cfg := skeletonConfig(t)
	cfg.Status.Listen = "127.0.0.1:0"
	gw := startGateway(t, cfg)
	c := lanClient(t, gw, "sensor-1", "pw")
	if tok := c.Publish("devices/sensor-1/messages/events/", 1, false, `{"x":1}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := gw.Hub().WaitTelemetry(ctx, "sensor-1", 1); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + gw.StatusAddr() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Identities []struct {
			ID        string `json:"id"`
			Connected bool   `json:"connected"`
		} `json:"identities"`
		Buffer struct {
			Appended uint64 `json:"records_appended"`
		} `json:"buffer"`
		Adapters []struct {
			Name string          `json:"name"`
			LAN  json.RawMessage `json:"lanmqtt"`
		} `json:"adapters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Identities) != 1 || st.Identities[0].ID != "sensor-1" || !st.Identities[0].Connected {
		t.Errorf("identities = %+v, want sensor-1 connected", st.Identities)
	}
	if st.Buffer.Appended < 1 {
		t.Errorf("buffer appended = %d, want >= 1", st.Buffer.Appended)
	}
	if len(st.Adapters) != 1 || st.Adapters[0].Name != "lan" || len(st.Adapters[0].LAN) == 0 {
		t.Errorf("no stats for adapter lan: %+v", st.Adapters)
	}
	hz, err := http.Get("http://" + gw.StatusAddr() + "/healthz")
	if err != nil || hz.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", hz, err)
	}
	hz.Body.Close()
}
