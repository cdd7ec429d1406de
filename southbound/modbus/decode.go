package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

// This file is pure: register images <-> values for every type, byte order
// and scaling. A register image is the bytes as they travel on the wire:
// each register big-endian, registers in address order.

type table uint8

const (
	tableCoil table = iota + 1
	tableDiscrete
	tableInput
	tableHolding
)

var tables = map[string]table{"coil": tableCoil, "discrete": tableDiscrete, "input": tableInput, "holding": tableHolding}

func (t table) String() string {
	switch t {
	case tableCoil:
		return "coil"
	case tableDiscrete:
		return "discrete"
	case tableInput:
		return "input"
	case tableHolding:
		return "holding"
	}
	return "table?"
}

type dataType uint8

const (
	typeBool dataType = iota + 1
	typeBit
	typeInt16
	typeUint16
	typeInt32
	typeUint32
	typeInt64
	typeUint64
	typeFloat32
	typeFloat64
	typeString
)

var types = map[string]dataType{
	"bool": typeBool, "bit": typeBit, "int16": typeInt16, "uint16": typeUint16,
	"int32": typeInt32, "uint32": typeUint32, "int64": typeInt64, "uint64": typeUint64,
	"float32": typeFloat32, "float64": typeFloat64, "string": typeString,
}

// orders maps a byte order to (swap words, swap bytes within words).
var orders = map[string][2]bool{
	"ABCD": {false, false}, "CDAB": {true, false}, "BADC": {false, true}, "DCBA": {true, true},
}

// typeWidth is the number of registers (or bits, for bool) a type takes.
func typeWidth(t dataType, length uint16) int {
	switch t {
	case typeBool, typeBit, typeInt16, typeUint16:
		return 1
	case typeInt32, typeUint32, typeFloat32:
		return 2
	case typeInt64, typeUint64, typeFloat64:
		return 4
	case typeString:
		return int(length)
	}
	return 0
}

// Errors of encoding a value for a write. Both mean nothing was written.
var (
	errOutOfRange = errors.New("out of range")
	errWrongKind  = errors.New("wrong value type")
)

// codec converts between a point's register image (or bit) and its Value.
type codec struct {
	table     table
	typ       dataType
	swapWords bool
	swapBytes bool
	bit       uint8
	length    uint16
	scaled    bool
	scale     float64 // 1 when unscaled
	offset    float64
}

func newCodec(p PointConfig) (codec, error) {
	c := codec{table: tables[p.Table], typ: types[p.Type], bit: p.Bit, length: p.Length, scale: 1}
	o, ok := orders[p.Order]
	if c.table == 0 || c.typ == 0 || !ok {
		return codec{}, fmt.Errorf("bad point %q", p.Name)
	}
	c.swapWords, c.swapBytes = o[0], o[1]
	if p.Scale != 0 || p.Offset != 0 {
		c.scaled = true
		c.offset = p.Offset
		if p.Scale != 0 {
			c.scale = p.Scale
		}
	}
	return c, nil
}

// isBits reports whether the point lives in a bit table (coil, discrete).
func (c codec) isBits() bool { return c.table == tableCoil || c.table == tableDiscrete }

// width is the number of registers, or bits for a bit table.
func (c codec) width() int { return typeWidth(c.typ, c.length) }

// kind is the kind of the decoded value.
func (c codec) kind() edgegw.Kind {
	switch c.typ {
	case typeBool, typeBit:
		return edgegw.KindBool
	case typeString:
		return edgegw.KindString
	case typeFloat32, typeFloat64:
		return edgegw.KindFloat
	}
	if c.scaled {
		return edgegw.KindFloat
	}
	switch c.typ {
	case typeInt16, typeInt32, typeInt64:
		return edgegw.KindInt
	}
	return edgegw.KindUint
}

// reorder turns a wire image into big-endian value bytes or back (it is its
// own inverse). It returns a new slice.
func (c codec) reorder(img []byte) []byte {
	out := make([]byte, len(img))
	n := len(img) / 2
	for i := 0; i < n; i++ {
		j := i
		if c.swapWords {
			j = n - 1 - i
		}
		hi, lo := img[2*j], img[2*j+1]
		if c.swapBytes {
			hi, lo = lo, hi
		}
		out[2*i], out[2*i+1] = hi, lo
	}
	return out
}

