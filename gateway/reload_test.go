package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// The reload tests run the whole gateway in-process with its embedded hub,
// real LAN clients (paho) and a third-party Modbus slave, and change the
// config under them.

// reloadBase is the config before the reload: sensor-1 publishes over
// the LAN; old-1 has a key the hub does not know (its messages wait in
// the queue). %[1]s is the state dir; %[2]s the Modbus slave (unused
// until the reload adds the PLC).
const reloadBase = `
state_dir: %[1]s
log: {level: warn}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
identities:
  - id: sensor-1
  - id: old-1
    key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: sensor-1, password: pw, device: sensor-1}
        - {username: old-1, password: pw, device: old-1}
`

// reloadNext adds identity boiler-1 read from a Modbus PLC and a LAN user
// for it, removes old-1 and its user, and changes the log level (which
// needs a restart).
const reloadNext = `
state_dir: %[1]s
log: {level: debug}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
identities:
  - id: sensor-1
  - id: boiler-1
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: sensor-1, password: pw, device: sensor-1}
        - {username: newbie, password: pw2, device: boiler-1}
  - name: plc
    modbus:
      tcp: %[2]s
      timeout: 500ms
      backoff_max: 1s
      devices:
        - name: boiler
          unit: 1
          poll: 50ms
          points:
            - {name: temperature, table: input, address: 0, type: int16, scale: 0.1}
mapping:
  devices:
    - {adapter: plc, device: boiler, identity: boiler-1, deadband: 0, points: [{name: temperature}]}
`

// syncBuffer is a log sink tests read while the gateway writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lanDevice is a paho client that counts the connections it lost.
type lanDevice struct {
	mqtt.Client
	lost atomic.Int32
}

func connectLAN(t *testing.T, addr, user, password string) (*lanDevice, error) {
	t.Helper()
	d := &lanDevice{}
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(user).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetCleanSession(true).SetOrderMatters(false).
		SetConnectionLostHandler(func(mqtt.Client, error) { d.lost.Add(1) })
	d.Client = mqtt.NewClient(opts)
	if tok := d.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("LAN connect as %s: %v", user, tok.Error())
	}
	t.Cleanup(func() { d.Disconnect(100) })
	return d, nil
}

func (d *lanDevice) publish(t *testing.T, identity, body string) {
	t.Helper()
	tok := d.Publish("devices/"+identity+"/messages/events/", 1, false, body)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish as %s: %v", identity, tok.Error())
	}
}

// hubBodies returns the bodies the hub received from identity.
func hubBodies(r *modbusRig, identity string) []string {
	var out []string
	for _, m := range r.hub.Telemetry(identity) {
		out = append(out, string(m.Body))
	}
	return out
}

func hubHas(r *modbusRig, identity, body string) func() (bool, string) {
	return func() (bool, string) {
		got := hubBodies(r, identity)
		for _, b := range got {
			if b == body {
				return true, ""
			}
		}
		return false, fmt.Sprintf("hub has %q", got)
	}
}

