package edgegw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// MessageKind tells northbound what to do with a buffered Message.
type MessageKind uint8

// Message kinds.
const (
	// Telemetry is a device-to-cloud message (IoT Hub: devices/{id}/messages/events/).
	Telemetry MessageKind = iota + 1
	// Reported is a reported-properties patch: Body is a JSON object.
	// Consecutive patches of one identity may be merged before sending.
	Reported
)

func (k MessageKind) String() string {
	switch k {
	case Telemetry:
		return "telemetry"
	case Reported:
		return "reported"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is one unit on the road up, addressed to one identity. It is what
// the buffer stores (as MarshalBinary bytes) and what northbound publishes.
type Message struct {
	Identity        DeviceID
	Kind            MessageKind
	Body            []byte
	ContentType     string // "$.ct", e.g. "application/json"
	ContentEncoding string // "$.ce", e.g. "utf-8"
	MessageID       string // "$.mid"; may be empty
	CorrelationID   string // "$.cid"; may be empty
	Created         time.Time
	Alarm           bool       // kept longer than telemetry when the buffer is full
	Properties      []Property // application properties, in order
}

// The wire format written by MarshalBinary. Version 1:
//
//	byte    version (1)
//	byte    kind
//	byte    flags (bit 0: alarm)
//	varint  created, Unix nanoseconds (0 = unset)
//	string  identity, content type, content encoding, message id, correlation id
//	uvarint property count, then key, value strings
//	bytes   body (the rest)
//
// where a string is a uvarint length followed by its bytes.
const messageVersion = 1

// ErrBadMessage is wrapped by every error UnmarshalBinary returns.
var ErrBadMessage = errors.New("bad message encoding")

// MarshalBinary encodes m for the buffer. It never fails.
func (m *Message) MarshalBinary() ([]byte, error) {
	n := 3 + binary.MaxVarintLen64 + len(m.Body) + 5*binary.MaxVarintLen32 +
		len(m.Identity) + len(m.ContentType) + len(m.ContentEncoding) + len(m.MessageID) + len(m.CorrelationID)
	for _, p := range m.Properties {
		n += 2*binary.MaxVarintLen32 + len(p.Key) + len(p.Value)
	}
	b := make([]byte, 0, n)
	var flags byte
	if m.Alarm {
		flags |= 1
	}
	b = append(b, messageVersion, byte(m.Kind), flags)
	var created int64
	if !m.Created.IsZero() {
		created = m.Created.UnixNano()
	}
	b = binary.AppendVarint(b, created)
	for _, s := range []string{string(m.Identity), m.ContentType, m.ContentEncoding, m.MessageID, m.CorrelationID} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Properties)))
	for _, p := range m.Properties {
		b = appendString(b, p.Key)
		b = appendString(b, p.Value)
	}
	return append(b, m.Body...), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote. Malformed input gives an
// error wrapping ErrBadMessage and leaves m unchanged.
func (m *Message) UnmarshalBinary(b []byte) error {
	if len(b) < 3 {
		return fmt.Errorf("%w: %d bytes, need at least 3", ErrBadMessage, len(b))
	}
	if b[0] != messageVersion {
		return fmt.Errorf("%w: version %d", ErrBadMessage, b[0])
	}
	out := Message{Kind: MessageKind(b[1]), Alarm: b[2]&1 != 0}
	if out.Kind != Telemetry && out.Kind != Reported {
		return fmt.Errorf("%w: kind %d", ErrBadMessage, b[1])
	}
	// A first pass checks the header and finds where the body starts; the
	// second takes every string field out of one copy of the header, one
	// allocation instead of one per field.
	dry := reader{b: b[3:], dry: true}
	count := dry.header(nil)
	if dry.err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, dry.err)
	}
	hdr := b[3 : len(b)-len(dry.b)]
	r := reader{b: hdr, s: string(hdr)}
	if count > 0 {
		out.Properties = make([]Property, 0, count)
	}
	r.header(&out)
	r.b = b[len(b)-len(dry.b):]
	out.Body = append([]byte(nil), r.b...)
	*m = out
	return nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// reader decodes varints and strings, remembering the first error. Its
// strings are cut from s, which holds the same bytes as b; a dry reader
// only checks and skips them.
type reader struct {
	b   []byte
	s   string
	dry bool
	err error
}

// header decodes a message's header after its first three bytes into out
// (nil: check and skip it) and returns its property count.
func (r *reader) header(out *Message) uint64 {
	var m Message
	if out == nil {
		out = &m
	}
	if ns := r.varint(); ns != 0 {
		out.Created = time.Unix(0, ns).UTC()
	}
	out.Identity = DeviceID(r.str())
	out.ContentType = r.str()
	out.ContentEncoding = r.str()
	out.MessageID = r.str()
	out.CorrelationID = r.str()
	count := r.uvarint()
	if r.err == nil && count > uint64(len(r.b)/2) { // each property takes at least 2 bytes
		r.err = fmt.Errorf("property count %d exceeds remaining %d bytes", count, len(r.b))
	}
	for i := uint64(0); i < count && r.err == nil; i++ {
		k, v := r.str(), r.str()
		if !r.dry {
			out.Properties = append(out.Properties, Property{Key: k, Value: v})
		}
	}
	return count
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated varint")
		return 0
	}
	r.b = r.b[n:]
	if !r.dry {
		r.s = r.s[n:]
	}
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated varint")
		return 0
	}
	r.b = r.b[n:]
	if !r.dry {
		r.s = r.s[n:]
	}
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("string of %d bytes, only %d left", n, len(r.b))
		return ""
	}
	var s string
	if !r.dry {
		s = r.s[:n]
		r.s = r.s[n:]
	}
	r.b = r.b[n:]
	return s
}
