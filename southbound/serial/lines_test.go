package serial

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// splitAll feeds data in chunks of the given sizes (cycled) and returns the
// lines and the number of overlong lines.
func splitAll(delim string, maxLine int, data []byte, sizes []int) (lines []string, overlong int) {
	s := newSplitter(delim, maxLine)
	for i := 0; len(data) > 0; i++ {
		n := 1
		if len(sizes) > 0 {
			n = max(1, sizes[i%len(sizes)])
		}
		n = min(n, len(data))
		s.feed(data[:n], func(l []byte) { lines = append(lines, string(l)) }, func() { overlong++ })
		data = data[n:]
	}
	return lines, overlong
}

// reference splits a complete stream the obvious way.
func reference(delim string, maxLine int, data []byte) (lines []string, overlong int) {
	parts := bytes.Split(data, []byte(delim))
	for _, p := range parts[:len(parts)-1] { // the last part has no delimiter yet
		if len(p) > maxLine {
			overlong++
			continue
		}
		if delim == "\n" {
			p = bytes.TrimSuffix(p, []byte{'\r'})
		}
		lines = append(lines, string(p))
	}
	// An unterminated tail already longer than the limit is reported now.
	if len(parts[len(parts)-1]) > maxLine+len(delim)-1 {
		overlong++
	}
	return lines, overlong
}

func TestSplitter(t *testing.T) {
	for _, tc := range []struct {
		delim string
		max   int
		in    string
		lines []string
		over  int
	}{
		{"\n", 10, "a\nb\r\n\nc", []string{"a", "b", ""}, 0},
		{"\r\n", 10, "a\r\nb\rc\r\n", []string{"a", "b\rc"}, 0},
		{"\n", 3, "abcd\nabc\nxy\n", []string{"abc", "xy"}, 1},
		{"\n", 3, "abcdefghijklmnop\nok\n", []string{"ok"}, 1},
		{"END", 4, "12345678901234ENDabcdEN", []string{}, 1},
		{"END", 4, "xxxxxxxxxxxxENxxENDyyEND", []string{"yy"}, 1},
	} {
		for _, sizes := range [][]int{nil, {1}, {2, 3}, {100}} {
			lines, over := splitAll(tc.delim, tc.max, []byte(tc.in), sizes)
			if strings.Join(lines, "|") != strings.Join(tc.lines, "|") || over != tc.over {
				t.Errorf("%q (delim %q, max %d, chunks %v): got %q, %d overlong; want %q, %d",
					tc.in, tc.delim, tc.max, sizes, lines, over, tc.lines, tc.over)
			}
		}
	}
}

// FuzzLine: whatever the bytes and however they are chunked, the splitter
// agrees with the reference split, never holds more than max_line +
// len(delimiter) bytes, and the parser never panics on its lines.
func FuzzLine(f *testing.F) {
	f.Add([]byte("T=21.5\r\nH=40% on\n"), "\n", uint16(16), []byte{3, 1})
	f.Add([]byte("xxxxxxxxxxxxENDyyEND"), "END", uint16(4), []byte{2})
	f.Add([]byte("\xff\xfeT=1e400\n"), "\n", uint16(1), []byte{})
	f.Add([]byte("H=99999999999999999999% yes\n"), "\r\n", uint16(100), []byte{5, 7})
	cfg := testConfig("/dev/null")
	cfg.Devices = append(cfg.Devices, Device{Name: "s", Pattern: `S:(?P<s>.*)|U:(?P<u>\d+)`,
		Points: []Point{{Name: "s", Kind: "string"}, {Name: "u", Kind: "uint"}}})
	cfg.SetDefaults()
	p, err := newParser("ser", &cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, delim string, maxLine uint16, sizes []byte) {
		if delim == "" || len(delim) > 8 || maxLine == 0 {
			return
		}
		ints := make([]int, len(sizes))
		for i, s := range sizes {
			ints[i] = int(s)
		}
		got, gotOver := splitAll(delim, int(maxLine), data, ints)
		want, wantOver := reference(delim, int(maxLine), data)
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
			t.Fatalf("lines differ:\n got %q\nwant %q", got, want)
		}
		// Overlong lines in the middle are counted exactly; an unterminated
		// overlong tail may be counted before or at its delimiter.
		if gotOver < wantOver-1 || gotOver > wantOver+1 {
			t.Fatalf("overlong %d, reference %d", gotOver, wantOver)
		}
		for _, l := range got {
			if len(l) > int(maxLine) {
				t.Fatalf("line of %d bytes > max %d", len(l), maxLine)
			}
			r, matched, _ := p.parse([]byte(l), time.Unix(0, 0))
			for _, pt := range r.Points {
				if !matched || !pt.Value.IsValid() {
					t.Fatalf("bad point %+v from %q", pt, l)
				}
				if f, ok := pt.Value.Float(); ok && f != f {
					t.Fatalf("NaN from %q", l)
				}
			}
		}
	})
}

