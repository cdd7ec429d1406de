package mqtt3

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Control packet types (MQTT 3.1.1 section 2.2.1).
const (
	typeConnect     = 1
	typeConnack     = 2
	typePublish     = 3
	typePuback      = 4
	typePubrec      = 5
	typePubrel      = 6
	typePubcomp     = 7
	typeSubscribe   = 8
	typeSuback      = 9
	typeUnsubscribe = 10
	typeUnsuback    = 11
	typePingreq     = 12
	typePingresp    = 13
	typeDisconnect  = 14
)

// maxRemaining is the largest remaining length the four-byte encoding can
// carry.
const maxRemaining = 268435455

// ErrProtocol is wrapped by every error about bytes the server sent that
// MQTT 3.1.1 does not allow.
var ErrProtocol = errors.New("mqtt protocol violation")

func protocolErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// packet is one decoded inbound control packet. body aliases the buffer it
// was read into.
type packet struct {
	typ   byte
	flags byte
	body  []byte
}

// readPacket reads one control packet from r. A remaining length over max
// is an error before any of the body is read, so a hostile peer cannot make
// us allocate.
func readPacket(r io.ByteReader, full io.Reader, max int) (packet, error) {
	return readPacketInto(r, full, max, nil)
}

// readPacketInto is readPacket that reads the body of a PUBACK into ack
// when it fits, instead of allocating one per acknowledgement: the caller
// must be done with such a body before the next read.
func readPacketInto(r io.ByteReader, full io.Reader, max int, ack []byte) (packet, error) {
	b, err := r.ReadByte()
	if err != nil {
		return packet{}, err
	}
	n, err := readLength(r)
	if err != nil {
		return packet{}, err
	}
	if n > max {
		return packet{}, protocolErr("packet of %d bytes exceeds the limit of %d", n, max)
	}
	p := packet{typ: b >> 4, flags: b & 0x0f}
	if n > 0 {
		if p.typ == typePuback && n <= len(ack) {
			p.body = ack[:n]
		} else {
			p.body = make([]byte, n)
		}
		if _, err := io.ReadFull(full, p.body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return packet{}, err
		}
	}
	return p, nil
}

// readLength decodes the variable-length remaining length (section 2.2.3).
func readLength(r io.ByteReader) (int, error) {
	n, shift := 0, 0
	for i := range 4 {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			if i > 0 && b == 0 {
				return 0, protocolErr("remaining length not in its shortest form")
			}
			return n, nil
		}
		shift += 7
	}
	return 0, protocolErr("remaining length longer than four bytes")
}

// appendHeader appends a fixed header with the given remaining length.
func appendHeader(b []byte, first byte, n int) []byte {
	b = append(b, first)
	for {
		d := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// connectPacket encodes CONNECT (section 3.1) with a clean session and no
// will.
func connectPacket(clientID, user, pass string, keepAlive uint16) []byte {
	flags := byte(0x02) // clean session
	n := 10 + 2 + len(clientID)
	if user != "" {
		flags |= 0x80
		n += 2 + len(user)
	}
	if pass != "" {
		flags |= 0x40
		n += 2 + len(pass)
	}
	b := appendHeader(make([]byte, 0, n+5), typeConnect<<4, n)
	b = appendString(b, "MQTT")
	b = append(b, 4, flags) // protocol level 4 = 3.1.1
	b = binary.BigEndian.AppendUint16(b, keepAlive)
	b = appendString(b, clientID)
	if user != "" {
		b = appendString(b, user)
	}
	if pass != "" {
		b = appendString(b, pass)
	}
	return b
}

// publishPacket appends PUBLISH (section 3.3) to dst; id is ignored for
// QoS 0.
func publishPacket[T string | []byte](dst []byte, topic T, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b := appendHeader(dst, typePublish<<4|qos<<1, n)
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return append(b, payload...)
}

// subscribePacket encodes SUBSCRIBE (section 3.8).
func subscribePacket(id uint16, subs []Subscription) []byte {
	n := 2
	for _, s := range subs {
		n += 2 + len(s.Filter) + 1
	}
	b := appendHeader(make([]byte, 0, n+5), typeSubscribe<<4|0x02, n)
	b = binary.BigEndian.AppendUint16(b, id)
	for _, s := range subs {
		b = appendString(b, s.Filter)
		b = append(b, s.QoS)
	}
	return b
}

func pubackPacket(id uint16) []byte {
	return []byte{typePuback << 4, 2, byte(id >> 8), byte(id)}
}

var (
	pingreqPacket    = []byte{typePingreq << 4, 0}
	disconnectPacket = []byte{typeDisconnect << 4, 0}
)

// publish is a decoded inbound PUBLISH.
type publish struct {
	topic   string
	qos     byte
	id      uint16
	payload []byte
}

func parsePublish(p packet) (publish, error) {
	qos := p.flags >> 1 & 0x03
	if qos == 3 {
		return publish{}, protocolErr("PUBLISH with QoS 3")
	}
	b := p.body
	if len(b) < 2 {
		return publish{}, protocolErr("PUBLISH too short for its topic length")
	}
	tl := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+tl {
		return publish{}, protocolErr("PUBLISH topic of %d bytes in a packet of %d", tl, len(b))
	}
	out := publish{topic: string(b[2 : 2+tl]), qos: qos}
	b = b[2+tl:]
	if out.topic == "" {
		return publish{}, protocolErr("PUBLISH with an empty topic")
	}
	if qos > 0 {
		if len(b) < 2 {
			return publish{}, protocolErr("PUBLISH QoS %d without a packet identifier", qos)
		}
		out.id = binary.BigEndian.Uint16(b)
		if out.id == 0 {
			return publish{}, protocolErr("PUBLISH with packet identifier 0")
		}
		b = b[2:]
	}
	out.payload = b
	return out, nil
}

// packetID reads the two-byte identifier that PUBACK and SUBACK start
// with.
func packetID(p packet, name string, exact bool) (uint16, error) {
	if len(p.body) < 2 || exact && len(p.body) != 2 {
		return 0, protocolErr("%s with a body of %d bytes", name, len(p.body))
	}
	return binary.BigEndian.Uint16(p.body), nil
}
