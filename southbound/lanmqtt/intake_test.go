package lanmqtt

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

func TestHubSurfaceTelemetry(t *testing.T) {
	up := new(testpeer.Uplink)
	a := start(t, baseConfig(), up)
	c := connect(t, pahoOpts(brokerURL(a), "dev1", "dev1", "pw1"))
	publish(t, c, "devices/dev1/messages/events/%24.mid=mid-1&%24.cid=cid%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&%24.sub=sub1", 1, `{"t":21.5}`)
	publish(t, c, "devices/dev1/messages/events/", 1, "plain")
	rs := up.Wait(t, 2)
	m := rs[0].Message
	if rs[0].Adapter != "lan" || rs[0].Device != "dev1" || m == nil {
		t.Fatalf("reading %s", fmtReading(rs[0]))
	}
	want := edgegw.Message{
		Identity: "dev1", Kind: edgegw.Telemetry, Body: []byte(`{"t":21.5}`),
		ContentType: "application/json", ContentEncoding: "utf-8", MessageID: "mid-1", CorrelationID: "cid 1",
		Properties: []edgegw.Property{{Key: "alert", Value: "yes&no"}, {Key: "$.sub", Value: "sub1"}},
	}
	if m.Identity != want.Identity || m.Kind != want.Kind || string(m.Body) != string(want.Body) ||
		m.ContentType != want.ContentType || m.ContentEncoding != want.ContentEncoding ||
		m.MessageID != want.MessageID || m.CorrelationID != want.CorrelationID ||
		!slices.Equal(m.Properties, want.Properties) || m.Created.IsZero() {
		t.Errorf("got  %s\nwant %+v", fmtReading(rs[0]), want)
	}
	if m2 := rs[1].Message; string(m2.Body) != "plain" || m2.ContentType != "" || len(m2.Properties) != 0 {
		t.Errorf("second: %s", fmtReading(rs[1]))
	}
	if s := a.Stats(); s.Received != 2 || s.Stored != 2 || s.Clients != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestModuleIdentity(t *testing.T) {
	cfg := baseConfig()
	cfg.Users = append(cfg.Users, User{Username: "mod", Password: "pwm", Device: "gw/filter"})
	up := new(testpeer.Uplink)
	a := start(t, cfg, up)
	c := connect(t, pahoOpts(brokerURL(a), "gw/filter", "mod", "pwm"))
	publish(t, c, "devices/gw/modules/filter/messages/events/%24.on=out1/", 1, "x")
	rs := up.Wait(t, 1)
	if m := rs[0].Message; m.Identity != "gw/filter" || rs[0].Device != "gw/filter" ||
		!slices.Equal(m.Properties, []edgegw.Property{{Key: "$.on", Value: "out1"}}) {
		t.Errorf("got %s", fmtReading(rs[0]))
	}
}

// The PUBACK is written only after Submit returned: while Submit is held
// the publish token stays open.
func TestPubackOnlyAfterSubmit(t *testing.T) {
	up := new(testpeer.Uplink)
	gate := make(chan struct{})
	up.SetGate(gate)
	a := start(t, baseConfig(), up)
	c := connect(t, pahoOpts(brokerURL(a), "dev1", "dev1", "pw1"))
	tok := c.Publish("devices/dev1/messages/events/", 1, false, "held")
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatal("PUBACK arrived before Submit returned")
	}
	close(gate)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("no PUBACK after Submit returned: %v", tok.Error())
	}
	up.Wait(t, 1)
}

// A Submit failure means no PUBACK: the v3 client is disconnected, and a
// client with a persistent session resends after reconnecting, so the
// message is stored once the uplink recovers.
func TestSubmitFailureNoPubackThenRetry(t *testing.T) {
	up := new(testpeer.Uplink)
	up.SetFail(func(n int) error {
		if n == 1 {
			return errDisk
		}
		return nil
	})
	a := start(t, baseConfig(), up)
	lost := make(chan struct{}, 4)
	o := pahoOpts(brokerURL(a), "dev1", "dev1", "pw1").
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(100 * time.Millisecond).
		SetConnectionLostHandler(func(paho.Client, error) { lost <- struct{}{} })
	c := connect(t, o)
	tok := c.Publish("devices/dev1/messages/events/", 1, false, "retry-me")
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("client not disconnected after Submit failure")
	}
	// paho may complete the token across the reconnect without a PUBACK
	// (a known paho trait), so the proof is the uplink and the counters.
	tok.WaitTimeout(5 * time.Second)
	rs := up.Wait(t, 1)
	if string(rs[0].Message.Body) != "retry-me" {
		t.Errorf("stored %s", fmtReading(rs[0]))
	}
	eventually(t, "stored counter", func() bool { return a.Stats().Stored == 1 })
	if s := a.Stats(); s.Failed != 1 || s.Received != 2 {
		t.Errorf("stats %+v", s)
	}
}

