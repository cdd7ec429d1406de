package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/iothub"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// relayConfig is a gateway with an embedded hub and one relayed LAN device,
// leaf-1, that speaks the IoT Hub device protocol through the gateway.
func relayConfig(t *testing.T, extra string) *Config {
	t.Helper()
	y := fmt.Sprintf(`
state_dir: %s
log: {level: warn}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
identities:
  - id: leaf-1
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      method_timeout: 10s
      users:
        - {username: leaf-1, password: pw, device: leaf-1}
%s`, t.TempDir(), extra)
	cfg, err := Parse("relay.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// leaf is a relayed device: a paho client that subscribes as the IoT Hub
// SDKs do and hands every message it gets to a channel.
type leaf struct {
	c   mqtt.Client
	got chan mqtt.Message
}

func newLeaf(t *testing.T, gw *Gateway, subs ...string) *leaf {
	t.Helper()
	l := &leaf{c: lanClient(t, gw, "leaf-1", "pw"), got: make(chan mqtt.Message, 64)}
	for _, s := range subs {
		if tok := l.c.Subscribe(s, 1, func(_ mqtt.Client, m mqtt.Message) { l.got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", s, tok.Error())
		}
	}
	return l
}

// next returns the next message whose topic starts with prefix, skipping
// others.
func (l *leaf) next(t *testing.T, prefix string) mqtt.Message {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-l.got:
			if strings.HasPrefix(m.Topic(), prefix) {
				return m
			}
		case <-timeout:
			t.Fatalf("no message on %s", prefix)
		}
	}
}

// request publishes a twin request and returns the answer's status, query
// and body.
func (l *leaf) request(t *testing.T, topic, rid, body string) (int, string, []byte) {
	t.Helper()
	if tok := l.c.Publish(topic+"?$rid="+rid, 0, false, body); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
	for {
		m := l.next(t, "$iothub/twin/res/")
		status, q, _ := strings.Cut(strings.TrimPrefix(m.Topic(), "$iothub/twin/res/"), "/?")
		props, err := iothub.ParseBag(q)
		if err != nil {
			t.Fatal(err)
		}
		if propValue(props, "$rid") != rid {
			continue
		}
		var n int
		fmt.Sscan(status, &n)
		return n, q, m.Payload()
	}
}

var iothubSubs = []string{"$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#", "$iothub/methods/POST/#", "devices/leaf-1/messages/devicebound/#"}

// TestRelayTwin: a relayed device's twin GET is answered with the hub's
// twin, a reported patch is answered 204 with a $version and reaches the
// hub's twin, and a desired patch made at the hub reaches the device.
func TestRelayTwin(t *testing.T) {
	gw := startGateway(t, relayConfig(t, ""))
	hub := gw.Hub()
	if _, err := hub.PatchDesired("leaf-1", "", map[string]any{"interval": 5}); err != nil {
		t.Fatal(err)
	}
	l := newLeaf(t, gw, iothubSubs...)
	waitCond(t, 10*time.Second, "the hub's desired properties in the gateway's twin", func() (bool, string) {
		st, _, body := l.request(t, "$iothub/twin/GET/", "g1", " ")
		return st == 200 && strings.Contains(string(body), `"interval":5`), fmt.Sprintf("%d %s", st, body)
	})
	st, q, body := l.request(t, "$iothub/twin/PATCH/properties/reported/", "p1", `{"fw":"1.0","nested":{"a":1}}`)
	if st != 204 || !strings.Contains(q, "$version=") || len(body) != 0 {
		t.Fatalf("reported PATCH answered %d %q %q", st, q, body)
	}
	st, _, _ = l.request(t, "$iothub/twin/PATCH/properties/reported/", "p2", `{"nested":{"a":null,"b":2}}`)
	if st != 204 {
		t.Fatalf("second PATCH answered %d", st)
	}
	if st, _, body := l.request(t, "$iothub/twin/PATCH/properties/reported/", "p3", `[1,2]`); st != 400 || !strings.Contains(string(body), "errorCode") {
		t.Fatalf("a patch that is not an object answered %d %s", st, body)
	}
	waitCond(t, 10*time.Second, "reported properties at the hub", func() (bool, string) {
		tw, _ := hub.Twin("leaf-1", "")
		b, _ := json.Marshal(tw.Properties.Reported["nested"])
		return tw.Properties.Reported["fw"] == "1.0" && string(b) == `{"b":2}`, fmt.Sprintf("%v", tw.Properties.Reported)
	})
	_, _, body = l.request(t, "$iothub/twin/GET/", "g2", " ")
	var tw struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	}
	if err := json.Unmarshal(body, &tw); err != nil || tw.Reported["fw"] != "1.0" {
		t.Fatalf("GET after PATCH: %s (%v)", body, err)
	}

	v, err := hub.PatchDesired("leaf-1", "", map[string]any{"mode": "eco"})
	if err != nil {
		t.Fatal(err)
	}
	m := l.next(t, "$iothub/twin/PATCH/properties/desired/")
	var patch map[string]any
	if err := json.Unmarshal(m.Payload(), &patch); err != nil || patch["mode"] != "eco" || patch["$version"] != float64(v) {
		t.Fatalf("desired patch %s on %s, want mode eco at $version %d", m.Payload(), m.Topic(), v)
	}
	if !strings.Contains(m.Topic(), fmt.Sprintf("$version=%d", v)) {
		t.Errorf("desired topic %s", m.Topic())
	}
}

