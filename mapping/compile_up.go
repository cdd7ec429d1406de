package mapping

import (
	"fmt"
	"sort"
	"strings"

	"github.com/edgegw/edgegw"
)

type adder func(path, format string, args ...any)

func compileDevice(d *DeviceRule, path string, add adder) *devRule {
	r := &devRule{cfg: d, identity: d.Identity, points: map[string]*point{}}
	if d.Adapter == "" {
		add(path+".adapter", "is required")
	}
	if d.Device == "" {
		add(path+".device", "is required")
	}
	if d.Identity == "" {
		add(path+".identity", "is required")
	}
	keys := make([]string, 0, len(d.Properties))
	for k := range d.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || strings.HasPrefix(k, "$") {
			add(path+".properties", "key %q: must be non-empty and not start with '$'", k)
		}
		r.props = append(r.props, edgegw.Property{Key: k, Value: d.Properties[k]})
	}
	if d.Body.ContentType == "" {
		add(path+".body.content_type", "must not be empty")
	}
	if d.Deadband != nil && !(*d.Deadband >= 0) {
		add(path+".deadband", "must be >= 0 (got %v)", *d.Deadband)
	}
	if d.MaxSilence < 0 {
		add(path+".max_silence", "must be >= 0 (got %s)", d.MaxSilence)
	}
	switch d.Unlisted {
	case "send":
		r.unlisted = &point{adapter: d.Adapter, device: d.Device, identity: d.Identity,
			deadband: d.Deadband, maxSilence: d.MaxSilence, telemetry: true, path: path}
	case "drop":
	default:
		add(path+".unlisted", "must be send or drop (got %q)", d.Unlisted)
	}
	reserved := map[string]string{}
	if d.Body.Wrap == "" {
		if d.Body.Timestamp != "" {
			reserved[d.Body.Timestamp] = "body.timestamp"
		}
		if d.Body.Device != "" {
			if _, dup := reserved[d.Body.Device]; dup {
				add(path+".body.device", "field %q is also body.timestamp", d.Body.Device)
			} else {
				reserved[d.Body.Device] = "body.device"
			}
		}
	}
	fields := map[string]int{}
	for j := range d.Points {
		pr := &d.Points[j]
		pp := fmt.Sprintf("%s.points[%d]", path, j)
		p := compilePoint(pr, pp, add)
		p.adapter, p.device, p.identity = d.Adapter, d.Device, d.Identity
		if p.deadband == nil {
			p.deadband = d.Deadband
		}
		if p.maxSilence == 0 {
			p.maxSilence = d.MaxSilence
		}
		if pr.Name == "" {
			continue
		}
		if _, dup := r.points[pr.Name]; dup {
			add(pp+".name", "duplicate point %q", pr.Name)
			continue
		}
		if k, dup := fields[p.field]; dup {
			add(pp+".field", "field %q is also used by points[%d]", p.field, k)
		}
		if what, clash := reserved[p.field]; clash && p.telemetry {
			add(pp+".field", "field %q is also %s", p.field, what)
		}
		fields[p.field] = j
		r.points[pr.Name] = p
	}
	return r
}

func compilePoint(pr *PointRule, path string, add adder) *point {
	p := &point{
		name: pr.Name, field: pr.Field, deadband: pr.Deadband, maxSilence: pr.MaxSilence,
		property: pr.Property, telemetry: pr.Telemetry == nil || *pr.Telemetry,
		writable: pr.Writable, alarm: pr.Alarm, above: pr.AlarmAbove, below: pr.AlarmBelow,
		lim: limits{kind: pr.Type.Kind(), min: pr.Min, max: pr.Max}, path: path,
	}
	if p.field == "" {
		p.field = p.name
	}
	if pr.Name == "" {
		add(path+".name", "is required")
	}
	if pr.Type != "" && p.lim.kind == edgegw.KindInvalid {
		add(path+".type", "must be bool, int, uint, float or string (got %q)", pr.Type)
	}
	if pr.Writable && pr.Type == "" {
		add(path+".type", "is required for a writable point (bool, int, uint, float or string)")
	}
	if !p.property && !p.telemetry {
		add(path, "goes nowhere: property and telemetry are both false")
	}
	if pr.Deadband != nil && !(*pr.Deadband >= 0) {
		add(path+".deadband", "must be >= 0 (got %v)", *pr.Deadband)
	}
	if pr.MaxSilence < 0 {
		add(path+".max_silence", "must be >= 0 (got %s)", pr.MaxSilence)
	}
	checkRange(path, p.lim, add)
	if pr.Type != "" && !numeric(p.lim.kind) && (pr.AlarmAbove != nil || pr.AlarmBelow != nil) {
		add(path, "alarm_above and alarm_below need a numeric type (got %s)", pr.Type)
	}
	return p
}
