package opcua

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gopcua/opcua/ua"
)

// maxIdentifier bounds a string or opaque identifier (OPC UA Part 3 advises
// 4096 bytes for string identifiers).
const maxIdentifier = 4096

// ParseNodeID parses a NodeId in the OPC UA text form: an optional
// namespace index "ns=<0..65535>;" and one identifier, "i=<uint32>"
// (numeric), "s=<text>" (string), "g=<GUID>" or "b=<base64>" (opaque).
// Namespace URIs (nsu=) and server indexes are refused: a point names the
// node of one server, by index.
func ParseNodeID(s string) (*ua.NodeID, error) {
	if s == "" {
		return nil, errors.New("empty NodeId")
	}
	if !utf8.ValidString(s) {
		return nil, errors.New("NodeId is not valid UTF-8")
	}
	ns := uint64(0)
	rest := s
	switch {
	case strings.HasPrefix(s, "nsu="):
		return nil, fmt.Errorf("NodeId %q: namespace URIs are not supported; use ns=<index> (edgegw opcua browse shows them)", s)
	case strings.HasPrefix(s, "svr="):
		return nil, fmt.Errorf("NodeId %q: server indexes are not supported", s)
	case strings.HasPrefix(s, "ns="):
		num, id, ok := strings.Cut(s[3:], ";")
		if !ok {
			return nil, fmt.Errorf("NodeId %q: want ns=<index>;<i|s|g|b>=<identifier>", s)
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil || num == "" || (len(num) > 1 && num[0] == '0') {
			return nil, fmt.Errorf("NodeId %q: namespace index must be 0-65535", s)
		}
		ns, rest = n, id
	}
	if len(rest) < 2 || rest[1] != '=' {
		return nil, fmt.Errorf("NodeId %q: want <i|s|g|b>=<identifier> after the namespace", s)
	}
	val := rest[2:]
	nsid := uint16(ns)
	switch rest[0] {
	case 'i':
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || (len(val) > 1 && val[0] == '0') {
			return nil, fmt.Errorf("NodeId %q: numeric identifier must be 0-4294967295", s)
		}
		return ua.NewNumericNodeID(nsid, uint32(n)), nil
	case 's':
		if val == "" {
			return nil, fmt.Errorf("NodeId %q: empty string identifier", s)
		}
		if len(val) > maxIdentifier {
			return nil, fmt.Errorf("NodeId: string identifier longer than %d bytes", maxIdentifier)
		}
		return ua.NewStringNodeID(nsid, val), nil
	case 'g':
		u, err := uuid.Parse(val)
		if err != nil || len(val) != 36 {
			return nil, fmt.Errorf("NodeId %q: GUID identifier must be xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
		}
		return ua.NewGUIDNodeID(nsid, strings.ToUpper(u.String())), nil
	case 'b':
		b, err := base64.StdEncoding.Strict().DecodeString(val)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("NodeId %q: opaque identifier must be non-empty base64", s)
		}
		if len(b) > maxIdentifier {
			return nil, fmt.Errorf("NodeId: opaque identifier longer than %d bytes", maxIdentifier)
		}
		return ua.NewByteStringNodeID(nsid, b), nil
	}
	return nil, fmt.Errorf("NodeId %q: identifier type must be i, s, g or b (got %q)", s, rest[:1])
}

// formatNodeID writes id in the form ParseNodeID reads.
func formatNodeID(id *ua.NodeID) string {
	var b strings.Builder
	if ns := id.Namespace(); ns != 0 {
		b.WriteString("ns=" + strconv.Itoa(int(ns)) + ";")
	}
	switch id.Type() {
	case ua.NodeIDTypeTwoByte, ua.NodeIDTypeFourByte, ua.NodeIDTypeNumeric:
		b.WriteString("i=" + strconv.FormatUint(uint64(id.IntID()), 10))
	case ua.NodeIDTypeString:
		b.WriteString("s=" + id.StringID())
	case ua.NodeIDTypeGUID:
		b.WriteString("g=" + strings.ToLower(id.StringID()))
	case ua.NodeIDTypeByteString:
		b.WriteString("b=" + id.StringID())
	default:
		return id.String()
	}
	return b.String()
}
