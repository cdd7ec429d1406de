package mqtt3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/goleak"
)

// TestMain proves that every goroutine a test starts (the Conn's reader,
// the test servers, the brokers and paho peers) has exited.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait is how long a test waits for something that should happen at once
// on loopback; generous because the machine may be busy.
const wait = 5 * time.Second

// eventually polls cond until it holds, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closed waits for ch to be closed, failing the test after wait.
func closed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("%s not closed within %v", what, wait)
	}
}

// isClosed reports whether ch is closed now.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// recorder collects the callbacks of one Conn.
type recorder struct {
	msgs chan *Message
	mu   sync.Mutex
	lost []error
}

func newRecorder() *recorder { return &recorder{msgs: make(chan *Message, 1024)} }

// options returns Options whose callbacks feed r.
func (r *recorder) options(clientID string) Options {
	return Options{
		ClientID:  clientID,
		OnMessage: func(m *Message) { r.msgs <- m },
		OnLost: func(err error) {
			r.mu.Lock()
			r.lost = append(r.lost, err)
			r.mu.Unlock()
		},
	}
}

func (r *recorder) lostErrs() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.lost...)
}

// next returns the next inbound message, failing the test after wait.
func (r *recorder) next(t testing.TB) *Message {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(wait):
		t.Fatalf("no message within %v", wait)
		return nil
	}
}

// none checks that no message arrived yet.
func (r *recorder) none(t testing.TB) {
	t.Helper()
	select {
	case m := <-r.msgs:
		t.Fatalf("unexpected message %q %q", m.Topic, m.Payload)
	default:
	}
}

// dial connects a Conn to addr and closes it when the test ends.
func dial(t testing.TB, addr string, o Options) *Conn {
	t.Helper()
	c, err := dialErr(t, addr, o)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	return c
}

func dialErr(t testing.TB, addr string, o Options) (*Conn, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := Connect(ctx, nc, o)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// waitToken waits for a Token and returns its error.
func waitToken(t testing.TB, tok *Token) error {
	t.Helper()
	if tok == nil {
		t.Fatal("nil Token")
	}
	closed(t, tok.Done(), "Token.Done")
	return tok.Err()
}

// publish1 publishes at QoS 1 and waits for the PUBACK.
func publish1(t testing.TB, c *Conn, topic string, payload []byte) {
	t.Helper()
	tok, err := c.Publish(topic, 1, payload)
	if err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	if err := waitToken(t, tok); err != nil {
		t.Fatalf("publish %s: token: %v", topic, err)
	}
}

// rawServer is a TCP listener the test drives by hand, for protocol edge
// cases no real broker produces. It decodes what the client sends with
// paho's packet decoder (an independent implementation).
type rawServer struct {
	t  testing.TB
	ln *net.TCPListener
	// wrap, when set, wraps the client's side of each connection.
	wrap func(net.Conn) net.Conn
}

func newRawServer(t testing.TB) *rawServer {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &rawServer{t: t, ln: ln}
}

// rawPeer is the server side of one connection.
type rawPeer struct {
	t       testing.TB
	nc      net.Conn
	connect *packets.ConnectPacket
}

// start dials the server, runs Connect on a goroutine, accepts, reads the
// CONNECT and returns the peer and the channel Connect's result arrives on.
func (s *rawServer) start(ctx context.Context, o Options) (*rawPeer, <-chan connectResult) {
	s.t.Helper()
	nc, err := net.DialTimeout("tcp", s.ln.Addr().String(), wait)
	if err != nil {
		s.t.Fatal(err)
	}
	s.ln.SetDeadline(time.Now().Add(wait))
	sc, err := s.ln.Accept()
	if err != nil {
		nc.Close()
		s.t.Fatal(err)
	}
	p := &rawPeer{t: s.t, nc: sc}
	s.t.Cleanup(func() { sc.Close() })
	if s.wrap != nil {
		nc = s.wrap(nc)
	}
	res := make(chan connectResult, 1)
	go func() {
		c, err := Connect(ctx, nc, o)
		res <- connectResult{c, err, nc}
	}()
	cp, ok := p.read().(*packets.ConnectPacket)
	if !ok {
		s.t.Fatal("first packet is not CONNECT")
	}
	p.connect = cp
	return p, res
}

type connectResult struct {
	c   *Conn
	err error
	nc  net.Conn
}

// result waits for Connect's result; a Conn is closed when the test ends.
func (s *rawServer) result(res <-chan connectResult) connectResult {
	s.t.Helper()
	select {
	case r := <-res:
		if r.c != nil {
			s.t.Cleanup(func() { r.c.Close() })
		}
		return r
	case <-time.After(2 * wait):
		s.t.Fatalf("Connect did not return within %v", 2*wait)
		return connectResult{}
	}
}

// connect returns a Conn whose server accepted it, and the server's peer.
func (s *rawServer) connect(o Options) (*Conn, *rawPeer) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	p, res := s.start(ctx, o)
	p.write(connack(0))
	r := s.result(res)
	if r.err != nil {
		s.t.Fatalf("connect: %v", r.err)
	}
	return r.c, p
}

// read returns the next packet the client sent.
func (p *rawPeer) read() packets.ControlPacket {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(wait))
	cp, err := packets.ReadPacket(p.nc)
	if err != nil {
		p.t.Fatalf("server read: %v", err)
	}
	return cp
}

// readPublish returns the next packet, which must be a PUBLISH.
func (p *rawPeer) readPublish() *packets.PublishPacket {
	p.t.Helper()
	cp := p.read()
	pp, ok := cp.(*packets.PublishPacket)
	if !ok {
		p.t.Fatalf("server read %v, want PUBLISH", cp)
	}
	return pp
}

// eof checks that the client closed the connection.
func (p *rawPeer) eof() {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(p.nc)
	if err != nil || len(b) > 0 && !bytes.Equal(b, disconnectPacket) {
		p.t.Fatalf("server read %x, %v; want EOF (after at most a DISCONNECT)", b, err)
	}
}

func (p *rawPeer) write(b ...[]byte) {
	p.t.Helper()
	p.nc.SetWriteDeadline(time.Now().Add(wait))
	if _, err := p.nc.Write(bytes.Join(b, nil)); err != nil {
		p.t.Fatalf("server write: %v", err)
	}
}

// Server-to-client packets, encoded by paho (independently of wire.go).

func encode(cp packets.ControlPacket) []byte {
	var b bytes.Buffer
	if err := cp.Write(&b); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func connack(code byte) []byte {
	p := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	p.ReturnCode = code
	return encode(p)
}

func puback(id uint16) []byte {
	p := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
	p.MessageID = id
	return encode(p)
}

func suback(id uint16, codes ...byte) []byte {
	p := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
	p.MessageID, p.ReturnCodes = id, codes
	return encode(p)
}

func pingresp() []byte { return encode(packets.NewControlPacket(packets.Pingresp)) }

func serverPublish(topic string, qos byte, id uint16, payload []byte) []byte {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Qos, p.MessageID, p.Payload = topic, qos, id, payload
	return encode(p)
}

// lostOnce checks that OnLost was called exactly once, with err.
func lostOnce(t testing.TB, r *recorder, err error) {
	t.Helper()
	lost := r.lostErrs()
	if len(lost) != 1 || !errors.Is(lost[0], err) {
		t.Fatalf("OnLost calls %v, want exactly one with %v", lost, err)
	}
}
