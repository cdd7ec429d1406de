// Package mqtt3 is the northbound pool's MQTT 3.1.1 client: one connection,
// clean session, publishes at QoS 0 and 1, subscriptions, keep-alive, and
// nothing more. It exists because the pool holds one connection per device
// identity, thousands of them, and a general client's cost per connection
// (ten goroutines for paho.mqtt.golang) dominated the gateway's memory.
//
// A Conn costs one goroutine, the reader, which exits when the connection
// ends. It never reconnects, retries or stores anything: the caller owns the
// session (the buffer is the durable store) and dials again. Its contract:
//
//   - Connect sends CONNECT on an established net.Conn (TCP, TLS or
//     WebSocket: dialing is the caller's) and returns once CONNACK accepted
//     it. A refusal is a *RefusedError with the CONNACK return code.
//   - Publish writes the packet before it returns. At QoS 1 its Token
//     completes with nil only on the PUBACK received on this connection;
//     when the connection ends first, every pending Token completes with the
//     reason. A nil Token error is therefore proof of delivery. PublishBatch
//     does the same for a run of publishes, written together in as few
//     writes as it can.
//   - Inbound PUBLISH packets go to Options.OnMessage on the reader
//     goroutine, in order. The handler must return quickly (hand work to
//     another goroutine) and must not call Close. QoS 1 messages are
//     acknowledged only when the caller calls Message.Ack, so a command can
//     be acknowledged after it is carried out.
//   - The Conn sends PINGREQ only when asked: call KeepAlive again when the
//     duration it returns has passed (the pool's drain loop does).
//   - Every method is safe for concurrent use. After Close returns, the
//     reader goroutine has exited and no callback runs again. Close must not
//     be called from OnMessage or OnLost (they run on the reader, which
//     Close waits for).
package mqtt3

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxPacket is the default limit on an inbound packet: IoT Hub's
// largest downlink payload (a 128 KiB method request) plus its topic, with
// room to spare.
const DefaultMaxPacket = 256 << 10

// Options configure one connection. ClientID is required.
type Options struct {
	ClientID string
	Username string
	Password string
	// KeepAlive is announced in CONNECT (whole seconds, at most 65535 s);
	// zero turns keep-alive off.
	KeepAlive time.Duration
	// PingTimeout is how long a PINGREQ may go unanswered before the
	// connection is given up. Default 10 s.
	PingTimeout time.Duration
	// WriteTimeout bounds every write; a write that times out ends the
	// connection. Default 30 s.
	WriteTimeout time.Duration
	// MaxPacket is the largest inbound packet accepted (remaining length);
	// a larger one ends the connection. Default DefaultMaxPacket.
	MaxPacket int
	// OnMessage receives inbound PUBLISH packets (see the package doc).
	OnMessage func(*Message)
	// OnLost is called once, on the reader goroutine, when the connection
	// ends for any reason other than Close.
	OnLost func(error)
}

// ErrClosed is the reason pending Tokens fail with after Close.
var ErrClosed = errors.New("mqtt connection closed")

// ErrPingTimeout ends a connection whose server stopped answering PINGREQ.
var ErrPingTimeout = errors.New("no PINGRESP from the server in time")

// RefusedError is a CONNACK with a non-zero return code.
type RefusedError struct{ Code byte }

func (e *RefusedError) Error() string {
	reason := map[byte]string{1: "unacceptable protocol version", 2: "identifier rejected",
		3: "server unavailable", 4: "bad user name or password", 5: "not authorized"}[e.Code]
	if reason == "" {
		reason = "unknown return code"
	}
	return fmt.Sprintf("connection refused: CONNACK %d (%s)", e.Code, reason)
}

// Subscription is one topic filter of a SUBSCRIBE and its maximum QoS.
type Subscription struct {
	Filter string
	QoS    byte
}

// Message is an inbound PUBLISH.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	id      uint16
	c       *Conn
	acked   atomic.Bool
}

// Ack sends the PUBACK of a QoS 1 message (once; later calls do nothing).
// A QoS 0 message needs none.
func (m *Message) Ack() error {
	if m.QoS == 0 || m.acked.Swap(true) {
		return nil
	}
	return m.c.write(pubackPacket(m.id))
}

