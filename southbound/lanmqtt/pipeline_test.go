package lanmqtt

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
)

// publishNoWait sends a QoS 1 publish without reading the answer.
func (r *rawClient) publishNoWait(version byte, id uint16, topic string, payload []byte) {
	r.t.Helper()
	r.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: version, PacketID: id, TopicName: topic, Payload: payload,
	})
}

// acks reads PUBACKs until the connection closes or n have come, and
// returns their packet ids in order and how the reading ended (nil: n
// came).
func (r *rawClient) acks(n int) ([]uint16, error) {
	var ids []uint16
	for len(ids) < n {
		typ, body, err := r.recv()
		if err != nil {
			return ids, err
		}
		if typ != packets.Puback || len(body) < 2 {
			return ids, fmt.Errorf("got packet type %d body %x, want PUBACK", typ, body)
		}
		ids = append(ids, uint16(body[0])<<8|uint16(body[1]))
	}
	return ids, nil
}

// A window of publishes is taken without waiting for each commit, and the
// PUBACKs come back in the order the publishes were sent, with the
// readings stored in that order.
func TestPipelinedWindowAckedInOrder(t *testing.T) {
	up := new(testpeer.Uplink)
	a := start(t, baseConfig(), up)
	r := dialRaw(t, a)
	r.connectV3("dev1", "dev1", "pw1")
	const n = 50
	for i := 1; i <= n; i++ {
		r.publishNoWait(4, uint16(i), "devices/dev1/messages/events/", fmt.Appendf(nil, "m%d", i))
	}
	ids, err := r.acks(n)
	if err != nil {
		t.Fatalf("after %d PUBACKs: %v", len(ids), err)
	}
	for i, id := range ids {
		if id != uint16(i+1) {
			t.Fatalf("PUBACK %d is for packet %d: out of order (%v)", i, id, ids)
		}
	}
	rs := up.Wait(t, n)
	for i, rd := range rs {
		if want := fmt.Sprintf("m%d", i+1); string(rd.Message.Body) != want {
			t.Fatalf("reading %d is %q, want %q", i, rd.Message.Body, want)
		}
	}
}

// A PUBACK waits for its own commit: while the store holds the first
// publish, neither it nor the ones behind it are acknowledged; once the
// store lets go, all are, in order.
func TestPipelinedAckWaitsForCommit(t *testing.T) {
	up := new(testpeer.Uplink)
	gate := make(chan struct{})
	up.SetGate(gate)
	a := start(t, baseConfig(), up)
	r := dialRaw(t, a)
	r.connectV3("dev1", "dev1", "pw1")
	r.publishNoWait(4, 1, "devices/dev1/messages/events/", []byte("a"))
	r.publishNoWait(4, 2, "devices/dev1/messages/events/", []byte("b"))
	_ = r.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if typ, body, err := r.recv(); err == nil {
		t.Fatalf("answer before the store took the message: type %d body %x", typ, body)
	}
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	close(gate)
	ids, err := r.acks(2)
	if err != nil || ids[0] != 1 || ids[1] != 2 {
		t.Fatalf("PUBACKs %v, err %v", ids, err)
	}
}

// MQTT 3.1.1 has no negative acknowledgement: a QoS 1 publish refused for
// good (not routable, too large, a bad property bag) is never
// acknowledged; the connection is closed after the PUBACKs of the
// publishes before it, as IoT Hub does, and the refusal is counted by
// reason. Nothing refused reaches LAN subscribers.
func TestRefusedV3ClosesConnection(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxMessageBytes = 100
	for _, tc := range []struct {
		name    string
		topic   string
		payload []byte
		fail    error
		count   func(Stats) uint64
	}{
		{"unroutable", "devices/dev1/messages/events/", []byte("refused"), fmt.Errorf("identity not owned: %w", southbound.ErrRejected), func(s Stats) uint64 { return s.RejectedUnroutable }},
		{"too large", "devices/dev1/messages/events/", make([]byte, 101), nil, func(s Stats) uint64 { return s.RejectedTooLarge }},
		{"bad bag", "devices/dev1/messages/events/x=%ZZ", []byte("refused"), nil, func(s Stats) uint64 { return s.RejectedBadBag }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := new(testpeer.Uplink)
			up.SetFail(func(n int) error {
				if n == 2 {
					return tc.fail
				}
				return nil
			})
			a := start(t, cfg, up)
			got := make(chan string, 8)
			w := connect(t, pahoOpts(brokerURL(a), "w", "watcher", "pw4"))
			if tok := w.Subscribe("devices/#", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal("subscribe failed")
			}
			r := dialRaw(t, a)
			r.connectV3("dev1", "dev1", "pw1")
			r.publishNoWait(4, 1, "devices/dev1/messages/events/", []byte("first"))
			r.publishNoWait(4, 2, tc.topic, tc.payload)
			r.publishNoWait(4, 3, "devices/dev1/messages/events/", []byte("behind"))
			ids, err := r.acks(3)
			if len(ids) != 1 || ids[0] != 1 {
				t.Fatalf("PUBACKs %v, want only [1]", ids)
			}
			if !closedByPeer(err) {
				t.Fatalf("connection not closed after the refused publish: %v", err)
			}
			select {
			case p := <-got:
				if p != "first" {
					t.Fatalf("subscriber got %q", p)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("stored message not forwarded")
			}
			select {
			case p := <-got:
				t.Fatalf("subscriber got %q, which was never acknowledged", p)
			case <-time.After(200 * time.Millisecond):
			}
			eventually(t, "counters", func() bool {
				s := a.Stats()
				return s.Rejected == 1 && tc.count(s) == 1 && s.RefusedClosed == 1 && s.Stored == 1
			})
		})
	}
}

