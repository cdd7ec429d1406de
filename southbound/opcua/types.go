package opcua

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/edgegw/edgegw"
)

// typeInfo is one built-in type a point may have.
type typeInfo struct {
	id      ua.TypeID
	kind    edgegw.Kind // the kind of the unscaled value
	numeric bool        // scale and offset apply
	lo, hi  float64     // integer range
}

// types are the point types by their config spelling.
var types = map[string]typeInfo{
	"boolean":  {id: ua.TypeIDBoolean, kind: edgegw.KindBool},
	"sbyte":    {id: ua.TypeIDSByte, kind: edgegw.KindInt, numeric: true, lo: math.MinInt8, hi: math.MaxInt8},
	"byte":     {id: ua.TypeIDByte, kind: edgegw.KindUint, numeric: true, lo: 0, hi: math.MaxUint8},
	"int16":    {id: ua.TypeIDInt16, kind: edgegw.KindInt, numeric: true, lo: math.MinInt16, hi: math.MaxInt16},
	"uint16":   {id: ua.TypeIDUint16, kind: edgegw.KindUint, numeric: true, lo: 0, hi: math.MaxUint16},
	"int32":    {id: ua.TypeIDInt32, kind: edgegw.KindInt, numeric: true, lo: math.MinInt32, hi: math.MaxInt32},
	"uint32":   {id: ua.TypeIDUint32, kind: edgegw.KindUint, numeric: true, lo: 0, hi: math.MaxUint32},
	"int64":    {id: ua.TypeIDInt64, kind: edgegw.KindInt, numeric: true, lo: math.MinInt64, hi: math.MaxInt64},
	"uint64":   {id: ua.TypeIDUint64, kind: edgegw.KindUint, numeric: true, lo: 0, hi: math.MaxUint64},
	"float":    {id: ua.TypeIDFloat, kind: edgegw.KindFloat, numeric: true},
	"double":   {id: ua.TypeIDDouble, kind: edgegw.KindFloat, numeric: true},
	"string":   {id: ua.TypeIDString, kind: edgegw.KindString},
	"datetime": {id: ua.TypeIDDateTime, kind: edgegw.KindString},
}

// typeNames are the config spellings by type id, for browse.
var typeNames = func() map[ua.TypeID]string {
	m := map[ua.TypeID]string{}
	for n, t := range types {
		m[t.id] = n
	}
	return m
}()

// typeName is the config spelling of a built-in type, or its OPC UA name.
func typeName(id ua.TypeID) string {
	if n, ok := typeNames[id]; ok {
		return n
	}
	return strings.TrimPrefix(id.String(), "TypeID")
}

// maxArray is the longest array a point may read.
const maxArray = 4096

func elemName(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }

// conv converts the values of one point: its type, scale and offset.
type conv struct {
	t             typeInfo
	scale, offset float64
	scaled        bool
}

func newConv(p PointConfig) conv {
	return conv{t: types[p.Type], scale: p.Scale, offset: p.Offset, scaled: p.Scale != 0 || p.Offset != 0}
}

// errType is a value of another type than configured.
var errType = errors.New("type mismatch")

// decode turns one scalar of the point's type into a Value.
func (c conv) decode(x any) (edgegw.Value, error) {
	var v edgegw.Value
	switch y := x.(type) {
	case bool:
		v = edgegw.Bool(y)
	case int8:
		v = edgegw.Int(int64(y))
	case uint8:
		v = edgegw.Uint(uint64(y))
	case int16:
		v = edgegw.Int(int64(y))
	case uint16:
		v = edgegw.Uint(uint64(y))
	case int32:
		v = edgegw.Int(int64(y))
	case uint32:
		v = edgegw.Uint(uint64(y))
	case int64:
		v = edgegw.Int(y)
	case uint64:
		v = edgegw.Uint(y)
	case float32:
		v = edgegw.Float(float64(y))
	case float64:
		v = edgegw.Float(y)
	case string:
		v = edgegw.String(y)
	case time.Time:
		v = edgegw.String(y.UTC().Format(time.RFC3339Nano))
	default:
		return v, fmt.Errorf("%w: got %T", errType, x)
	}
	if c.scaled && c.t.numeric {
		f, _ := v.Float()
		v = edgegw.Float(f*c.scaleOr1() + c.offset)
	}
	return v, nil
}

func (c conv) scaleOr1() float64 {
	if c.scale == 0 {
		return 1
	}
	return c.scale
}

// points converts a variant of the point's type to the point values it
// makes: one, or one per array element up to length. A variant of another
// type, or an array where a scalar was configured (and the reverse), is
// an error and makes none.
func (c conv) points(name, unit string, length int, vr *ua.Variant, out []edgegw.Point) ([]edgegw.Point, error) {
	if vr == nil || vr.Type() != c.t.id {
		got := "null"
		if vr != nil {
			got = typeName(vr.Type())
		}
		return out, fmt.Errorf("%w: got %s, want %s", errType, got, typeName(c.t.id))
	}
	isArray := vr.Has(ua.VariantArrayValues)
	if isArray != (length > 0) {
		return out, fmt.Errorf("%w: array %t, configured length %d", errType, isArray, length)
	}
	if !isArray {
		v, err := c.decode(vr.Value())
		if err != nil {
			return out, err
		}
		return append(out, edgegw.Point{Name: name, Value: v, Unit: unit}), nil
	}
	n := 0
	var firstErr error
	each(vr.Value(), func(i int, x any) {
		if i >= length {
			return
		}
		v, err := c.decode(x)
		if err != nil {
			firstErr = err
			return
		}
		out = append(out, edgegw.Point{Name: elemName(name, i), Value: v, Unit: unit})
		n++
	})
	if n == 0 && firstErr != nil {
		return out, firstErr
	}
	return out, nil
}

