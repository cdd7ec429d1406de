package hubsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/iothub"
)

func topicPrefix(p string) func(paho.Message) bool {
	return func(m paho.Message) bool { return strings.HasPrefix(m.Topic(), p) }
}

func TestTwinGetPatchDesired(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	c.sub(t, filterTwinRes, 0)
	c.sub(t, filterTwinDesired, 0)

	if _, err := h.PatchDesired("dev1", "", map[string]any{"interval": 5, "mode": "fast"}); err != nil {
		t.Fatal(err)
	}
	push := c.waitMsg(t, "desired push", topicPrefix("$iothub/twin/PATCH/properties/desired/?$version=2"))
	var patch map[string]any
	if err := json.Unmarshal(push.Payload(), &patch); err != nil || patch["interval"] != 5.0 || patch["$version"] != 2.0 {
		t.Errorf("desired push = %s (%v)", push.Payload(), err)
	}

	if err := c.pub(t, "$iothub/twin/PATCH/properties/reported/?$rid=r1", 0, `{"fw":"1.0","nested":{"a":1,"b":2}}`); err != nil {
		t.Fatal(err)
	}
	res := c.waitMsg(t, "reported 204", topicPrefix("$iothub/twin/res/204/?$rid=r1&$version=2"))
	if len(res.Payload()) != 0 {
		t.Errorf("204 body = %q", res.Payload())
	}
	c.pub(t, "$iothub/twin/PATCH/properties/reported/?$rid=r2", 0, `{"nested":{"a":null},"fw":null,"x":true}`)
	c.waitMsg(t, "second reported", topicPrefix("$iothub/twin/res/204/?$rid=r2&$version=3"))

	c.pub(t, "$iothub/twin/GET/?$rid=g-1", 0, " ")
	get := c.waitMsg(t, "get response", topicPrefix("$iothub/twin/res/200/?$rid=g-1"))
	var doc struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	}
	if err := json.Unmarshal(get.Payload(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Desired["mode"] != "fast" || doc.Desired["$version"] != 2.0 {
		t.Errorf("desired = %v", doc.Desired)
	}
	if fmt.Sprint(doc.Reported) != "map[$version:3 nested:map[b:2] x:true]" {
		t.Errorf("reported = %v", doc.Reported)
	}

	c.pub(t, "$iothub/twin/PATCH/properties/reported/?$rid=bad", 0, `{not json`)
	bad := c.waitMsg(t, "400", topicPrefix("$iothub/twin/res/400/?$rid=bad"))
	if !strings.Contains(string(bad.Payload()), `"errorCode":400004`) {
		t.Errorf("error body = %s", bad.Payload())
	}
	c.pub(t, "$iothub/twin/DELETE/?$rid=odd", 0, "")
	c.waitMsg(t, "unknown op answered", topicPrefix("$iothub/twin/res/400/?$rid=odd"))

	tw, err := h.Twin("dev1", "")
	if err != nil {
		t.Fatal(err)
	}
	if tw.Properties.Reported["x"] != true || tw.ConnectionState != "Connected" || tw.ETag == "" {
		t.Errorf("twin = %+v", tw)
	}
}

func TestDirectMethod(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	ctx := ctxT(t)

	_, err := h.InvokeMethod(ctx, "dev1", "", MethodRequest{Name: "reboot"})
	if !errors.Is(err, ErrDeviceNotOnline) {
		t.Fatalf("offline: err = %v", err)
	}
	if _, err := h.InvokeMethod(ctx, "nobody", "", MethodRequest{Name: "x"}); !errors.Is(err, ErrDeviceNotFound) {
		t.Fatalf("unknown: err = %v", err)
	}
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	if _, err := h.InvokeMethod(ctx, "dev1", "", MethodRequest{Name: "reboot"}); !errors.Is(err, ErrDeviceNotOnline) {
		t.Fatalf("not subscribed: err = %v", err)
	}
	tok := c.Subscribe(filterMethods, 0, func(cl paho.Client, m paho.Message) {
		// $iothub/methods/POST/{name}/?$rid={rid}
		rid := m.Topic()[strings.Index(m.Topic(), "$rid=")+5:]
		name := strings.Split(m.Topic(), "/")[3]
		if name == "slow" {
			return
		}
		cl.Publish("$iothub/methods/res/201/?$rid="+rid, 0, false, fmt.Sprintf(`{"name":%q,"got":%s}`, name, m.Payload()))
	})
	tok.WaitTimeout(5 * time.Second)
	for i := range 12 { // past rid "a": rids are hex
		r, err := h.InvokeMethod(ctx, "dev1", "", MethodRequest{Name: "reboot", Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != 201 || string(r.Payload) != fmt.Sprintf(`{"name":"reboot","got":{"n":%d}}`, i) {
			t.Fatalf("result = %d %s", r.Status, r.Payload)
		}
	}
	_, err = h.InvokeMethod(ctx, "dev1", "", MethodRequest{Name: "slow", ResponseTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrMethodTimeout) {
		t.Fatalf("slow: err = %v", err)
	}
}

func TestMethodWaitsForConnect(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	done := make(chan error, 1)
	go func() {
		_, err := h.InvokeMethod(context.Background(), "dev1", "", MethodRequest{Name: "m", ConnectTimeout: 10 * time.Second, ResponseTimeout: 10 * time.Second})
		done <- err
	}()
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	c.Subscribe(filterMethods, 0, func(cl paho.Client, m paho.Message) {
		rid := m.Topic()[strings.Index(m.Topic(), "$rid=")+5:]
		cl.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, "")
	}).WaitTimeout(5 * time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("method did not complete")
	}
}

func TestC2D(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	mid, err := h.SendC2D("dev1", C2DMessage{Body: []byte("queued"), ContentType: "text/plain",
		Properties: []edgegw.Property{{Key: "k y", Value: "v/1&2"}}})
	if err != nil {
		t.Fatal(err)
	}
	// A device that never acks sees the message again after reconnecting.
	c0 := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey, noAck: true})
	c0.sub(t, "devices/dev1/messages/devicebound/#", 1)
	c0.waitMsg(t, "c2d not acked", topicPrefix("devices/dev1/messages/devicebound/"))
	c0.Disconnect(100)
	if n := len(h.PendingC2D("dev1")); n != 1 {
		t.Fatalf("pending = %d without ack", n)
	}
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	first := c.waitMsg(t, "c2d", topicPrefix("devices/dev1/messages/devicebound/"))
	bag, err := iothub.ParseBag(strings.TrimPrefix(first.Topic(), "devices/dev1/messages/devicebound/"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]edgegw.Property{{Key: "$.mid", Value: mid}, {Key: "$.to", Value: "/devices/dev1/messages/devicebound"},
		{Key: "$.ct", Value: "text/plain"}, {Key: "k y", Value: "v/1&2"}})
	if fmt.Sprint(bag) != want || string(first.Payload()) != "queued" || first.Qos() != 1 {
		t.Errorf("c2d = %s %v qos %d, want %s", first.Payload(), bag, first.Qos(), want)
	}
	// paho acks automatically; wait until the hub saw the PUBACK.
	waitFor(t, "c2d completed", func() bool { return len(h.PendingC2D("dev1")) == 0 })

	// Queued while offline, delivered after reconnect on the persisted
	// session without a new SUBSCRIBE.
	c.Disconnect(100)
	h.SendC2D("dev1", C2DMessage{Body: []byte("later")})
	c2 := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	c2.waitMsg(t, "c2d after reconnect", func(m paho.Message) bool { return string(m.Payload()) == "later" })
	waitFor(t, "second completed", func() bool { return len(h.PendingC2D("dev1")) == 0 })

	// Limits.
	for i := range 50 {
		if _, err := h.SendC2D("dev2-none", C2DMessage{}); i == 0 && !errors.Is(err, ErrDeviceNotFound) {
			t.Fatalf("unknown device: %v", err)
		}
	}
	if _, err := h.SendC2D("dev1", C2DMessage{Body: make([]byte, MaxC2DSize+1)}); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("too large: %v", err)
	}
	c2.Unsubscribe("devices/dev1/messages/devicebound/#").WaitTimeout(5 * time.Second)
	for range 50 {
		if _, err := h.SendC2D("dev1", C2DMessage{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.SendC2D("dev1", C2DMessage{}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("51st: %v", err)
	}
}

func TestC2DExpiry(t *testing.T) {
	h := startHub(t)
	mustDevice(t, h, "dev1")
	h.SendC2D("dev1", C2DMessage{Body: []byte("old"), Expiry: time.Now().Add(-time.Second)})
	if n := len(h.PendingC2D("dev1")); n != 0 {
		t.Errorf("expired message pending: %d", n)
	}
}

// Two devices hold the same $iothub filters; neither may see the other's
// twin responses, desired patches, method calls or C2D messages.
func TestDevicesIsolated(t *testing.T) {
	h := startHub(t)
	a := mustDevice(t, h, "a")
	b := mustDevice(t, h, "b")
	ca := mustDial(t, h, "a", dialOpts{key: a.PrimaryKey})
	cb := mustDial(t, h, "b", dialOpts{key: b.PrimaryKey})
	for _, c := range []*devClient{ca, cb} {
		c.sub(t, filterTwinRes, 0)
		c.sub(t, filterTwinDesired, 0)
		c.sub(t, filterMethods, 0)
	}
	ca.sub(t, "devices/a/messages/devicebound/#", 1)
	cb.sub(t, "devices/b/messages/devicebound/#", 1)

	ca.pub(t, "$iothub/twin/GET/?$rid=1", 0, " ")
	ca.pub(t, "$iothub/twin/PATCH/properties/reported/?$rid=2", 0, `{"x":1}`)
	h.PatchDesired("a", "", map[string]any{"only": "a"})
	h.SendC2D("a", C2DMessage{Body: []byte("for a")})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	h.InvokeMethod(ctx, "a", "", MethodRequest{Name: "m", ResponseTimeout: 200 * time.Millisecond})

	ca.waitMsg(t, "a's c2d", func(m paho.Message) bool { return string(m.Payload()) == "for a" })
	ca.waitMsg(t, "a's method", topicPrefix("$iothub/methods/POST/m/"))
	ca.waitMsg(t, "a's get", topicPrefix("$iothub/twin/res/200/?$rid=1"))
	ca.waitMsg(t, "a's patch", topicPrefix("$iothub/twin/res/204/?$rid=2"))
	ca.waitMsg(t, "a's desired", topicPrefix("$iothub/twin/PATCH/properties/desired/"))
	// b published nothing; a round trip of its own proves its queue is drained.
	cb.pub(t, "$iothub/twin/GET/?$rid=b1", 0, " ")
	cb.waitMsg(t, "b's get", topicPrefix("$iothub/twin/res/200/?$rid=b1"))
	if got := cb.received(); len(got) != 1 {
		for _, m := range got {
			t.Errorf("b received %s %s", m.Topic(), m.Payload())
		}
	}
}