// TestReloadAppliesTheDifference: a reload that adds an identity with a
// Modbus PLC and a LAN user, and removes another identity with its user,
// leaves the LAN device and hub connection that did not change alone (no
// reconnect on either side); the new user connects and the PLC's readings
// reach the hub; the removed identity's queued messages stay on disk (an
// identity added back later sends them); a reload whose identity cannot be
// loaded changes nothing.
func TestReloadAppliesTheDifference(t *testing.T) {
	slave := startE2ESlave(t)
	slave.setInput(0, 215)
	dir := t.TempDir()
	parse := func(name, tmpl string) *Config {
		t.Helper()
		cfg, err := Parse(name, fmt.Appendf(nil, tmpl, dir, slave.addr))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	var logs syncBuffer
	gw, _ := runGatewayLog(t, parse("base.yaml", reloadBase), slog.New(slog.NewTextHandler(&logs, nil)))
	r := &modbusRig{gw: gw, hub: gw.Hub(), slave: slave}
	lanAddr := gw.Adapter("lan").(*lanmqtt.Adapter).Addr().String()

	sensor, err := connectLAN(t, lanAddr, "sensor-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	sensor.publish(t, "sensor-1", `{"n":1}`)
	waitCond(t, 20*time.Second, "sensor-1's first message at the hub", hubHas(r, "sensor-1", `{"n":1}`))
	old, err := connectLAN(t, lanAddr, "old-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		old.publish(t, "old-1", fmt.Sprintf(`{"queued":%d}`, i)) // PUBACKed: on disk
	}
	hubBefore, err := r.hub.Status("sensor-1", "")
	if err != nil || !hubBefore.Connected {
		t.Fatalf("sensor-1 at the hub: %+v, %v", hubBefore, err)
	}

	// A reload that cannot be applied changes nothing.
	bad := parse("bad.yaml", reloadNext)
	bad.Identities[1].KeyFile = dir + "/missing.key"
	err = gw.Reload(context.Background(), bad)
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "bad.yaml: identities[1]") {
		t.Fatalf("reload with a missing key file: %v, want a ConfigError naming bad.yaml: identities[1]", err)
	}
	if gw.Adapter("plc") != nil || len(gw.Status().Identities) != 2 {
		t.Fatalf("a refused reload changed the gateway: adapters plc %v, identities %+v", gw.Adapter("plc"), gw.Status().Identities)
	}

	if err := gw.Reload(context.Background(), parse("next.yaml", reloadNext)); err != nil {
		t.Fatal(err)
	}

	// The new user connects and speaks for the new identity.
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + lanAddr).SetClientID("boiler-1").
		SetUsername("newbie").SetPassword("pw2").SetAutoReconnect(false)
	nc := mqtt.NewClient(opts)
	if tok := nc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("the new LAN user cannot connect: %v", tok.Error())
	}
	t.Cleanup(func() { nc.Disconnect(100) })
	if tok := nc.Publish("devices/boiler-1/messages/events/", 1, false, `{"from":"newbie"}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish as the new user: %v", tok.Error())
	}
	waitCond(t, 20*time.Second, "the new user's message at the hub", hubHas(r, "boiler-1", `{"from":"newbie"}`))
	// Its device is relayed and does not listen for methods: neither does
	// its identity at the hub (IoT Hub's own DeviceNotOnline).
	waitCond(t, 10*time.Second, "DeviceNotOnline for the new relayed identity", func() (bool, string) {
		_, err := r.hub.InvokeMethod(context.Background(), "boiler-1", "", hubsim.MethodRequest{Name: "m", ResponseTimeout: 5 * time.Second})
		return errors.Is(err, hubsim.ErrDeviceNotOnline), fmt.Sprint(err)
	})
	waitCond(t, 20*time.Second, "the new PLC's reading at the hub", func() (bool, string) {
		for _, b := range hubBodies(r, "boiler-1") {
			if strings.Contains(b, `"temperature":21.5`) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("hub has %q", hubBodies(r, "boiler-1"))
	})

	// The unchanged device and its hub connection saw nothing.
	sensor.publish(t, "sensor-1", `{"n":2}`)
	waitCond(t, 20*time.Second, "sensor-1's message after the reload", hubHas(r, "sensor-1", `{"n":2}`))
	if n := sensor.lost.Load(); n != 0 || !sensor.IsConnectionOpen() {
		t.Errorf("the unchanged LAN device lost its connection %d times", n)
	}
	hubAfter, _ := r.hub.Status("sensor-1", "")
	if hubAfter.Connects != hubBefore.Connects || !hubAfter.ConnectedAt.Equal(hubBefore.ConnectedAt) {
		t.Errorf("sensor-1 reconnected to the hub: before %+v, after %+v", hubBefore, hubAfter)
	}
	for _, st := range gw.Status().Identities {
		switch st.ID {
		case "sensor-1":
			if st.Reconnects != 0 {
				t.Errorf("sensor-1: %d reconnects", st.Reconnects)
			}
		case "old-1":
			t.Error("the removed identity is still in the pool")
		}
	}

	// The removed identity's messages are still in the queue.
	depth := int64(-1)
	gw.mu.Lock()
	q := gw.queue
	gw.mu.Unlock()
	for _, st := range q.Stats().Streams {
		if st.Stream == "old-1" {
			depth = st.Depth
		}
	}
	if depth != 3 {
		t.Errorf("old-1's stream holds %d records after it was removed, want the 3 never sent", depth)
	}

	// The removed user was disconnected and may not come back.
	waitCond(t, 10*time.Second, "the removed user's connection to close", func() (bool, string) {
		return old.lost.Load() == 1, fmt.Sprintf("lost %d", old.lost.Load())
	})
	if _, err := connectLAN(t, lanAddr, "old-1", "pw"); err == nil {
		t.Error("the removed user connected again")
	}

	line := lastLine(logs.String(), "config reloaded")
	t.Log(line)
	t.Log(lastLine(logs.String(), "need a restart"))
	for _, want := range []string{"identities=\"+boiler-1 -old-1\"", "users=\"+lan/newbie -lan/old-1\"", "rules=+plc/boiler", "adapters=+plc"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary line %q lacks %s", line, want)
		}
	}
	if w := lastLine(logs.String(), "need a restart"); !strings.Contains(w, "log") {
		t.Errorf("no warning that the log level needs a restart: %q", w)
	}

	// old-1's messages stayed in the queue: added back (now registered
	// with the hub), it sends them. The PLC's poll changes (it restarts
	// alone) and so does the LAN listen address (that needs a restart).
	later := strings.NewReplacer("  - id: boiler-1\n", "  - id: boiler-1\n  - id: old-1\n",
		"poll: 50ms", "poll: 60ms", `listen: "127.0.0.1:0"`, `listen: "127.0.0.1:1"`).Replace(reloadNext)
	sensorConnects, _ := r.hub.Status("sensor-1", "")
	if err := gw.Reload(context.Background(), parse("later.yaml", later)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		waitCond(t, 20*time.Second, "a message queued for old-1 before it was removed", hubHas(r, "old-1", fmt.Sprintf(`{"queued":%d}`, i)))
	}
	if l := lastLine(logs.String(), "config reloaded"); !strings.Contains(l, "identities=+old-1") || !strings.Contains(l, "adapters=~plc") {
		t.Errorf("summary: %s", l)
	}
	if w := lastLine(logs.String(), "need a restart"); !strings.Contains(w, "southbound.lan.lanmqtt") {
		t.Errorf("no warning that the LAN listen address needs a restart: %q", w)
	}
	slave.setInput(0, 230)
	waitCond(t, 20*time.Second, "the restarted PLC adapter's reading", func() (bool, string) {
		for _, b := range hubBodies(r, "boiler-1") {
			if strings.Contains(b, `"temperature":23`) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("hub has %q", hubBodies(r, "boiler-1"))
	})

	// The PLC and its rule go; the LAN device is still there.
	last := strings.NewReplacer("  - id: boiler-1\n", "  - id: boiler-1\n  - id: old-1\n",
		`listen: "127.0.0.1:0"`, `listen: "127.0.0.1:1"`).Replace(reloadNext)
	last = last[:strings.Index(last, "  - name: plc")] // and mapping
	if err := gw.Reload(context.Background(), parse("last.yaml", last)); err != nil {
		t.Fatal(err)
	}
	if gw.Adapter("plc") != nil {
		t.Error("the removed adapter is still there")
	}
	if l := lastLine(logs.String(), "config reloaded"); !strings.Contains(l, "rules=-plc/boiler adapters=-plc") {
		t.Errorf("summary: %s", l)
	}
	sensor.publish(t, "sensor-1", `{"n":3}`)
	waitCond(t, 20*time.Second, "sensor-1's message after three reloads", hubHas(r, "sensor-1", `{"n":3}`))
	if n := sensor.lost.Load(); n != 0 {
		t.Errorf("the unchanged LAN device lost its connection %d times", n)
	}
	if st, _ := r.hub.Status("sensor-1", ""); st.Connects != sensorConnects.Connects {
		t.Errorf("sensor-1 reconnected to the hub")
	}
}

// lastLine is the last line of logs that contains s, or "".
func lastLine(logs, s string) string {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}

// TestReloadRefusesWhatTheKeptSettingsDoNotFit: a LAN topic rule cannot
// change without a restart, so a file that drops it together with the
// mapping rule it needs is refused as a whole (with the reason and the
// settings kept), and the gateway runs on as it was.
func TestReloadRefusesWhatTheKeptSettingsDoNotFit(t *testing.T) {
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
%s`
	const topic = `      topics:
        - {filter: "plant/hall/#", device: hall}
mapping:
  devices:
    - {adapter: lan, device: hall, identity: sensor-1}
`
	dir := t.TempDir()
	parse := func(name, extra string) *Config {
		t.Helper()
		cfg, err := Parse(name, fmt.Appendf(nil, tmpl, dir, extra))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	gw := startGateway(t, parse("base.yaml", topic))
	err := gw.Reload(context.Background(), parse("next.yaml", ""))
	if err == nil || !strings.Contains(err.Error(), "next.yaml: southbound[0].lanmqtt.topics[0].device: no mapping.devices rule routes lan/hall") ||
		!strings.Contains(err.Error(), "southbound.lan.lanmqtt") {
		t.Fatalf("reload: %v", err)
	}
	if err := gw.Reload(context.Background(), parse("base.yaml", topic)); err != nil {
		t.Errorf("reload of the file it runs on after a refused one: %v", err)
	}
}