// each calls f for the elements of a one-dimensional array as gopcua
// decodes it ([]T).
func each(x any, f func(int, any)) {
	switch a := x.(type) {
	case []bool:
		eachOf(a, f)
	case []int8:
		eachOf(a, f)
	case []uint8:
		eachOf(a, f)
	case []int16:
		eachOf(a, f)
	case []uint16:
		eachOf(a, f)
	case []int32:
		eachOf(a, f)
	case []uint32:
		eachOf(a, f)
	case []int64:
		eachOf(a, f)
	case []uint64:
		eachOf(a, f)
	case []float32:
		eachOf(a, f)
	case []float64:
		eachOf(a, f)
	case []string:
		eachOf(a, f)
	case []time.Time:
		eachOf(a, f)
	}
}

func eachOf[T any](a []T, f func(int, any)) {
	for i, x := range a {
		f(i, x)
	}
}

// encode turns a value from the downlink into a variant of the point's
// type, applying the inverse of scale and offset and rounding to integer
// types. A value that does not fit the type is an error.
func (c conv) encode(v edgegw.Value) (*ua.Variant, error) {
	x, err := c.native(v)
	if err != nil {
		return nil, err
	}
	return ua.NewVariant(x)
}

// native is encode's Go value.
func (c conv) native(v edgegw.Value) (any, error) {
	t := c.t
	switch t.id {
	case ua.TypeIDBoolean:
		b, ok := v.Bool()
		if !ok {
			return nil, fmt.Errorf("want a bool, got %s", v.Kind())
		}
		return b, nil
	case ua.TypeIDString:
		s, ok := v.Str()
		if !ok {
			return nil, fmt.Errorf("want a string, got %s", v.Kind())
		}
		return s, nil
	case ua.TypeIDDateTime:
		s, ok := v.Str()
		if !ok {
			return nil, fmt.Errorf("want an RFC 3339 time, got %s", v.Kind())
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("want an RFC 3339 time: %v", err)
		}
		return tm, nil
	}
	if v.Kind() == edgegw.KindBool || v.Kind() == edgegw.KindString || !v.IsValid() {
		return nil, fmt.Errorf("want a number, got %s", v.Kind())
	}
	// Unscaled integers keep their exact value.
	if !c.scaled {
		if i, ok := v.Int(); ok && v.Kind() != edgegw.KindFloat {
			return intOf(t, i, 0, false)
		}
		if u, ok := v.Uint(); ok && v.Kind() == edgegw.KindUint {
			return intOf(t, 0, u, true)
		}
	}
	f, _ := v.Float()
	if c.scaled {
		f = (f - c.offset) / c.scaleOr1()
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		if t.id == ua.TypeIDFloat || t.id == ua.TypeIDDouble {
			return nil, fmt.Errorf("%v is not a number a device accepts", f)
		}
	}
	switch t.id {
	case ua.TypeIDFloat:
		if math.Abs(f) > math.MaxFloat32 {
			return nil, fmt.Errorf("%g does not fit a float", f)
		}
		return float32(f), nil
	case ua.TypeIDDouble:
		return f, nil
	}
	r := math.Round(f)
	if math.IsNaN(r) || r < t.lo || r > t.hi || (t.hi == math.MaxInt64 && r >= math.MaxInt64) || (t.hi == math.MaxUint64 && r >= math.MaxUint64) {
		return nil, fmt.Errorf("%g does not fit %s", f, typeNames[t.id])
	}
	if t.kind == edgegw.KindUint {
		return intOf(t, 0, uint64(r), true)
	}
	return intOf(t, int64(r), 0, false)
}

// intOf range-checks an integer (i, or u when unsigned) for t and returns
// it as t's Go type.
func intOf(t typeInfo, i int64, u uint64, unsigned bool) (any, error) {
	if unsigned && u > math.MaxInt64 {
		if t.id != ua.TypeIDUint64 {
			return nil, fmt.Errorf("%d does not fit %s", u, typeNames[t.id])
		}
		return u, nil
	}
	if unsigned {
		i = int64(u)
	}
	fits := func() bool {
		switch t.id {
		case ua.TypeIDInt64:
			return true
		case ua.TypeIDUint64:
			return i >= 0
		case ua.TypeIDFloat, ua.TypeIDDouble:
			return true
		}
		return float64(i) >= t.lo && float64(i) <= t.hi
	}
	if !fits() {
		return nil, fmt.Errorf("%d does not fit %s", i, typeNames[t.id])
	}
	switch t.id {
	case ua.TypeIDSByte:
		return int8(i), nil
	case ua.TypeIDByte:
		return uint8(i), nil
	case ua.TypeIDInt16:
		return int16(i), nil
	case ua.TypeIDUint16:
		return uint16(i), nil
	case ua.TypeIDInt32:
		return int32(i), nil
	case ua.TypeIDUint32:
		return uint32(i), nil
	case ua.TypeIDInt64:
		return i, nil
	case ua.TypeIDUint64:
		return uint64(i), nil
	case ua.TypeIDFloat:
		return float32(i), nil
	case ua.TypeIDDouble:
		return float64(i), nil
	}
	return nil, fmt.Errorf("not a numeric type")
}

// valueJSON is the JSON form of an output argument.
func valueJSON(vr *ua.Variant) any {
	if vr == nil {
		return nil
	}
	switch x := vr.Value().(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case float32:
		return finite(float64(x))
	case float64:
		return finite(x)
	case []byte:
		return x
	case *ua.LocalizedText:
		return x.Text
	case *ua.NodeID:
		return x.String()
	case *ua.QualifiedName:
		return x.Name
	default:
		return x
	}
}

func finite(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}
