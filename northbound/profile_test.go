package northbound

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
)

func ident(id string) *identity.Identity {
	dev, mod, _ := strings.Cut(id, "/")
	return &identity.Identity{ID: edgegw.DeviceID(id), Device: dev, Module: mod}
}

// telemetryTopic returns the topic p publishes m to.
func telemetryTopic(p profile, id *identity.Identity, m *edgegw.Message) string {
	return string(p.appendTelemetryTopic(nil, id, m))
}

func TestIoTHubTopics(t *testing.T) {
	p := &iothubProfile{apiVersion: "2021-04-12"}
	m := &edgegw.Message{MessageID: "m 1", ContentType: "application/json", ContentEncoding: "utf-8",
		Properties: []edgegw.Property{{Key: "alert", Value: "yes&no"}, {Key: "$x", Value: ""}}}
	tests := []struct{ id, want string }{
		{"dev1", "devices/dev1/messages/events/%24.mid=m%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&%24x="},
		{"gw/mod", "devices/gw/modules/mod/messages/events/%24.mid=m%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&%24x="},
	}
	for _, tt := range tests {
		if got := telemetryTopic(p, ident(tt.id), m); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.id, got, tt.want)
		}
	}
	if got := telemetryTopic(p, ident("d"), &edgegw.Message{}); got != "devices/d/messages/events/" {
		t.Errorf("no properties: %s", got)
	}
	if got := p.username(ident("gw/mod"), "hub.example"); got != "hub.example/gw/mod/?api-version=2021-04-12&DeviceClientType=edgegw%2F1" {
		t.Errorf("username %s", got)
	}
	if subs := p.subscriptions(ident("gw/mod")); len(subs) != 3 {
		t.Errorf("module subscriptions %v (no C2D for modules)", subs)
	}
	if subs := p.subscriptions(ident("d")); subs["devices/d/messages/devicebound/#"] != 1 || len(subs) != 4 {
		t.Errorf("device subscriptions %v", subs)
	}
	topic, body, qos := p.methodResponse(ident("d"), "reboot", "a", edgegw.Result{Status: 200, Payload: []byte(`{}`)})
	if topic != "$iothub/methods/res/200/?$rid=a" || string(body) != "{}" || qos != 0 {
		t.Errorf("method response %s %s %d", topic, body, qos)
	}
}

func TestIoTHubParse(t *testing.T) {
	p := &iothubProfile{}
	id := ident("dev1")
	tests := []struct {
		topic string
		want  inbound
		err   string
	}{
		{"$iothub/twin/res/200/?$rid=1f", inbound{kind: inTwinResponse, status: 200, rid: "1f"}, ""},
		{"$iothub/twin/res/204/?$rid=ho&$version=88", inbound{kind: inTwinResponse, status: 204, rid: "ho", version: 88}, ""},
		{"$iothub/twin/res/abc/?$rid=1", inbound{}, "not a status code"},
		{"$iothub/twin/PATCH/properties/desired/?$version=15", inbound{kind: inDesired, version: 15}, ""},
		{"$iothub/twin/PATCH/properties/desired/?$version=x", inbound{}, "not an integer"},
		{"$iothub/methods/POST/reboot/?$rid=a", inbound{kind: inMethod, name: "reboot", rid: "a"}, ""},
		{"$iothub/methods/POST/reboot/", inbound{}, "without $rid"},
		{"$iothub/methods/POST/", inbound{}, "without a name"},
		{"devices/dev1/messages/devicebound/", inbound{kind: inC2D}, ""},
		{"devices/dev1/messages/devicebound/%24.mid=1&nullprop&e=&p=a%2Fb", inbound{kind: inC2D,
			props: []edgegw.Property{{Key: "$.mid", Value: "1"}, {Key: "nullprop"}, {Key: "e"}, {Key: "p", Value: "a/b"}}}, ""},
		{"devices/dev1/messages/devicebound/%zz=1", inbound{}, "invalid URL escape"},
		{"devices/dev2/messages/devicebound/", inbound{}, "unexpected topic"},
		{"other", inbound{}, "unexpected topic"},
	}
	for _, tt := range tests {
		got, err := p.parse(id, tt.topic, nil)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.topic, err, tt.err)
			}
			continue
		}
		if err != nil || got.kind != tt.want.kind || got.rid != tt.want.rid || got.status != tt.want.status ||
			got.version != tt.want.version || got.name != tt.want.name || !slices.Equal(got.props, tt.want.props) {
			t.Errorf("%s: got %+v, %v; want %+v", tt.topic, got, err, tt.want)
		}
	}
}

