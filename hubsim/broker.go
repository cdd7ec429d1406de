package hubsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// newBroker configures mochi: hubsim's hook is the only auth/ACL hook (mochi
// ORs hooks, so an allow-all hook beside it would open everything).
func (h *Hub) newBroker() *mqtt.Server {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 256
	caps.MaximumSessionExpiryInterval = uint32(h.SessionExpiry / time.Second)
	caps.MaximumInflight = 1024
	caps.RetainAvailable = 0
	caps.MaximumPacketSize = maxPacketSize
	caps.MaximumClients = 1 << 20
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(minLevel{h.log.Handler(), slog.LevelWarn}),
	})
	_ = srv.AddHook(&hook{h: h}, nil)
	return srv
}

// maxPacketSize bounds what mochi reads; larger packets close the connection.
const maxPacketSize = 512 << 10

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}

func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{m.Handler.WithGroup(g), m.min} }

// hook is hubsim's mochi hook: authentication, ACLs, and the IoT Hub
// device protocol.
type hook struct {
	mqtt.HookBase
	h *Hub
}

func (k *hook) ID() string { return "hubsim" }

func (k *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnPacketRead, mqtt.OnPublish, mqtt.OnSubscribe, mqtt.OnSubscribed,
		mqtt.OnPacketSent,
	}, []byte{b})
}

// OnConnect authenticates. It writes its own CONNACK on refusal: mochi's
// refusal from OnConnectAuthenticate is always 5 for v3 clients, and fault
// injection needs 3 (server unavailable) too.
func (k *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	h := k.h
	if code := h.connectFault(); code != 0 {
		return k.refuse(cl, packets.Code{Code: code}, "fault injection")
	}
	c, code, err := h.authenticate(cl, pk)
	if err != nil {
		h.log.Debug("connect refused", "device", pk.Connect.ClientIdentifier, "remote", cl.Net.Remote, "err", err)
		return k.refuse(cl, code, err.Error())
	}
	if h.BeforeConnack != nil {
		info := ConnectInfo{DeviceID: c.deviceID, ModuleID: c.moduleID, ClientID: cl.ID, Auth: c.auth, Remote: cl.Net.Remote}
		if rc := h.BeforeConnack(info); rc != 0 {
			c.closeLocal()
			return k.refuse(cl, packets.Code{Code: rc}, "BeforeConnack")
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		c.closeLocal()
		return errHubClosed
	}
	h.conns[cl] = c
	h.stats.connects.Add(1)
	return nil
}

// refuse writes a v3 CONNACK with the given return code (v5 codes are
// translated by mochi) and fails the connection.
func (k *hook) refuse(cl *mqtt.Client, code packets.Code, reason string) error {
	k.h.stats.refused.Add(1)
	rc := code.Code
	switch {
	case rc > 0 && rc < 6:
	case code == packets.ErrUnsupportedProtocolVersion:
		rc = 1
	case code == packets.ErrServerUnavailable:
		rc = 3
	default:
		rc = 5
	}
	_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: rc})
	return fmt.Errorf("%w (code %d): %s", errRefused, rc, reason)
}

func (k *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return k.h.connOf(cl) != nil
}

// OnACLCheck: publishes are checked in OnPacketRead (which can close the
// connection); subscriptions are limited to the identity's own filters.
// mochi also calls this for delivery, which hubsim never uses.
func (k *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	c := k.h.connOf(cl)
	if c == nil {
		return false
	}
	return write || c.allowedFilter(topic)
}

// OnSubscribe grants at most QoS 1, as IoT Hub does.
func (k *hook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	for i := range pk.Filters {
		if pk.Filters[i].Qos > 1 {
			pk.Filters[i].Qos = 1
		}
	}
	return pk
}

func (k *hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	h := k.h
	h.mu.Lock()
	c := h.conns[cl]
	h.signalLocked()
	h.mu.Unlock()
	if c != nil {
		h.deliverC2D(c)
	}
}

// OnSessionEstablish makes c the identity's connection before the CONNACK
// is written, so a client that saw its CONNACK is connected for the Go API.
func (k *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	h := k.h
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.conns[cl]
	if c == nil {
		return
	}
	if id, ok := h.idents[c.key]; ok {
		id.conn = c
		id.connects++
		id.connectedAt = time.Now().UTC()
		id.lastActivity = id.connectedAt
	}
}

