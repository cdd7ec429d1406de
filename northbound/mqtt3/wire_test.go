package mqtt3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// pahoRead decodes b with paho's packet reader and checks it used all of b.
func pahoRead(t *testing.T, b []byte) packets.ControlPacket {
	t.Helper()
	r := bytes.NewReader(b)
	cp, err := packets.ReadPacket(r)
	if err != nil {
		t.Fatalf("paho cannot read %x: %v", b[:min(len(b), 32)], err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes left after paho read the packet", r.Len())
	}
	return cp
}

func TestConnectPacketPaho(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes: a two-byte remaining length
	cases := []struct{ id, user, pass string }{
		{"d", "", ""}, {"dev-1", "hub.azure-devices.net/dev-1/?api-version=2021-04-12", "SharedAccessSignature sr=a&sig=b"},
		{"", "", ""}, {long, long, long}, {"only-user", "u", ""},
	}
	for _, tc := range cases {
		for _, ka := range []uint16{0, 1, 60, 65535} {
			b := connectPacket(tc.id, tc.user, tc.pass, ka)
			cp := pahoRead(t, b).(*packets.ConnectPacket)
			if code := cp.Validate(); code != packets.Accepted {
				t.Errorf("%.10q: paho Validate = %d", tc.id, code)
			}
			if cp.ProtocolName != "MQTT" || cp.ProtocolVersion != 4 || !cp.CleanSession || cp.WillFlag ||
				cp.ClientIdentifier != tc.id || cp.Keepalive != ka || cp.Username != tc.user || string(cp.Password) != tc.pass ||
				cp.UsernameFlag != (tc.user != "") || cp.PasswordFlag != (tc.pass != "") {
				t.Errorf("round trip of %.10q %.10q %.10q %d: %v", tc.id, tc.user, tc.pass, ka, cp)
			}
			if cap(b) > len(b)+3 { // room for the longest fixed header, no regrowth
				t.Errorf("%.10q: capacity %d for %d bytes: the size estimate is off", tc.id, cap(b), len(b))
			}
		}
	}
}

func TestPublishPacketPaho(t *testing.T) {
	payloads := [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0, 0xff}, 70), bytes.Repeat([]byte("p"), 20000)}
	for _, topic := range []string{"t", "devices/d1/messages/events/$.ct=application%2Fjson", strings.Repeat("ä", 100)} {
		for _, p := range payloads {
			for _, q := range []struct {
				qos byte
				id  uint16
			}{{0, 0}, {0, 77}, {1, 1}, {1, 65535}} {
				prefix := []byte("keep")
				b := publishPacket(prefix, topic, q.qos, q.id, p)
				if string(b[:4]) != "keep" {
					t.Fatal("publishPacket did not append to dst")
				}
				pp := pahoRead(t, b[4:]).(*packets.PublishPacket)
				wantID := q.id
				if q.qos == 0 {
					wantID = 0
				}
				if pp.TopicName != topic || pp.Qos != q.qos || pp.MessageID != wantID || !bytes.Equal(pp.Payload, p) || pp.Dup || pp.Retain {
					t.Fatalf("round trip %q QoS %d id %d: %v", topic, q.qos, q.id, pp)
				}
				// And our own reader agrees.
				br := bufio.NewReader(bytes.NewReader(b[4:]))
				pk, err := readPacket(br, br, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				pub, err := parsePublish(pk)
				if err != nil || pub.topic != topic || pub.qos != q.qos || pub.id != wantID || !bytes.Equal(pub.payload, p) {
					t.Fatalf("own round trip %q QoS %d id %d: %+v %v", topic, q.qos, q.id, pub, err)
				}
			}
		}
	}
}