// Token is the outcome of a QoS 1 publish or a SUBSCRIBE.
type Token struct {
	c *Conn // its mu guards done and fired
	// done is made with the Token, except for PublishBatch's: those of a
	// window mostly complete before anyone waits, so theirs is made by the
	// first Done that finds the Token pending.
	done  chan struct{}
	fired bool   // completed: err and codes are set
	err   error  // nil: acknowledged
	codes []byte // SUBACK return codes
	id    uint16 // packet identifier
}

// Done is closed when the acknowledgement arrived or the connection ended.
func (t *Token) Done() <-chan struct{} {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done == nil {
		if t.fired {
			return closedChan
		}
		t.done = make(chan struct{})
	}
	return t.done
}

// closedChan is the Done of a Token that completed before anyone asked.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// fire completes t with err (nil: acknowledged); c.mu is held.
func (t *Token) fire(err error, codes []byte) {
	t.err, t.codes, t.fired = err, codes, true
	if t.done != nil {
		close(t.done)
	}
}

// Err is nil when the server acknowledged; valid once Done is closed.
func (t *Token) Err() error { return t.err }

// Conn is one MQTT connection.
type Conn struct {
	nc        net.Conn
	o         Options
	br        *bufio.Reader // the reader goroutine's
	done      chan struct{} // closed when the reader has exited
	lastWrite atomic.Int64  // unix nanoseconds of the last successful write

	wmu sync.Mutex // serialises writes

	mu       sync.Mutex
	pending  map[uint16]*Token // nil when empty: idle connections hold no map
	nextID   uint16
	pingSent time.Time // zero: no PINGREQ outstanding
	err      error     // why the connection ended; nil while it is up
}

