package modbus

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/edgegw/edgegw"
)

// decodeCase is a known register image and the value it holds. The images
// follow the byte order definitions: bytes A (most significant) to D of
// the value 0x12345678 lie as 12 34 56 78 (ABCD), 56 78 12 34 (CDAB),
// 34 12 78 56 (BADC), 78 56 34 12 (DCBA).
type decodeCase struct {
	name   string
	p      PointConfig
	img    string // wire image, hex
	want   edgegw.Value
	noEnc  bool // decoding is lossy (strings trimmed, NaN)
	approx bool // compare floats within 1e-9
}

var decodeCases = []decodeCase{
	{name: "int16", p: pc("int16", "ABCD"), img: "fffe", want: edgegw.Int(-2)},
	{name: "int16 min", p: pc("int16", "ABCD"), img: "8000", want: edgegw.Int(math.MinInt16)},
	{name: "int16 BADC", p: pc("int16", "BADC"), img: "feff", want: edgegw.Int(-2)},
	{name: "int16 DCBA", p: pc("int16", "DCBA"), img: "feff", want: edgegw.Int(-2)},
	{name: "int16 CDAB", p: pc("int16", "CDAB"), img: "fffe", want: edgegw.Int(-2)},
	{name: "uint16", p: pc("uint16", "ABCD"), img: "ffff", want: edgegw.Uint(65535)},
	{name: "uint16 BADC", p: pc("uint16", "BADC"), img: "3412", want: edgegw.Uint(0x1234)},
	{name: "uint32 ABCD", p: pc("uint32", "ABCD"), img: "12345678", want: edgegw.Uint(0x12345678)},
	{name: "uint32 CDAB", p: pc("uint32", "CDAB"), img: "56781234", want: edgegw.Uint(0x12345678)},
	{name: "uint32 BADC", p: pc("uint32", "BADC"), img: "34127856", want: edgegw.Uint(0x12345678)},
	{name: "uint32 DCBA", p: pc("uint32", "DCBA"), img: "78563412", want: edgegw.Uint(0x12345678)},
	{name: "int32 ABCD", p: pc("int32", "ABCD"), img: "f8a432eb", want: edgegw.Int(-123456789)},
	{name: "int32 CDAB", p: pc("int32", "CDAB"), img: "32ebf8a4", want: edgegw.Int(-123456789)},
	{name: "int32 BADC", p: pc("int32", "BADC"), img: "a4f8eb32", want: edgegw.Int(-123456789)},
	{name: "int32 DCBA", p: pc("int32", "DCBA"), img: "eb32a4f8", want: edgegw.Int(-123456789)},
	{name: "uint64 ABCD", p: pc("uint64", "ABCD"), img: "0102030405060708", want: edgegw.Uint(0x0102030405060708)},
	{name: "uint64 CDAB", p: pc("uint64", "CDAB"), img: "0708050603040102", want: edgegw.Uint(0x0102030405060708)},
	{name: "uint64 BADC", p: pc("uint64", "BADC"), img: "0201040306050807", want: edgegw.Uint(0x0102030405060708)},
	{name: "uint64 DCBA", p: pc("uint64", "DCBA"), img: "0807060504030201", want: edgegw.Uint(0x0102030405060708)},
	{name: "uint64 max", p: pc("uint64", "ABCD"), img: "ffffffffffffffff", want: edgegw.Uint(math.MaxUint64)},
	{name: "int64 ABCD", p: pc("int64", "ABCD"), img: "fffffffffffffffe", want: edgegw.Int(-2)},
	{name: "int64 min DCBA", p: pc("int64", "DCBA"), img: "0000000000000080", want: edgegw.Int(math.MinInt64)},
	{name: "float32 ABCD", p: pc("float32", "ABCD"), img: "3fc00000", want: edgegw.Float(1.5)},
	{name: "float32 CDAB", p: pc("float32", "CDAB"), img: "00003fc0", want: edgegw.Float(1.5)},
	{name: "float32 BADC", p: pc("float32", "BADC"), img: "c03f0000", want: edgegw.Float(1.5)},
	{name: "float32 DCBA", p: pc("float32", "DCBA"), img: "0000c03f", want: edgegw.Float(1.5)},
	{name: "float32 -273.15", p: pc("float32", "ABCD"), img: "c3889333", want: edgegw.Float(float64(float32(-273.15)))},
	{name: "float32 +Inf", p: pc("float32", "ABCD"), img: "7f800000", want: edgegw.Float(math.Inf(1)), noEnc: true},
	{name: "float64 ABCD", p: pc("float64", "ABCD"), img: "3ff8000000000000", want: edgegw.Float(1.5)},
	{name: "float64 CDAB", p: pc("float64", "CDAB"), img: "0000000000003ff8", want: edgegw.Float(1.5)},
	{name: "float64 BADC", p: pc("float64", "BADC"), img: "f83f000000000000", want: edgegw.Float(1.5)},
	{name: "float64 DCBA", p: pc("float64", "DCBA"), img: "000000000000f83f", want: edgegw.Float(1.5)},
	{name: "float64 pi", p: pc("float64", "ABCD"), img: "400921fb54442d18", want: edgegw.Float(math.Pi)},
	{name: "string ABCD", p: str("ABCD", 3), img: "48454c4c4f00", want: edgegw.String("HELLO")},
	{name: "string BADC", p: str("BADC", 3), img: "45484c4c004f", want: edgegw.String("HELLO")},
	{name: "string full", p: str("ABCD", 2), img: "41424344", want: edgegw.String("ABCD")},
	{name: "string spaces", p: str("ABCD", 3), img: "4f4b20202020", want: edgegw.String("OK"), noEnc: true},
	{name: "string junk after NUL", p: str("ABCD", 3), img: "4f4b00ffffff", want: edgegw.String("OK"), noEnc: true},
	{name: "string bad utf8", p: str("ABCD", 1), img: "ff41", want: edgegw.String("\uFFFDA"), noEnc: true},
	{name: "bit 0", p: bit(0, "ABCD"), img: "0001", want: edgegw.Bool(true)},
	{name: "bit 15", p: bit(15, "ABCD"), img: "8000", want: edgegw.Bool(true)},
	{name: "bit 15 clear", p: bit(15, "ABCD"), img: "7fff", want: edgegw.Bool(false)},
	{name: "bit 8 BADC", p: bit(8, "BADC"), img: "0001", want: edgegw.Bool(true)},
	{name: "int16 scaled", p: scaled("int16", 0.1, 0), img: "ff9c", want: edgegw.Float(-10), approx: true},
	{name: "uint16 scaled offset", p: scaled("uint16", 0.01, -40), img: "1388", want: edgegw.Float(10), approx: true},
	{name: "uint32 offset only", p: scaled("uint32", 0, 100), img: "00000005", want: edgegw.Float(105)},
	{name: "float32 scaled", p: scaled("float32", 2, 1), img: "3fc00000", want: edgegw.Float(4)},
	{name: "int64 scaled", p: scaled("int64", 1000, 0), img: "0000000000000003", want: edgegw.Float(3000)},
}

