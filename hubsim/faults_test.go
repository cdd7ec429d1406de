package hubsim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func TestRefuseAndThrottleConnects(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	h.SetFaults(Faults{RefuseConnect: 3})
	if _, err := dial(t, h, "dev1", dialOpts{key: d.PrimaryKey}); !errors.Is(err, packets.ErrorRefusedServerUnavailable) {
		t.Fatalf("refuse 3: err = %v", err)
	}
	h.SetFaults(Faults{RefuseConnect: 5})
	if _, err := dial(t, h, "dev1", dialOpts{key: d.PrimaryKey}); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Fatalf("refuse 5: err = %v", err)
	}
	h.SetFaults(Faults{ConnectRate: 2})
	ok, refused := 0, 0
	for range 6 {
		c, err := dial(t, h, "dev1", dialOpts{key: d.PrimaryKey, clean: true})
		switch {
		case err == nil:
			ok++
			c.Disconnect(0)
		case errors.Is(err, packets.ErrorRefusedServerUnavailable):
			refused++
		default:
			t.Fatal(err)
		}
	}
	if ok < 2 || refused == 0 {
		t.Errorf("rate 2/s: %d accepted, %d refused", ok, refused)
	}
	h.SetFaults(Faults{})
	mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
}

func TestBeforeConnackHook(t *testing.T) {
	var calls int
	h := startHub(t, func(h *Hub) {
		h.BeforeConnack = func(ci ConnectInfo) byte {
			calls++
			if ci.DeviceID == "blocked" {
				return 3
			}
			return 0
		}
	})
	a := mustDevice(t, h, "blocked")
	b := mustDevice(t, h, "fine")
	if _, err := dial(t, h, "blocked", dialOpts{key: a.PrimaryKey}); !errors.Is(err, packets.ErrorRefusedServerUnavailable) {
		t.Errorf("blocked: %v", err)
	}
	mustDial(t, h, "fine", dialOpts{key: b.PrimaryKey})
	if calls != 2 {
		t.Errorf("hook called %d times", calls)
	}
}

func TestDropConnectionsKeepsSessions(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	c.sub(t, filterMethods, 0)
	if n := h.DropConnections(); n != 1 {
		t.Errorf("dropped %d", n)
	}
	c.waitLost(t)
	// Persistent session: methods reach the reconnected device without a
	// new SUBSCRIBE.
	c2 := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	h.InvokeMethod(ctx, "dev1", "", MethodRequest{Name: "ping", ResponseTimeout: 200 * time.Millisecond, ConnectTimeout: 200 * time.Millisecond})
	c2.waitMsg(t, "method on persisted session", topicPrefix("$iothub/methods/POST/ping/"))
	// A clean session drops it.
	c2.Disconnect(0)
	mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey, clean: true})
	if _, err := h.InvokeMethod(ctxT(t), "dev1", "", MethodRequest{Name: "ping", ConnectTimeout: 300 * time.Millisecond}); !errors.Is(err, ErrDeviceNotOnline) {
		t.Errorf("clean session: err = %v", err)
	}
}

func TestPubackFaults(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})

	h.SetFaults(Faults{PubackDelay: 300 * time.Millisecond})
	start := time.Now()
	if err := c.pub(t, "devices/dev1/messages/events/", 1, "slow"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("puback after %v, want >= 300ms", el)
	}

	h.SetFaults(Faults{WithholdPuback: true})
	tok := c.Publish("devices/dev1/messages/events/", 1, false, "withheld")
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Errorf("withheld publish completed: %v", tok.Error())
	}
	h.SetFaults(Faults{})
	if err := c.pub(t, "devices/dev1/messages/events/", 1, "after"); err != nil {
		t.Fatal(err)
	}
	got := h.Telemetry("dev1")
	if len(got) != 2 || string(got[0].Body) != "slow" || string(got[1].Body) != "after" {
		t.Errorf("telemetry = %v", got)
	}
}

func TestBeforePubackHook(t *testing.T) {
	release := make(chan struct{})
	h := startHub(t, func(h *Hub) {
		h.BeforePuback = func(m Telemetry) bool {
			if string(m.Body) == "drop" {
				return false
			}
			<-release
			return true
		}
	})
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	tok := c.Publish("devices/dev1/messages/events/", 1, false, "held")
	if tok.WaitTimeout(200 * time.Millisecond) {
		t.Fatal("held publish completed")
	}
	close(release)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("released publish: %v", tok.Error())
	}
	if len(h.Telemetry("dev1")) != 1 {
		t.Error("held message not recorded")
	}
}

func TestStall(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	c.sub(t, filterTwinRes, 0)
	h.SetFaults(Faults{Stall: true})
	c.Publish("$iothub/twin/GET/?$rid=1", 0, false, " ")
	tok := c.Publish("devices/dev1/messages/events/", 1, false, "stalled")
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatal("publish completed while stalled")
	}
	d2 := mustDevice(t, h, "dev2")
	if _, err := dial(t, h, "dev2", dialOpts{key: d2.PrimaryKey, clean: true, timeout: 300 * time.Millisecond}); err == nil {
		t.Error("connect succeeded while stalled")
	}
	h.SetFaults(Faults{})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish after stall: %v", tok.Error())
	}
	c.waitMsg(t, "twin answer after stall", topicPrefix("$iothub/twin/res/200/?$rid=1"))
}
