package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// TestReloadStartsAFailedAdapterAgain: a LAN broker a reload adds on an
// address that is taken fails to start; the next reload starts it again,
// with the same file or with a new listen address (which a broker that
// runs keeps until a restart: this one has no session to keep), and the
// LAN device of the broker that did not change keeps its connection.
func TestReloadStartsAFailedAdapterAgain(t *testing.T) {
	const tmpl = `
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
  - name: lan2
    lanmqtt:
      listen: "%s"
      users:
        - {username: hall, password: pw, publish: ["hall/#"]}
`
	dir := t.TempDir()
	parse := func(name, lan2 string) *Config {
		t.Helper()
		cfg, err := Parse(name, fmt.Appendf(nil, tmpl, dir, lan2))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	taken := blocker.Addr().String()

	base := parse("base.yaml", "127.0.0.1:0")
	base.Southbound = base.Southbound[:1]
	var logs syncBuffer
	gw, _ := runGatewayLog(t, base, slog.New(slog.NewTextHandler(&logs, nil)))
	sensor, err := connectLAN(t, gw.Adapter("lan").(*lanmqtt.Adapter).Addr().String(), "sensor-1", "pw")
	if err != nil {
		t.Fatal(err)
	}

	failures := func(n int) func() (bool, string) {
		return func() (bool, string) {
			got := strings.Count(logs.String(), "an adapter started by a reload failed")
			return got == n, fmt.Sprintf("%d failures logged:\n%s", got, logs.String())
		}
	}
	for i := 1; i <= 2; i++ { // added, then tried again by a reload of the same file
		if err := gw.Reload(context.Background(), parse("next.yaml", taken)); err != nil {
			t.Fatal(err)
		}
		waitCond(t, 10*time.Second, fmt.Sprintf("failure %d of lan2 on a taken address", i), failures(i))
	}

	if err := gw.Reload(context.Background(), parse("next.yaml", "127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	var addr net.Addr
	waitCond(t, 10*time.Second, "lan2 listening on its new address", func() (bool, string) {
		a, _ := gw.Adapter("lan2").(*lanmqtt.Adapter)
		if a != nil {
			addr = a.Addr()
		}
		return addr != nil, logs.String()
	})
	if _, err := connectLAN(t, addr.String(), "hall", "pw"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "adapters=~lan2") {
		t.Errorf("the reload that started lan2 again does not say so:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "southbound.lan2.lanmqtt") {
		t.Errorf("lan2's new address was reported as needing a restart:\n%s", logs.String())
	}
	if n := sensor.lost.Load(); n != 0 || !sensor.IsConnectionOpen() {
		t.Errorf("the unchanged LAN device lost its connection %d times", n)
	}
}
