package northbound

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/iothub"
)

// MaxMessageBytes is IoT Hub's device-to-cloud message limit (256 KB),
// counted here as the whole topic (with its property bag) plus the body.
const MaxMessageBytes = iothub.MaxMessageSize

// MaxReportedBytes is the largest reported-properties patch IoT Hub takes
// (the whole reported section is limited to 32 KB).
const MaxReportedBytes = 32 * 1024

// ErrTooLarge is wrapped by CheckSize errors.
var ErrTooLarge = fmt.Errorf("message too large for the hub")

// CheckSize returns an error wrapping ErrTooLarge if m cannot be sent to
// the hub: telemetry over MaxMessageBytes including its topic and
// properties, or a reported patch over MaxReportedBytes. The uplink calls
// it at intake, so an oversized message is refused there and never reaches
// the buffer.
func CheckSize(m *edgegw.Message) error {
	if m.Kind == edgegw.Reported {
		if len(m.Body) > MaxReportedBytes {
			return fmt.Errorf("%w: reported patch of %d bytes, limit %d", ErrTooLarge, len(m.Body), MaxReportedBytes)
		}
		return nil
	}
	if n := messageSize(m); n > MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes with topic and properties (body %d), limit %d", ErrTooLarge, n, len(m.Body), MaxMessageBytes)
	}
	return nil
}

// messageSize is the length of the IoT Hub telemetry topic for m plus its
// body (see appendTelemetryTopic), counted without building the topic.
func messageSize(m *edgegw.Message) int {
	n := len("devices/") + len(m.Identity) + len("/messages/events/") + iothub.MessageBagLen(m) + len(m.Body)
	if strings.Contains(string(m.Identity), "/") {
		n += len("/modules/") - 1 // "device/module" becomes "device/modules/module"
	}
	return n
}

// iothubProfile speaks IoT Hub's MQTT device protocol.
type iothubProfile struct {
	apiVersion, modelID string
}

func (p *iothubProfile) clientID(id *identity.Identity) string { return string(id.ID) }

// username is "{host}/{device}[/{module}]/?api-version=...".
func (p *iothubProfile) username(id *identity.Identity, host string) string {
	u := host + "/" + string(id.ID) + "/?api-version=" + p.apiVersion
	if p.modelID != "" {
		u += "&model-id=" + iothub.EscapeComponent(p.modelID)
	}
	return u + "&DeviceClientType=" + iothub.EscapeComponent("edgegw/1")
}

func (p *iothubProfile) password(*identity.Identity) string { return "" }

func (p *iothubProfile) sas(id *identity.Identity) bool { return id.Keys() > 0 }

func (p *iothubProfile) subscriptions(id *identity.Identity) map[string]byte {
	subs := map[string]byte{
		"$iothub/methods/POST/#":                  0,
		"$iothub/twin/res/#":                      0,
		"$iothub/twin/PATCH/properties/desired/#": 0,
	}
	if !id.IsModule() { // modules have no C2D queue
		subs["devices/"+id.Device+"/messages/devicebound/#"] = 1
	}
	return subs
}

// appendTelemetryTopic appends devices/{d}[/modules/{m}]/messages/events/{bag}
// with the system properties first ($.mid, $.cid, $.ct, $.ce), then the
// application properties in order.
func (p *iothubProfile) appendTelemetryTopic(dst []byte, id *identity.Identity, m *edgegw.Message) []byte {
	dst = append(dst, "devices/"...)
	dst = append(dst, id.Device...)
	if id.Module != "" {
		dst = append(dst, "/modules/"...)
		dst = append(dst, id.Module...)
	}
	dst = append(dst, "/messages/events/"...)
	return iothub.AppendMessageBag(dst, m)
}

func (p *iothubProfile) reportedTopic(_ *identity.Identity, rid string) (string, bool) {
	return "$iothub/twin/PATCH/properties/reported/?$rid=" + rid, true
}

func (p *iothubProfile) twinGetTopic(rid string) string { return "$iothub/twin/GET/?$rid=" + rid }

func (p *iothubProfile) methodResponse(_ *identity.Identity, _, rid string, res edgegw.Result) (string, []byte, byte) {
	return "$iothub/methods/res/" + strconv.Itoa(res.Status) + "/?$rid=" + rid, res.Payload, 0
}

// parse classifies an inbound topic:
//
//	$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]
//	$iothub/twin/PATCH/properties/desired/?$version={v}
//	$iothub/methods/POST/{name}/?$rid={rid}
//	devices/{d}/messages/devicebound/[{bag}]
func (p *iothubProfile) parse(id *identity.Identity, topic string, _ []byte) (inbound, error) {
	var in inbound
	switch {
	case strings.HasPrefix(topic, "$iothub/twin/res/"):
		status, query, _ := strings.Cut(strings.TrimPrefix(topic, "$iothub/twin/res/"), "/")
		n, err := strconv.Atoi(status)
		if err != nil || n < 100 || n > 999 {
			return in, fmt.Errorf("twin response status %q is not a status code", status)
		}
		props, err := iothub.ParseBag(strings.TrimPrefix(query, "?"))
		if err != nil {
			return in, err
		}
		in = inbound{kind: inTwinResponse, status: n}
		in.rid, _ = bagValue(props, "$rid")
		if in.version, err = parseVersion(props); err != nil {
			return in, err
		}
		return in, nil
	case strings.HasPrefix(topic, "$iothub/twin/PATCH/properties/desired/"):
		props, err := iothub.ParseBag(strings.TrimPrefix(strings.TrimPrefix(topic, "$iothub/twin/PATCH/properties/desired/"), "?"))
		if err != nil {
			return in, err
		}
		in = inbound{kind: inDesired}
		in.version, err = parseVersion(props)
		return in, err
	case strings.HasPrefix(topic, "$iothub/methods/POST/"):
		name, query, _ := strings.Cut(strings.TrimPrefix(topic, "$iothub/methods/POST/"), "/")
		if name == "" {
			return in, fmt.Errorf("method call without a name")
		}
		props, err := iothub.ParseBag(strings.TrimPrefix(query, "?"))
		if err != nil {
			return in, err
		}
		in = inbound{kind: inMethod, name: name}
		in.rid, _ = bagValue(props, "$rid")
		if in.rid == "" {
			return in, fmt.Errorf("method call %q without $rid", name)
		}
		return in, nil
	case strings.HasPrefix(topic, "devices/"+id.Device+"/messages/devicebound/"):
		bag := strings.TrimSuffix(strings.TrimPrefix(topic, "devices/"+id.Device+"/messages/devicebound/"), "/")
		props, err := iothub.ParseBag(bag)
		if err != nil {
			return in, err
		}
		return inbound{kind: inC2D, props: props}, nil
	}
	return in, fmt.Errorf("%w %q", errUnknownTopic, topic)
}
