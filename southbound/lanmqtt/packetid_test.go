package lanmqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
)

// read reads and decodes one packet of protocol version v.
func (r *rawClient) read(v byte) packets.Packet {
	r.t.Helper()
	typ, body, err := r.recv()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: typ, Remaining: len(body)}, ProtocolVersion: v}
	switch typ {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		pk.FixedHeader.Qos = 1
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	default:
		r.t.Fatalf("unexpected packet type %d (% x)", typ, body)
	}
	if err != nil {
		r.t.Fatalf("decode type %d: %v", typ, err)
	}
	return pk
}

// session connects as dev1 with a persistent session and returns the CONNACK.
func (r *rawClient) session(v byte) packets.Packet {
	r.t.Helper()
	r.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: v,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: false, Keepalive: 30, ClientIdentifier: "dev1",
			UsernameFlag: true, Username: []byte("dev1"), PasswordFlag: true, Password: []byte("pw1"),
		},
		Properties: packets.Properties{SessionExpiryInterval: 3600, SessionExpiryIntervalFlag: v == 5},
	})
	ack := r.read(v)
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		r.t.Fatalf("connack: %+v", ack)
	}
	return ack
}

func (r *rawClient) subscribe(v byte, id uint16, filter string) packets.Packet {
	r.t.Helper()
	r.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: v, PacketID: id,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}},
	})
	return r.read(v)
}

// A device that re-subscribes on a persistent session with queued QoS 1
// messages, with a packet id the server also uses for one of them, is
// subscribed (SUBACK 0x01, not 0x91), and its UNSUBSCRIBE with another such
// id unsubscribes.
func TestResubscribeWithQueuedMessages(t *testing.T) {
	const filter = "devices/dev1/messages/devicebound/#"
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			a := start(t, baseConfig(), new(testpeer.Uplink))
			r := dialRaw(t, a)
			r.session(v)
			if ack := r.subscribe(v, 1, filter); ack.PacketID != 1 || !bytes.Equal(ack.ReasonCodes, []byte{1}) {
				t.Fatalf("first SUBACK: id %d codes % x", ack.PacketID, ack.ReasonCodes)
			}
			r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: v})
			r.c.Close()
			eventually(t, "session offline", func() bool {
				cl, ok := a.server().Clients.Get("dev1")
				return ok && cl.Closed()
			})

			for i := range 3 {
				act := edgegw.Action{Kind: edgegw.PublishLAN, Topic: fmt.Sprintf("devices/dev1/messages/devicebound/m%d", i), Payload: []byte("queued")}
				if err := a.Execute(context.Background(), act); err != nil {
					t.Fatal(err)
				}
			}

			r = dialRaw(t, a)
			if ack := r.session(v); !ack.SessionPresent {
				t.Fatal("session not present")
			}
			var ids []uint16
			for range 3 {
				pk := r.read(v)
				if pk.FixedHeader.Type != packets.Publish {
					t.Fatalf("want the queued PUBLISH, got type %d", pk.FixedHeader.Type)
				}
				ids = append(ids, pk.PacketID)
			}
			// Unacknowledged, the three stay in flight while the device
			// subscribes again with the first id and unsubscribes with the
			// second.
			ack := r.subscribe(v, ids[0], filter)
			if ack.FixedHeader.Type != packets.Suback || ack.PacketID != ids[0] || !bytes.Equal(ack.ReasonCodes, []byte{1}) {
				t.Errorf("SUBACK: type %d id %d codes % x, want id %d code 01", ack.FixedHeader.Type, ack.PacketID, ack.ReasonCodes, ids[0])
			}
			r.send(packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, ProtocolVersion: v, PacketID: ids[1],
				Filters: packets.Subscriptions{{Filter: filter}},
			})
			if ack := r.read(v); ack.FixedHeader.Type != packets.Unsuback || ack.PacketID != ids[1] || v == 5 && !bytes.Equal(ack.ReasonCodes, []byte{0}) {
				t.Errorf("UNSUBACK: type %d id %d codes % x, want id %d", ack.FixedHeader.Type, ack.PacketID, ack.ReasonCodes, ids[1])
			}
			act := edgegw.Action{Kind: edgegw.PublishLAN, Topic: "devices/dev1/messages/devicebound/late", Payload: []byte("x")}
			if err := a.Execute(context.Background(), act); !errors.Is(err, southbound.ErrUnavailable) {
				t.Errorf("after UNSUBSCRIBE: Execute %v, want ErrUnavailable", err)
			}
			for _, id := range ids {
				r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: v, PacketID: id})
			}
			eventually(t, "in-flight acknowledged", func() bool {
				cl, ok := a.server().Clients.Get("dev1")
				return ok && cl.State.Inflight.Len() == 0
			})
		})
	}
}

// server returns the running broker, or nil.
func (a *Adapter) server() *mqtt.Server {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.srv
}

// An id the client itself still uses (its QoS 2 publish awaits PUBREL) is
// refused for a SUBSCRIBE, with a code MQTT 3.1.1 has.
func TestSubscribeWithClientsOwnIDInUse(t *testing.T) {
	a := start(t, baseConfig(), new(testpeer.Uplink))
	r := dialRaw(t, a)
	r.session(4)
	r.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 2},
		ProtocolVersion: 4, PacketID: 9, TopicName: "devices/dev1/messages/events/", Payload: []byte("x"),
	})
	if typ, _, err := r.recv(); err != nil || typ != packets.Pubrec {
		t.Fatalf("want PUBREC, got type %d err %v", typ, err)
	}
	ack := r.subscribe(4, 9, "devices/dev1/messages/devicebound/#")
	if ack.FixedHeader.Type != packets.Suback || ack.PacketID != 9 || !bytes.Equal(ack.ReasonCodes, []byte{0x80}) {
		t.Errorf("SUBACK: type %d id %d codes % x, want id 9 code 80", ack.FixedHeader.Type, ack.PacketID, ack.ReasonCodes)
	}
}
