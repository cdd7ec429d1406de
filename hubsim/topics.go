package hubsim

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw"
)

// MaxTelemetrySize is IoT Hub's device-to-cloud message limit: body plus
// property names and values.
const MaxTelemetrySize = 256 << 10

// ErrBadPropertyBag is wrapped by ParsePropertyBag errors.
var ErrBadPropertyBag = errors.New("bad property bag")

// BagEntry is one property of a topic property bag. Null is set for a key
// without "=" (IoT Hub's encoding of a null value).
type BagEntry struct {
	Key, Value string
	Null       bool
}

// ParsePropertyBag decodes "k1=v1&k2&k3=" as IoT Hub does: split on "&",
// each item on the first "=", keys and values percent-decoded without
// turning "+" into a space. Empty items are skipped.
func ParsePropertyBag(bag string) ([]BagEntry, error) {
	if bag == "" {
		return nil, nil
	}
	var out []BagEntry
	for _, item := range strings.Split(bag, "&") {
		if item == "" {
			continue
		}
		k, v, hasValue := strings.Cut(item, "=")
		dk, err := url.PathUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrBadPropertyBag, k, err)
		}
		dv, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("%w: value of %q: %v", ErrBadPropertyBag, dk, err)
		}
		if dk == "" {
			return nil, fmt.Errorf("%w: empty key in %q", ErrBadPropertyBag, item)
		}
		out = append(out, BagEntry{Key: dk, Value: dv, Null: !hasValue})
	}
	return out, nil
}

// EncodePropertyBag encodes properties for a topic, percent-encoding keys
// and values like encodeURIComponent.
func EncodePropertyBag(props []BagEntry) string {
	var b strings.Builder
	for i, p := range props {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(encodeURIComponent(p.Key))
		if !p.Null {
			b.WriteByte('=')
			b.WriteString(encodeURIComponent(p.Value))
		}
	}
	return b.String()
}

type topicKind int

const (
	topicEvents topicKind = iota + 1
	topicTwin
	topicMethodRes
)

// devTopic is a classified device publish.
type devTopic struct {
	kind   topicKind
	bag    []BagEntry // events
	size   int        // events: property names and values
	twinOp string     // twin: "GET", "PATCH/properties/reported", ...
	rid    string     // twin, method response
	status int        // method response
	hasRid bool
}

// classify parses a topic a device published to; an error means the hub
// closes the connection.
func (c *conn) classify(topic string, payloadLen int) (devTopic, error) {
	var t devTopic
	if bag, ok := c.eventsBag(topic); ok {
		entries, err := ParsePropertyBag(bag)
		if err != nil {
			return t, err
		}
		t.kind, t.bag = topicEvents, entries
		t.size = payloadLen
		for _, e := range entries {
			t.size += len(e.Key) + len(e.Value)
		}
		if t.size > MaxTelemetrySize {
			return t, fmt.Errorf("message of %d bytes exceeds %d", t.size, MaxTelemetrySize)
		}
		return t, nil
	}
	path, query, _ := strings.Cut(topic, "?")
	q := parseQuery(query)
	t.rid, t.hasRid = q["$rid"]
	switch {
	case strings.HasPrefix(path, "$iothub/twin/"):
		if !t.hasRid {
			return t, errors.New("twin request without $rid")
		}
		t.kind = topicTwin
		t.twinOp = strings.Trim(strings.TrimPrefix(path, "$iothub/twin/"), "/")
		return t, nil
	case strings.HasPrefix(path, "$iothub/methods/res/"):
		st := strings.Trim(strings.TrimPrefix(path, "$iothub/methods/res/"), "/")
		n, err := strconv.Atoi(st)
		if err != nil || !t.hasRid {
			return t, fmt.Errorf("method response %q needs an integer status and a $rid", topic)
		}
		t.kind, t.status = topicMethodRes, n
		return t, nil
	}
	return t, fmt.Errorf("topic %q is not allowed", topic)
}

// eventsBag returns the property bag of this identity's telemetry topic
// "devices/{d}/messages/events/{bag}" (modules: "devices/{d}/modules/{m}/
// messages/events/{bag}"). Trailing slashes are dropped (the Node SDK adds
// one after output events).
func (c *conn) eventsBag(topic string) (string, bool) {
	prefix := "devices/" + c.deviceID + "/"
	if c.moduleID != "" {
		prefix += "modules/" + c.moduleID + "/"
	}
	prefix += "messages/events"
	rest, ok := strings.CutPrefix(topic, prefix)
	if !ok || rest != "" && rest[0] != '/' {
		return "", false
	}
	return strings.Trim(rest, "/"), true
}

// parseQuery splits "a=1&b=2" (first occurrence wins). Values stay raw:
// request ids are opaque and echoed byte for byte.
func parseQuery(q string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(q, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return m
}

// systemKeys maps the short system property names on the topic to their
// meaning; anything else starting with "$." is kept in Telemetry.System too.
var systemKeys = map[string]bool{
	"$.mid": true, "$.cid": true, "$.uid": true, "$.to": true, "$.exp": true, "$.ct": true,
	"$.ce": true, "$.ctime": true, "$.ifid": true, "$.sub": true, "$.on": true, "$.cdid": true,
	"$.cmid": true, "$.diagid": true, "$.diagctx": true,
}

// splitBag separates system properties from application properties.
func splitBag(bag []BagEntry) (system map[string]string, app []edgegw.Property) {
	for _, e := range bag {
		if strings.HasPrefix(e.Key, "$.") || systemKeys[e.Key] {
			if system == nil {
				system = map[string]string{}
			}
			system[e.Key] = e.Value
			continue
		}
		app = append(app, edgegw.Property{Key: e.Key, Value: e.Value})
	}
	return system, app
}
