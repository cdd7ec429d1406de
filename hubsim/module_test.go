package hubsim

import (
	"context"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestModule(t *testing.T) {
	h := startHub(t)
	mustDevice(t, h, "gw")
	m, err := h.CreateModule("gw", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateModule("nodev", "m1"); err == nil {
		t.Error("module of a missing device created")
	}
	c := mustDial(t, h, "gw", dialOpts{module: "m1", key: m.PrimaryKey})
	// Node's sendOutputEvent adds $.on and a trailing slash.
	if err := c.pub(t, "devices/gw/modules/m1/messages/events/%24.on=out1&k=v/", 1, "from module"); err != nil {
		t.Fatal(err)
	}
	got, err := h.WaitTelemetry(ctxT(t), "gw", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ModuleID != "m1" || got[0].System["$.on"] != "out1" || len(got[0].Properties) != 1 {
		t.Errorf("module telemetry = %+v", got[0])
	}
	c.sub(t, filterTwinRes, 0)
	h.PatchDesired("gw", "m1", map[string]any{"x": 1})
	c.pub(t, "$iothub/twin/GET/?$rid=7", 0, " ")
	res := c.waitMsg(t, "module twin", topicPrefix("$iothub/twin/res/200/?$rid=7"))
	if !strings.Contains(string(res.Payload()), `"x":1`) {
		t.Errorf("module twin = %s", res.Payload())
	}
	c.Subscribe(filterMethods, 0, func(cl paho.Client, msg paho.Message) {
		rid := msg.Topic()[strings.Index(msg.Topic(), "$rid=")+5:]
		cl.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, `"module"`)
	}).WaitTimeout(5 * time.Second)
	r, err := h.InvokeMethod(context.Background(), "gw", "m1", MethodRequest{Name: "who", ConnectTimeout: time.Second})
	if err != nil || string(r.Payload) != `"module"` {
		t.Errorf("module method: %v %s", err, r.Payload)
	}
	// The module may not speak as its device.
	c.Publish("devices/gw/messages/events/", 1, false, "spoof")
	c.waitLost(t)
	if st := h.Stats(); st.ProtocolClosures != 1 || st.Telemetry != 1 || st.MethodCalls != 1 || st.TwinRequests != 1 {
		t.Errorf("stats = %+v", st)
	}
}