// Without a session to resume, the failed publish is simply never acked.
func TestSubmitFailureNoPuback(t *testing.T) {
	up := new(testpeer.Uplink)
	up.SetFail(func(int) error { return errDisk })
	a := start(t, baseConfig(), up)
	c := connect(t, pahoOpts(brokerURL(a), "dev1", "dev1", "pw1"))
	tok := c.Publish("devices/dev1/messages/events/", 1, false, "lost")
	if tok.WaitTimeout(time.Second) && tok.Error() == nil {
		t.Fatal("publish acknowledged although Submit failed")
	}
	eventually(t, "disconnect", func() bool { return !c.IsConnectionOpen() })
	if s := a.Stats(); s.Failed != 1 || s.Stored != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestTopicSurface(t *testing.T) {
	up := new(testpeer.Uplink)
	a := start(t, baseConfig(), up)
	c := connect(t, pahoOpts(brokerURL(a), "s1", "sensor", "pw3"))
	publish(t, c, "plant/7/temp", 1, `{"v": 20.5}`)
	publish(t, c, "plant/hall/a/b", 0, "not json")
	publish(t, c, "plant/other", 1, "unrouted") // allowed, but no rule: LAN traffic only
	publish(t, c, "plant/hall/x", 1, "3")
	rs := up.Wait(t, 3)
	type got struct{ dev, ct, body string }
	var gs []got
	for _, r := range rs {
		if r.Message.Identity != "" || r.Message.Kind != edgegw.Telemetry {
			t.Errorf("reading %s", fmtReading(r))
		}
		gs = append(gs, got{r.Device, r.Message.ContentType, string(r.Message.Body)})
	}
	want := []got{{"line-7", "application/json", `{"v": 20.5}`}, {"hall", "", "not json"}, {"hall", "application/json", "3"}}
	if !slices.Equal(gs, want) {
		t.Errorf("got %v, want %v", gs, want)
	}
	if s := a.Stats(); s.Received != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestRoute(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxMessageBytes = 10
	a, err := New("lan", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		topic, payload string
		ok             bool
		dev            string
		err            error
	}{
		{"devices/d1/messages/events/", "x", true, "d1", nil},
		{"devices/d1/messages/events", "x", true, "d1", nil},
		{"devices/d1/messages/eventsX", "x", false, "", nil},
		{"devices/d1/messages/devicebound/", "x", false, "", nil},
		{"devices/d1/messages/events/a=%zz", "x", true, "d1", errBadBag},
		{"devices/d1/messages/events/", "01234567890", true, "d1", errTooLarge},
		{"plant/3/temp", "1", true, "line-3", nil},
		{"plant/3/temp/x", "1", false, "", nil},
		{"other", "1", false, "", nil},
	} {
		r, ok, err := a.route(tc.topic, []byte(tc.payload))
		if ok != tc.ok || (ok && r.Device != tc.dev) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: ok=%v dev=%q err=%v", tc.topic, ok, r.Device, err)
		}
	}
}

// The bag grammar is iothub's (tested there); the LAN adds its limits.
func TestDecodePropertyBag(t *testing.T) {
	var m edgegw.Message
	err := decodePropertyBag("%24.mid=mid-1&%24.cid=cid%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&%24.sub=sub1"+
		"&%24.ctime=2021-04-21T11%3A30%3A16Z&nullprop&empty=&a+b=c+d&&", &m)
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageID != "mid-1" || m.CorrelationID != "cid 1" || m.ContentType != "application/json" || m.ContentEncoding != "utf-8" ||
		!m.Created.Equal(time.Date(2021, 4, 21, 11, 30, 16, 0, time.UTC)) {
		t.Errorf("system properties: %+v", m)
	}
	// $.ctime sets Created and also travels on, as the device wrote it.
	want := []edgegw.Property{{Key: "alert", Value: "yes&no"}, {Key: "$.sub", Value: "sub1"}, {Key: "nullprop", Value: ""}, {Key: "empty", Value: ""}, {Key: "a+b", Value: "c+d"},
		{Key: "$.ctime", Value: "2021-04-21T11:30:16Z"}}
	if !slices.Equal(m.Properties, want) {
		t.Errorf("properties %v, want %v", m.Properties, want)
	}
	if err := decodePropertyBag(strings.Repeat("a=b&", maxProperties), &edgegw.Message{}); err != nil {
		t.Errorf("%d properties: %v", maxProperties, err)
	}
	for _, bad := range []string{"a=%zz", "%g=1", "=x", "a=%ff", "%C3=1", strings.Repeat("a=b&", maxProperties+1)} {
		if err := decodePropertyBag(bad, &edgegw.Message{}); !errors.Is(err, errBadBag) {
			t.Errorf("%q: err %v, want errBadBag", bad, err)
		}
	}
}
