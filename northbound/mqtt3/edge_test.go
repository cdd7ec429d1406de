package mqtt3

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Bytes from the server that MQTT 3.1.1 does not allow end the connection
// with ErrProtocol: pending Tokens fail with it and OnLost hears it once.
func TestInboundProtocolViolations(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
	}{
		{"second CONNACK", connack(0)},
		{"PUBLISH at QoS 2", serverPublish("t", 2, 1, []byte("x"))},
		{"PUBLISH at QoS 3", []byte{0x36, 5, 0, 1, 't', 0, 1}},
		{"PUBLISH with packet id 0", []byte{0x32, 5, 0, 1, 't', 0, 0}},
		{"PUBLISH QoS 1 without packet id", []byte{0x32, 3, 0, 1, 't'}},
		{"PUBLISH with an empty topic", []byte{0x30, 3, 0, 0, 'x'}},
		{"PUBLISH topic longer than the packet", []byte{0x30, 3, 0, 9, 't'}},
		{"PUBLISH without topic length", []byte{0x30, 1, 0}},
		{"PUBLISH of 2 MiB over MaxPacket", []byte{0x30, 0x80, 0x80, 0x80, 0x01}}, // no body follows
		{"remaining length of five bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"remaining length not shortest", []byte{0xd0, 0x80, 0x00}},
		{"PUBACK with 3 bytes", []byte{0x40, 3, 0, 1, 0}},
		{"PUBACK with 1 byte", []byte{0x40, 1, 0}},
		{"SUBACK without id", []byte{0x90, 1, 0}},
		{"PUBREC", []byte{0x50, 2, 0, 1}},
		{"PUBREL", []byte{0x62, 2, 0, 1}},
		{"SUBSCRIBE", []byte{0x82, 6, 0, 1, 0, 1, 't', 0}},
		{"UNSUBACK with 3 bytes", []byte{0xb0, 3, 0, 1, 0}},
		{"PINGREQ", []byte{0xc0, 0}},
		{"reserved type 0", []byte{0x00, 0}},
		{"reserved type 15", []byte{0xf0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t)
			r := newRecorder()
			o := r.options("proto")
			o.MaxPacket = 1024
			c, p := s.connect(o)
			tok, err := c.Publish("pending", 1, []byte("p"))
			if err != nil {
				t.Fatal(err)
			}
			p.readPublish()
			p.write(tc.b) // the server keeps the connection open
			closed(t, c.Done(), "Done")
			if err := c.Err(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Err() = %v, want ErrProtocol", err)
			}
			if err := waitToken(t, tok); !errors.Is(err, ErrProtocol) {
				t.Errorf("pending Token: %v, want ErrProtocol", err)
			}
			lostOnce(t, r, ErrProtocol)
			r.none(t)
			p.eof()
		})
	}
}

// A PUBACK for an identifier nothing waits for (a late duplicate) is
// ignored; acknowledgements complete only their own Token, in any order.
func TestPubackMatching(t *testing.T) {
	s := newRawServer(t)
	r := newRecorder()
	c, p := s.connect(r.options("acks"))
	// Identifiers nothing waits for; the message after them proves the
	// reader has handled them before anything is published.
	p.write(puback(999), puback(1), serverPublish("sync", 0, 0, nil))
	if m := r.next(t); m.Topic != "sync" {
		t.Fatalf("got %q", m.Topic)
	}
	toks := make([]*Token, 3)
	ids := make([]uint16, 3)
	for i := range toks {
		var err error
		if toks[i], err = c.Publish(fmt.Sprintf("t/%d", i), 1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		pp := p.readPublish()
		if pp.Qos != 1 || pp.MessageID == 0 || pp.TopicName != fmt.Sprintf("t/%d", i) || !bytes.Equal(pp.Payload, []byte{byte(i)}) {
			t.Fatalf("server read %v", pp)
		}
		ids[i] = pp.MessageID
	}
	if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("packet identifiers %v not unique", ids)
	}
	p.write(puback(ids[1]))
	if err := waitToken(t, toks[1]); err != nil {
		t.Fatal(err)
	}
	if isClosed(toks[0].Done()) || isClosed(toks[2].Done()) {
		t.Fatal("a PUBACK completed another publish's Token")
	}
	p.write(puback(ids[1]), puback(ids[2]), puback(ids[0])) // a duplicate, then the rest
	for _, i := range []int{2, 0} {
		if err := waitToken(t, toks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("connection ended: %v", err)
	}
	publish1Raw(t, c, p)
	if lost := r.lostErrs(); len(lost) != 0 {
		t.Fatalf("OnLost %v", lost)
	}
}

// Packet identifiers skip 0 and those still in use when they wrap.
func TestPacketIDWrap(t *testing.T) {
	s := newRawServer(t)
	c, p := s.connect(Options{ClientID: "wrap"})
	tok1, err := c.Publish("a", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id := p.readPublish().MessageID; id != 1 {
		t.Fatalf("first identifier %d, want 1", id)
	}
	c.mu.Lock()
	c.nextID = 65534
	c.mu.Unlock()
	var got []uint16
	for range 3 {
		if _, err := c.Publish("b", 1, nil); err != nil {
			t.Fatal(err)
		}
		got = append(got, p.readPublish().MessageID)
	}
	if want := []uint16{65535, 2, 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("identifiers %v, want %v (1 is still pending)", got, want)
	}
	p.write(puback(1))
	if err := waitToken(t, tok1); err != nil {
		t.Fatal(err)
	}
}

// Publish refuses QoS 2 without writing anything.
func TestPublishQoS2Refused(t *testing.T) {
	s := newRawServer(t)
	c, p := s.connect(Options{ClientID: "q2"})
	if tok, err := c.Publish("t", 2, []byte("x")); err == nil || tok != nil {
		t.Fatalf("QoS 2: %v %v", tok, err)
	}
	if tok, err := c.Publish("t", 0, []byte("zero")); err != nil || tok != nil {
		t.Fatalf("QoS 0: Token %v, err %v; want nil, nil", tok, err)
	}
	pp := p.readPublish() // the QoS 0 one: nothing was sent for QoS 2
	if pp.Qos != 0 || pp.TopicName != "t" || string(pp.Payload) != "zero" || pp.Dup || pp.Retain {
		t.Fatalf("server read %v", pp)
	}
}

// MQTT strings carry a 16-bit length. A topic that does not fit must be
// refused, not written with its length cut to 16 bits: the server would
// read a different topic and take the rest for payload.
func TestPublishTopicTooLong(t *testing.T) {
	s := newRawServer(t)
	c, p := s.connect(Options{ClientID: "long"})
	topic := "x" + string(bytes.Repeat([]byte("y"), 65535)) // 65536 bytes: length wraps to 0
	tok, err := c.Publish(topic, 0, []byte("payload"))
	if err == nil && tok == nil {
		cp := p.read()
		if pp, ok := cp.(*packets.PublishPacket); ok && pp.TopicName != topic {
			t.Fatalf("Publish of a %d-byte topic succeeded and the server read topic %q (%d bytes), payload of %d bytes",
				len(topic), pp.TopicName, len(pp.TopicName), len(pp.Payload))
		}
		t.Fatalf("Publish of a %d-byte topic succeeded; server read %v", len(topic), cp)
	}
}
