package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/edgegw/edgegw"
)

// The compiled rules: what Validate checks and New builds from.
type tables struct {
	devices  map[devKey]*devRule
	owned    map[edgegw.DeviceID]bool
	methods  map[edgegw.DeviceID]map[string]*method
	desired  map[edgegw.DeviceID]map[string]*point // writable points by field
	readonly map[edgegw.DeviceID]map[string]*point // other listed points by field
	c2d      map[edgegw.DeviceID]*c2dRule
	unknown  int // status for an unknown method
}

type devKey struct{ adapter, device string }

func (k devKey) String() string { return k.adapter + "/" + k.device }

type devRule struct {
	cfg      *DeviceRule
	identity edgegw.DeviceID
	props    []edgegw.Property
	points   map[string]*point // by point name
	unlisted *point            // options for points the rule does not list; nil = drop
}

type point struct {
	name, field string
	adapter     string
	device      string
	identity    edgegw.DeviceID
	deadband    *float64
	maxSilence  time.Duration
	property    bool
	telemetry   bool
	writable    bool
	lim         limits
	alarm       bool
	above       *float64
	below       *float64
	path        string // config path, for errors
}

type method struct {
	identity edgegw.DeviceID
	name     string
	params   []*param
	actions  []action
	response []byte
	outputs  bool // answer with a call's output (the rule sets no response)
}

type param struct {
	name     string
	lims     []limits // the param's own, then those of every point it is written to
	optional bool
	def      *edgegw.Value
	re       *regexp.Regexp
	pattern  string
}

type action struct {
	kind    edgegw.ActionKind
	adapter string
	device  string
	point   *point
	param   *param // value from this param, or
	value   edgegw.Value
	frame   template // SendFrame payload, PublishLAN payload
	topic   template
	whole   bool     // PublishLAN with no payload template: the request body
	method  string   // CallMethod
	args    []*param // CallMethod
}

type c2dRule struct {
	kind    edgegw.ActionKind // 0 = ignore
	adapter string
	device  string
	topic   template
}

// Validate checks that the config is consistent in itself: required
// fields, duplicates, ranges, templates, and that every method write and
// desired property targets a writable point of a device rule.
func (c *Config) Validate() error {
	_, err := compile(c)
	return err
}

// compile builds the tables, collecting every error with its path.
func compile(c *Config) (*tables, error) {
	t := &tables{
		devices:  map[devKey]*devRule{},
		owned:    map[edgegw.DeviceID]bool{},
		methods:  map[edgegw.DeviceID]map[string]*method{},
		desired:  map[edgegw.DeviceID]map[string]*point{},
		readonly: map[edgegw.DeviceID]map[string]*point{},
		c2d:      map[edgegw.DeviceID]*c2dRule{},
		unknown:  c.UnknownMethodStatus,
	}
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	if c.UnknownMethodStatus < 400 || c.UnknownMethodStatus > 599 {
		add("unknown_method_status", "must be between 400 and 599 (got %d)", c.UnknownMethodStatus)
	}
	for _, id := range c.Identities {
		t.owned[id] = true
	}
	// checkID checks a rule's identity against Identities, when set.
	checkID := func(path string, id edgegw.DeviceID) {
		if len(c.Identities) > 0 && id != "" && !t.owned[id] {
			add(path, "identity %q is not configured (identities: %s)", id, idList(c.Identities))
		}
	}
	first := map[devKey]int{}
	reported := map[edgegw.DeviceID]map[string]string{} // identity -> field -> path
	for i := range c.Devices {
		d := &c.Devices[i]
		path := fmt.Sprintf("devices[%d]", i)
		r := compileDevice(d, path, add)
		checkID(path+".identity", d.Identity)
		k := devKey{d.Adapter, d.Device}
		if j, dup := first[k]; dup {
			add(path, "duplicate rule for device %s (first at devices[%d])", k, j)
			continue
		}
		first[k] = i
		t.devices[k] = r
		if d.Identity != "" && len(c.Identities) == 0 {
			t.owned[d.Identity] = true
		}
		for _, p := range sortedPoints(r.points) {
			if p.writable {
				m := lazy(t.desired, r.identity)
				if q, dup := m[p.field]; dup {
					add(p.path+".field", "desired property %q of identity %s is already the writable point at %s", p.field, r.identity, q.path)
				}
				m[p.field] = p
			} else if _, seen := t.readonly[r.identity][p.field]; !seen {
				lazy(t.readonly, r.identity)[p.field] = p
			}
			if p.property {
				m := reported[r.identity]
				if m == nil {
					m = map[string]string{}
					reported[r.identity] = m
				}
				if q, dup := m[p.field]; dup {
					add(p.path+".field", "reported property %q of identity %s is already reported by %s", p.field, r.identity, q)
				}
				m[p.field] = p.path
			}
		}
	}
	for i := range c.Methods {
		mr := &c.Methods[i]
		path := fmt.Sprintf("methods[%d]", i)
		m := compileMethod(t, mr, path, add)
		checkID(path+".identity", mr.Identity)
		if m == nil {
			continue
		}
		ms := t.methods[mr.Identity]
		if ms == nil {
			ms = map[string]*method{}
			t.methods[mr.Identity] = ms
		}
		if _, dup := ms[mr.Name]; dup {
			add(path+".name", "duplicate method %q for identity %s", mr.Name, mr.Identity)
			continue
		}
		ms[mr.Name] = m
	}
	for i := range c.C2D {
		cr := &c.C2D[i]
		path := fmt.Sprintf("c2d[%d]", i)
		r := compileC2D(cr, path, add)
		checkID(path+".identity", cr.Identity)
		if cr.Identity == "" {
			continue
		}
		if _, dup := t.c2d[cr.Identity]; dup {
			add(path+".identity", "duplicate c2d rule for identity %s", cr.Identity)
			continue
		}
		t.c2d[cr.Identity] = r
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func idList(ids []edgegw.DeviceID) string {
	const most = 20 // a fleet has thousands: name a few
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	if len(s) > most {
		sort.Strings(s)
		return strings.Join(s[:most], ", ") + fmt.Sprintf(", ... (%d in all)", len(s))
	}
	return list(s)
}

func lazy(m map[edgegw.DeviceID]map[string]*point, id edgegw.DeviceID) map[string]*point {
	if m[id] == nil {
		m[id] = map[string]*point{}
	}
	return m[id]
}

// sortedPoints returns the points in config order (their paths sort so).
func sortedPoints(m map[string]*point) []*point {
	out := make([]*point, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return pathLess(out[i].path, out[j].path) })
	return out
}

// pathLess orders "devices[0].points[10]" after "devices[0].points[9]".
func pathLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// checkRange checks min and max of a point or parameter.
func checkRange(path string, l limits, add adder) {
	for _, b := range []struct {
		name string
		v    *float64
	}{{"min", l.min}, {"max", l.max}} {
		if b.v == nil {
			continue
		}
		if math.IsNaN(*b.v) || math.IsInf(*b.v, 0) {
			add(path+"."+b.name, "must be a finite number (got %v)", *b.v)
		}
		if l.kind != edgegw.KindInvalid && !numeric(l.kind) {
			add(path+"."+b.name, "applies to numeric types only (type is %s)", l.kind)
		}
	}
	if l.min != nil && l.max != nil && *l.min > *l.max {
		add(path, "min must be <= max (got min %v, max %v)", *l.min, *l.max)
	}
	if l.kind == edgegw.KindUint && l.max != nil && *l.max < 0 {
		add(path+".max", "must be >= 0 for type uint (got %v)", *l.max)
	}
}

func validJSON(s string) bool { return json.Valid([]byte(s)) }
