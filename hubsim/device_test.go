package hubsim

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edgegw/edgegw/iothub"
)

func TestTelemetryWithProperties(t *testing.T) {
	var mu sync.Mutex
	var seen []Telemetry
	h := startHub(t, func(h *Hub) {
		h.OnTelemetry = func(m Telemetry) {
			mu.Lock()
			seen = append(seen, m)
			mu.Unlock()
		}
	})
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	topic := "devices/dev1/messages/events/%24.mid=mid-1&%24.cid=cid%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&plus=a%2Bb&nul&%24.sub=sub1"
	if err := c.pub(t, topic, 1, `{"t":21.5}`); err != nil {
		t.Fatal(err)
	}
	if err := c.pub(t, "devices/dev1/messages/events/", 0, "second"); err != nil {
		t.Fatal(err)
	}
	got, err := h.WaitTelemetry(ctxT(t), "dev1", 2)
	if err != nil {
		t.Fatal(err)
	}
	m := got[0]
	if string(m.Body) != `{"t":21.5}` || m.MessageID != "mid-1" || m.CorrelationID != "cid 1" ||
		m.ContentType != "application/json" || m.ContentEncoding != "utf-8" || m.System["$.sub"] != "sub1" {
		t.Errorf("first message = %+v", m)
	}
	want := []string{"alert=yes&no", "plus=a+b", "nul="}
	if len(m.Properties) != len(want) {
		t.Fatalf("properties = %v", m.Properties)
	}
	for i, p := range m.Properties {
		if p.Key+"="+p.Value != want[i] {
			t.Errorf("property %d = %v, want %s", i, p, want[i])
		}
	}
	if string(got[1].Body) != "second" || len(got[1].Properties) != 0 || got[1].Seq <= m.Seq {
		t.Errorf("second message = %+v", got[1])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Errorf("OnTelemetry saw %d messages", len(seen))
	}
	if all := h.Telemetry(""); len(all) != 2 {
		t.Errorf("Telemetry(\"\") = %d messages", len(all))
	}
}

func TestRetainBecomesProperty(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	tok := c.Publish("devices/dev1/messages/events/a=1", 1, true, "r")
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	got, err := h.WaitTelemetry(ctxT(t), "dev1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := got[0].Property("mqtt-retain"); !ok || v != "true" {
		t.Errorf("properties = %v, want mqtt-retain=true", got[0].Properties)
	}
}

func TestConnectAuth(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	mustDevice(t, h, "dev2")
	dis, _ := h.CreateDevice("off")
	dis.Disabled = true
	if _, err := h.UpdateDevice(dis, "*"); err != nil {
		t.Fatal(err)
	}
	sas := func(res, skn, key string, exp time.Time) string {
		tok, err := NewSAS(res, skn, key, exp)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	devPolicy, _ := h.Policy("device")
	svcPolicy, _ := h.Policy("service")
	hour := time.Now().Add(time.Hour)
	ok := []struct {
		name string
		o    dialOpts
	}{
		{"primary", dialOpts{key: d.PrimaryKey}},
		{"secondary", dialOpts{key: d.SecondaryKey}},
		{"policy device scope", dialOpts{password: sas("localhost/devices/dev1", "device", devPolicy.PrimaryKey, hour)}},
		{"policy hub scope", dialOpts{password: sas("localhost/devices", "device", devPolicy.SecondaryKey, hour)}},
		{"host with port", dialOpts{password: sas("localhost:8883/devices/dev1", "", d.PrimaryKey, hour)}},
		{"lower-case escapes", dialOpts{password: lowerSAS(t, "localhost%2fdevices%2fdev1", d.PrimaryKey)}},
		{"expired within skew", dialOpts{password: sas("localhost/devices/dev1", "", d.PrimaryKey, time.Now().Add(-time.Minute))}},
		{"legacy username", dialOpts{key: d.PrimaryKey, username: "localhost/dev1/api-version=2016-11-14&DeviceClientType=c"}},
		{"extra username params", dialOpts{key: d.PrimaryKey, username: "localhost/dev1/?api-version=2021-04-12&model-id=dtmi:x;1&foo=bar"}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t, h, "dev1", tc.o)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			c.Disconnect(0)
		})
	}
	bad := []struct {
		name string
		id   string
		o    dialOpts
	}{
		{"wrong key", "dev1", dialOpts{key: NewKey()}},
		{"other device's token", "dev2", dialOpts{password: sas("localhost/devices/dev1", "", d.PrimaryKey, hour)}},
		{"prefix is not a segment", "dev1", dialOpts{password: sas("localhost/devices/dev", "", d.PrimaryKey, hour)}},
		{"expired", "dev1", dialOpts{password: sas("localhost/devices/dev1", "", d.PrimaryKey, time.Now().Add(-10*time.Minute))}},
		{"wrong hub", "dev1", dialOpts{password: sas("other/devices/dev1", "", d.PrimaryKey, hour)}},
		{"policy without DeviceConnect", "dev1", dialOpts{password: sas("localhost/devices/dev1", "service", svcPolicy.PrimaryKey, hour)}},
		{"unknown policy", "dev1", dialOpts{password: sas("localhost/devices/dev1", "nope", d.PrimaryKey, hour)}},
		{"client id mismatch", "dev1", dialOpts{key: d.PrimaryKey, clientID: "dev2"}},
		{"bad username", "dev1", dialOpts{key: d.PrimaryKey, username: "dev1"}},
		{"unknown device", "ghost", dialOpts{key: d.PrimaryKey}},
		{"disabled device", "off", dialOpts{key: dis.PrimaryKey}},
		{"garbage password", "dev1", dialOpts{password: "hello"}},
		{"no password no cert", "dev1", dialOpts{noPass: true}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dial(t, h, tc.id, tc.o)
			if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
				t.Fatalf("err = %v, want CONNACK 5", err)
			}
		})
	}
}