func TestParse(t *testing.T) {
	cfg := testConfig("/dev/null")
	cfg.SetDefaults()
	p, err := newParser("ser", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line    string
		want    string
		matched bool
		bad     int
	}{
		{"T=21.5", "thermo:temp=21.5degC", true, 0},
		{"xx T=-0.5 yy", "thermo:temp=-0.5degC", true, 0},
		{"H=12% off", "hygro:rh=12%,ok=false", true, 0},
		{"H=12% what", "hygro:rh=12%", true, 1},
		{"H=99999999999999999999% on", "hygro:ok=true", true, 1},
		{"nothing", ":", false, 0},
	} {
		r, matched, bad := p.parse([]byte(tc.line), time.Now())
		if got := pointsOf(r); got != tc.want || matched != tc.matched || bad != tc.bad {
			t.Errorf("%q: got %s matched=%v bad=%d", tc.line, got, matched, bad)
		}
	}
	for _, tc := range []struct {
		in   string
		kind edgegw.Kind
		want edgegw.Value
		ok   bool
	}{
		{" 1.5 ", edgegw.KindFloat, edgegw.Float(1.5), true},
		{"NaN", edgegw.KindFloat, edgegw.Value{}, false},
		{"1e999", edgegw.KindFloat, edgegw.Value{}, false},
		{"-7", edgegw.KindInt, edgegw.Int(-7), true},
		{"-7", edgegw.KindUint, edgegw.Uint(0), false},
		{"ON", edgegw.KindBool, edgegw.Bool(true), true},
		{"\xff", edgegw.KindString, edgegw.String("\uFFFD"), true},
	} {
		v, ok := parseValue([]byte(tc.in), tc.kind)
		if ok != tc.ok || (ok && v != tc.want) {
			t.Errorf("parseValue(%q, %s) = %v, %v", tc.in, tc.kind, v, ok)
		}
	}
}

func TestConfig(t *testing.T) {
	c := testConfig("/dev/ttyUSB0")
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Baud != 9600 || c.DataBits != 8 || c.StopBits != 1 || c.Parity != "none" || c.Delimiter != "\n" || c.MaxLine != 1024 ||
		c.Devices[0].Points[0].Kind != "float" {
		t.Errorf("defaults %+v", c)
	}
	pts := c.Points("ser")
	if len(pts) != 3 || pts[1] != (edgegw.PointInfo{Adapter: "ser", Device: "hygro", Point: "rh", Kind: edgegw.KindInt}) {
		t.Errorf("points %+v", pts)
	}
	for _, tc := range []struct {
		mutate func(*Config)
		path   string
	}{
		{func(c *Config) { c.Device = "" }, "device"},
		{func(c *Config) { c.Baud = 12345 }, "baud"},
		{func(c *Config) { c.Parity = "mark" }, "parity"},
		{func(c *Config) { c.DataBits = 9 }, "data_bits"},
		{func(c *Config) { c.StopBits = 3 }, "stop_bits"},
		{func(c *Config) { c.MaxLine = -1 }, "max_line"},
		{func(c *Config) { c.Devices = nil }, "devices"},
		{func(c *Config) { c.Devices[1].Name = "thermo" }, "devices[1].name"},
		{func(c *Config) { c.Devices[0].Pattern = "T=(" }, "devices[0].pattern"},
		{func(c *Config) { c.Devices[0].Points[0].Name = "nope" }, "devices[0].points[0].name"},
		{func(c *Config) { c.Devices[1].Points = c.Devices[1].Points[:1] }, "devices[1].points"},
		{func(c *Config) { c.Devices[0].Points[0].Kind = "decimal" }, "devices[0].points[0].kind"},
	} {
		c := testConfig("/dev/ttyUSB0")
		c.SetDefaults()
		tc.mutate(&c)
		var fe *edgegw.FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Path != tc.path {
			t.Errorf("want an error at %s, got %v", tc.path, err)
		}
	}
}