func TestSubscribePacketPaho(t *testing.T) {
	cases := [][]Subscription{
		{{"a", 0}},
		{{"devices/d1/messages/devicebound/#", 1}, {"$iothub/methods/POST/#", 0}, {"$iothub/twin/res/#", 1}},
		{{strings.Repeat("f", 200), 1}},
	}
	for i, subs := range cases {
		b := subscribePacket(uint16(i+1), subs)
		if b[0] != 0x82 {
			t.Fatalf("first byte %#x, want 0x82 (flags 0010, MQTT-3.8.1-1)", b[0])
		}
		sp := pahoRead(t, b).(*packets.SubscribePacket)
		if sp.MessageID != uint16(i+1) || len(sp.Topics) != len(subs) {
			t.Fatalf("round trip: %v", sp)
		}
		for j, s := range subs {
			if sp.Topics[j] != s.Filter || sp.Qoss[j] != s.QoS {
				t.Fatalf("filter %d: %q %d, want %q %d", j, sp.Topics[j], sp.Qoss[j], s.Filter, s.QoS)
			}
		}
	}
}

func TestFixedPacketsPaho(t *testing.T) {
	if pa := pahoRead(t, pubackPacket(0xbeef)).(*packets.PubackPacket); pa.MessageID != 0xbeef {
		t.Fatalf("PUBACK %v", pa)
	}
	if _, ok := pahoRead(t, pingreqPacket).(*packets.PingreqPacket); !ok {
		t.Fatal("PINGREQ")
	}
	if _, ok := pahoRead(t, disconnectPacket).(*packets.DisconnectPacket); !ok {
		t.Fatal("DISCONNECT")
	}
}