// closedByPeer reports whether err ended a read because the peer closed
// the connection (not because the read timed out).
func closedByPeer(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// Forwarding keeps what it was before intake became a pipeline: every
// publish of a connection (intake or plain LAN traffic, QoS 0, 1 and 2)
// reaches a LAN subscriber in the order sent, at the subscriber's QoS, and
// a retained one is kept for later subscribers.
func TestPipelineForwardsInOrderAndRetains(t *testing.T) {
	cfg := baseConfig()
	cfg.Users = append(cfg.Users, User{Username: "both", Password: "pw5", Device: "dev3",
		Publish: []string{"devices/dev3/messages/events/#", "lan/#"}, Subscribe: []string{"#"}})
	up := new(testpeer.Uplink)
	a := start(t, cfg, up)
	type msg struct {
		topic, payload string
		qos            byte
	}
	got := make(chan msg, 16)
	w := connect(t, pahoOpts(brokerURL(a), "w", "watcher", "pw4"))
	if tok := w.Subscribe("#", 2, func(_ paho.Client, m paho.Message) { got <- msg{m.Topic(), string(m.Payload()), m.Qos()} }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe failed")
	}
	c := connect(t, pahoOpts(brokerURL(a), "dev3", "both", "pw5"))
	sent := []msg{
		{"devices/dev3/messages/events/", "t1", 1},
		{"lan/a", "l1", 1},
		{"devices/dev3/messages/events/", "t2", 0},
		{"devices/dev3/messages/events/", "t3", 2},
		{"lan/a", "l2", 0},
		{"devices/dev3/messages/events/", "t4", 1},
	}
	toks := make([]paho.Token, len(sent))
	for i, m := range sent {
		toks[i] = c.Publish(m.topic, m.qos, false, m.payload)
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	for i, want := range sent {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("forwarded %d: %+v, want %+v", i, m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("forwarded %d: nothing", i)
		}
	}
	if rs := up.Wait(t, 4); string(rs[3].Message.Body) != "t4" {
		t.Errorf("stored %v", rs)
	}

	// Retained: intake and plain, seen by a subscriber that comes later.
	if tok := c.Publish("devices/dev3/messages/events/", 1, true, "kept"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("retained publish failed")
	}
	if tok := c.Publish("lan/r", 1, true, "kept-lan"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("retained publish failed")
	}
	late := make(chan msg, 4)
	l := connect(t, pahoOpts(brokerURL(a), "late", "watcher", "pw4"))
	if tok := l.Subscribe("devices/dev3/#", 1, func(_ paho.Client, m paho.Message) { late <- msg{m.Topic(), string(m.Payload()), m.Qos()} }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe failed")
	}
	if tok := l.Subscribe("lan/r", 1, func(_ paho.Client, m paho.Message) { late <- msg{m.Topic(), string(m.Payload()), m.Qos()} }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe failed")
	}
	seen := map[string]bool{}
	for range 2 {
		select {
		case m := <-late:
			seen[m.payload] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("retained messages: got %v", seen)
		}
	}
	if !seen["kept"] || !seen["kept-lan"] {
		t.Errorf("retained messages: got %v", seen)
	}
}

// A QoS 2 intake publish refused for good gets a PUBREC with a reason code
// on MQTT 5, and the connection stays usable.
func TestRefusedQoS2V5(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxMessageBytes = 10
	a := start(t, cfg, new(testpeer.Uplink))
	r := dialRaw(t, a)
	r.connectV5("dev1", "dev1", "pw1")
	r.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 2},
		ProtocolVersion: 5, PacketID: 9, TopicName: "devices/dev1/messages/events/", Payload: make([]byte, 11),
	})
	typ, body, err := r.recv()
	if err != nil || typ != packets.Pubrec || len(body) < 3 || body[2] != 0x95 {
		t.Fatalf("want PUBREC 0x95, got type %d body %x err %v", typ, body, err)
	}
	if code := r.publishV5(10, "devices/dev1/messages/events/", []byte("ok")); code != 0 {
		t.Errorf("next publish: reason 0x%02x", code)
	}
	if s := a.Stats(); s.RejectedTooLarge != 1 || s.Stored != 1 {
		t.Errorf("stats %+v", s)
	}
}
