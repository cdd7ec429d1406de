package lanmqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/iothub"
	"github.com/edgegw/edgegw/southbound"
)

// hook is the adapter's mochi hook for authentication, ACLs and durable
// intake (packetIDs, the other hook, answers none of these). mochi ORs the
// auth and ACL answers of all hooks, so no other hook that answers them
// (such as auth.AllowHook) may ever be added beside it.
type hook struct {
	mqtt.HookBase
	a   *Adapter
	srv *mqtt.Server
	ctx context.Context // Run's context, for Submit
	up  southbound.Uplink
	// start is up's Start, or Submit made to look like it when up has no
	// asynchronous form.
	start func(ctx context.Context, r edgegw.Reading, done chan error)
	pipes pipes
}

// newHook returns the adapter's hook for srv, handing intake to up.
func newHook(a *Adapter, srv *mqtt.Server, ctx context.Context, up southbound.Uplink) *hook {
	h := &hook{a: a, srv: srv, ctx: ctx, up: up}
	if p, ok := up.(southbound.Pipeline); ok {
		h.start = p.Start
	} else {
		h.start = func(ctx context.Context, r edgegw.Reading, done chan error) { done <- up.Submit(ctx, r) }
	}
	return h
}

func (h *hook) ID() string { return "edgegw-lanmqtt" }

func (h *hook) Provides(b byte) bool {
	return bytes.IndexByte([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnPublish,
		mqtt.OnPublishDropped,
		mqtt.OnWillSent,
		mqtt.OnDisconnect,
		mqtt.OnQosComplete,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnSessionEstablished,
	}, b) >= 0
}

// OnConnectAuthenticate checks the credentials (password, SAS token or
// client certificate), that a user bound to an identity uses it as client
// id (as IoT Hub requires), and that nobody takes over a session that
// belongs to another user.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	acc := h.a.accounts.Load().authenticate(user, pk.Connect.Password)
	reason := ""
	if acc == nil {
		acc, reason = h.a.authenticateCert(cl, user, pk.Connect.Password)
	}
	switch {
	case reason != "": // a client certificate was refused
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
		h.a.stats.connects.Add(1)
		return true
	}
	h.a.stats.authFailures.Add(1)
	h.a.authLog.log(h.a.log, "lanmqtt: connect refused", "client", cl.ID, "username", user, "remote", cl.Net.Remote, "reason", reason)
	return false
}

// OnACLCheck answers for publishes (write) and for subscriptions and
// deliveries (read).
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	acc := h.a.accounts.Load().lookup(string(cl.Properties.Username))
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

// OnPublish is the durability point; see pipeline.go for the whole
// flow. It runs on the publishing client's read goroutine, after mochi's
// ACL check. It hands an intake publish to the store without waiting and
// queues every publish of the client on its pipe, returning
// packets.ErrRejectPacket so that mochi neither acknowledges nor forwards
// it: the pipe's acker does both once the publish is on disk.
//
// Outcomes, decided by the acker in the order publishes arrived:
//   - not an intake topic: PUBACK, forwarded to LAN subscribers;
//   - stored: PUBACK, forwarded to LAN subscribers;
//   - not stored (disk, shutdown: any store error but ErrRejected): no
//     PUBACK, and a QoS>0 publisher is disconnected so that it resends
//     after reconnecting;
//   - refused for good (ErrRejected, too large, bad property bag): never
//     acknowledged as stored and never forwarded. An MQTT 5 publisher gets
//     a PUBACK (PUBREC for QoS 2) with an error reason code; an MQTT 3.1.1
//     publisher of QoS 1 or 2, which has no negative acknowledgement, has
//     its connection closed, as IoT Hub does; QoS 0 is dropped. All are
//     counted by reason and logged, rate-limited.
//
// QoS 2 publishes wait here for their turn and then take mochi's QoS 2
// flow (PUBREC, PUBREL, PUBCOMP).
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // our own Execute publishes, and the pipes' forwarding
	}
	p := h.pipeFor(cl)
	if p.closing.Load() {
		return pk, packets.ErrRejectPacket // behind a publish that closed the connection
	}
	it := newPending(pk)
	r, intake, err := h.a.route(pk.TopicName, pk.Payload)
	switch {
	case intake:
		h.a.stats.received.Add(1)
		if err == nil && cl.Properties.ProtocolVersion == 5 {
			_, _, hub := iothub.ParseEventsTopic(pk.TopicName)
			err = applyV5(r.Message, &pk.Properties, hub)
		}
		it.intake, it.device, it.err = true, r.Device, err
		if err == nil {
			it.done = it.doneCh
			h.start(h.ctx, r, it.done)
		}
	case strings.HasPrefix(pk.TopicName, "$iothub/"):
		// Requests of relayed devices; never forwarded between clients.
		if acc := h.a.accounts.Load().lookup(string(cl.Properties.Username)); acc != nil && acc.relay {
			h.relayUp(cl, acc, pk, it)
		} else {
			it.intake, it.err = true, fmt.Errorf("%w: $iothub/ topics are for relayed devices", southbound.ErrRejected)
		}
	}
	qos2 := pk.FixedHeader.Qos == 2
	if qos2 {
		it.sync = it.syncCh
	}
	p.push(it) // from here on only a QoS 2 item is still ours
	if !qos2 {
		return handedOver(pk), nil // the acker answers
	}
	pkx, err := h.qos2(p, it)
	it.release()
	return pkx, err
}

// handedOver is what OnPublish gives mochi back for a publish the pipe
// took: ignored (neither forwarded nor retained) at QoS 0, so that mochi
// sends no acknowledgement. Returning packets.ErrRejectPacket would do the
// same, but mochi then formats a debug line with the whole packet for
// every publish, one allocation of its size each.
func handedOver(pk packets.Packet) packets.Packet {
	pk.Ignore = true
	pk.FixedHeader.Qos = 0
	pk.FixedHeader.Retain = false
	return pk
}

// qos2 waits for the acker to reach a QoS 2 publish and returns what mochi
// should do with it.
func (h *hook) qos2(p *pipe, it *pending) (packets.Packet, error) {
	err := <-it.sync
	cl, pk, a := p.cl, it.pk, h.a
	switch {
	case errors.Is(err, errClosing):
		return pk, packets.ErrRejectPacket
	case err == nil:
		if it.intake {
			a.stats.stored.Add(1)
		}
		return pk, nil // mochi sends PUBREC, keeps it if retained, forwards it
	case refused(err):
		a.countRejected(err)
		a.rejectLog.log(a.log, "lanmqtt: message rejected", "client", cl.ID, "device", it.device, "topic", pk.TopicName, "err", err)
		if cl.Properties.ProtocolVersion == 5 {
			_ = cl.WritePacket(refusalAck(packets.Pubrec, pk.PacketID, err))
		} else {
			a.stats.refusedClosed.Add(1)
			p.stop(packets.ErrImplementationSpecificError)
		}
		return pk, packets.ErrRejectPacket
	default:
		a.stats.failed.Add(1)
		a.failLog.log(a.log, "lanmqtt: message not stored, not acknowledged", "client", cl.ID, "device", it.device, "topic", pk.TopicName, "err", err)
		p.stop(packets.ErrServerBusy)
		return pk, packets.ErrRejectPacket
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
