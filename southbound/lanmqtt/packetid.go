package lanmqtt

import (
	"bytes"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// packetIDs corrects how mochi v2.7.9 answers a SUBSCRIBE or UNSUBSCRIBE.
//
// mochi checks the packet identifier of a client's SUBSCRIBE or UNSUBSCRIBE
// against the session's in-flight map, which also holds the identifiers the
// server chose for its own QoS 1 and 2 publishes to the client. Client and
// server number their packets independently (MQTT 3.1.1 section 2.3.1, 5.0
// section 2.2.1), so a persistent session with queued messages (server ids
// 1, 2, 3) answered a reconnecting device's SUBSCRIBE with id 1 with reason
// 0x91 "packet identifier in use", a code MQTT 3.1.1 does not have, and
// did not subscribe it; an UNSUBSCRIBE was acknowledged and not done.
//
// OnPacketRead keeps the client's identifier aside and hands mochi the
// packet with identifier 0, which no in-flight entry has (the fixed
// header's QoS, which mochi's validation reads, is cleared with it: the
// flags were checked when the packet was decoded). OnPacketEncode puts the
// identifier back into the SUBACK or UNSUBACK. mochi answers a SUBSCRIBE on
// the client's read goroutine before reading its next packet, so each
// client has at most one identifier aside. An identifier that the client
// itself still uses (an inbound QoS 2 publish awaiting PUBREL) is left for
// mochi to refuse, as the protocol wants.
//
// OnPacketEncode also keeps SUBACKs to MQTT 3.1.1 clients within the codes
// 3.1.1 has (0x00, 0x01, 0x02, 0x80).
type packetIDs struct {
	mqtt.HookBase
	mu    sync.Mutex
	aside map[*mqtt.Client]uint16
}

func newPacketIDs() *packetIDs { return &packetIDs{aside: map[*mqtt.Client]uint16{}} }

func (h *packetIDs) ID() string { return "edgegw-lanmqtt-packet-ids" }

func (h *packetIDs) Provides(b byte) bool {
	return bytes.IndexByte([]byte{
		mqtt.OnPacketRead,
		mqtt.OnPacketEncode,
		mqtt.OnPacketProcessed,
		mqtt.OnDisconnect,
	}, b) >= 0
}

func (h *packetIDs) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Subscribe && pk.FixedHeader.Type != packets.Unsubscribe || pk.PacketID == 0 {
		return pk, nil // a missing identifier is mochi's to refuse
	}
	if e, ok := cl.State.Inflight.Get(pk.PacketID); ok && (e.FixedHeader.Type == packets.Pubrec || e.FixedHeader.Type == packets.Pubcomp) {
		return pk, nil // in use by the client's own QoS 2 publish
	}
	h.mu.Lock()
	h.aside[cl] = pk.PacketID
	h.mu.Unlock()
	pk.PacketID, pk.FixedHeader.Qos = 0, 0
	return pk, nil
}

func (h *packetIDs) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Suback && pk.FixedHeader.Type != packets.Unsuback {
		return pk
	}
	if pk.PacketID == 0 {
		h.mu.Lock()
		id, ok := h.aside[cl]
		delete(h.aside, cl)
		h.mu.Unlock()
		if ok {
			pk.PacketID = id
		}
	}
	if pk.FixedHeader.Type == packets.Suback && cl.Properties.ProtocolVersion < 5 {
		codes := bytes.Clone(pk.ReasonCodes) // mochi's slice, also seen by OnSubscribed
		for i, c := range codes {
			if c > packets.CodeGrantedQos2.Code {
				codes[i] = packets.ErrUnspecifiedError.Code
			}
		}
		pk.ReasonCodes = codes
	}
	return pk
}

// OnPacketProcessed and OnDisconnect drop an identifier whose answer was
// never written (the connection closed first).
func (h *packetIDs) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type == packets.Subscribe || pk.FixedHeader.Type == packets.Unsubscribe {
		h.forget(cl)
	}
}

func (h *packetIDs) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.forget(cl) }

func (h *packetIDs) forget(cl *mqtt.Client) {
	h.mu.Lock()
	delete(h.aside, cl)
	h.mu.Unlock()
}