// decode returns the value of a register image of exactly 2*width bytes.
func (c codec) decode(img []byte) (edgegw.Value, error) {
	if c.isBits() {
		return edgegw.Value{}, fmt.Errorf("decode: %s is a bit table", c.table)
	}
	if len(img) != 2*c.width() {
		return edgegw.Value{}, fmt.Errorf("decode: want %d bytes, got %d", 2*c.width(), len(img))
	}
	b := c.reorder(img)
	var raw float64
	switch c.typ {
	case typeBit:
		return edgegw.Bool(binary.BigEndian.Uint16(b)>>c.bit&1 == 1), nil
	case typeString:
		s := string(b)
		if i := strings.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimRight(s, " ")
		if !utf8.ValidString(s) {
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
		return edgegw.String(s), nil
	case typeInt16:
		v := int16(binary.BigEndian.Uint16(b))
		if !c.scaled {
			return edgegw.Int(int64(v)), nil
		}
		raw = float64(v)
	case typeUint16:
		v := binary.BigEndian.Uint16(b)
		if !c.scaled {
			return edgegw.Uint(uint64(v)), nil
		}
		raw = float64(v)
	case typeInt32:
		v := int32(binary.BigEndian.Uint32(b))
		if !c.scaled {
			return edgegw.Int(int64(v)), nil
		}
		raw = float64(v)
	case typeUint32:
		v := binary.BigEndian.Uint32(b)
		if !c.scaled {
			return edgegw.Uint(uint64(v)), nil
		}
		raw = float64(v)
	case typeInt64:
		v := int64(binary.BigEndian.Uint64(b))
		if !c.scaled {
			return edgegw.Int(v), nil
		}
		raw = float64(v)
	case typeUint64:
		v := binary.BigEndian.Uint64(b)
		if !c.scaled {
			return edgegw.Uint(v), nil
		}
		raw = float64(v)
	case typeFloat32:
		raw = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
	case typeFloat64:
		raw = math.Float64frombits(binary.BigEndian.Uint64(b))
	default:
		return edgegw.Value{}, fmt.Errorf("decode: bad type %d", c.typ)
	}
	if c.scaled {
		raw = raw*c.scale + c.offset
	}
	return edgegw.Float(raw), nil
}

// decodeBit returns the value of bit i of a packed bit-table response.
func decodeBit(data []byte, i int) edgegw.Value {
	return edgegw.Bool(data[i/8]>>(i%8)&1 == 1)
}

// encodeBool converts v for a coil or a bit of a register: a bool, or the
// number 0 or 1.
func encodeBool(v edgegw.Value) (bool, error) {
	if b, ok := v.Bool(); ok {
		return b, nil
	}
	if f, ok := v.Float(); ok && (f == 0 || f == 1) {
		return f == 1, nil
	}
	return false, fmt.Errorf("%w: want a bool, got %s %s", errWrongKind, v.Kind(), v)
}

// encode returns the register image that holds v, applying the inverse of
// scale and offset and rounding to the raw type. A value the raw type cannot
// hold is an error wrapping errOutOfRange; nothing should then be written.
func (c codec) encode(v edgegw.Value) ([]byte, error) {
	b := make([]byte, 2*c.width())
	switch c.typ {
	case typeBool, typeBit:
		return nil, fmt.Errorf("encode: type %d is written as a bit", c.typ)
	case typeString:
		s, ok := v.Str()
		if !ok {
			return nil, fmt.Errorf("%w: want a string, got %s", errWrongKind, v.Kind())
		}
		if len(s) > len(b) {
			return nil, fmt.Errorf("%w: string of %d bytes does not fit %d registers", errOutOfRange, len(s), c.length)
		}
		copy(b, s)
	case typeFloat32, typeFloat64:
		f, ok := v.Float()
		if !ok {
			return nil, fmt.Errorf("%w: want a number, got %s", errWrongKind, v.Kind())
		}
		f = c.unscale(f)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: %s is not a finite number", errOutOfRange, v)
		}
		if c.typ == typeFloat64 {
			binary.BigEndian.PutUint64(b, math.Float64bits(f))
			break
		}
		f32 := float32(f)
		if math.IsInf(float64(f32), 0) {
			return nil, fmt.Errorf("%w: %s does not fit float32", errOutOfRange, v)
		}
		binary.BigEndian.PutUint32(b, math.Float32bits(f32))
	default:
		raw, err := c.integer(v)
		if err != nil {
			return nil, err
		}
		switch len(b) {
		case 2:
			binary.BigEndian.PutUint16(b, uint16(raw))
		case 4:
			binary.BigEndian.PutUint32(b, uint32(raw))
		case 8:
			binary.BigEndian.PutUint64(b, raw)
		}
	}
	return c.reorder(b), nil
}

func (c codec) unscale(f float64) float64 {
	if !c.scaled {
		return f
	}
	return (f - c.offset) / c.scale
}

// integer converts v to the raw integer type of c, as two's complement bits.
func (c codec) integer(v edgegw.Value) (uint64, error) {
	bits := 16 * c.width()
	signed := c.typ == typeInt16 || c.typ == typeInt32 || c.typ == typeInt64
	name := fmt.Sprintf("uint%d", bits)
	if signed {
		name = name[1:]
	}
	outOfRange := func() (uint64, error) {
		return 0, fmt.Errorf("%w: %s does not fit %s", errOutOfRange, v, name)
	}
	if !c.scaled {
		switch v.Kind() {
		case edgegw.KindInt:
			i, _ := v.Int()
			if signed {
				if bits < 64 && (i < -(1<<(bits-1)) || i > 1<<(bits-1)-1) {
					return outOfRange()
				}
				return uint64(i), nil
			}
			if i < 0 || bits < 64 && uint64(i) >= 1<<bits {
				return outOfRange()
			}
			return uint64(i), nil
		case edgegw.KindUint:
			u, _ := v.Uint()
			if signed && u > 1<<(bits-1)-1 || !signed && bits < 64 && u >= 1<<bits {
				return outOfRange()
			}
			return u, nil
		}
	}
	f, ok := v.Float()
	if !ok {
		return 0, fmt.Errorf("%w: want a number, got %s", errWrongKind, v.Kind())
	}
	f = c.unscale(f)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return outOfRange()
	}
	if c.scaled {
		f = math.Round(f)
	} else if f != math.Trunc(f) {
		return 0, fmt.Errorf("%w: %s is not an integer (type %s)", errOutOfRange, v, name)
	}
	lim := math.Ldexp(1, bits-1) // 2^(bits-1), exact
	if signed {
		if f < -lim || f >= lim {
			return outOfRange()
		}
		return uint64(int64(f)), nil
	}
	if f < 0 || f >= 2*lim {
		return outOfRange()
	}
	return uint64(f), nil
}
