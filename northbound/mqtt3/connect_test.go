package mqtt3

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The CONNECT the client sends, as paho's decoder reads it.
func TestConnectPacketFields(t *testing.T) {
	cases := []struct {
		o         Options
		keepAlive uint16
	}{
		{Options{ClientID: "dev-1", Username: "hub/dev-1/?api-version=2021-04-12", Password: "SharedAccessSignature sr=x", KeepAlive: 90 * time.Second}, 90},
		{Options{ClientID: "anon"}, 0},
		{Options{ClientID: "user-only", Username: "u", KeepAlive: 1500 * time.Millisecond}, 2},
		{Options{ClientID: "both", Username: "u", Password: "p", KeepAlive: 1400 * time.Millisecond}, 1},
		{Options{ClientID: "", KeepAlive: 65535 * time.Second}, 65535},
		{Options{ClientID: "big", KeepAlive: 100000 * time.Second}, 65535},
	}
	s := newRawServer(t)
	for _, tc := range cases {
		c, p := s.connect(tc.o)
		cp := p.connect
		if code := cp.Validate(); code != packets.Accepted && !(tc.o.ClientID == "" && code == packets.ErrRefusedIDRejected) {
			t.Errorf("%s: paho validates CONNECT with code %d", tc.o.ClientID, code)
		}
		if cp.ProtocolName != "MQTT" || cp.ProtocolVersion != 4 || !cp.CleanSession || cp.WillFlag || cp.ReservedBit != 0 {
			t.Errorf("%s: CONNECT %v", tc.o.ClientID, cp)
		}
		if cp.ClientIdentifier != tc.o.ClientID || cp.Keepalive != tc.keepAlive {
			t.Errorf("client id %q keep-alive %d, want %q %d", cp.ClientIdentifier, cp.Keepalive, tc.o.ClientID, tc.keepAlive)
		}
		if cp.UsernameFlag != (tc.o.Username != "") || cp.Username != tc.o.Username ||
			cp.PasswordFlag != (tc.o.Password != "") || string(cp.Password) != tc.o.Password {
			t.Errorf("%s: user %v %q password %v %q", tc.o.ClientID, cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password)
		}
		c.Close()
		p.eof()
	}
}

// MQTT 3.1.1 section 3.1.2.9 [MQTT-3.1.2-22]: without a user name the
// password flag must be 0, and servers close such a connection. A password
// without a user name must not produce that CONNECT: Connect either fails
// before sending anything or leaves the password out.
func TestConnectPasswordWithoutUsername(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	got := make(chan packets.ControlPacket, 1)
	go func() {
		b.SetDeadline(time.Now().Add(wait))
		cp, _ := packets.ReadPacket(b) // nil if Connect sent nothing
		got <- cp
		if cp != nil {
			b.Write(connack(0))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := Connect(ctx, a, Options{ClientID: "pass-only", Password: "p"})
	if err == nil {
		defer c.Close()
	}
	b.Close() // ends the reader goroutine when Connect sent nothing
	cp := <-got
	if cp == nil {
		if err == nil {
			t.Fatal("Connect succeeded without sending CONNECT")
		}
		return
	}
	if code := cp.(*packets.ConnectPacket).Validate(); code != packets.Accepted {
		t.Fatalf("sent a CONNECT servers refuse (paho: code %d): %v", code, cp)
	}
}

// A CONNACK with a non-zero return code is a *RefusedError carrying it,
// and the connection is closed.
func TestConnectRefused(t *testing.T) {
	s := newRawServer(t)
	for code := byte(1); code <= 6; code++ {
		p, res := s.start(context.Background(), Options{ClientID: "refused"})
		p.write(connack(code))
		r := s.result(res)
		var re *RefusedError
		if !errors.As(r.err, &re) || re.Code != code {
			t.Fatalf("code %d: got %v, want *RefusedError", code, r.err)
		}
		if !strings.Contains(re.Error(), "CONNACK "+string('0'+code)) {
			t.Errorf("message %q does not name the code", re.Error())
		}
		if _, err := r.nc.Write([]byte{0}); !errors.Is(err, net.ErrClosed) {
			t.Errorf("code %d: the net.Conn is still open (write: %v)", code, err)
		}
		p.eof()
	}
}

// Answers that are not an acceptable CONNACK fail Connect and close nc.
func TestConnectBadAnswer(t *testing.T) {
	cases := []struct {
		name   string
		answer []byte // nil: the server closes the connection
		proto  bool   // the error wraps ErrProtocol
	}{
		{"close before CONNACK", nil, false},
		{"PINGRESP", pingresp(), true},
		{"CONNACK with 3 bytes", []byte{0x20, 3, 0, 0, 0}, true},
		{"CONNACK with 1 byte", []byte{0x20, 1, 0}, true},
		{"CONNACK over 16 bytes", append([]byte{0x20, 17}, make([]byte, 17)...), true},
		{"truncated CONNACK", []byte{0x20, 2, 0}, false},
		{"five-byte length", []byte{0x20, 0xff, 0xff, 0xff, 0xff, 0x01}, true},
	}
	s := newRawServer(t)
	for _, tc := range cases {
		p, res := s.start(context.Background(), Options{ClientID: "bad"})
		if tc.answer != nil {
			p.write(tc.answer)
		}
		p.nc.Close()
		r := s.result(res)
		var re *RefusedError
		if r.err == nil || errors.As(r.err, &re) || errors.Is(r.err, ErrProtocol) != tc.proto {
			t.Errorf("%s: got %v (ErrProtocol %v)", tc.name, r.err, tc.proto)
		}
		if _, err := r.nc.Write([]byte{0}); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: the net.Conn is still open (write: %v)", tc.name, err)
		}
	}
}

// Connect returns when its context's deadline passes, with an error that
// says so, even though the server never answers.
func TestConnectDeadline(t *testing.T) {
	s := newRawServer(t)
	for i := range 20 { // the deadline races the socket's: try it often
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		start := time.Now()
		p, res := s.start(ctx, Options{ClientID: "slow"})
		r := s.result(res)
		cancel()
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("try %d: got %v, want an error wrapping context.DeadlineExceeded", i, r.err)
		}
		if d := time.Since(start); d > wait {
			t.Fatalf("try %d: Connect returned after %v", i, d)
		}
		p.eof()
	}
}

