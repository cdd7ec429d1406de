package serial

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

// splitter cuts a byte stream into lines at a delimiter. A line longer than
// max bytes is reported as overlong (once) and skipped up to the next
// delimiter, so the stream resynchronises. Its memory is bounded by
// max + len(delimiter).
type splitter struct {
	delim    []byte
	max      int
	trimCR   bool
	buf      []byte
	skipping bool // inside an overlong line
}

func newSplitter(delim string, max int) *splitter {
	return &splitter{delim: []byte(delim), max: max, trimCR: delim == "\n", buf: make([]byte, 0, max+len(delim))}
}

// feed consumes data, calling line for each complete line (the slice is
// only valid during the call) and overlong for each line that was too long.
func (s *splitter) feed(data []byte, line func([]byte), overlong func()) {
	for len(data) > 0 {
		// Append as much as fits; the buffer never exceeds max+len(delim).
		room := s.max + len(s.delim) - len(s.buf)
		n := min(room, len(data))
		from := max(0, len(s.buf)-len(s.delim)+1) // a delimiter may straddle chunks
		s.buf = append(s.buf, data[:n]...)
		data = data[n:]
		for {
			i := bytes.Index(s.buf[from:], s.delim)
			if i < 0 {
				break
			}
			end := from + i
			if s.skipping {
				s.skipping = false
			} else if end > s.max {
				overlong()
			} else {
				l := s.buf[:end]
				if s.trimCR {
					l = bytes.TrimSuffix(l, []byte{'\r'})
				}
				line(l)
			}
			s.buf = s.buf[:copy(s.buf, s.buf[end+len(s.delim):])]
			from = 0
		}
		if len(s.buf) >= s.max+len(s.delim) {
			// Full without a delimiter: the line is overlong. Keep only a
			// tail that could be the start of a delimiter.
			if !s.skipping {
				overlong()
				s.skipping = true
			}
			keep := len(s.delim) - 1
			s.buf = s.buf[:copy(s.buf, s.buf[len(s.buf)-keep:])]
		}
	}
}

// parser turns lines into readings.
type parser struct {
	adapter string
	devices []lineDevice
}

type lineDevice struct {
	name   string
	re     *regexp.Regexp
	groups []groupPoint // in pattern order
}

type groupPoint struct {
	index int // submatch index
	name  string
	kind  edgegw.Kind
	unit  string
}

func newParser(adapter string, c *Config) (*parser, error) {
	p := &parser{adapter: adapter}
	for _, d := range c.Devices {
		re, err := regexp.Compile(d.Pattern)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", d.Name, err)
		}
		ld := lineDevice{name: d.Name, re: re}
		for _, pt := range d.Points {
			ld.groups = append(ld.groups, groupPoint{index: re.SubexpIndex(pt.Name), name: pt.Name, kind: kinds[pt.Kind], unit: pt.Unit})
		}
		p.devices = append(p.devices, ld)
	}
	return p, nil
}

// parse returns the reading for the first device whose pattern matches
// line. matched is false when none does. A group that did not take part in
// the match or whose text does not parse as its kind is left out (and
// counted in bad); a match without any point gives no reading.
func (p *parser) parse(line []byte, now time.Time) (r edgegw.Reading, matched bool, bad int) {
	for _, d := range p.devices {
		m := d.re.FindSubmatchIndex(line)
		if m == nil {
			continue
		}
		r = edgegw.Reading{Adapter: p.adapter, Device: d.name, Time: now}
		for _, g := range d.groups {
			if g.index < 0 || 2*g.index+1 >= len(m) || m[2*g.index] < 0 {
				bad++
				continue
			}
			v, ok := parseValue(line[m[2*g.index]:m[2*g.index+1]], g.kind)
			if !ok {
				bad++
				continue
			}
			r.Points = append(r.Points, edgegw.Point{Name: g.name, Value: v, Unit: g.unit})
		}
		return r, true, bad
	}
	return r, false, 0
}

func parseValue(b []byte, k edgegw.Kind) (edgegw.Value, bool) {
	s := strings.TrimSpace(string(b))
	switch k {
	case edgegw.KindInt:
		i, err := strconv.ParseInt(s, 10, 64)
		return edgegw.Int(i), err == nil
	case edgegw.KindUint:
		u, err := strconv.ParseUint(s, 10, 64)
		return edgegw.Uint(u), err == nil
	case edgegw.KindBool:
		switch strings.ToLower(s) {
		case "1", "true", "on", "yes":
			return edgegw.Bool(true), true
		case "0", "false", "off", "no":
			return edgegw.Bool(false), true
		}
		return edgegw.Value{}, false
	case edgegw.KindString:
		if !utf8.ValidString(s) {
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
		return edgegw.String(s), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return edgegw.Value{}, false
	}
	return edgegw.Float(f), true
}
