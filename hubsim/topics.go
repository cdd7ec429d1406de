package hubsim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/iothub"
)

// MaxTelemetrySize is IoT Hub's device-to-cloud message limit: body plus
// property names and values.
const MaxTelemetrySize = iothub.MaxMessageSize

type topicKind int

const (
	topicEvents topicKind = iota + 1
	topicTwin
	topicMethodRes
)

// devTopic is a classified device publish.
type devTopic struct {
	kind   topicKind
	bag    []edgegw.Property // events
	size   int               // events: property names and values
	twinOp string            // twin: "GET", "PATCH/properties/reported", ...
	rid    string            // twin, method response
	status int               // method response
	hasRid bool
}

// classify parses a topic a device published to; an error means the hub
// closes the connection.
func (c *conn) classify(topic string, payloadLen int) (devTopic, error) {
	var t devTopic
	if bag, ok := c.eventsBag(topic); ok {
		entries, err := iothub.ParseBag(bag)
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
// messages/events/{bag}"), without the slashes around it.
func (c *conn) eventsBag(topic string) (string, bool) {
	id, bag, ok := iothub.ParseEventsTopic(topic)
	if !ok || id != c.key {
		return "", false
	}
	return bag, true
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

// splitBag separates system properties ("$." names: $.mid, $.cid, ...),
// by short name, from application properties.
func splitBag(bag []edgegw.Property) (system map[string]string, app []edgegw.Property) {
	for _, e := range bag {
		if iothub.IsSystem(e.Key) {
			if system == nil {
				system = map[string]string{}
			}
			system[e.Key] = e.Value
			continue
		}
		app = append(app, e)
	}
	return system, app
}
