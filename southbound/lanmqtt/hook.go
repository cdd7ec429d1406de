package lanmqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/iothub"
	"github.com/edgegw/edgegw/southbound"
)

// hook is the adapter's only mochi hook: authentication, ACLs and durable
// intake. mochi ORs the auth and ACL answers of all hooks, so no other hook
// that answers them (such as auth.AllowHook) may ever be added beside it.
type hook struct {
	mqtt.HookBase
	a   *Adapter
	srv *mqtt.Server
	ctx context.Context // Run's context, for Submit
	up  southbound.Uplink
}

func (h *hook) ID() string { return "edgegw-lanmqtt" }

func (h *hook) Provides(b byte) bool {
	return bytes.IndexByte([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnPublish,
		mqtt.OnPublishDropped,
		mqtt.OnWillSent,
	}, b) >= 0
}

// OnConnectAuthenticate checks the credentials, that a user bound to an
// identity uses it as client id (as IoT Hub requires), and that nobody takes
// over a session that belongs to another user.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	acc := h.a.accounts.authenticate(user, pk.Connect.Password)
	reason := ""
	switch {
	case acc == nil && user == "":
		reason = "anonymous connect refused"
	case acc == nil:
		reason = "bad username or password"
	case acc.identity != "" && cl.ID != acc.identity:
		reason = "client id must equal the user's device"
	case pk.Connect.WillFlag && !acc.mayPublish(pk.Connect.WillTopic):
		// mochi sends a will without any ACL check: refuse it here.
		reason = "will topic not allowed"
	default:
		if old, ok := h.srv.Clients.Get(cl.ID); ok && !bytes.Equal(old.Properties.Username, pk.Connect.Username) {
			reason = "client id in use by another user"
		}
	}
	if reason == "" {
		return true
	}
	h.a.stats.authFailures.Add(1)
	h.a.authLog.log(h.a.log, "lanmqtt: connect refused", "client", cl.ID, "username", user, "remote", cl.Net.Remote, "reason", reason)
	return false
}

// OnACLCheck answers for publishes (write) and for subscriptions and
// deliveries (read).
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	acc := h.a.accounts.lookup(string(cl.Properties.Username))
	ok := acc != nil
	if ok && write {
		ok = acc.mayPublish(topic)
	} else if ok {
		ok = acc.maySubscribe(topic)
	}
	if !ok {
		h.a.stats.aclDenied.Add(1)
		h.a.aclLog.log(h.a.log, "lanmqtt: topic denied", "client", cl.ID, "topic", topic, "publish", write)
	}
	return ok
}

func (h *hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.a.stats.dropped.Add(1)
	h.a.dropLog.log(h.a.log, "lanmqtt: subscriber too slow, message dropped", "client", cl.ID, "topic", pk.TopicName)
}

// Reason codes of a v5 PUBACK for a message refused for good. They must not
// equal packets.ErrRejectPacket or packets.CodeSuccessIgnore.
var (
	codeRejected = packets.Code{Code: packets.ErrImplementationSpecificError.Code, Reason: "rejected by gateway"}
	codeTooLarge = packets.Code{Code: packets.ErrPacketTooLarge.Code, Reason: "message too large"}
	codeBadTopic = packets.Code{Code: packets.ErrTopicNameInvalid.Code, Reason: "bad property bag"}
)

// OnPublish is the durability point. mochi calls it on the publishing
// client's read goroutine after the ACL check and before it writes the
// PUBACK, so returning nil only after Submit returned nil makes "acked to
// the device" mean "on disk". It blocks that client while Submit runs,
// which is the back-pressure we want.
//
// Outcomes:
//   - not an intake topic: nil, the broker forwards it to LAN subscribers;
//   - stored: nil, PUBACK, forwarded to LAN subscribers;
//   - not stored (disk, shutdown: any Submit error but ErrRejected): no
//     PUBACK, and a QoS>0 publisher is disconnected so that it resends
//     after reconnecting;
//   - refused for good (ErrRejected, too large, bad property bag): a v5
//     QoS 1 publisher gets a PUBACK with an error reason code; a v3
//     publisher gets a plain PUBACK (v3 has no negative ack, and withholding
//     it would make the device resend a message that can never be accepted,
//     forever, blocking its in-flight window), and a QoS 2 publisher of
//     either version a plain PUBREC/PUBCOMP; the message is not forwarded.
//     All are counted and logged, rate-limited.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // our own Execute publishes
	}
	r, ok, err := h.a.route(pk.TopicName, pk.Payload)
	if !ok {
		return pk, nil
	}
	h.a.stats.received.Add(1)
	if err == nil {
		err = h.up.Submit(h.ctx, r)
	}
	switch {
	case err == nil:
		h.a.stats.stored.Add(1)
		return pk, nil
	case errors.Is(err, southbound.ErrRejected), errors.Is(err, errTooLarge), errors.Is(err, errBadBag):
		h.a.stats.rejected.Add(1)
		h.a.rejectLog.log(h.a.log, "lanmqtt: message rejected", "client", cl.ID, "device", r.Device, "topic", pk.TopicName, "err", err)
		if pk.FixedHeader.Qos == 0 {
			return pk, fmt.Errorf("lanmqtt: %w: %w", packets.ErrRejectPacket, err)
		}
		// mochi answers a returned reason code with a PUBACK, which is the
		// wrong packet for QoS 2: there a refused message gets a plain
		// PUBREC/PUBCOMP, as on v3.
		if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
			switch {
			case errors.Is(err, errTooLarge):
				return pk, codeTooLarge
			case errors.Is(err, errBadBag):
				return pk, codeBadTopic
			}
			return pk, codeRejected
		}
		return pk, packets.CodeSuccessIgnore
	default:
		h.a.stats.failed.Add(1)
		h.a.failLog.log(h.a.log, "lanmqtt: message not stored, not acknowledged", "client", cl.ID, "device", r.Device, "topic", pk.TopicName, "err", err)
		if pk.FixedHeader.Qos > 0 {
			// v3 has no server DISCONNECT: just close the connection.
			if cl.Properties.ProtocolVersion == 5 {
				_ = h.srv.DisconnectClient(cl, packets.ErrServerBusy)
			} else {
				cl.Stop(packets.ErrServerBusy)
			}
		}
		return pk, fmt.Errorf("lanmqtt: %w: %w", packets.ErrRejectPacket, err)
	}
}

// OnWillSent hands a will published on an intake topic up, as IoT Hub does
// (forwarded as telemetry with the property iothub-MessageType=Will on the
// IoT Hub surface). There is no acknowledgement to withhold: a will that
// cannot be stored is counted as failed.
func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	r, ok, err := h.a.route(pk.TopicName, pk.Payload)
	if !ok {
		return
	}
	h.a.stats.received.Add(1)
	if err == nil {
		if _, _, hub := iothub.ParseEventsTopic(pk.TopicName); hub {
			r.Message.Properties = append(r.Message.Properties, edgegw.Property{Key: "iothub-MessageType", Value: "Will"})
		}
		err = h.up.Submit(h.ctx, r)
	}
	if err != nil {
		h.a.stats.failed.Add(1)
		h.a.failLog.log(h.a.log, "lanmqtt: will not stored", "client", cl.ID, "device", r.Device, "err", err)
		return
	}
	h.a.stats.stored.Add(1)
}
