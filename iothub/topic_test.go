package iothub

import (
	"errors"
	"strings"
	"testing"
)

func TestParseUsername(t *testing.T) {
	for _, tt := range []struct {
		in                                 string
		host, clientID, api, client, model string
	}{
		{"myhub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4",
			"myhub.azure-devices.net", "dev1", "2021-04-12", "azure-iot-device/1.18.4", ""},
		{"127.0.0.1:8883/gw/mod/?api-version=2021-04-12", "127.0.0.1:8883", "gw/mod", "2021-04-12", "", ""},
		// Legacy form: the last segment is the property list.
		{"host/dev1/api-version=2016-11-14&DeviceClientType=c", "host", "dev1", "2016-11-14", "c", ""},
		// Extra and repeated parameters (first wins), an undecodable value
		// kept as it is, an empty api-version.
		{"localhost/dev1/?api-version=2021-04-12&model-id=dtmi:x;1&foo=bar&api-version=x&DeviceClientType=%zz",
			"localhost", "dev1", "2021-04-12", "%zz", "dtmi:x;1"},
		{"h/d/m/?api-version=", "h", "d/m", "", "", ""},
	} {
		u, err := ParseUsername(tt.in)
		if err != nil || u.Host != tt.host || u.ClientID() != tt.clientID || u.APIVersion != tt.api ||
			u.ClientType != tt.client || u.ModelID != tt.model {
			t.Errorf("ParseUsername(%q) = %+v, %v", tt.in, u, err)
		}
	}
	if u, _ := ParseUsername("h/d/m/?api-version=1"); u.DeviceID != "d" || u.ModuleID != "m" {
		t.Errorf("module: %+v", u)
	}
	for _, bad := range []string{
		"", "dev1", "a/b", "//?", "host//?api-version=1", "/dev1/?api-version=1", "h/d//?api-version=1",
		"h/d/?DeviceClientType=x", "h/d/?", "h/d/x", "h/d/m/x/?api-version=1",
	} {
		if _, err := ParseUsername(bad); !errors.Is(err, ErrBadUsername) {
			t.Errorf("ParseUsername(%q): err %v, want ErrBadUsername", bad, err)
		}
	}
}

func TestParseEventsTopic(t *testing.T) {
	for _, tc := range []struct {
		topic, id, bag string
		ok             bool
	}{
		{"devices/d/messages/events/", "d", "", true},
		{"devices/d/messages/events", "d", "", true},
		{"devices/d/messages/events/a=b&c", "d", "a=b&c", true},
		// The Node SDK's module outputs end with an extra slash.
		{"devices/d/modules/m/messages/events/a=b/", "d/m", "a=b", true},
		{"devices/d/messages/events//a=b//", "d", "a=b", true},
		{"devices/d/modules//messages/events/", "", "", false},
		{"devices//messages/events/", "", "", false},
		{"devices/d/messages/eventsx", "", "", false},
		{"devices/d/messages/devicebound/", "", "", false},
		{"devices/d/modules/m/inputs/x", "", "", false},
		{"devices/d", "", "", false},
		{"x/devices/d/messages/events/", "", "", false},
	} {
		id, bag, ok := ParseEventsTopic(tc.topic)
		if id != tc.id || bag != tc.bag || ok != tc.ok {
			t.Errorf("%q: got (%q, %q, %v), want (%q, %q, %v)", tc.topic, id, bag, ok, tc.id, tc.bag, tc.ok)
		}
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{
		"hub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4",
		"localhost:8884/dev1/?api-version=2021-04-12&model-id=dtmi:com:example:Thermostat;1&DeviceClientType=x",
		"hub/dev/mod/?api-version=1", "hub/dev/api-version=2016-11-14&DeviceClientType=c", "a/b", "//?", "h/d/m/x/?api-version=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUsername(s)
		if err != nil {
			if !errors.Is(err, ErrBadUsername) {
				t.Fatalf("%q: error does not wrap ErrBadUsername: %v", s, err)
			}
			return
		}
		if u.DeviceID == "" || u.Host == "" || strings.Contains(u.DeviceID, "/") || strings.Contains(u.ModuleID, "/") {
			t.Fatalf("%q parsed to %+v", s, u)
		}
		if _, ok := u.Props["api-version"]; !ok {
			t.Fatalf("%q: no api-version but no error", s)
		}
		// The identity it names is the one its telemetry topic names.
		topic := "devices/" + u.DeviceID + "/messages/events/"
		if u.ModuleID != "" {
			topic = "devices/" + u.DeviceID + "/modules/" + u.ModuleID + "/messages/events/"
		}
		if id, _, ok := ParseEventsTopic(topic); !ok || id != u.ClientID() {
			t.Fatalf("%q: topic %q names %q, %v; username %q", s, topic, id, ok, u.ClientID())
		}
	})
}
