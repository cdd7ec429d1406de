package edgegw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Kind is the type of a [Value].
type Kind uint8

// The kinds a point value can have.
const (
	KindInvalid Kind = iota // the zero Value: no value
	KindBool
	KindInt
	KindUint
	KindFloat
	KindString
)

var kindNames = [...]string{"invalid", "bool", "int", "uint", "float", "string"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one typed point value: a bool, a signed or unsigned integer, a
// float or a string. The zero Value is invalid (no value). Values are
// comparable with ==.
type Value struct {
	kind Kind
	num  uint64 // bool (0/1), int64 bits, uint64, float64 bits
	str  string
}

// Bool returns a bool Value.
func Bool(b bool) Value {
	if b {
		return Value{kind: KindBool, num: 1}
	}
	return Value{kind: KindBool}
}

// Int returns a signed integer Value.
func Int(i int64) Value { return Value{kind: KindInt, num: uint64(i)} }

// Uint returns an unsigned integer Value.
func Uint(u uint64) Value { return Value{kind: KindUint, num: u} }

// Float returns a floating-point Value.
func Float(f float64) Value { return Value{kind: KindFloat, num: math.Float64bits(f)} }

// String returns a string Value.
func String(s string) Value { return Value{kind: KindString, str: s} }

// Kind reports the type of v.
func (v Value) Kind() Kind { return v.kind }

// IsValid reports whether v holds a value.
func (v Value) IsValid() bool { return v.kind != KindInvalid }

// Bool returns v as a bool; ok is false unless v is a bool.
func (v Value) Bool() (b, ok bool) { return v.num == 1, v.kind == KindBool }

// Int returns v as an int64; ok is false if v is not an integer or does not fit.
func (v Value) Int() (int64, bool) {
	switch v.kind {
	case KindInt:
		return int64(v.num), true
	case KindUint:
		return int64(v.num), v.num <= math.MaxInt64
	}
	return 0, false
}

// Uint returns v as a uint64; ok is false if v is not a non-negative integer.
func (v Value) Uint() (uint64, bool) {
	switch v.kind {
	case KindUint:
		return v.num, true
	case KindInt:
		return v.num, int64(v.num) >= 0
	}
	return 0, false
}

// Float returns v as a float64; ok is false unless v is numeric. Integers
// are converted (large ones lose precision).
func (v Value) Float() (float64, bool) {
	switch v.kind {
	case KindFloat:
		return math.Float64frombits(v.num), true
	case KindInt:
		return float64(int64(v.num)), true
	case KindUint:
		return float64(v.num), true
	}
	return 0, false
}

// Str returns v as a string; ok is false unless v is a string.
func (v Value) Str() (string, bool) { return v.str, v.kind == KindString }

// String formats v for logs and error messages.
func (v Value) String() string {
	switch v.kind {
	case KindBool:
		return strconv.FormatBool(v.num == 1)
	case KindInt:
		return strconv.FormatInt(int64(v.num), 10)
	case KindUint:
		return strconv.FormatUint(v.num, 10)
	case KindFloat:
		return strconv.FormatFloat(math.Float64frombits(v.num), 'g', -1, 64)
	case KindString:
		return strconv.Quote(v.str)
	}
	return "<invalid>"
}

// MarshalJSON encodes v as a JSON bool, number or string. An invalid value,
// NaN and ±Inf encode as null, since JSON has no such numbers.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.kind {
	case KindBool, KindInt, KindUint:
		return []byte(v.String()), nil
	case KindFloat:
		f := math.Float64frombits(v.num)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return []byte("null"), nil
		}
		return []byte(strconv.FormatFloat(f, 'g', -1, 64)), nil
	case KindString:
		return json.Marshal(v.str)
	}
	return []byte("null"), nil
}

// UnmarshalJSON decodes a JSON bool, number or string. Whole numbers become
// Int (or Uint above MaxInt64), others Float. null gives the invalid Value.
func (v *Value) UnmarshalJSON(b []byte) error {
	var raw any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	switch x := raw.(type) {
	case nil:
		*v = Value{}
	case bool:
		*v = Bool(x)
	case string:
		*v = String(x)
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			*v = Int(i)
		} else if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			*v = Uint(u)
		} else if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			*v = Float(f)
		} else {
			return fmt.Errorf("number %s out of range", x)
		}
	default:
		return fmt.Errorf("want a bool, number or string, got %s", jsonKind(raw))
	}
	return nil
}

func jsonKind(x any) string {
	switch x.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", x)
}
