package northbound

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/iothub"
)

// profile is what differs between hubs: names, topics and how inbound
// topics are read. Implementations are stateless and safe for concurrent
// use.
type profile interface {
	clientID(id *identity.Identity) string
	// username is the CONNECT user name at the hub named host.
	username(id *identity.Identity, host string) string
	// password returns the static password, or "" when a SAS token (or
	// nothing) is used.
	password(id *identity.Identity) string
	// sas reports whether the password is a SAS token signed per connect.
	sas(id *identity.Identity) bool
	subscriptions(id *identity.Identity) map[string]byte
	// appendTelemetryTopic appends the topic m is published to.
	appendTelemetryTopic(dst []byte, id *identity.Identity, m *edgegw.Message) []byte
	// reportedTopic returns where a reported patch goes. twin true means it
	// is published with QoS 0 and answered by a twin response with rid;
	// false means QoS 1, acknowledged by PUBACK.
	reportedTopic(id *identity.Identity, rid string) (topic string, twin bool)
	// twinGetTopic returns the twin GET request topic, "" if the hub has
	// no twin to read.
	twinGetTopic(rid string) string
	methodResponse(id *identity.Identity, name, rid string, res edgegw.Result) (topic string, payload []byte, qos byte)
	parse(id *identity.Identity, topic string, payload []byte) (inbound, error)
}

type inboundKind uint8

const (
	inTwinResponse inboundKind = iota + 1
	inDesired
	inMethod
	inC2D
)

// inbound is a classified message from the hub.
type inbound struct {
	kind    inboundKind
	rid     string // twin response, method
	status  int    // twin response
	version int64  // desired patch; twin response "$version" (reported)
	name    string // method
	props   []edgegw.Property
}

var errUnknownTopic = errors.New("unexpected topic")

func newProfile(c *Config) profile {
	if c.Profile == ProfileMQTT {
		return &mqttProfile{t: c.Topics}
	}
	return &iothubProfile{apiVersion: c.APIVersion, modelID: c.ModelID}
}

// bagValue returns the value of key in props and whether it was there.
func bagValue(props []edgegw.Property, key string) (string, bool) {
	for _, p := range props {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// parseVersion reads a "$version" value; missing gives 0.
func parseVersion(props []edgegw.Property) (int64, error) {
	v, ok := bagValue(props, "$version")
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("$version %q is not an integer", v)
	}
	return n, nil
}

// expand fills a topic template for id.
func expand(tmpl string, id *identity.Identity) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	return string(appendExpanded(nil, tmpl, id, nil))
}

// appendExpanded appends tmpl to dst with {id}, {device} and {module}
// filled for id and, when m is not nil, {bag} with m's property bag. The
// template is read once, left to right, so what a placeholder becomes is
// never read as another.
func appendExpanded(dst []byte, tmpl string, id *identity.Identity, m *edgegw.Message) []byte {
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			return append(dst, tmpl...)
		}
		dst = append(dst, tmpl[:i]...)
		tmpl = tmpl[i:]
		switch {
		case strings.HasPrefix(tmpl, "{id}"):
			dst, tmpl = append(dst, id.ID...), tmpl[len("{id}"):]
		case strings.HasPrefix(tmpl, "{device}"):
			dst, tmpl = append(dst, id.Device...), tmpl[len("{device}"):]
		case strings.HasPrefix(tmpl, "{module}"):
			dst, tmpl = append(dst, id.Module...), tmpl[len("{module}"):]
		case m != nil && strings.HasPrefix(tmpl, "{bag}"):
			dst, tmpl = iothub.AppendMessageBag(dst, m), tmpl[len("{bag}"):]
		default:
			dst, tmpl = append(dst, '{'), tmpl[1:]
		}
	}
}
