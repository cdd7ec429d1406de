package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawV5 is an MQTT 5 client written byte by byte, to see what a PUBACK
// carries.
type rawV5 struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRawV5(t *testing.T, addr, clientID, user, pass string) *rawV5 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := &rawV5{c: c, br: bufio.NewReader(c)}
	r.send(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pass)},
	})
	if typ, body := r.recv(t); typ != packets.Connack || len(body) < 2 || body[1] != 0 {
		t.Fatalf("connack: type %d %x", typ, body)
	}
	return r
}

func (r *rawV5) send(t *testing.T, pk packets.Packet) {
	t.Helper()
	var buf bytes.Buffer
	var err error
	if pk.FixedHeader.Type == packets.Connect {
		err = pk.ConnectEncode(&buf)
	} else {
		err = pk.PublishEncode(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func (r *rawV5) recv(t *testing.T) (byte, []byte) {
	t.Helper()
	b, err := r.br.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(r.br)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		t.Fatal(err)
	}
	return b >> 4, body
}

// publish sends a QoS 1 publish and returns its PUBACK's reason code and
// length.
func (r *rawV5) publish(t *testing.T, id uint16, topic string, payload []byte, props packets.Properties) (byte, int) {
	t.Helper()
	r.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		PacketID: id, TopicName: topic, Payload: payload, Properties: props})
	typ, body := r.recv(t)
	if typ != packets.Puback || len(body) < 2 || uint16(body[0])<<8|uint16(body[1]) != id {
		t.Fatalf("want PUBACK for %d, got type %d %x", id, typ, body)
	}
	if len(body) == 2 {
		return 0, 2
	}
	return body[2], len(body)
}
