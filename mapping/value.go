package mapping

import (
	"fmt"
	"math"
	"strconv"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw"
)

// Type names the kind of a point or parameter in the config: bool, int,
// uint, float or string.
type Type string

// Kind returns the edgegw.Kind that t names, or KindInvalid.
func (t Type) Kind() edgegw.Kind {
	switch t {
	case "bool":
		return edgegw.KindBool
	case "int":
		return edgegw.KindInt
	case "uint":
		return edgegw.KindUint
	case "float":
		return edgegw.KindFloat
	case "string":
		return edgegw.KindString
	}
	return edgegw.KindInvalid
}

func numeric(k edgegw.Kind) bool {
	return k == edgegw.KindInt || k == edgegw.KindUint || k == edgegw.KindFloat
}

// Scalar is a constant in the config (a constant write value, a parameter
// default): a YAML bool, integer, float or string.
type Scalar struct {
	V edgegw.Value
}

// UnmarshalYAML decodes a YAML scalar by its resolved tag.
func (s *Scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a bool, number or string", n.Line)
	}
	switch n.ShortTag() {
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return err
		}
		s.V = edgegw.Bool(b)
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			s.V = edgegw.Int(i)
			return nil
		}
		var u uint64
		if err := n.Decode(&u); err != nil {
			return err
		}
		s.V = edgegw.Uint(u)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return err
		}
		s.V = edgegw.Float(f)
	case "!!str":
		s.V = edgegw.String(n.Value)
	default:
		return fmt.Errorf("line %d: want a bool, number or string, got %s", n.Line, n.ShortTag())
	}
	return nil
}

// MarshalYAML encodes the scalar's value.
func (s Scalar) MarshalYAML() (any, error) {
	switch s.V.Kind() {
	case edgegw.KindBool:
		b, _ := s.V.Bool()
		return b, nil
	case edgegw.KindInt:
		i, _ := s.V.Int()
		return i, nil
	case edgegw.KindUint:
		u, _ := s.V.Uint()
		return u, nil
	case edgegw.KindFloat:
		f, _ := s.V.Float()
		return f, nil
	}
	str, _ := s.V.Str()
	return str, nil
}

// limits are the constraints a value must meet to be written.
type limits struct {
	kind     edgegw.Kind
	min, max *float64
}

// coerce converts v to the kind l wants and checks the range. Its error
// says what was expected and what was got, for a 400 response.
func (l limits) coerce(v edgegw.Value) (edgegw.Value, error) {
	out, ok := convert(v, l.kind)
	if !ok {
		return edgegw.Value{}, fmt.Errorf("want %s, got %s", l.want(), describe(v))
	}
	if f, isNum := out.Float(); isNum {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return edgegw.Value{}, fmt.Errorf("want %s, got %s", l.want(), describe(v))
		}
		if (l.min != nil && f < *l.min) || (l.max != nil && f > *l.max) {
			return edgegw.Value{}, fmt.Errorf("want %s, got %s", l.want(), v)
		}
	}
	return out, nil
}

// check reports whether v already has l's kind and lies within range; the
// fuzz test uses it to re-validate produced actions.
func (l limits) check(v edgegw.Value) error {
	if v.Kind() != l.kind {
		return fmt.Errorf("kind %s, want %s", v.Kind(), l.kind)
	}
	_, err := l.coerce(v)
	return err
}

func (l limits) want() string {
	var s string
	switch l.kind {
	case edgegw.KindBool:
		return "a bool"
	case edgegw.KindString:
		return "a string"
	case edgegw.KindInt:
		s = "an integer"
	case edgegw.KindUint:
		s = "a non-negative integer"
	default:
		s = "a number"
	}
	switch {
	case l.min != nil && l.max != nil:
		s += " between " + fmtFloat(*l.min) + " and " + fmtFloat(*l.max)
	case l.min != nil:
		s += " >= " + fmtFloat(*l.min)
	case l.max != nil:
		s += " <= " + fmtFloat(*l.max)
	}
	return s
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// describe names a value for an error message: its JSON text, or "null".
func describe(v edgegw.Value) string {
	if !v.IsValid() {
		return "null"
	}
	b, _ := v.MarshalJSON()
	return string(b)
}

// convert returns v as kind k when that loses nothing: integers from
// whole floats, floats from integers, unsigned from non-negative.
func convert(v edgegw.Value, k edgegw.Kind) (edgegw.Value, bool) {
	switch k {
	case edgegw.KindBool, edgegw.KindString:
		return v, v.Kind() == k
	case edgegw.KindFloat:
		f, ok := v.Float()
		return edgegw.Float(f), ok
	case edgegw.KindInt:
		if i, ok := v.Int(); ok {
			return edgegw.Int(i), true
		}
		if f, ok := v.Float(); ok && v.Kind() == edgegw.KindFloat && f == math.Trunc(f) &&
			f >= -(1<<63) && f < 1<<63 {
			return edgegw.Int(int64(f)), true
		}
	case edgegw.KindUint:
		if u, ok := v.Uint(); ok {
			return edgegw.Uint(u), true
		}
		if f, ok := v.Float(); ok && v.Kind() == edgegw.KindFloat && f == math.Trunc(f) &&
			f >= 0 && f < 1<<64 {
			return edgegw.Uint(uint64(f)), true
		}
	}
	return edgegw.Value{}, false
}

// hasControl reports whether s holds a control character, which must not
// be spliced into a frame or topic verbatim.
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}