// lowerSAS signs a token over sr exactly as given (here with lower-case
// escapes, as the IoT Hub docs show them).
func lowerSAS(t *testing.T, sr, key string) string {
	se := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	sig := iothub.SAS{RawResource: sr, RawExpiry: se}.Sign(k)
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + se
}

func TestTokenExpiryDisconnects(t *testing.T) {
	h := startHub(t, func(h *Hub) { h.ClockSkew = -1 })
	d := mustDevice(t, h, "dev1")
	tok, _ := NewSAS("localhost/devices/dev1", "", d.PrimaryKey, time.Now().Add(2*time.Second))
	c := mustDial(t, h, "dev1", dialOpts{password: tok})
	start := time.Now()
	c.waitLost(t)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("disconnected after %v", el)
	}
}

func TestProtocolViolationsClose(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	mustDevice(t, h, "dev2")
	cases := []struct {
		name, topic string
		qos         byte
		payload     string
	}{
		{"qos 2", "devices/dev1/messages/events/", 2, "x"},
		{"unknown topic", "foo/bar", 1, "x"},
		{"other device's topic", "devices/dev2/messages/events/", 1, "x"},
		{"bad percent encoding", "devices/dev1/messages/events/a=%zz", 1, "x"},
		{"too large", "devices/dev1/messages/events/", 1, strings.Repeat("x", MaxTelemetrySize+1)},
		{"wildcard in topic", "devices/dev1/messages/events/a=b+c", 1, "x"},
		{"twin without rid", "$iothub/twin/GET/", 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey, clean: true})
			c.Publish(tc.topic, tc.qos, false, tc.payload)
			c.waitLost(t)
		})
	}
	if n := len(h.Telemetry("")); n != 0 {
		t.Errorf("%d telemetry messages recorded", n)
	}
}

func TestSecondConnectionDropsFirst(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	first := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	second := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	first.waitLost(t)
	if err := second.pub(t, "devices/dev1/messages/events/", 1, "still here"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WaitTelemetry(ctxT(t), "dev1", 1); err != nil {
		t.Fatal(err)
	}
}

func TestWillBecomesTelemetry(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey, will: &willOpt{topic: "devices/dev1/messages/events/k=v", payload: "gone"}})
	if !h.Disconnect("dev1", "") {
		t.Fatal("not connected")
	}
	got, err := h.WaitTelemetry(ctxT(t), "dev1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := got[0].Property("iothub-MessageType"); v != "Will" || string(got[0].Body) != "gone" {
		t.Errorf("will = %+v", got[0])
	}
	// A Will on another topic is refused at CONNECT.
	_, err = dial(t, h, "dev1", dialOpts{key: d.PrimaryKey, will: &willOpt{topic: "foo", payload: "x"}})
	if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("bad will topic: err = %v", err)
	}
}

func TestSubscribeACL(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	for _, f := range []string{"#", "devices/dev2/messages/devicebound/#", "$iothub/#", "devices/dev1/messages/events/#"} {
		tok := c.Subscribe(f, 1, nil)
		tok.WaitTimeout(5 * time.Second)
		st := tok.(*paho.SubscribeToken)
		if rc := st.Result()[f]; rc != 0x80 {
			t.Errorf("subscribe %s: granted %#x, want 0x80", f, rc)
		}
	}
	tok := c.Subscribe("devices/dev1/messages/devicebound/#", 2, nil)
	tok.WaitTimeout(5 * time.Second)
	if rc := tok.(*paho.SubscribeToken).Result()["devices/dev1/messages/devicebound/#"]; rc != 1 {
		t.Errorf("devicebound qos 2: granted %d, want 1", rc)
	}
}

func TestTelemetryRetention(t *testing.T) {
	h := startHub(t, func(h *Hub) { h.MaxTelemetry = 8 })
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	for i := range 20 {
		if err := c.pub(t, "devices/dev1/messages/events/", 1, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := h.Telemetry("dev1")
	if len(got) < 8 || len(got) > 9 || string(got[len(got)-1].Body) != "19" || got[len(got)-1].Seq != 20 {
		t.Errorf("kept %d, last %+v", len(got), got[len(got)-1])
	}
}

func TestNoWillOnCleanDisconnect(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey, will: &willOpt{topic: "devices/dev1/messages/events/", payload: "gone"}})
	c.Disconnect(100)
	waitFor(t, "disconnect", func() bool { st, _ := h.Status("dev1", ""); return !st.Connected })
	if n := len(h.Telemetry("dev1")); n != 0 {
		t.Errorf("%d messages after a clean disconnect", n)
	}
}