// lateTimer is a context whose deadline passes before its Done channel
// closes, as happens whenever the context's timer fires after the
// socket's deadline (the race TestConnectDeadline loses most of the time).
type lateTimer struct {
	context.Context
	deadline time.Time
}

func (l lateTimer) Deadline() (time.Time, bool) { return l.deadline, true }

// The same, made deterministic: the error of a Connect cut short by its
// context's deadline wraps context.DeadlineExceeded however the two
// timers fire.
func TestConnectDeadlineBeforeTimer(t *testing.T) {
	s := newRawServer(t)
	inner, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ctx := lateTimer{inner, time.Now().Add(30 * time.Millisecond)}
	p, res := s.start(ctx, Options{ClientID: "slow"})
	r := s.result(res)
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want an error wrapping context.DeadlineExceeded", r.err)
	}
	p.eof()
}

// Connect returns when its context is cancelled.
func TestConnectCanceled(t *testing.T) {
	s := newRawServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, res := s.start(ctx, Options{ClientID: "slow"}) // the server has read CONNECT
	cancel()
	r := s.result(res)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %v, want an error wrapping context.Canceled", r.err)
	}
	p.eof()
	// A context cancelled before Connect is called fails it too (on a pipe
	// nobody reads, so only the context can end the write).
	a, b := net.Pipe()
	defer b.Close()
	if _, err := Connect(ctx, a, Options{ClientID: "late"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("already cancelled: got %v", err)
	}
	if _, err := a.Write([]byte{0}); err == nil {
		t.Error("the net.Conn is still open")
	}
}

// A deadline on the context does not outlive Connect: the connection stays
// usable past it.
func TestConnectClearsDeadline(t *testing.T) {
	s := newRawServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := newRecorder()
	p, res := s.start(ctx, r.options("dl"))
	p.write(connack(0))
	cr := s.result(res)
	if cr.err != nil {
		t.Fatal(cr.err)
	}
	<-ctx.Done()
	p.write(serverPublish("after/deadline", 0, 0, []byte("x")))
	if m := r.next(t); m.Topic != "after/deadline" {
		t.Fatalf("got %q", m.Topic)
	}
	publish1Raw(t, cr.c, p)
	if err := cr.c.Err(); err != nil {
		t.Fatal(err)
	}
}

// publish1Raw publishes at QoS 1 through the raw server, which acks it.
func publish1Raw(t testing.TB, c *Conn, p *rawPeer) {
	t.Helper()
	tok, err := c.Publish("barrier", 1, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	pp := p.readPublish()
	if pp.TopicName != "barrier" || pp.Qos != 1 {
		t.Fatalf("server read %v", pp)
	}
	p.write(puback(pp.MessageID))
	if err := waitToken(t, tok); err != nil {
		t.Fatal(err)
	}
}