// The remaining-length encoding at every boundary of MQTT 3.1.1 section
// 2.2.3, its table's bytes, paho's decoder (up to 2 MiB, where a body can
// be streamed) and our own.
func TestRemainingLength(t *testing.T) {
	cases := []struct {
		n   int
		enc []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xff, 0x7f}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xff, 0xff, 0x7f}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{268435455, []byte{0xff, 0xff, 0xff, 0x7f}},
	}
	for _, tc := range cases {
		h := appendHeader([]byte("x"), 0x30, tc.n)
		if !bytes.Equal(h[1:], append([]byte{0x30}, tc.enc...)) {
			t.Fatalf("appendHeader(%d) = %x, want 30%x", tc.n, h[1:], tc.enc)
		}
		n, err := readLength(bytes.NewReader(tc.enc))
		if err != nil || n != tc.n {
			t.Fatalf("readLength(%x) = %d, %v", tc.enc, n, err)
		}
		if tc.n < 3 || tc.n > 2097152 {
			continue
		}
		// A PUBLISH with topic "t" and the rest payload, read by paho.
		body := io.MultiReader(bytes.NewReader(h[1:]), bytes.NewReader([]byte{0, 1, 't'}), io.LimitReader(zeros{}, int64(tc.n-3)))
		cp, err := packets.ReadPacket(body)
		if err != nil {
			t.Fatalf("paho reading length %d: %v", tc.n, err)
		}
		if pp := cp.(*packets.PublishPacket); pp.TopicName != "t" || len(pp.Payload) != tc.n-3 {
			t.Fatalf("length %d: paho read topic %q and %d payload bytes", tc.n, pp.TopicName, len(pp.Payload))
		}
	}
	if got := appendHeader(nil, 0xc0, 0); !bytes.Equal(got, pingreqPacket) {
		t.Fatalf("PINGREQ header %x", got)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Every length round-trips through appendHeader and readLength, and
// readLength rejects the non-shortest and over-long forms.
func TestReadLength(t *testing.T) {
	for n := 0; n <= maxRemaining; n = n*3 + 1 {
		h := appendHeader(nil, 0, n)
		got, err := readLength(bytes.NewReader(h[1:]))
		if err != nil || got != n {
			t.Fatalf("round trip %d: %d %v", n, got, err)
		}
	}
	bad := [][]byte{
		{0x80, 0x00}, {0xff, 0x00}, {0x80, 0x80, 0x00}, {0xff, 0xff, 0x80, 0x00}, {0x81, 0x80, 0x80, 0x00},
		{0xff, 0xff, 0xff, 0xff, 0x7f}, {0x80, 0x80, 0x80, 0x80, 0x01},
	}
	for _, b := range bad {
		if n, err := readLength(bytes.NewReader(b)); !errors.Is(err, ErrProtocol) {
			t.Errorf("readLength(%x) = %d, %v; want ErrProtocol", b, n, err)
		}
	}
	for _, b := range [][]byte{{}, {0x80}, {0xff, 0xff, 0xff}} {
		if _, err := readLength(bytes.NewReader(b)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("readLength(%x): %v, want io.ErrUnexpectedEOF", b, err)
		}
	}
}

// A header announcing more than max fails before the body is allocated
// or read.
func TestReadPacketLimitBeforeAlloc(t *testing.T) {
	header := []byte{0x30, 0xff, 0xff, 0xff, 0x7f} // 256 MiB, no body
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := readPacket(bytes.NewReader(header), failReader{t}, 1024); !errors.Is(err, ErrProtocol) {
			t.Fatalf("got %v, want ErrProtocol", err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("allocated %d bytes rejecting oversized headers", d)
	}
	// At the limit, the packet is read.
	b := append(appendHeader(nil, 0x30, 1024), append([]byte{0, 1, 't'}, make([]byte, 1021)...)...)
	br := bufio.NewReader(bytes.NewReader(b))
	if p, err := readPacket(br, br, 1024); err != nil || len(p.body) != 1024 {
		t.Fatalf("packet of exactly max: %d bytes, %v", len(p.body), err)
	}
}

type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("body read after the limit was exceeded")
	return 0, io.EOF
}

func TestReadPacketTruncated(t *testing.T) {
	b := serverPublish("topic", 1, 9, []byte("payload"))
	for i := range len(b) {
		br := bufio.NewReader(bytes.NewReader(b[:i]))
		_, err := readPacket(br, br, 1024)
		want := io.ErrUnexpectedEOF
		if i == 0 {
			want = io.EOF // a clean end between packets
		}
		if !errors.Is(err, want) {
			t.Fatalf("%d of %d bytes: %v, want %v", i, len(b), err, want)
		}
	}
}

// Inbound packets encoded by paho decode to what paho put in.
func TestParsePaho(t *testing.T) {
	for _, q := range []byte{0, 1} {
		for _, payload := range []string{"", "x", strings.Repeat("é", 500)} {
			b := serverPublish("$iothub/methods/POST/reboot/?$rid=1", q, 4242, []byte(payload))
			br := bufio.NewReader(bytes.NewReader(b))
			p, err := readPacket(br, br, DefaultMaxPacket)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := parsePublish(p)
			wantID := uint16(0)
			if q == 1 {
				wantID = 4242
			}
			if err != nil || p.typ != typePublish || pub.topic != "$iothub/methods/POST/reboot/?$rid=1" ||
				pub.qos != q || pub.id != wantID || string(pub.payload) != payload {
				t.Fatalf("QoS %d %q: %+v %v", q, payload, pub, err)
			}
		}
	}
	for _, tc := range []struct {
		b    []byte
		typ  byte
		name string
	}{{puback(65535), typePuback, "PUBACK"}, {suback(7, 1, 0x80), typeSuback, "SUBACK"}} {
		br := bufio.NewReader(bytes.NewReader(tc.b))
		p, err := readPacket(br, br, 16)
		if err != nil || p.typ != tc.typ {
			t.Fatalf("%s: %+v %v", tc.name, p, err)
		}
		id, err := packetID(p, tc.name, tc.typ == typePuback)
		if err != nil || id != map[byte]uint16{typePuback: 65535, typeSuback: 7}[tc.typ] {
			t.Fatalf("%s id %d %v", tc.name, id, err)
		}
	}
}

// FuzzReadPacket feeds arbitrary bytes to the packet reader and the
// parsers with a limit of 1024: no panic, no body over the limit, parsed
// fields inside the body, and agreement with paho on what both accept.
func FuzzReadPacket(f *testing.F) {
	seeds := [][]byte{
		connack(0), connack(5), puback(1), suback(3, 0, 1, 0x80), pingresp(),
		serverPublish("a/b", 0, 0, []byte("hello")), serverPublish("a/b", 1, 77, nil),
		serverPublish(strings.Repeat("t", 600), 1, 2, bytes.Repeat([]byte{1}, 400)),
		{0x30, 0xff, 0xff, 0xff, 0x7f}, {0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, {0xd0, 0x80, 0x00},
		{0x36, 5, 0, 1, 't', 0, 1}, {0x32, 5, 0, 1, 't', 0, 0}, {0x30, 3, 0, 9, 't'}, {0x40, 3, 0, 1, 0},
		append(puback(1), serverPublish("x", 1, 2, []byte("y"))...),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 1024
		br := bufio.NewReaderSize(bytes.NewReader(b), 16)
		for range len(b) + 1 { // each packet consumes at least one byte
			p, err := readPacket(br, br, max)
			if err != nil {
				return
			}
			if len(p.body) > max {
				t.Fatalf("body of %d bytes over the limit %d", len(p.body), max)
			}
			switch p.typ {
			case typePublish:
				pub, err := parsePublish(p)
				if err != nil {
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("parsePublish error %v does not wrap ErrProtocol", err)
					}
					continue
				}
				if pub.topic == "" || pub.qos > 2 || pub.qos > 0 && pub.id == 0 || len(pub.topic)+len(pub.payload) > len(p.body) {
					t.Fatalf("parsePublish accepted %+v from %x", pub, p.body)
				}
				checkPahoAgrees(t, p, pub)
			case typePuback, typeSuback:
				if _, err := packetID(p, "ack", p.typ == typePuback); err != nil && !errors.Is(err, ErrProtocol) {
					t.Fatalf("packetID error %v does not wrap ErrProtocol", err)
				}
			}
		}
		t.Fatal("more packets than bytes")
	})
}

