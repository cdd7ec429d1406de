package mqtt3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Inbound PUBLISH packets reach OnMessage in order; a QoS 1 one is
// acknowledged only by Message.Ack, exactly once.
func TestMessageAck(t *testing.T) {
	s := newRawServer(t)
	r := newRecorder()
	c, p := s.connect(r.options("acker"))
	var burst [][]byte
	for i := range 50 {
		burst = append(burst, serverPublish(fmt.Sprintf("in/%d", i), byte(i%2), uint16(100+i), []byte(fmt.Sprint(i))))
	}
	p.write(burst...)
	var msgs []*Message
	for i := range 50 {
		m := r.next(t)
		if m.Topic != fmt.Sprintf("in/%d", i) || m.QoS != byte(i%2) || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q QoS %d %q", i, m.Topic, m.QoS, m.Payload)
		}
		msgs = append(msgs, m)
	}
	// Nothing was acknowledged on its own: the next packet the server reads
	// is this PUBLISH.
	if _, err := c.Publish("mark/1", 0, nil); err != nil {
		t.Fatal(err)
	}
	if pp := p.readPublish(); pp.TopicName != "mark/1" {
		t.Fatalf("server read %v", pp)
	}
	for i := 49; i >= 0; i-- { // any order; twice each
		for range 2 {
			if err := msgs[i].Ack(); err != nil {
				t.Fatalf("Ack %d: %v", i, err)
			}
		}
	}
	if _, err := c.Publish("mark/2", 0, nil); err != nil {
		t.Fatal(err)
	}
	for i := 49; i >= 0; i -= 2 { // only the QoS 1 messages, once each
		cp := p.read()
		pa, ok := cp.(*packets.PubackPacket)
		if !ok || pa.MessageID != uint16(100+i) {
			t.Fatalf("server read %v, want PUBACK %d", cp, 100+i)
		}
	}
	if pp := p.readPublish(); pp.TopicName != "mark/2" {
		t.Fatalf("server read %v", pp)
	}
}

