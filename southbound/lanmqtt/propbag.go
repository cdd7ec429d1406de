package lanmqtt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

// parseEventTopic recognises the IoT Hub telemetry topics
//
//	devices/{id}/messages/events/{property-bag}
//	devices/{id}/modules/{module}/messages/events/{property-bag}
//
// (the bag and its leading slash are optional) and returns the identity
// ("id" or "id/module") and the raw bag. ok is false for any other topic.
func parseEventTopic(topic string) (identity, bag string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "devices/")
	if !ok {
		return "", "", false
	}
	dev, rest, ok := strings.Cut(rest, "/")
	if !ok || dev == "" {
		return "", "", false
	}
	identity = dev
	if r, isModule := strings.CutPrefix(rest, "modules/"); isModule {
		mod, r, ok := strings.Cut(r, "/")
		if !ok || mod == "" {
			return "", "", false
		}
		identity, rest = dev+"/"+mod, r
	}
	rest, ok = strings.CutPrefix(rest, "messages/events")
	if !ok {
		return "", "", false
	}
	if rest == "" {
		return identity, "", true
	}
	if rest[0] != '/' {
		return "", "", false
	}
	return identity, rest[1:], true
}

// errBadBag is wrapped by every decodePropertyBag error.
var errBadBag = errors.New("bad property bag")

// maxProperties bounds the properties of one message.
const maxProperties = 128

// decodePropertyBag decodes an IoT Hub property bag into m: items joined by
// "&", each "key=value" (or "key", a null value, kept as ""), both
// percent-encoded; "+" stays a plus, as in edgeHub. The system properties
// $.mid, $.cid, $.ct and $.ce set the matching fields; $.ctime (RFC 3339)
// sets Created when it parses. Every other key, including other "$."
// system keys, is kept in order as an application property. One trailing
// "/" (the Node SDK adds it to module outputs) is ignored.
func decodePropertyBag(bag string, m *edgegw.Message) error {
	bag = strings.TrimSuffix(bag, "/")
	if bag == "" {
		return nil
	}
	n := 0
	for item := range strings.SplitSeq(bag, "&") {
		if item == "" {
			continue
		}
		if n++; n > maxProperties {
			return fmt.Errorf("%w: more than %d properties", errBadBag, maxProperties)
		}
		rawKey, rawVal, _ := strings.Cut(item, "=")
		key, err := unescape(rawKey)
		if err != nil {
			return err
		}
		if key == "" {
			return fmt.Errorf("%w: empty property name", errBadBag)
		}
		val, err := unescape(rawVal)
		if err != nil {
			return err
		}
		switch key {
		case "$.mid":
			m.MessageID = val
		case "$.cid":
			m.CorrelationID = val
		case "$.ct":
			m.ContentType = val
		case "$.ce":
			m.ContentEncoding = val
		case "$.ctime":
			if t, err := time.Parse(time.RFC3339Nano, val); err == nil {
				m.Created = t.UTC()
				continue
			}
			m.Properties = append(m.Properties, edgegw.Property{Key: key, Value: val})
		default:
			m.Properties = append(m.Properties, edgegw.Property{Key: key, Value: val})
		}
	}
	return nil
}

func unescape(s string) (string, error) {
	u, err := url.PathUnescape(s)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errBadBag, err)
	}
	if !utf8.ValidString(u) {
		return "", fmt.Errorf("%w: %q is not UTF-8 after decoding", errBadBag, s)
	}
	return u, nil
}
