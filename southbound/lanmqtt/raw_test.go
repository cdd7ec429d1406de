package lanmqtt

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
)

// rawClient speaks MQTT byte by byte, to see reason codes paho hides and
// to send what no client library would.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, a *Adapter) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", a.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawClient) send(pk packets.Packet) {
	r.t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		r.t.Fatalf("cannot encode type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.c.Write(buf.Bytes()); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads one packet's type and body.
func (r *rawClient) recv() (byte, []byte, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, _, err := packets.DecodeLength(r.br)
	if err != nil {
		return 0, nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		return 0, nil, err
	}
	return b >> 4, body, nil
}

func (r *rawClient) connectV5(clientID, user, pass string) { r.connect(5, clientID, user, pass) }

func (r *rawClient) connectV3(clientID, user, pass string) { r.connect(4, clientID, user, pass) }

// connect sends a clean-session CONNECT of protocol version v and expects
// a CONNACK that accepts it.
func (r *rawClient) connect(v byte, clientID, user, pass string) {
	r.t.Helper()
	r.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: v,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pass),
		},
	})
	typ, body, err := r.recv()
	if err != nil || typ != packets.Connack || len(body) < 2 || body[1] != 0 {
		r.t.Fatalf("connack: type %d body %x err %v", typ, body, err)
	}
}

// publishV5 publishes at QoS 1 and returns the PUBACK reason code.
func (r *rawClient) publishV5(id uint16, topic string, payload []byte) byte {
	r.t.Helper()
	r.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: 5, PacketID: id, TopicName: topic, Payload: payload,
	})
	typ, body, err := r.recv()
	if err != nil || typ != packets.Puback || len(body) < 2 || uint16(body[0])<<8|uint16(body[1]) != id {
		r.t.Fatalf("puback: type %d body %x err %v", typ, body, err)
	}
	if len(body) == 2 {
		return 0
	}
	return body[2]
}

// v5 publishers learn why a message was refused for good.
func TestRejectedV5ReasonCodes(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxMessageBytes = 100
	up := new(testpeer.Uplink)
	up.SetFail(func(n int) error {
		if n == 1 {
			return southbound.ErrRejected
		}
		return nil
	})
	a := start(t, cfg, up)
	r := dialRaw(t, a)
	r.connectV5("dev1", "dev1", "pw1")
	if code := r.publishV5(1, "devices/dev1/messages/events/", []byte("x")); code != 0x83 {
		t.Errorf("ErrRejected: reason 0x%02x, want 0x83", code)
	}
	if code := r.publishV5(2, "devices/dev1/messages/events/", make([]byte, 101)); code != 0x95 {
		t.Errorf("too large: reason 0x%02x, want 0x95", code)
	}
	if code := r.publishV5(3, "devices/dev1/messages/events/a=%zz", []byte("x")); code != 0x90 {
		t.Errorf("bad bag: reason 0x%02x, want 0x90", code)
	}
	if code := r.publishV5(4, "devices/dev1/messages/events/", []byte("ok")); code != 0 {
		t.Errorf("good: reason 0x%02x, want 0", code)
	}
	if s := a.Stats(); s.Rejected != 3 || s.Stored != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A v5 publisher whose message could not be stored gets no PUBACK but a
// DISCONNECT (server busy).
func TestSubmitFailureV5Disconnect(t *testing.T) {
	up := new(testpeer.Uplink)
	up.SetFail(func(int) error { return errDisk })
	a := start(t, baseConfig(), up)
	r := dialRaw(t, a)
	r.connectV5("dev1", "dev1", "pw1")
	r.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: 5, PacketID: 7, TopicName: "devices/dev1/messages/events/", Payload: []byte("x"),
	})
	typ, body, err := r.recv()
	if err != nil || typ != packets.Disconnect || len(body) < 1 || body[0] != packets.ErrServerBusy.Code {
		t.Fatalf("want DISCONNECT 0x89, got type %d body %x err %v", typ, body, err)
	}
	if _, _, err := r.recv(); err == nil {
		t.Error("connection still open")
	}
}

// Garbage never crashes the broker, and a silent connection is closed
// after connect_timeout.
func TestMalformedInput(t *testing.T) {
	up := new(testpeer.Uplink)
	cfg := baseConfig()
	cfg.ConnectTimeout = 500 * time.Millisecond
	a := start(t, cfg, up)
	inputs := [][]byte{
		{},
		{0x00},
		{0xff, 0xff, 0xff, 0xff, 0xff},
		{0x10, 0xff, 0xff, 0xff, 0x7f},          // CONNECT claiming 256 MiB
		{0x30, 0x05, 0x00, 0x01, 'a', 'b', 'c'}, // PUBLISH before CONNECT
		{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 99}, // bad protocol level, truncated
		{0x10, 0x02, 0x00},                         // truncated
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		inputs = append(inputs, b)
	}
	// A valid CONNECT followed by garbage.
	var conn bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "dev1",
			UsernameFlag: true, Username: []byte("dev1"), PasswordFlag: true, Password: []byte("pw1")}}
	if err := pk.ConnectEncode(&conn); err != nil {
		t.Fatal(err)
	}
	inputs = append(inputs,
		append(bytes.Clone(conn.Bytes()), 0x32, 0x03, 0x00, 0x09, 'x'),        // publish with topic past the end
		append(bytes.Clone(conn.Bytes()), 0xf0, 0x00),                         // reserved type
		append(bytes.Clone(conn.Bytes()), 0x82, 0x04, 0x00, 0x01, 0x00, 0x00), // subscribe without filter
	)
	for i, in := range inputs {
		c, err := net.DialTimeout("tcp", a.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(in)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		// The server closes the connection (or answers and then closes on
		// the next error); either way it must not hang past the deadline.
		_, err = io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("input %d (%x): connection not closed by the broker", i, in)
		}
		c.Close()
	}
	// Still serving.
	c := connect(t, pahoOpts(brokerURL(a), "dev1", "dev1", "pw1"))
	publish(t, c, "devices/dev1/messages/events/", 1, "still alive")
	up.Wait(t, 1)
}

// Shutdown does not wait for a peer that never sends CONNECT.
func TestShutdownWithSilentPeer(t *testing.T) {
	cfg := baseConfig()
	cfg.ConnectTimeout = time.Hour
	a := start(t, cfg, new(testpeer.Uplink))
	c, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Accepts are in order: once a later client is served, the silent one
	// has been accepted too.
	connect(t, pahoOpts(brokerURL(a), "dev1", "dev1", "pw1"))
	// start's cleanup cancels and fails the test if Run takes > 10 s.
}