func pc(typ, order string) PointConfig {
	return PointConfig{Name: "p", Table: "holding", Type: typ, Order: order}
}

func str(order string, length uint16) PointConfig {
	p := pc("string", order)
	p.Length = length
	return p
}

func bit(n uint8, order string) PointConfig {
	p := pc("bit", order)
	p.Bit = n
	return p
}

func scaled(typ string, scale, offset float64) PointConfig {
	p := pc(typ, "ABCD")
	p.Scale, p.Offset = scale, offset
	return p
}

func sameValue(a, b edgegw.Value, approx bool) bool {
	if a.Kind() == edgegw.KindFloat && b.Kind() == edgegw.KindFloat {
		x, _ := a.Float()
		y, _ := b.Float()
		if approx {
			return math.Abs(x-y) < 1e-9
		}
		return x == y || math.IsNaN(x) && math.IsNaN(y)
	}
	return a == b
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.validate(); err != nil {
				t.Fatalf("point config invalid: %v", err)
			}
			c, err := newCodec(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			img := mustHex(tc.img)
			got, err := c.decode(img)
			if err != nil {
				t.Fatal(err)
			}
			if !sameValue(got, tc.want, tc.approx) {
				t.Fatalf("decode %s = %v (%s), want %v (%s)", tc.img, got, got.Kind(), tc.want, tc.want.Kind())
			}
			if got.Kind() != c.kind() {
				t.Errorf("kind %s, codec says %s", got.Kind(), c.kind())
			}
			if tc.noEnc || c.typ == typeBit {
				return
			}
			enc, err := c.encode(tc.want)
			if err != nil {
				t.Fatalf("encode %v: %v", tc.want, err)
			}
			if !bytes.Equal(enc, img) {
				t.Errorf("encode %v = % x, want % x", tc.want, enc, img)
			}
		})
	}
}