// TestRelayMethods: a direct method reaches the relayed device and its
// answer the caller. The gateway's identity subscribes to methods at the
// hub only while its device does, so a caller gets IoT Hub's own 404103
// DeviceNotOnline when the device is not listening, and 504 when it does
// not answer.
func TestRelayMethods(t *testing.T) {
	gw := startGateway(t, relayConfig(t, ""))
	hub := gw.Hub()
	invoke := func(name string) (hubsim.MethodResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return hub.InvokeMethod(ctx, "leaf-1", "", hubsim.MethodRequest{Name: name, Payload: json.RawMessage(`{"delay":1}`), ResponseTimeout: 3 * time.Second})
	}
	c := lanClient(t, gw, "leaf-1", "pw")
	waitCond(t, 10*time.Second, "the gateway's identity online", func() (bool, string) {
		st, _ := hub.Status("leaf-1", "")
		return st.Connected, fmt.Sprintf("%+v", st)
	})
	if res, err := invoke("reboot"); !errors.Is(err, hubsim.ErrDeviceNotOnline) {
		t.Fatalf("method to a device not subscribed: %+v %v, want DeviceNotOnline", res, err)
	}
	if tok := c.Subscribe("$iothub/methods/POST/#", 0, func(c mqtt.Client, m mqtt.Message) {
		name, q, _ := strings.Cut(strings.TrimPrefix(m.Topic(), "$iothub/methods/POST/"), "/?")
		if name == "silent" {
			return
		}
		props, _ := iothub.ParseBag(q)
		c.Publish("$iothub/methods/res/200/?$rid="+propValue(props, "$rid"), 0, false, fmt.Sprintf(`{"method":%q,"got":%s}`, name, m.Payload()))
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
	var res hubsim.MethodResult
	waitCond(t, 10*time.Second, "the method answered once the device listens", func() (bool, string) {
		var err error
		res, err = invoke("reboot")
		return err == nil, fmt.Sprint(err)
	})
	if res.Status != 200 || string(res.Payload) != `{"method":"reboot","got":{"delay":1}}` {
		t.Fatalf("method: %+v %s", res, res.Payload)
	}
	if res, err := invoke("silent"); !errors.Is(err, hubsim.ErrMethodTimeout) {
		t.Fatalf("method the device does not answer: %+v %s %v, want a timeout", res, res.Payload, err)
	}
	c.Disconnect(100)
	waitCond(t, 10*time.Second, "DeviceNotOnline once the device left", func() (bool, string) {
		_, err := invoke("reboot")
		return errors.Is(err, hubsim.ErrDeviceNotOnline), fmt.Sprint(err)
	})
}

// TestRelayC2D: cloud-to-device messages reach the relayed device on its
// devicebound topic with their properties, in order, and are completed at
// the hub once the device acknowledged them.
func TestRelayC2D(t *testing.T) {
	gw := startGateway(t, relayConfig(t, ""))
	hub := gw.Hub()
	l := newLeaf(t, gw, "devices/leaf-1/messages/devicebound/#")
	for i := range 3 {
		if _, err := hub.SendC2D("leaf-1", hubsim.C2DMessage{Body: fmt.Appendf(nil, "hello %d", i), MessageID: fmt.Sprintf("m-%d", i),
			Properties: []edgegw.Property{{Key: "color", Value: "blue & green"}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		m := l.next(t, "devices/leaf-1/messages/devicebound/")
		props, err := iothub.ParseBag(strings.TrimPrefix(m.Topic(), "devices/leaf-1/messages/devicebound/"))
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload()) != fmt.Sprintf("hello %d", i) || propValue(props, "$.mid") != fmt.Sprintf("m-%d", i) || propValue(props, "color") != "blue & green" {
			t.Fatalf("message %d: %s on %s", i, m.Payload(), m.Topic())
		}
	}
	waitCond(t, 10*time.Second, "C2D completed at the hub", func() (bool, string) {
		n := len(hub.PendingC2D("leaf-1"))
		return n == 0, fmt.Sprintf("%d pending", n)
	})

	// A message for a device that is away waits at the hub, as it would
	// for a device connected to IoT Hub itself, and arrives as soon as the
	// device is back and subscribed.
	l.c.Disconnect(100)
	time.Sleep(300 * time.Millisecond) // the gateway's identity unsubscribes
	if _, err := hub.SendC2D("leaf-1", hubsim.C2DMessage{Body: []byte("while away")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(hub.PendingC2D("leaf-1")); n != 1 {
		t.Fatalf("%d messages pending at the hub while the device is away, want 1", n)
	}
	back := newLeaf(t, gw, "devices/leaf-1/messages/devicebound/#")
	if m := back.next(t, "devices/leaf-1/messages/devicebound/"); string(m.Payload()) != "while away" {
		t.Fatalf("after coming back: %q", m.Payload())
	}
}

// twinsForTest returns the gateway's twin store (valid once Run started).
func (g *Gateway) twinsForTest() *twinStore {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.twins
}

// TestRelayTelemetryProperties: every system property a device sets in its
// property bag reaches the hub, $.ctime included, and an MQTT 5 device's
// content type and user properties become $.ct and application
// properties.
func TestRelayTelemetryProperties(t *testing.T) {
	gw := startGateway(t, relayConfig(t, ""))
	hub := gw.Hub()
	c := lanClient(t, gw, "leaf-1", "pw")
	publish := func(topic string) {
		if tok := c.Publish(topic, 1, false, `{"t":1}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	publish("devices/leaf-1/messages/events/%24.mid=m1&%24.ctime=2026-01-02T03%3A04%3A05.678Z&%24.ct=application%2Fjson&k=v")

	lan := gw.Adapter("lan").(*lanmqtt.Adapter)
	r := dialRawV5(t, lan.Addr().String(), "leaf-1", "leaf-1", "pw")
	code, ackLen := r.publish(t, 7, "devices/leaf-1/messages/events/", []byte("v5"), packets.Properties{
		ContentType: "text/plain",
		User:        []packets.UserProperty{{Key: "site", Val: "north"}, {Key: "line", Val: "7"}},
	})
	if code != 0 || ackLen != 2 {
		t.Errorf("v5 PUBACK: reason 0x%02x, %d bytes after the fixed header; want success with nothing echoed", code, ackLen)
	}
	waitCond(t, 10*time.Second, "2 messages at the hub", func() (bool, string) {
		n := len(hub.Telemetry("leaf-1"))
		return n == 2, fmt.Sprintf("%d", n)
	})
	tm := hub.Telemetry("leaf-1")
	if m := tm[0]; m.MessageID != "m1" || m.System["$.ctime"] != "2026-01-02T03:04:05.678Z" || m.ContentType != "application/json" {
		t.Errorf("first message: %+v", m)
	} else if v, _ := m.Property("k"); v != "v" {
		t.Errorf("first message properties: %v", m.Properties)
	}
	if m := tm[1]; m.ContentType != "text/plain" {
		t.Errorf("v5 message: %+v", m)
	} else if s, _ := m.Property("site"); s != "north" {
		t.Errorf("v5 message properties: %v", m.Properties)
	} else if l, _ := m.Property("line"); l != "7" {
		t.Errorf("v5 message properties: %v", m.Properties)
	}
}

// TestRelayDevicesIsolated: two relayed devices on one gateway never see
// each other's requests, answers or commands, although the IoT Hub topics
// are the same for both.
func TestRelayDevicesIsolated(t *testing.T) {
	cfg := relayConfig(t, "")
	cfg.Identities = append(cfg.Identities, cfg.Identities[0])
	cfg.Identities[1].ID = "leaf-2"
	lc := cfg.Southbound[0].LANMQTT
	lc.Users = append(lc.Users, lanmqtt.User{Username: "leaf-2", Password: "pw", Device: "leaf-2"})
	gw := startGateway(t, cfg)
	hub := gw.Hub()
	one := newLeaf(t, gw, iothubSubs...)
	two := &leaf{c: lanClient(t, gw, "leaf-2", "pw"), got: make(chan mqtt.Message, 64)}
	for _, s := range []string{"$iothub/#", "devices/#", "#"} {
		tok := two.c.Subscribe(s, 1, func(_ mqtt.Client, m mqtt.Message) { two.got <- m })
		tok.WaitTimeout(5 * time.Second) // a refused filter is fine: nothing may arrive either way
	}
	if st, _, _ := one.request(t, "$iothub/twin/GET/", "g1", " "); st != 200 {
		t.Fatalf("GET answered %d", st)
	}
	if st, _, _ := one.request(t, "$iothub/twin/PATCH/properties/reported/", "p1", `{"x":1}`); st != 204 {
		t.Fatalf("PATCH answered %d", st)
	}
	if _, err := hub.PatchDesired("leaf-1", "", map[string]any{"only": "one"}); err != nil {
		t.Fatal(err)
	}
	one.next(t, "$iothub/twin/PATCH/properties/desired/")
	if _, err := hub.SendC2D("leaf-1", hubsim.C2DMessage{Body: []byte("for one")}); err != nil {
		t.Fatal(err)
	}
	one.next(t, "devices/leaf-1/messages/devicebound/")
	if tok := one.c.Publish("devices/leaf-1/messages/events/", 1, false, "tel"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case m := <-two.got:
		t.Fatalf("leaf-2 got %s %q", m.Topic(), m.Payload())
	case <-time.After(time.Second):
	}
}

// TestRelayModule: a module identity is relayed the same way: its
// telemetry on devices/{d}/modules/{m}/messages/events/, its twin and its
// direct methods.
func TestRelayModule(t *testing.T) {
	y := fmt.Sprintf(`
state_dir: %s
log: {level: warn}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
identities:
  - id: edge-1
  - id: edge-1/filter
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: filter, password: pw, device: edge-1/filter}
`, t.TempDir())
	cfg, err := Parse("module.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	hub := gw.Hub()
	if _, err := hub.PatchDesired("edge-1", "filter", map[string]any{"threshold": 3}); err != nil {
		t.Fatal(err)
	}
	lan := gw.Adapter("lan").(*lanmqtt.Adapter)
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + lan.Addr().String()).
		SetClientID("edge-1/filter").SetUsername("filter").SetPassword("pw").SetAutoReconnect(false)
	l := &leaf{c: mqtt.NewClient(opts), got: make(chan mqtt.Message, 64)}
	if tok := l.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { l.c.Disconnect(100) })
	if tok := l.c.Subscribe("$iothub/twin/res/#", 0, func(_ mqtt.Client, m mqtt.Message) { l.got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitCond(t, 10*time.Second, "the module's twin", func() (bool, string) {
		st, _, body := l.request(t, "$iothub/twin/GET/", "g1", " ")
		return st == 200 && strings.Contains(string(body), `"threshold":3`), string(body)
	})
	if tok := l.c.Subscribe("$iothub/methods/POST/#", 0, func(c mqtt.Client, m mqtt.Message) {
		_, q, _ := strings.Cut(m.Topic(), "/?")
		props, _ := iothub.ParseBag(q)
		c.Publish("$iothub/methods/res/201/?$rid="+propValue(props, "$rid"), 0, false, `{"module":true}`)
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitCond(t, 10*time.Second, "the module's method", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := hub.InvokeMethod(ctx, "edge-1", "filter", hubsim.MethodRequest{Name: "reset", ResponseTimeout: 5 * time.Second})
		return err == nil && res.Status == 201 && string(res.Payload) == `{"module":true}`, fmt.Sprintf("%+v %v", res, err)
	})
	if tok := l.c.Publish("devices/edge-1/modules/filter/messages/events/", 1, false, "m"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitCond(t, 10*time.Second, "the module's telemetry", func() (bool, string) {
		tm := hub.Telemetry("edge-1")
		return len(tm) == 1 && tm[0].ModuleID == "filter", fmt.Sprintf("%+v", tm)
	})
}