// Connect sends CONNECT on nc and waits for CONNACK until ctx ends. On
// error nc is closed.
func Connect(ctx context.Context, nc net.Conn, o Options) (*Conn, error) {
	if o.PingTimeout <= 0 {
		o.PingTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxPacket <= 0 {
		o.MaxPacket = DefaultMaxPacket
	}
	o.KeepAlive = min(max(o.KeepAlive, 0), 65535*time.Second) // what CONNECT can announce
	ka := o.KeepAlive.Round(time.Second) / time.Second
	if err := checkConnect(o); err != nil {
		nc.Close()
		return nil, err
	}
	c := &Conn{nc: nc, o: o, br: bufio.NewReaderSize(nc, 128), done: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	err := c.handshake(connectPacket(o.ClientID, o.Username, o.Password, uint16(ka)))
	if !stop() || ctx.Err() != nil {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	c.lastWrite.Store(time.Now().UnixNano())
	go c.readLoop()
	return c, nil
}

func (c *Conn) handshake(connect []byte) error {
	if _, err := c.nc.Write(connect); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	p, err := readPacket(c.br, c.br, 16)
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("server closed the connection before CONNACK")
	case err != nil:
		return fmt.Errorf("read CONNACK: %w", err)
	case p.typ != typeConnack || len(p.body) != 2:
		return protocolErr("expected CONNACK, got packet type %d with %d bytes", p.typ, len(p.body))
	case p.body[1] != 0:
		return &RefusedError{Code: p.body[1]}
	}
	return nil
}

// Done is closed once the connection has ended and the reader has exited.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is up.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Publish sends a PUBLISH. At QoS 0 the Token is nil; at QoS 1 it completes
// on the PUBACK. An error means the packet was not written.
func (c *Conn) Publish(topic string, qos byte, payload []byte) (*Token, error) {
	if qos > 1 {
		return nil, fmt.Errorf("publish %s: QoS %d not supported", topic, qos)
	}
	if err := checkString("topic", topic); err != nil {
		return nil, err
	}
	var t *Token
	var id uint16
	if qos == 1 {
		var err error
		if t, id, err = c.register(); err != nil {
			return nil, err
		}
	}
	bp := bufPool.Get().(*[]byte)
	b := publishPacket((*bp)[:0], topic, qos, id, payload)
	err := c.write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		bufPool.Put(bp)
	}
	if err != nil {
		if t != nil {
			c.forget(id)
		}
		return nil, err
	}
	return t, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Subscribe sends one SUBSCRIBE and waits for its SUBACK; it returns the
// granted QoS per filter (0x80: refused).
func (c *Conn) Subscribe(ctx context.Context, subs []Subscription) ([]byte, error) {
	if len(subs) == 0 {
		return nil, errors.New("subscribe: no topic filters")
	}
	for _, s := range subs {
		if err := checkString("topic filter", s.Filter); err != nil {
			return nil, err
		}
	}
	t, id, err := c.register()
	if err != nil {
		return nil, err
	}
	if err := c.write(subscribePacket(id, subs)); err != nil {
		c.forget(id)
		return nil, err
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	}
	if t.err != nil {
		return nil, t.err
	}
	if len(t.codes) != len(subs) {
		return nil, protocolErr("SUBACK with %d return codes for %d filters", len(t.codes), len(subs))
	}
	return t.codes, nil
}

// KeepAlive sends a PINGREQ when nothing was written for three quarters of
// the keep-alive period, and ends the connection when a PINGREQ stayed
// unanswered for PingTimeout. It returns when to call it again, never later
// than three quarters of the period (zero: never, keep-alive is off or the
// connection ended).
func (c *Conn) KeepAlive(now time.Time) time.Duration {
	ka := c.o.KeepAlive * 3 / 4
	if ka <= 0 {
		return 0
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0
	}
	if !c.pingSent.IsZero() {
		left := c.o.PingTimeout - now.Sub(c.pingSent)
		c.mu.Unlock()
		if left <= 0 {
			c.fail(ErrPingTimeout)
			return 0
		}
		return min(left, ka) // answered or not, look again within a period
	}
	idle := now.Sub(time.Unix(0, c.lastWrite.Load()))
	if idle < ka {
		c.mu.Unlock()
		return ka - idle
	}
	c.pingSent = now
	c.mu.Unlock()
	if c.write(pingreqPacket) != nil {
		return 0
	}
	return min(c.o.PingTimeout, ka)
}

// Close sends DISCONNECT (best effort, at most one second), closes the
// connection, fails pending Tokens with ErrClosed and waits for the reader
// to exit.
func (c *Conn) Close() error {
	c.mu.Lock()
	first := c.err == nil
	if first {
		c.err = ErrClosed
	}
	c.mu.Unlock()
	// DISCONNECT only when no write is under way: a write stuck on a peer
	// that stopped reading must not hold Close, and closing ends it.
	if first && c.wmu.TryLock() {
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		c.nc.Write(disconnectPacket)
		c.wmu.Unlock()
	}
	c.nc.Close()
	<-c.done
	return nil
}

// register allocates a packet identifier and its Token.
func (c *Conn) register() (*Token, uint16, error) {
	t := &Token{c: c, done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reserve(1); err != nil {
		return nil, 0, err
	}
	c.add(t)
	return t, t.id, nil
}

// reserve checks that n more packet identifiers can be pending; c.mu is
// held.
func (c *Conn) reserve(n int) error {
	if c.err != nil {
		return c.err
	}
	if len(c.pending)+n > 65535 {
		return errors.New("mqtt: all 65535 packet identifiers in use")
	}
	if c.pending == nil {
		c.pending = make(map[uint16]*Token, n)
	}
	return nil
}

// add gives t the next free packet identifier and makes it pending; c.mu
// is held and reserve made room.
func (c *Conn) add(t *Token) {
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, busy := c.pending[c.nextID]; !busy {
			break
		}
	}
	t.id = c.nextID
	c.pending[t.id] = t
}

func (c *Conn) forget(id uint16) {
	c.mu.Lock()
	c.drop(id)
	c.mu.Unlock()
}

// drop removes id from pending; c.mu is held.
func (c *Conn) drop(id uint16) {
	delete(c.pending, id)
	if len(c.pending) == 0 {
		c.pending = nil
	}
}

// write writes one whole packet. A failed write ends the connection.
func (c *Conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	return c.writeLocked(b)
}

// writeLocked writes whole packets within WriteTimeout; c.wmu is held. A
// failed write ends the connection.
func (c *Conn) writeLocked(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.o.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.fail(fmt.Errorf("write: %w", err))
		return c.Err()
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// fail records why the connection ends (the first reason wins) and closes
// it, which ends the reader.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.nc.Close()
}

// checkConnect refuses what CONNECT cannot carry, before anything is sent.
func checkConnect(o Options) error {
	if o.Password != "" && o.Username == "" {
		return errors.New("mqtt: a password needs a user name in MQTT 3.1.1")
	}
	for _, f := range []struct{ name, v string }{{"client id", o.ClientID}, {"user name", o.Username}, {"password", o.Password}} {
		if err := checkString(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

// checkString refuses a string longer than MQTT's two-byte length prefix.
func checkString(name, s string) error {
	if len(s) > 65535 {
		return fmt.Errorf("mqtt: %s of %d bytes; at most 65535", name, len(s))
	}
	return nil
}
