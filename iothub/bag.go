package iothub

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/edgegw/edgegw"
)

// System properties: the short names IoT Hub gives them on topics.
const (
	PropMessageID       = "$.mid"
	PropCorrelationID   = "$.cid"
	PropUserID          = "$.uid"
	PropTo              = "$.to"
	PropContentType     = "$.ct"
	PropContentEncoding = "$.ce"
	PropCreationTime    = "$.ctime"
)

// IsSystem reports whether key names a system property ("$." and a short
// name) rather than an application property.
func IsSystem(key string) bool { return strings.HasPrefix(key, "$.") }

// ErrBadBag is wrapped by every ParseBag error.
var ErrBadBag = errors.New("bad property bag")

// ParseBag decodes a property bag "k1=v1&k2&k3=" as IoT Hub does: items
// split on "&", each on its first "=", key and value percent-decoded
// without turning "+" into a space (Uri.UnescapeDataString, as in edgeHub).
// A key without "=" (IoT Hub's null) decodes to an empty value. Empty items
// are skipped; an empty key or a bad escape is an error wrapping ErrBadBag.
// Properties keep their order, duplicates included. Bytes are not checked
// to be UTF-8.
func ParseBag(bag string) ([]edgegw.Property, error) {
	if bag == "" {
		return nil, nil
	}
	out := make([]edgegw.Property, 0, strings.Count(bag, "&")+1)
	for item := range strings.SplitSeq(bag, "&") {
		if item == "" {
			continue
		}
		k, v, _ := strings.Cut(item, "=")
		key, err := url.PathUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %w", ErrBadBag, k, err)
		}
		if key == "" {
			return nil, fmt.Errorf("%w: empty key in %q", ErrBadBag, item)
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("%w: value of %q: %w", ErrBadBag, key, err)
		}
		out = append(out, edgegw.Property{Key: key, Value: val})
	}
	return out, nil
}

// WriteBag writes props to b as a property bag: "key=value" items joined
// with "&", both escaped with EscapeComponent. An empty value is written
// as "key=" (IoT Hub's empty string, not its null).
func WriteBag(b *strings.Builder, props []edgegw.Property) {
	for i, p := range props {
		if i > 0 {
			b.WriteByte('&')
		}
		writeEscaped(b, p.Key)
		b.WriteByte('=')
		writeEscaped(b, p.Value)
	}
}

// AppendBag appends props to dst as a property bag (see WriteBag).
func AppendBag(dst []byte, props []edgegw.Property) []byte {
	for i, p := range props {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = AppendEscaped(dst, p.Key)
		dst = append(dst, '=')
		dst = AppendEscaped(dst, p.Value)
	}
	return dst
}

// bagLen is the length of the property bag of props.
func bagLen(props []edgegw.Property) int {
	n := max(len(props)-1, 0) // the "&"s
	for _, p := range props {
		n += EscapedLen(p.Key) + 1 + EscapedLen(p.Value)
	}
	return n
}

// EncodeBag returns props as a property bag (see WriteBag).
func EncodeBag(props []edgegw.Property) string {
	var b strings.Builder
	WriteBag(&b, props)
	return b.String()
}

// systemProps returns the system properties of m's telemetry topic, in the
// order the Node SDK writes them: $.mid, $.cid, $.ct and $.ce, each only
// if set.
func systemProps(m *edgegw.Message) ([4]edgegw.Property, int) {
	var sys [4]edgegw.Property
	n := 0
	for _, p := range [...]edgegw.Property{{Key: PropMessageID, Value: m.MessageID}, {Key: PropCorrelationID, Value: m.CorrelationID},
		{Key: PropContentType, Value: m.ContentType}, {Key: PropContentEncoding, Value: m.ContentEncoding}} {
		if p.Value != "" {
			sys[n] = p
			n++
		}
	}
	return sys, n
}

// WriteMessageBag writes the property bag of m's telemetry topic to b, as
// the Node SDK orders it: the system properties $.mid, $.cid, $.ct and
// $.ce (each only if set), then m.Properties in order. m.Created is not
// written. ApplyBag reads it back.
func WriteMessageBag(b *strings.Builder, m *edgegw.Message) {
	sys, n := systemProps(m)
	WriteBag(b, sys[:n])
	if n > 0 && len(m.Properties) > 0 {
		b.WriteByte('&')
	}
	WriteBag(b, m.Properties)
}

// AppendMessageBag appends the property bag of m's telemetry topic to dst
// (see WriteMessageBag).
func AppendMessageBag(dst []byte, m *edgegw.Message) []byte {
	sys, n := systemProps(m)
	dst = AppendBag(dst, sys[:n])
	if n > 0 && len(m.Properties) > 0 {
		dst = append(dst, '&')
	}
	return AppendBag(dst, m.Properties)
}

// MessageBagLen returns the length of the property bag WriteMessageBag
// writes for m, without writing it.
func MessageBagLen(m *edgegw.Message) int {
	sys, n := systemProps(m)
	l := bagLen(sys[:n]) + bagLen(m.Properties)
	if n > 0 && len(m.Properties) > 0 {
		l++
	}
	return l
}

// ApplyBag sets m's fields from the decoded properties of a telemetry
// topic: $.mid, $.cid, $.ct and $.ce set MessageID, CorrelationID,
// ContentType and ContentEncoding; $.ctime sets Created (UTC) when it is
// an RFC 3339 time. Every other property, other "$." system properties
// included, is appended to m.Properties in order, so that it travels on.
// When m has no properties yet, they are kept in props' storage (which
// ApplyBag overwrites) rather than copied.
func ApplyBag(m *edgegw.Message, props []edgegw.Property) {
	app := m.Properties
	if app == nil {
		app = props[:0]
	}
	for _, p := range props {
		switch p.Key {
		case PropMessageID:
			m.MessageID = p.Value
		case PropCorrelationID:
			m.CorrelationID = p.Value
		case PropContentType:
			m.ContentType = p.Value
		case PropContentEncoding:
			m.ContentEncoding = p.Value
		case PropCreationTime:
			if t, err := time.Parse(time.RFC3339Nano, p.Value); err == nil {
				m.Created = t.UTC()
				continue
			}
			app = append(app, p)
		default:
			app = append(app, p)
		}
	}
	if len(app) > 0 {
		m.Properties = app
	}
}

// EscapeComponent percent-encodes s like JavaScript's encodeURIComponent,
// and also escapes !'()* (the SDKs' encodeUriComponentStrict): only A-Z
// a-z 0-9 - _ . ~ stay as they are. Hex digits are upper case. It is the
// encoding of SAS fields and of property bags.
func EscapeComponent(s string) string {
	n := EscapedLen(s)
	if n == len(s) {
		return s
	}
	return string(AppendEscaped(make([]byte, 0, n), s))
}

// EscapedLen returns len(EscapeComponent(s)) without escaping s.
func EscapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n += 2
		}
	}
	return n
}

const upperHex = "0123456789ABCDEF"

// AppendEscaped appends EscapeComponent(s) to dst, runs of unreserved
// bytes at once.
func AppendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// writeEscaped writes EscapeComponent(s) to b, runs of unreserved bytes
// at once.
func writeEscaped(b *strings.Builder, s string) {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			continue
		}
		b.WriteString(s[start:i])
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
		start = i + 1
	}
	b.WriteString(s[start:])
}

func unreserved(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '-' || c == '_' || c == '.' || c == '~'
}
