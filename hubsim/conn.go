package hubsim

import (
	"strconv"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/iothub"
)

// ident is one registry identity with its hub-side state. Guarded by Hub.mu.
type ident struct {
	dev  Device
	twin twinState
	c2d  []*c2dMsg // pending, oldest first
	conn *conn     // current connection, nil when offline

	connectedAt, lastActivity time.Time
	connects                  int // successful connections so far
}

func newIdent(d Device) *ident {
	return &ident{dev: d, twin: newTwinState()}
}

// conn is one authenticated MQTT connection of an identity.
type conn struct {
	h        *Hub
	cl       *mqtt.Client
	key      string // identity key
	deviceID string
	moduleID string
	user     iothub.Username
	auth     string
	expiry   *time.Timer
	will     *mqtt.Will // nil without a Will

	mu       sync.Mutex
	closed   bool
	ready    bool // CONNACK written: downlink may flow
	ridSeq   uint64
	methods  map[string]chan MethodResult // pending direct methods by rid
	inflight map[uint16]string            // C2D packet id -> message id
	sent     map[string]bool              // C2D message ids written on this connection
	nextPID  uint16
}

// Downlink topic filters a device may subscribe to.
const (
	filterMethods     = "$iothub/methods/POST/#"
	filterTwinRes     = "$iothub/twin/res/#"
	filterTwinDesired = "$iothub/twin/PATCH/properties/desired/#"
)

func (c *conn) c2dFilter() string {
	if c.moduleID != "" {
		return "devices/" + c.deviceID + "/modules/" + c.moduleID + "/inputs/#"
	}
	return "devices/" + c.deviceID + "/messages/devicebound/#"
}

// allowedFilter reports whether this identity may subscribe to filter.
func (c *conn) allowedFilter(filter string) bool {
	switch filter {
	case filterMethods, filterTwinRes, filterTwinDesired, c.c2dFilter():
		return true
	}
	return c.moduleID != "" && filter == "devices/"+c.deviceID+"/modules/"+c.moduleID+"/#"
}

// subscribed reports whether the connection is established and its
// session holds one of filters.
func (c *conn) subscribed(filters ...string) bool {
	c.mu.Lock()
	ready := c.ready && !c.closed
	c.mu.Unlock()
	if !ready {
		return false
	}
	for _, f := range filters {
		if _, ok := c.cl.State.Subscriptions.Get(f); ok {
			return true
		}
	}
	return false
}

// writeQoS0 writes a QoS 0 PUBLISH to this connection only: downlink
// packets never go through mochi's topic routing, because every device
// holds the same $iothub filters.
func (c *conn) writeQoS0(topic string, payload []byte) error {
	return c.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	})
}

// reservePID allocates a packet id for a C2D message. hubsim owns the id
// space of device connections: mochi never assigns ids on them because it
// never routes messages to them.
func (c *conn) reservePID(messageID string) uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		c.nextPID++
		if c.nextPID == 0 {
			c.nextPID = 1
		}
		if _, used := c.inflight[c.nextPID]; !used {
			c.inflight[c.nextPID] = messageID
			return c.nextPID
		}
	}
}

// writeQoS1 writes a QoS 1 PUBLISH with a reserved packet id.
func (c *conn) writeQoS1(pid uint16, topic string, payload []byte) error {
	return c.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    pid,
	})
}

// nextRid returns the next method request id: a per-connection counter in
// lowercase hex, as IoT Hub does.
func (c *conn) nextRid() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ridSeq++
	return strconv.FormatUint(c.ridSeq, 16)
}

func (c *conn) readyNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready
}

// kick closes the network connection without a DISCONNECT, as IoT Hub does.
func (c *conn) kick() {
	c.cl.Stop(packets.ErrNotAuthorized)
}

// closeLocal marks the connection closed and fails its pending methods.
func (c *conn) closeLocal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.expiry != nil {
		c.expiry.Stop()
	}
}

// Status is the connection state of an identity.
type Status struct {
	Connected    bool
	Connects     int // successful connections since the hub started
	ConnectedAt  time.Time
	LastActivity time.Time
	Auth         string // "sas" or "x509" while connected
	ModelID      string // model-id from the username while connected
	ClientType   string // DeviceClientType from the username while connected
}

// Status returns the connection state of a device (module "") or module.
func (h *Hub) Status(deviceID, moduleID string) (Status, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.idents[identityKey(deviceID, moduleID)]
	if !ok {
		return Status{}, ErrDeviceNotFound
	}
	s := Status{Connects: id.connects, ConnectedAt: id.connectedAt, LastActivity: id.lastActivity}
	if c := id.conn; c != nil {
		s.Connected, s.Auth, s.ModelID, s.ClientType = true, c.auth, c.user.ModelID, c.user.ClientType
	}
	return s, nil
}
