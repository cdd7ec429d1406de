package northbound

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
)

// mqttProfile speaks to any MQTT 3.1.1 broker with topic templates.
type mqttProfile struct {
	t Topics
}

func (p *mqttProfile) clientID(id *identity.Identity) string { return expand(p.t.ClientID, id) }

func (p *mqttProfile) username(id *identity.Identity, _ string) string { return id.Username }

func (p *mqttProfile) password(id *identity.Identity) string { return id.Password.Reveal() }

func (p *mqttProfile) sas(*identity.Identity) bool { return false }

func (p *mqttProfile) subscriptions(id *identity.Identity) map[string]byte {
	return map[string]byte{
		expand(p.t.Commands, id) + "/#": 1,
		expand(p.t.Desired, id):         1,
		expand(p.t.C2D, id):             1,
	}
}

// appendTelemetryTopic expands the template; "{bag}" becomes the property
// bag.
func (p *mqttProfile) appendTelemetryTopic(dst []byte, id *identity.Identity, m *edgegw.Message) []byte {
	return appendExpanded(dst, p.t.Telemetry, id, m)
}

func (p *mqttProfile) reportedTopic(id *identity.Identity, _ string) (string, bool) {
	return expand(p.t.Reported, id), false
}

func (p *mqttProfile) twinGetTopic(string) string { return "" }

// methodResponse publishes {"status":N,"payload":P} to <responses>/<name>[/<rid>].
func (p *mqttProfile) methodResponse(id *identity.Identity, name, rid string, res edgegw.Result) (string, []byte, byte) {
	topic := expand(p.t.Responses, id) + "/" + name
	if rid != "" {
		topic += "/" + rid
	}
	payload := json.RawMessage("null")
	if len(res.Payload) > 0 && json.Valid(res.Payload) {
		payload = res.Payload
	}
	b, _ := json.Marshal(struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}{res.Status, payload})
	return topic, b, 1
}

func (p *mqttProfile) parse(id *identity.Identity, topic string, payload []byte) (inbound, error) {
	switch cmds := expand(p.t.Commands, id) + "/"; {
	case strings.HasPrefix(topic, cmds):
		name, rid, _ := strings.Cut(strings.TrimPrefix(topic, cmds), "/")
		if name == "" || strings.Contains(rid, "/") {
			return inbound{}, fmt.Errorf("command topic %q: want %s<name>[/<rid>]", topic, cmds)
		}
		return inbound{kind: inMethod, name: name, rid: rid}, nil
	case topic == expand(p.t.Desired, id):
		var v struct {
			Version int64 `json:"$version"`
		}
		if err := json.Unmarshal(payload, &v); err != nil {
			return inbound{}, fmt.Errorf("desired patch: %w", err)
		}
		return inbound{kind: inDesired, version: v.Version}, nil
	case topic == expand(p.t.C2D, id):
		return inbound{kind: inC2D}, nil
	}
	return inbound{}, fmt.Errorf("%w %q", errUnknownTopic, topic)
}
