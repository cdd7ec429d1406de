package lanmqtt

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/iothub"
)

// errTooLarge is returned by route for a payload above max_message_bytes.
var errTooLarge = errors.New("message too large")

// errBadBag is wrapped by every decodePropertyBag error.
var errBadBag = iothub.ErrBadBag

// maxProperties bounds the properties of one message.
const maxProperties = 128

// decodePropertyBag decodes the property bag of an IoT Hub telemetry topic
// into m (iothub.ParseBag, iothub.ApplyBag), within the LAN's limits: at
// most maxProperties properties, names and values UTF-8 once decoded.
func decodePropertyBag(bag string, m *edgegw.Message) error {
	props, err := iothub.ParseBag(bag)
	if err != nil {
		return err
	}
	if len(props) > maxProperties {
		return fmt.Errorf("%w: more than %d properties", errBadBag, maxProperties)
	}
	for _, p := range props {
		if !utf8.ValidString(p.Key) || !utf8.ValidString(p.Value) {
			return fmt.Errorf("%w: property %q is not UTF-8 after decoding", errBadBag, p.Key)
		}
	}
	var ctime string
	for _, p := range props {
		if p.Key == iothub.PropCreationTime {
			ctime = p.Value
		}
	}
	iothub.ApplyBag(m, props)
	if ctime != "" && !hasProperty(m.Properties, iothub.PropCreationTime) {
		// ApplyBag took the device's creation time as the message's; it
		// travels on to the hub as the device wrote it.
		m.Properties = append(m.Properties, edgegw.Property{Key: iothub.PropCreationTime, Value: ctime})
	}
	return nil
}

func hasProperty(ps []edgegw.Property, key string) bool {
	for _, p := range ps {
		if p.Key == key {
			return true
		}
	}
	return false
}

// applyV5 carries an MQTT 5 publish's content type and user properties
// into m, as the system property $.ct (unless the IoT Hub property bag set
// one; on the topic surface it replaces the guess from the payload) and
// as application properties, within maxProperties.
func applyV5(m *edgegw.Message, props *packets.Properties, hubSurface bool) error {
	if props.ContentType != "" && (!hubSurface || m.ContentType == "") {
		m.ContentType = props.ContentType
	}
	if len(props.User) == 0 {
		return nil
	}
	if len(m.Properties)+len(props.User) > maxProperties {
		return fmt.Errorf("%w: more than %d properties with the MQTT 5 user properties", errBadBag, maxProperties)
	}
	for _, u := range props.User {
		m.Properties = append(m.Properties, edgegw.Property{Key: u.Key, Value: u.Val})
	}
	return nil
}

// topicRule is a compiled TopicRule.
type topicRule struct {
	filter  string
	device  string
	dynamic bool // device has {N} placeholders
}

func compileRules(rs []TopicRule) []topicRule {
	out := make([]topicRule, len(rs))
	for i, r := range rs {
		out[i] = topicRule{filter: r.Filter, device: r.Device, dynamic: placeholderRE.MatchString(r.Device)}
	}
	return out
}

// deviceFor returns the device name for topic (which the rule matches).
func (r *topicRule) deviceFor(topic string) string {
	if !r.dynamic {
		return r.device
	}
	levels := strings.Split(topic, "/")
	return placeholderRE.ReplaceAllStringFunc(r.device, func(m string) string {
		n, _ := strconv.Atoi(m[1 : len(m)-1]) // validated: 1..len(filter levels)
		if n < 1 || n > len(levels) {
			return ""
		}
		return levels[n-1]
	})
}

// route decides whether a publish is intake and builds its reading. ok is
// false for plain LAN traffic (neither an IoT Hub telemetry topic nor a
// configured topic rule). err is errTooLarge or wraps errBadBag; r.Device
// is set whenever ok is.
//
// The reading's message body aliases payload: mochi allocates a fresh
// buffer per packet and never reuses it.
func (a *Adapter) route(topic string, payload []byte) (r edgegw.Reading, ok bool, err error) {
	now := time.Now().UTC()
	msg := &edgegw.Message{Kind: edgegw.Telemetry, Body: payload}
	r = edgegw.Reading{Adapter: a.name, Time: now, Message: msg}
	if id, bag, isHub := iothub.ParseEventsTopic(topic); isHub {
		r.Device = id
		msg.Identity = edgegw.DeviceID(id)
		if err := decodePropertyBag(bag, msg); err != nil {
			return r, true, err
		}
	} else {
		rule := a.matchRule(topic)
		if rule == nil {
			return r, false, nil
		}
		r.Device = rule.deviceFor(topic)
		if json.Valid(payload) {
			msg.ContentType = "application/json"
		}
	}
	if len(payload) > a.cfg.MaxMessageBytes {
		return r, true, fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, len(payload), a.cfg.MaxMessageBytes)
	}
	if msg.Created.IsZero() {
		msg.Created = now
	}
	return r, true, nil
}

func (a *Adapter) matchRule(topic string) *topicRule {
	for i := range a.rules {
		if covers(a.rules[i].filter, topic) {
			return &a.rules[i]
		}
	}
	return nil
}
