package lanmqtt

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
)

// A peer on the websocket port that sends one plain request and then idles
// is closed within connect_timeout, not kept alive.
func TestWebsocketIdlePeerClosed(t *testing.T) {
	cfg := baseConfig()
	cfg.Websocket = "127.0.0.1:0"
	cfg.ConnectTimeout = 300 * time.Millisecond
	a := start(t, cfg, new(testpeer.Uplink))
	c, err := net.DialTimeout("tcp", a.WebsocketAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The answer (400, not an upgrade), then EOF well before our deadline.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.Copy(io.Discard, c)
	if err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %s", d)
	}
}

// A refused v5 QoS 2 publish gets a PUBREC (and then a PUBCOMP), never the
// PUBACK mochi would send for a returned reason code.
func TestRejectedV5QoS2(t *testing.T) {
	up := new(testpeer.Uplink)
	up.SetFail(func(int) error { return southbound.ErrRejected })
	a := start(t, baseConfig(), up)
	r := dialRaw(t, a)
	r.connectV5("dev1", "dev1", "pw1")
	r.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 2},
		ProtocolVersion: 5, PacketID: 7, TopicName: "devices/dev1/messages/events/", Payload: []byte("x"),
	})
	typ, body, err := r.recv()
	if err != nil || typ != packets.Pubrec || len(body) < 2 || body[1] != 7 {
		t.Fatalf("got type %d body %x err %v, want PUBREC for id 7", typ, body, err)
	}
	if _, err := r.c.Write([]byte{packets.Pubrel<<4 | 2, 2, 0, 7}); err != nil {
		t.Fatal(err)
	}
	typ, body, err = r.recv()
	if err != nil || typ != packets.Pubcomp || len(body) < 2 || body[1] != 7 {
		t.Fatalf("got type %d body %x err %v, want PUBCOMP for id 7", typ, body, err)
	}
	if s := a.Stats(); s.Rejected != 1 || s.Stored != 0 {
		t.Errorf("stats %+v", s)
	}
}

// Aliases are not offered: the ACL check runs before mochi resolves them.
func TestNoTopicAliases(t *testing.T) {
	a, err := New("t", baseConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := a.options().Capabilities.TopicAliasMaximum; m != 0 {
		t.Fatalf("TopicAliasMaximum %d, want 0", m)
	}
	// A v5 client that uses one anyway breaks the protocol and is
	// disconnected, rather than told "not authorized".
	ad := start(t, baseConfig(), new(testpeer.Uplink))
	r := dialRaw(t, ad)
	r.connectV5("dev1", "dev1", "pw1")
	r.send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: 5, PacketID: 1, TopicName: "devices/dev1/messages/events/", Payload: []byte("x"),
		Properties: packets.Properties{TopicAlias: 1, TopicAliasFlag: true},
	})
	typ, body, err := r.recv()
	switch {
	case errors.Is(err, io.EOF):
	case err != nil:
		t.Fatal(err)
	case typ != packets.Disconnect || len(body) < 1 || body[0] != packets.ErrTopicAliasInvalid.Code:
		t.Fatalf("got type %d body %x, want DISCONNECT 0x94", typ, body)
	}
}