// Without OnMessage, QoS 1 messages are acknowledged at once.
func TestNoHandlerAcks(t *testing.T) {
	s := newRawServer(t)
	c, p := s.connect(Options{ClientID: "nohandler"})
	p.write(serverPublish("a", 0, 0, nil), serverPublish("b", 1, 7, []byte("x")), serverPublish("c", 1, 8, nil))
	for _, id := range []uint16{7, 8} {
		cp := p.read()
		if pa, ok := cp.(*packets.PubackPacket); !ok || pa.MessageID != id {
			t.Fatalf("server read %v, want PUBACK %d", cp, id)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

// After the connection ends, Ack reports why.
func TestAckAfterClose(t *testing.T) {
	s := newRawServer(t)
	r := newRecorder()
	c, p := s.connect(r.options("late-ack"))
	p.write(serverPublish("a", 1, 5, nil))
	m := r.next(t)
	c.Close()
	if err := m.Ack(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v, want ErrClosed", err)
	}
}

// Subscribe sends one SUBSCRIBE and returns the SUBACK's codes verbatim,
// 0x80 (refused) included.
func TestSubscribeRaw(t *testing.T) {
	s := newRawServer(t)
	c, p := s.connect(Options{ClientID: "sub"})
	subs := []Subscription{{"devices/d1/messages/devicebound/#", 1}, {"$iothub/methods/POST/#", 0}, {"forbidden", 1}}
	type result struct {
		codes []byte
		err   error
	}
	res := make(chan result, 1)
	go func() {
		codes, err := c.Subscribe(context.Background(), subs)
		res <- result{codes, err}
	}()
	cp := p.read()
	sp, ok := cp.(*packets.SubscribePacket)
	if !ok || sp.Qos != 1 || sp.MessageID == 0 ||
		fmt.Sprint(sp.Topics, sp.Qoss) != "[devices/d1/messages/devicebound/# $iothub/methods/POST/# forbidden] [1 0 1]" {
		t.Fatalf("server read %v", cp)
	}
	p.write(suback(sp.MessageID, 1, 0, 0x80))
	select {
	case r := <-res:
		if r.err != nil || !bytes.Equal(r.codes, []byte{1, 0, 0x80}) {
			t.Fatalf("Subscribe: %v %v", r.codes, r.err)
		}
	case <-time.After(wait):
		t.Fatal("Subscribe did not return")
	}

	// A SUBACK with the wrong number of codes fails that Subscribe only.
	go func() {
		codes, err := c.Subscribe(context.Background(), subs[:1])
		res <- result{codes, err}
	}()
	sp = p.read().(*packets.SubscribePacket)
	p.write(suback(sp.MessageID, 1, 1))
	if r := <-res; !errors.Is(r.err, ErrProtocol) {
		t.Fatalf("SUBACK with 2 codes for 1 filter: %v %v", r.codes, r.err)
	}
	publish1Raw(t, c, p)
}

// Subscribe returns when its context ends; a late SUBACK is ignored.
func TestSubscribeCanceled(t *testing.T) {
	s := newRawServer(t)
	c, p := s.connect(Options{ClientID: "sub-cancel"})
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(ctx, []Subscription{{"a", 1}})
		res <- err
	}()
	sp := p.read().(*packets.SubscribePacket)
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe: %v, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatal("Subscribe ignored its context")
	}
	p.write(suback(sp.MessageID, 1))
	publish1Raw(t, c, p)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

// A server that stops answering PINGREQ ends the connection with
// ErrPingTimeout once PingTimeout has passed (synthetic clock).
func TestPingTimeout(t *testing.T) {
	s := newRawServer(t)
	r := newRecorder()
	o := r.options("ping")
	o.KeepAlive, o.PingTimeout = 2*time.Second, 200*time.Millisecond
	c, p := s.connect(o)
	tok, err := c.Publish("pending", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.readPublish()
	t0 := time.Now()
	if d := c.KeepAlive(t0); d <= 0 || d > 1500*time.Millisecond {
		t.Fatalf("KeepAlive right after a write = %v, want (0, 1.5s]", d)
	}
	if d := c.KeepAlive(t0.Add(2 * time.Second)); d != 200*time.Millisecond {
		t.Fatalf("KeepAlive after 2s idle = %v, want PingTimeout", d)
	}
	if cp := p.read(); fmt.Sprintf("%T", cp) != "*packets.PingreqPacket" {
		t.Fatalf("server read %v, want PINGREQ", cp)
	}
	if d := c.KeepAlive(t0.Add(2*time.Second + 150*time.Millisecond)); d != 50*time.Millisecond {
		t.Fatalf("KeepAlive with PINGREQ outstanding = %v, want 50ms", d)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("ended before PingTimeout: %v", err)
	}
	if d := c.KeepAlive(t0.Add(2*time.Second + 200*time.Millisecond)); d != 0 {
		t.Fatalf("KeepAlive at PingTimeout = %v, want 0", d)
	}
	closed(t, c.Done(), "Done")
	if err := c.Err(); !errors.Is(err, ErrPingTimeout) {
		t.Fatalf("Err() = %v", err)
	}
	if err := waitToken(t, tok); !errors.Is(err, ErrPingTimeout) {
		t.Fatalf("pending Token: %v", err)
	}
	lostOnce(t, r, ErrPingTimeout)
	if d := c.KeepAlive(t0.Add(time.Hour)); d != 0 {
		t.Fatalf("KeepAlive after the end = %v", d)
	}
	p.eof()
}

// A PINGRESP clears the outstanding PINGREQ; keep-alive 0 sends nothing.
func TestPingAnswered(t *testing.T) {
	s := newRawServer(t)
	o := Options{ClientID: "ping-ok", KeepAlive: 4 * time.Second, PingTimeout: time.Second}
	c, p := s.connect(o)
	t0 := time.Now()
	if d := c.KeepAlive(t0.Add(4 * time.Second)); d != time.Second {
		t.Fatalf("KeepAlive = %v, want PingTimeout", d)
	}
	p.read() // PINGREQ
	p.write(pingresp())
	eventually(t, wait, "PINGRESP to be handled", func() bool { return !pingOutstanding(c) })
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}

	off, p2 := s.connect(Options{ClientID: "ka-off"})
	if d := off.KeepAlive(time.Now().Add(24 * time.Hour)); d != 0 {
		t.Fatalf("KeepAlive with keep-alive off = %v", d)
	}
	if _, err := off.Publish("only", 0, nil); err != nil {
		t.Fatal(err)
	}
	if pp := p2.readPublish(); pp.TopicName != "only" { // no PINGREQ before it
		t.Fatalf("server read %v", pp)
	}
}

// Keep-alive is announced in whole seconds, at most 65535. The PINGREQ
// must come within the keep-alive the server was told, else the server
// (allowing one and a half times it) closes the connection first.
func TestKeepAliveClampedPing(t *testing.T) {
	s := newRawServer(t)
	c, p := s.connect(Options{ClientID: "ka-big", KeepAlive: 200000 * time.Second})
	if ka := p.connect.Keepalive; ka != 65535 {
		t.Fatalf("announced keep-alive %d", ka)
	}
	now := time.Now().Add(65535 * time.Second) // idle for the whole announced period
	if d := c.KeepAlive(now); d != c.o.PingTimeout {
		t.Fatalf("idle for the announced keep-alive (65535 s): KeepAlive = %v, want a PINGREQ (PingTimeout %v)", d, c.o.PingTimeout)
	}
}

// pingOutstanding reports whether a PINGREQ awaits its PINGRESP.
func pingOutstanding(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.pingSent.IsZero()
}