// checkPahoAgrees re-encodes a packet we accepted and has paho decode it.
func checkPahoAgrees(t *testing.T, p packet, pub publish) {
	t.Helper()
	raw := append(appendHeader(nil, typePublish<<4|p.flags, len(p.body)), p.body...)
	cp, err := packets.ReadPacket(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("we accepted a PUBLISH paho rejects (%v): %x", err, raw)
	}
	pp := cp.(*packets.PublishPacket)
	if pp.TopicName != pub.topic || pp.Qos != pub.qos || pp.Qos > 0 && pp.MessageID != pub.id || !bytes.Equal(pp.Payload, pub.payload) {
		t.Fatalf("paho read %v, we read %+v", pp, pub)
	}
}

// FuzzConnReader runs a real Conn against a server sending arbitrary
// bytes after its CONNACK: the Conn never panics, ends (or not) with a
// reason, calls OnLost at most once and never after Close.
func FuzzConnReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(serverPublish("a", 1, 1, []byte("x")))
	f.Add(append(serverPublish("a", 0, 0, nil), pingresp()...))
	f.Add(connack(0))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		runConnReader(t, b)
	})
}

func runConnReader(t *testing.T, b []byte) {
	a, s := net.Pipe()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // the server: CONNACK, the fuzz bytes, then it hangs up
		defer s.Close()
		if _, err := packets.ReadPacket(s); err != nil {
			return
		}
		wg.Go(func() { io.Copy(io.Discard, s) }) // PUBACKs, DISCONNECT; ends when s closes
		s.Write(connack(0))
		s.Write(b)
	})
	var lost int
	o := Options{ClientID: "fuzz", MaxPacket: 1024,
		OnMessage: func(m *Message) {
			if len(m.Payload) > 1024 || m.Topic == "" || m.QoS > 1 {
				panic(fmt.Sprintf("message %q QoS %d with %d bytes", m.Topic, m.QoS, len(m.Payload)))
			}
			m.Ack()
		},
		OnLost: func(error) { lost++ },
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := Connect(ctx, a, o)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	closed(t, c.Done(), "Done after the server hung up")
	if c.Err() == nil {
		t.Fatal("ended without a reason")
	}
	c.Close()
	if lost != 1 {
		t.Fatalf("OnLost called %d times", lost)
	}
}
