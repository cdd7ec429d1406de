package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/iothub"
)

// externalHub starts a hubsim with device id and returns it with a gateway
// config that relays that device: the hub can then be taken away.
func externalHub(t *testing.T, id string) (*hubsim.Hub, string) {
	t.Helper()
	hub := &hubsim.Hub{Logger: testLogger(t)}
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	d, err := hub.CreateDevice(id)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "hub-ca.pem")
	if err := os.WriteFile(caFile, hub.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`
state_dir: %s
log: {level: warn}
hub: {host: localhost, port: %d, ca_file: %s}
identities:
  - {id: %s, key: %s}
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: %s, password: pw, device: %s}
`, filepath.Join(dir, "state"), portOf(hub.MQTTAddress()), caFile, id, d.PrimaryKey, id, id)
	return hub, y
}

// runGatewayUntil runs a gateway on the config y (see runGateway).
func runGatewayUntil(t *testing.T, y string) (*Gateway, func()) {
	t.Helper()
	cfg, err := Parse("relay-offline.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return runGateway(t, cfg)
}

// TestRelayOffline: with the hub away, a relayed device's twin GET is
// answered from the twin the gateway keeps on disk (also after a restart),
// its reported patches are answered and queued, and once the hub is back
// they reach it in order, with the telemetry sent between them.
func TestRelayOffline(t *testing.T) {
	hub, y := externalHub(t, "leaf-1")
	if _, err := hub.PatchDesired("leaf-1", "", map[string]any{"interval": 5}); err != nil {
		t.Fatal(err)
	}
	gw, stop := runGatewayUntil(t, y)
	l := newLeaf(t, gw, iothubSubs...)
	waitCond(t, 10*time.Second, "the hub's twin in the gateway", func() (bool, string) {
		st, _, body := l.request(t, "$iothub/twin/GET/", "g0", " ")
		return st == 200 && strings.Contains(string(body), `"interval":5`), string(body)
	})

	hub.SetFaults(hubsim.Faults{RefuseConnect: 3}) // the hub goes away
	hub.DropConnections()
	for i := 1; i <= 5; i++ {
		if st, _, _ := l.request(t, "$iothub/twin/PATCH/properties/reported/", fmt.Sprintf("p%d", i), fmt.Sprintf(`{"n":%d}`, i)); st != 204 {
			t.Fatalf("reported PATCH %d while offline answered %d", i, st)
		}
		if tok := l.c.Publish("devices/leaf-1/messages/events/seq="+strconv.Itoa(i), 1, false, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("telemetry %d: %v", i, tok.Error())
		}
	}
	if st, _, body := l.request(t, "$iothub/twin/GET/", "g1", " "); st != 200 || !strings.Contains(string(body), `"n":5`) || !strings.Contains(string(body), `"interval":5`) {
		t.Fatalf("GET while offline: %d %s", st, body)
	}

	// A restart while the hub is still away: the twin comes from disk.
	l.c.Disconnect(100)
	stop()
	gw, _ = runGatewayUntil(t, y)
	l = newLeaf(t, gw, iothubSubs...)
	if st, _, body := l.request(t, "$iothub/twin/GET/", "g2", " "); st != 200 || !strings.Contains(string(body), `"n":5`) || !strings.Contains(string(body), `"interval":5`) {
		t.Fatalf("GET after a restart while offline: %d %s", st, body)
	}
	if st, _, _ := l.request(t, "$iothub/twin/PATCH/properties/reported/", "p6", `{"n":6}`); st != 204 {
		t.Fatalf("reported PATCH after restart answered %d", st)
	}

	hub.SetFaults(hubsim.Faults{}) // the hub is back
	waitCond(t, 30*time.Second, "the reported patches and telemetry at the hub", func() (bool, string) {
		tw, _ := hub.Twin("leaf-1", "")
		n := len(hub.Telemetry("leaf-1"))
		return fmt.Sprint(tw.Properties.Reported["n"]) == "6" && n >= 5, fmt.Sprintf("reported %v, %d messages", tw.Properties.Reported, n)
	})
	last := 0
	for _, m := range hub.Telemetry("leaf-1") {
		seq, _ := strconv.Atoi(propValue(m.Properties, "seq"))
		if seq < last {
			t.Fatalf("telemetry out of order: %d after %d", seq, last)
		}
		last = seq
	}
}

// TestRelayKill9LosesNoReportedPatch kills the gateway with SIGKILL at
// random moments while a relayed device sends reported patches, each
// waiting for its answer. Every patch answered 204 reaches the hub: the
// hub's twin ends with the last one answered (patches are applied in
// order, so the last one wins).
func TestRelayKill9LosesNoReportedPatch(t *testing.T) {
	const kills = 4
	hub, y := externalHub(t, "leaf-1")
	cfgPath := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	answered, next := 0, 1
	// patch sends reported patches {"n": next} until stop closes or an
	// answer does not come.
	patch := func(addr string, stop <-chan struct{}) {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("leaf-1").
			SetUsername("leaf-1").SetPassword("pw").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		res := make(chan string, 1)
		opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			select {
			case res <- m.Topic():
			default:
			}
		})
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return
		}
		defer c.Disconnect(0)
		if tok := c.Subscribe("$iothub/twin/res/#", 0, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			n := next
			next++
			mu.Unlock()
			rid := "r" + strconv.Itoa(n)
			c.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+rid, 0, false, fmt.Sprintf(`{"n":%d}`, n))
			select {
			case topic := <-res:
				props, _ := iothub.ParseBag(strings.SplitN(topic, "?", 2)[1])
				if !strings.HasPrefix(topic, "$iothub/twin/res/204/") || propValue(props, "$rid") != rid {
					return
				}
				mu.Lock()
				answered = n
				mu.Unlock()
			case <-time.After(5 * time.Second):
				return
			}
		}
	}
	for round := 0; round <= kills; round++ {
		ch := startChild(t, cfgPath)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { patch(ch.addr, stop) })
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
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
	mu.Lock()
	want := answered
	mu.Unlock()
	if want < 20 {
		t.Fatalf("only %d patches answered; the test proves little", want)
	}
	waitCond(t, 30*time.Second, fmt.Sprintf("the hub's reported n to reach %d, the last patch answered", want), func() (bool, string) {
		tw, _ := hub.Twin("leaf-1", "")
		b, _ := json.Marshal(tw.Properties.Reported)
		n, _ := strconv.Atoi(fmt.Sprint(tw.Properties.Reported["n"]))
		return n >= want, string(b)
	})
}
