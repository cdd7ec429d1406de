package mapping

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/edgegw/edgegw"
)

// obj writes a JSON object with keys in the order given.
type obj struct{ b []byte }

func (o *obj) key(k string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = append(appendString(o.b, k), ':')
}

func (o *obj) raw(k string, v []byte) { o.key(k); o.b = append(o.b, v...) }

func (o *obj) val(k string, v any) {
	o.key(k)
	switch x := v.(type) {
	case string:
		o.b = appendString(o.b, x)
		return
	case edgegw.Value:
		if s, ok := x.Str(); ok {
			o.b = appendString(o.b, s)
			return
		}
		if f, ok := x.Float(); ok && x.Kind() == edgegw.KindFloat && !math.IsNaN(f) && !math.IsInf(f, 0) {
			o.b = strconv.AppendFloat(o.b, f, 'g', -1, 64)
			return
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte("null")
	}
	o.b = append(o.b, b...)
}

// appendString appends s as a JSON string; plain ASCII takes a fast path.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func (o *obj) bytes() []byte {
	if len(o.b) == 0 {
		return []byte("{}")
	}
	return append(o.b, '}')
}

// ackBody is {"value": v, "ac": status, "av": version, "ad": desc}.
func ackBody(v any, status int, version int64, desc string) []byte {
	var o obj
	if raw, ok := v.([]byte); ok {
		o.raw("value", raw)
	} else {
		o.val("value", v)
	}
	o.val("ac", status)
	o.val("av", version)
	o.val("ad", desc)
	return o.bytes()
}
