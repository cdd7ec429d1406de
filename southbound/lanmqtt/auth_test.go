package lanmqtt

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

func TestConnectAuth(t *testing.T) {
	up := new(testpeer.Uplink)
	a := start(t, baseConfig(), up)
	url := brokerURL(a)
	for _, tc := range []struct {
		name               string
		client, user, pass string
		ok                 bool
	}{
		{"good", "dev1", "dev1", "pw1", true},
		{"wrong password", "dev1", "dev1", "pw2", false},
		{"empty password", "dev1", "dev1", "", false},
		{"unknown user", "x", "nobody", "pw1", false},
		{"anonymous", "anon", "", "", false},
		{"client id is not the device", "other", "dev1", "pw1", false},
		{"no device: any client id", "anything", "sensor", "pw3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := connectErr(t, pahoOpts(url, tc.client, tc.user, tc.pass))
			if (err == nil) != tc.ok {
				t.Errorf("connect error %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if s := a.Stats(); s.AuthFailures != 5 {
		t.Errorf("auth failures %d, want 5", s.AuthFailures)
	}
}

// Another user cannot take over a connected client's session by reusing
// its client id.
func TestNoSessionTakeoverAcrossUsers(t *testing.T) {
	a := start(t, baseConfig(), new(testpeer.Uplink))
	c := connect(t, pahoOpts(brokerURL(a), "shared-id", "sensor", "pw3"))
	if err := connectErr(t, pahoOpts(brokerURL(a), "shared-id", "watcher", "pw4")); err == nil {
		t.Fatal("second user took over the session")
	}
	if !c.IsConnectionOpen() {
		t.Error("first client was disconnected")
	}
}

func TestAnonymousWhenAllowed(t *testing.T) {
	cfg := baseConfig()
	cfg.AllowAnonymous = true
	up := new(testpeer.Uplink)
	a := start(t, cfg, up)
	c := connect(t, pahoOpts(brokerURL(a), "anon", "", ""))
	publish(t, c, "devices/any/messages/events/", 1, "x")
	if rs := up.Wait(t, 1); rs[0].Message.Identity != "any" {
		t.Errorf("got %s", fmtReading(rs[0]))
	}
	// A configured username still needs its password.
	if err := connectErr(t, pahoOpts(brokerURL(a), "dev1", "dev1", "bad")); err == nil {
		t.Error("wrong password accepted with allow_anonymous")
	}
}

// dev1 may not publish as dev2: a v3 QoS 1 publish on a denied topic gets
// no PUBACK and the client is disconnected; nothing reaches the uplink.
func TestACLDeniesOtherDevice(t *testing.T) {
	up := new(testpeer.Uplink)
	a := start(t, baseConfig(), up)
	c := connect(t, pahoOpts(brokerURL(a), "dev1", "dev1", "pw1"))
	c.Publish("devices/dev2/messages/events/", 0, false, "qos0 spoof") // dropped silently
	tok := c.Publish("devices/dev2/messages/events/", 1, false, "spoof")
	if tok.WaitTimeout(time.Second) && tok.Error() == nil {
		t.Fatal("spoofed publish acknowledged")
	}
	eventually(t, "disconnect", func() bool { return !c.IsConnectionOpen() })
	if rs := up.Readings(); len(rs) != 0 {
		t.Errorf("spoofed readings stored: %v", rs)
	}
	if s := a.Stats(); s.ACLDenied < 2 {
		t.Errorf("ACL denials %d, want >= 2", s.ACLDenied)
	}
	// A user with a wildcard publish filter still speaks only for itself.
	cfg := baseConfig()
	cfg.Users[0].Publish = []string{"devices/+/messages/events/#"}
	up2 := new(testpeer.Uplink)
	a2 := start(t, cfg, up2)
	c2 := connect(t, pahoOpts(brokerURL(a2), "dev1", "dev1", "pw1"))
	tok = c2.Publish("devices/dev2/messages/events/", 1, false, "spoof")
	if tok.WaitTimeout(time.Second) && tok.Error() == nil {
		t.Fatal("spoofed publish acknowledged with wildcard filter")
	}
}

func TestACLSubscribe(t *testing.T) {
	a := start(t, baseConfig(), new(testpeer.Uplink))
	c := connect(t, pahoOpts(brokerURL(a), "dev1", "dev1", "pw1"))
	for topic, want := range map[string]byte{
		"devices/dev1/messages/devicebound/#": 1,
		"devices/dev2/messages/devicebound/#": 0x80,
		"#":                                   0x80,
		"devices/+/messages/devicebound/#":    0x80,
	} {
		tok := c.Subscribe(topic, 1, func(paho.Client, paho.Message) {})
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("subscribe %s timed out", topic)
		}
		if got := tok.(*paho.SubscribeToken).Result()[topic]; got != want {
			t.Errorf("subscribe %s: granted 0x%02x, want 0x%02x", topic, got, want)
		}
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		allowed, requested string
		want               bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "a/#", true},
		{"a/#", "b", false},
		{"a", "a/b", false},
		{"a/b", "a", false},
		{"a/b", "a/+", false},
		{"#", "x/y", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
	} {
		if got := covers(tc.allowed, tc.requested); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.allowed, tc.requested, got, tc.want)
		}
	}
}

// A will is a publish: its topic needs the publish ACL (mochi itself does
// not check it), and a will on the IoT Hub surface is handed up marked as
// IoT Hub marks it.
func TestWill(t *testing.T) {
	up := new(testpeer.Uplink)
	a := start(t, baseConfig(), up)
	o := pahoOpts(brokerURL(a), "dev1", "dev1", "pw1").SetWill("devices/dev2/messages/devicebound/", "spoof", 1, false)
	if err := connectErr(t, o); err == nil {
		t.Fatal("connect with a forbidden will topic accepted")
	}
	// Connect with a will on the IoT Hub surface, then drop the TCP
	// connection without DISCONNECT: the broker sends the will.
	r := dialRaw(t, a)
	r.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "dev1",
			UsernameFlag: true, Username: []byte("dev1"), PasswordFlag: true, Password: []byte("pw1"),
			WillFlag: true, WillTopic: "devices/dev1/messages/events/", WillPayload: []byte("gone"), WillQos: 1,
		},
	})
	if typ, body, err := r.recv(); err != nil || typ != packets.Connack || len(body) < 2 || body[1] != 0 {
		t.Fatalf("connack: %d %x %v", typ, body, err)
	}
	r.c.Close()
	rs := up.Wait(t, 1)
	m := rs[0].Message
	if string(m.Body) != "gone" || m.Identity != "dev1" ||
		len(m.Properties) != 1 || m.Properties[0] != (edgegw.Property{Key: "iothub-MessageType", Value: "Will"}) {
		t.Errorf("will: %s", fmtReading(rs[0]))
	}
}