func TestMQTTProfile(t *testing.T) {
	var c Config
	c.Profile = ProfileMQTT
	c.SetDefaults()
	p := newProfile(&c).(*mqttProfile)
	id := ident("gw/m1")
	if got := telemetryTopic(p, id, &edgegw.Message{}); got != "devices/gw/m1/telemetry" {
		t.Errorf("telemetry %s", got)
	}
	p.t.Telemetry = "t/{device}/{module}/{bag}"
	if got := string(p.appendTelemetryTopic([]byte("x"), id, &edgegw.Message{})); got != "xt/gw/m1/" {
		t.Errorf("appended to a buffer %s", got)
	}
	if got := telemetryTopic(p, id, &edgegw.Message{MessageID: "x"}); got != "t/gw/m1/%24.mid=x" {
		t.Errorf("telemetry with bag %s", got)
	}
	topic, body, qos := p.methodResponse(id, "set", "", edgegw.Result{Status: 400, Payload: []byte("not json")})
	if topic != "devices/gw/m1/responses/set" || string(body) != `{"status":400,"payload":null}` || qos != 1 {
		t.Errorf("response %s %s", topic, body)
	}
	for _, tt := range []struct {
		topic, payload string
		kind           inboundKind
		err            bool
	}{
		{"devices/gw/m1/commands/set", "{}", inMethod, false},
		{"devices/gw/m1/commands/set/7", "{}", inMethod, false},
		{"devices/gw/m1/commands/", "{}", 0, true},
		{"devices/gw/m1/commands/a/b/c", "{}", 0, true},
		{"devices/gw/m1/desired", `{"a":1}`, inDesired, false},
		{"devices/gw/m1/desired", `[1]`, 0, true},
		{"devices/gw/m1/c2d", "anything", inC2D, false},
		{"devices/gw/m2/c2d", "", 0, true},
	} {
		in, err := p.parse(id, tt.topic, []byte(tt.payload))
		if (err != nil) != tt.err || in.kind != tt.kind {
			t.Errorf("%s: %+v %v", tt.topic, in, err)
		}
	}
}

// Templates are filled in one pass: a value is never read as a
// placeholder, unknown ones stay as they are, and {bag} only in topics
// that carry a message.
func TestExpand(t *testing.T) {
	id := &identity.Identity{ID: "{device}/{bag}", Device: "{device}", Module: "{bag}"}
	m := &edgegw.Message{MessageID: "x"}
	for _, tt := range []struct {
		tmpl string
		m    *edgegw.Message
		want string
	}{
		{"a/{id}/{device}/{module}", nil, "a/{device}/{bag}/{device}/{bag}"},
		{"{unknown}/{id", nil, "{unknown}/{id"},
		{"{bag}/{{id}}", nil, "{bag}/{{device}/{bag}}"},
		{"{module}-{bag}", m, "{bag}-%24.mid=x"},
		{"", m, ""},
	} {
		if got := string(appendExpanded(nil, tt.tmpl, id, tt.m)); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.tmpl, got, tt.want)
		}
	}
	if got := expand("plain/topic", id); got != "plain/topic" {
		t.Errorf("expand without placeholders: %q", got)
	}
}

// messageSize counts the IoT Hub topic without building it: it must agree
// with the topic sent.
func TestMessageSize(t *testing.T) {
	p := &iothubProfile{}
	for _, m := range []edgegw.Message{
		{Identity: "d", Body: []byte("12345")},
		{Identity: "gw/mod", ContentType: "application/json", MessageID: "m 1", Properties: []edgegw.Property{{Key: "é", Value: "a&b"}}},
		{Identity: "gw/mod/x", CorrelationID: "c", ContentEncoding: "utf-8", Body: []byte("{}")},
	} {
		want := len(telemetryTopic(p, ident(string(m.Identity)), &m)) + len(m.Body)
		if got := messageSize(&m); got != want {
			t.Errorf("%s: messageSize %d, want %d", m.Identity, got, want)
		}
	}
}

func TestCheckSize(t *testing.T) {
	m := &edgegw.Message{Identity: "dev1", Kind: edgegw.Telemetry, Body: make([]byte, MaxMessageBytes-100)}
	if err := CheckSize(m); err != nil {
		t.Fatal(err)
	}
	m.Properties = []edgegw.Property{{Key: "k", Value: strings.Repeat("é", 30)}} // 6 bytes each encoded
	if err := CheckSize(m); err == nil || !strings.Contains(err.Error(), "limit 262144") {
		t.Fatalf("oversized with properties: %v", err)
	}
	r := &edgegw.Message{Identity: "dev1", Kind: edgegw.Reported, Body: make([]byte, MaxReportedBytes+1)}
	if err := CheckSize(r); err == nil {
		t.Fatal("oversized reported accepted")
	}
}

// FuzzParseTopic feeds arbitrary topics and payloads to both profiles'
// parsers: they must not panic, and what they accept must be consistent.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{"$iothub/twin/res/204/?$rid=ho&$version=88", "$iothub/methods/POST/m/?$rid=1",
		"$iothub/twin/PATCH/properties/desired/?$version=3", "devices/d/messages/devicebound/a=b&%24.to=x",
		"devices/d/commands/set/1", "devices/d/desired", "devices/d/c2d"} {
		f.Add(s, []byte(`{"$version":1}`))
	}
	var c Config
	c.Profile = ProfileMQTT
	c.SetDefaults()
	profiles := []profile{&iothubProfile{}, newProfile(&c)}
	id := ident("d")
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, p := range profiles {
			in, err := p.parse(id, topic, payload)
			if err != nil {
				continue
			}
			switch in.kind {
			case inTwinResponse:
				if in.status < 100 || in.status > 999 {
					t.Fatalf("status %d accepted", in.status)
				}
			case inMethod:
				if in.name == "" {
					t.Fatal("method without name")
				}
			case inDesired, inC2D:
			default:
				t.Fatalf("kind %d", in.kind)
			}
		}
	})
}