func TestEncodeRange(t *testing.T) {
	cases := []struct {
		p       PointConfig
		v       edgegw.Value
		img     string // want, hex; empty when an error is expected
		wantErr error
	}{
		{pc("int16", "ABCD"), edgegw.Int(32767), "7fff", nil},
		{pc("int16", "ABCD"), edgegw.Int(32768), "", errOutOfRange},
		{pc("int16", "ABCD"), edgegw.Int(-32769), "", errOutOfRange},
		{pc("uint16", "ABCD"), edgegw.Int(-1), "", errOutOfRange},
		{pc("uint16", "ABCD"), edgegw.Int(65536), "", errOutOfRange},
		{pc("uint16", "ABCD"), edgegw.Uint(65535), "ffff", nil},
		{pc("uint16", "ABCD"), edgegw.Float(7), "0007", nil},
		{pc("uint16", "ABCD"), edgegw.Float(7.5), "", errOutOfRange},
		{pc("uint16", "ABCD"), edgegw.String("7"), "", errWrongKind},
		{pc("int32", "CDAB"), edgegw.Int(-123456789), "32ebf8a4", nil},
		{pc("int32", "ABCD"), edgegw.Uint(1 << 31), "", errOutOfRange},
		{pc("uint32", "ABCD"), edgegw.Int(1 << 32), "", errOutOfRange},
		{pc("int64", "ABCD"), edgegw.Uint(math.MaxUint64), "", errOutOfRange},
		{pc("int64", "ABCD"), edgegw.Float(9.3e18), "", errOutOfRange},
		{pc("uint64", "ABCD"), edgegw.Float(-1), "", errOutOfRange},
		{pc("uint64", "ABCD"), edgegw.Uint(math.MaxUint64), "ffffffffffffffff", nil},
		{pc("float32", "ABCD"), edgegw.Float(1e39), "", errOutOfRange},
		{pc("float32", "ABCD"), edgegw.Float(math.NaN()), "", errOutOfRange},
		{pc("float32", "ABCD"), edgegw.Int(2), "40000000", nil},
		{pc("float64", "ABCD"), edgegw.Float(math.Inf(-1)), "", errOutOfRange},
		{scaled("int16", 0.1, 0), edgegw.Float(-10), "ff9c", nil},
		{scaled("int16", 0.1, 0), edgegw.Float(3276.7), "7fff", nil},
		{scaled("int16", 0.1, 0), edgegw.Float(3276.8), "", errOutOfRange},
		{scaled("uint16", 0.01, -40), edgegw.Float(-40.004), "0000", nil}, // rounds to raw 0
		{scaled("uint16", 0.01, -40), edgegw.Float(-40.01), "", errOutOfRange},
		{scaled("uint16", 0.5, 0), edgegw.Int(3), "0006", nil},
		{str("ABCD", 2), edgegw.String("ABCDE"), "", errOutOfRange},
		{str("BADC", 2), edgegw.String("AB"), "42410000", nil},
		{str("ABCD", 2), edgegw.Int(1), "", errWrongKind},
	}
	for _, tc := range cases {
		c, err := newCodec(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.encode(tc.v)
		name := tc.p.Type + "/" + tc.p.Order + "/" + tc.v.String()
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: err %v, want %v (image % x)", name, err, tc.wantErr, got)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, mustHex(tc.img)) {
			t.Errorf("%s: % x, %v; want %s", name, got, err, tc.img)
		}
	}
}

func TestEncodeBool(t *testing.T) {
	for _, tc := range []struct {
		v    edgegw.Value
		want bool
		ok   bool
	}{
		{edgegw.Bool(true), true, true}, {edgegw.Bool(false), false, true},
		{edgegw.Int(1), true, true}, {edgegw.Uint(0), false, true}, {edgegw.Float(1), true, true},
		{edgegw.Int(2), false, false}, {edgegw.String("true"), false, false}, {edgegw.Value{}, false, false},
	} {
		got, err := encodeBool(tc.v)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("encodeBool(%v) = %v, %v", tc.v, got, err)
		}
	}
}

// FuzzDecode decodes arbitrary images with every type and order: no panic,
// the kind matches, and lossless types encode back to the same image.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}, uint8(4), uint8(0), 0.0, 0.0)
	f.Add([]byte{0x7f, 0xc0, 0, 1}, uint8(8), uint8(3), 0.0, 0.0)
	f.Add([]byte("HELLO!"), uint8(10), uint8(2), 0.0, 0.0)
	f.Add([]byte{0xff, 0x9c}, uint8(2), uint8(1), 0.1, -40.0)
	typeNames := []string{"bit", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"}
	orderNames := []string{"ABCD", "CDAB", "BADC", "DCBA"}
	f.Fuzz(func(t *testing.T, img []byte, typ, order uint8, scale, offset float64) {
		p := PointConfig{Name: "p", Table: "holding", Type: typeNames[int(typ)%len(typeNames)],
			Order: orderNames[int(order)%len(orderNames)], Scale: scale, Offset: offset}
		switch p.Type {
		case "string":
			p.Length = uint16(max(len(img)/2, 1))
			p.Scale, p.Offset = 0, 0
			if p.Order != "ABCD" && p.Order != "BADC" {
				p.Order = "ABCD"
			}
		case "bit":
			p.Bit = typ % 16
			p.Scale, p.Offset = 0, 0
		}
		if p.validate() != nil {
			return
		}
		c, err := newCodec(p)
		if err != nil {
			t.Fatal(err)
		}
		n := 2 * c.width()
		if len(img) < n {
			if _, err := c.decode(img); err == nil {
				t.Fatalf("decoded a short image of %d bytes", len(img))
			}
			return
		}
		img = img[:n]
		v, err := c.decode(img)
		if err != nil {
			t.Fatal(err)
		}
		if v.Kind() != c.kind() {
			t.Fatalf("kind %s, want %s", v.Kind(), c.kind())
		}
		if c.typ == typeBit || c.typ == typeString || c.scaled {
			if c.typ != typeBit {
				_, _ = c.encode(v) // must not panic
			}
			return
		}
		if f, ok := v.Float(); ok && v.Kind() == edgegw.KindFloat && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return
		}
		back, err := c.encode(v)
		if err != nil {
			t.Fatalf("encode %v: %v", v, err)
		}
		if !bytes.Equal(back, img) {
			t.Fatalf("round trip % x -> %v -> % x", img, v, back)
		}
	})
}
