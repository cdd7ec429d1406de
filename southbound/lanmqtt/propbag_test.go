package lanmqtt

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

func TestParseEventTopic(t *testing.T) {
	for _, tc := range []struct {
		topic, id, bag string
		ok             bool
	}{
		{"devices/d/messages/events/", "d", "", true},
		{"devices/d/messages/events", "d", "", true},
		{"devices/d/messages/events/a=b&c", "d", "a=b&c", true},
		{"devices/d/modules/m/messages/events/a=b/", "d/m", "a=b/", true},
		{"devices/d/modules//messages/events/", "", "", false},
		{"devices//messages/events/", "", "", false},
		{"devices/d/messages/eventsx", "", "", false},
		{"devices/d/messages/devicebound/", "", "", false},
		{"devices/d", "", "", false},
		{"x/devices/d/messages/events/", "", "", false},
	} {
		id, bag, ok := parseEventTopic(tc.topic)
		if id != tc.id || bag != tc.bag || ok != tc.ok {
			t.Errorf("%q: got (%q, %q, %v), want (%q, %q, %v)", tc.topic, id, bag, ok, tc.id, tc.bag, tc.ok)
		}
	}
}

func TestDecodePropertyBag(t *testing.T) {
	var m edgegw.Message
	// What the Node SDK sends (iothub-mqtt.md §2), plus $.ctime, a null and
	// an empty value, and a literal plus.
	err := decodePropertyBag("%24.mid=mid-1&%24.cid=cid%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&%24.sub=sub1"+
		"&%24.ctime=2021-04-21T11%3A30%3A16Z&nullprop&empty=&a+b=c+d&&", &m)
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageID != "mid-1" || m.CorrelationID != "cid 1" || m.ContentType != "application/json" || m.ContentEncoding != "utf-8" ||
		!m.Created.Equal(time.Date(2021, 4, 21, 11, 30, 16, 0, time.UTC)) {
		t.Errorf("system properties: %+v", m)
	}
	want := []edgegw.Property{{Key: "alert", Value: "yes&no"}, {Key: "$.sub", Value: "sub1"}, {Key: "nullprop", Value: ""}, {Key: "empty", Value: ""}, {Key: "a+b", Value: "c+d"}}
	if !slices.Equal(m.Properties, want) {
		t.Errorf("properties %v, want %v", m.Properties, want)
	}
	for _, bad := range []string{"a=%zz", "%g=1", "=x", "a=%ff", strings.Repeat("a=b&", maxProperties+1)} {
		if err := decodePropertyBag(bad, &edgegw.Message{}); !errors.Is(err, errBadBag) {
			t.Errorf("%q: err %v, want errBadBag", bad, err)
		}
	}
}

// encodeBag is the inverse of decodePropertyBag, as the Node SDK encodes.
func encodeBag(m *edgegw.Message) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	var items []string
	add := func(k, v string) { items = append(items, esc(k)+"="+esc(v)) }
	if m.MessageID != "" {
		add("$.mid", m.MessageID)
	}
	if m.CorrelationID != "" {
		add("$.cid", m.CorrelationID)
	}
	if m.ContentType != "" {
		add("$.ct", m.ContentType)
	}
	if m.ContentEncoding != "" {
		add("$.ce", m.ContentEncoding)
	}
	if !m.Created.IsZero() {
		add("$.ctime", m.Created.Format(time.RFC3339Nano))
	}
	for _, p := range m.Properties {
		add(p.Key, p.Value)
	}
	return strings.Join(items, "&")
}

// FuzzPropertyBag: decoding never panics, and whatever decodes survives a
// round trip through the SDK's encoding, also as part of a topic split at
// a random point.
func FuzzPropertyBag(f *testing.F) {
	for _, s := range []string{
		"", "/", "a=b", "a", "&&", "%24.mid=1&%24.ct=application%2Fjson", "%24.ctime=2021-04-21T11%3A30%3A16Z",
		"a=%zz", "%24.cid=x%26y&k=v%3Dw", "$.mid=1&$.mid=2", "a+b=c%20d/",
	} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, bag string, split uint8) {
		var m1 edgegw.Message
		if err := decodePropertyBag(bag, &m1); err != nil {
			if !errors.Is(err, errBadBag) {
				t.Fatalf("error does not wrap errBadBag: %v", err)
			}
			return
		}
		var m2 edgegw.Message
		enc := encodeBag(&m1)
		if err := decodePropertyBag(enc, &m2); err != nil {
			t.Fatalf("re-encoded bag %q does not decode: %v", enc, err)
		}
		if m1.MessageID != m2.MessageID || m1.CorrelationID != m2.CorrelationID || m1.ContentType != m2.ContentType ||
			m1.ContentEncoding != m2.ContentEncoding || !m1.Created.Equal(m2.Created) || !slices.Equal(m1.Properties, m2.Properties) {
			t.Fatalf("round trip of %q via %q:\n%+v\n%+v", bag, enc, m1, m2)
		}
		topic := "devices/d1/messages/events/" + enc
		id, gotBag, ok := parseEventTopic(topic)
		if !ok || id != "d1" || gotBag != enc {
			t.Fatalf("topic %q parsed as (%q, %q, %v)", topic, id, gotBag, ok)
		}
		// Random prefixes of a topic never panic the parser.
		_, _, _ = parseEventTopic(topic[:int(split)%(len(topic)+1)])
	})
}
