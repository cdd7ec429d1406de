package lanmqtt

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/iothub"
)

// FuzzParseRelayTopic: any topic a relayed device publishes on is either
// one of its three request kinds with a non-empty $rid, or refused with an
// error wrapping errBadBag (bad bag, unknown topic, no $rid); it never
// panics. A parsed $rid, escaped again, parses back to itself, so the
// answer's topic names the request exactly.
func FuzzParseRelayTopic(f *testing.F) {
	for _, s := range []string{
		"$iothub/twin/GET/?$rid=8afbd701-bb77-43fc-8a86-944f247b4bc3",
		"$iothub/twin/PATCH/properties/reported/?$rid=1",
		"$iothub/methods/res/200/?$rid=a",
		"$iothub/methods/res/abc/?$rid=a",
		"$iothub/methods/res/200",
		"$iothub/twin/GET/?$rid=%zz",
		"$iothub/twin/GET/",
		"$iothub/twin/GET/?$rid=a%20b&x=1",
		"$iothub/methods/POST/reboot/?$rid=1",
		"devices/d/messages/events/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		r, err := parseRelayTopic(topic)
		if err != nil {
			if !errors.Is(err, errBadBag) {
				t.Fatalf("%q: error %v does not wrap errBadBag", topic, err)
			}
			return
		}
		if r.kind < reqGet || r.kind > reqMethodResponse || r.rid == "" {
			t.Fatalf("%q: parsed as %+v", topic, r)
		}
		if !strings.HasPrefix(topic, "$iothub/") {
			t.Fatalf("%q: accepted a topic outside $iothub/", topic)
		}
		if r.kind == reqMethodResponse && (r.status < 100 || r.status > 999) {
			t.Fatalf("%q: status %d", topic, r.status)
		}
		back, err := iothub.ParseBag("$rid=" + iothub.EscapeComponent(r.rid))
		if err != nil || len(back) != 1 || back[0].Value != r.rid {
			t.Fatalf("%q: $rid %q does not survive escaping: %v %v", topic, r.rid, back, err)
		}
	})
}