// OnPacketSent marks a connection ready as soon as its CONNACK is written:
// downlink may flow from then on.
func (k *hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		return
	}
	h := k.h
	c := h.connOf(cl)
	if c == nil {
		return
	}
	c.mu.Lock()
	c.ready = true
	c.mu.Unlock()
	h.mu.Lock()
	h.signalLocked()
	h.mu.Unlock()
}

// OnSessionEstablished runs after the CONNACK and the resend of mochi's
// inflight messages: queued C2D messages go out now.
func (k *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h := k.h
	if c := h.connOf(cl); c != nil {
		h.log.Debug("device connected", "device", c.key, "auth", c.auth)
		h.deliverC2D(c)
	}
}

func (k *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	h := k.h
	h.mu.Lock()
	c := h.conns[cl]
	delete(h.conns, cl)
	if c != nil {
		if id, ok := h.idents[c.key]; ok && id.conn == c {
			id.conn = nil
			id.lastActivity = time.Now().UTC()
		}
	}
	h.signalLocked()
	h.mu.Unlock()
	if c != nil {
		c.closeLocal()
		h.log.Debug("device disconnected", "device", c.key, "err", err)
		h.sendWill(c, cl)
	}
}

// sendWill records the connection's Will as telemetry with
// iothub-MessageType=Will if it ended without a DISCONNECT (dropped, kicked,
// taken over, token expired). hubsim does this itself rather than in mochi's
// OnWillSent, which is skipped when the connection is closed before mochi's
// read loop starts.
func (h *Hub) sendWill(c *conn, cl *mqtt.Client) {
	if c.will == nil || errors.Is(cl.StopCause(), packets.CodeDisconnect) {
		return
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed || !c.readyNow() {
		return
	}
	if t, err := c.classify(c.will.TopicName, len(c.will.Payload)); err == nil && t.kind == topicEvents {
		h.acceptTelemetry(c, t, c.will.Payload, c.will.Retain, true)
	}
}

// OnPacketRead runs on the client's goroutine before mochi processes a
// packet. Returning ErrRejectPacket closes the connection (no DISCONNECT),
// which is how IoT Hub answers protocol violations.
func (k *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h := k.h
	h.stallWait(cl)
	switch pk.FixedHeader.Type {
	case packets.Puback:
		if c := h.connOf(cl); c != nil {
			h.c2dAcked(c, pk.PacketID)
		}
	case packets.Publish:
		c := h.connOf(cl)
		if c == nil {
			return pk, packets.ErrRejectPacket
		}
		if strings.ContainsAny(pk.TopicName, "+#") {
			h.stats.closures.Add(1)
			h.log.Debug("wildcard in topic name, closing connection", "device", c.key, "topic", pk.TopicName)
			return pk, packets.ErrRejectPacket
		}
		if pk.FixedHeader.Qos > 1 {
			h.stats.closures.Add(1)
			h.log.Debug("qos 2 publish, closing connection", "device", c.key)
			return pk, packets.ErrRejectPacket
		}
		if _, err := c.classify(pk.TopicName, len(pk.Payload)); err != nil {
			h.stats.closures.Add(1)
			h.log.Debug("bad publish, closing connection", "device", c.key, "topic", pk.TopicName, "err", err)
			return pk, packets.ErrRejectPacket
		}
	}
	return pk, nil
}

// OnPublish handles device publishes. Everything accepted is acked but never
// routed to other clients (CodeSuccessIgnore).
func (k *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h := k.h
	c := h.connOf(cl)
	if c == nil {
		return pk, packets.ErrRejectPacket
	}
	t, err := c.classify(pk.TopicName, len(pk.Payload))
	if err != nil {
		return pk, packets.ErrRejectPacket
	}
	h.touch(c)
	switch t.kind {
	case topicEvents:
		if !h.acceptTelemetry(c, t, pk.Payload, pk.FixedHeader.Retain, false) {
			h.stats.dropped.Add(1)
			return pk, packets.ErrRejectPacket
		}
	case topicTwin:
		h.stats.twin.Add(1)
		h.handleTwin(c, t, pk.Payload)
	case topicMethodRes:
		c.methodResponse(t.rid, t.status, pk.Payload)
	}
	return pk, packets.CodeSuccessIgnore
}

func (h *Hub) connOf(cl *mqtt.Client) *conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[cl]
}

func (h *Hub) touch(c *conn) {
	h.mu.Lock()
	if id, ok := h.idents[c.key]; ok {
		id.lastActivity = time.Now().UTC()
	}
	h.mu.Unlock()
}
