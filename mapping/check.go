package mapping

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/edgegw/edgegw"
)

// Check checks the rules against what the adapters provide. points lists
// every configured point; an entry with only Adapter set announces an
// adapter (the gateway adds one per adapter), and one with Adapter and
// Device set announces a device without points.
//
// Every adapter a rule names (device rules, send and publish actions, c2d
// rules) must be announced or have points. Of an adapter that has device
// entries, a rule may name only those devices; an adapter with none (a LAN
// broker, whose devices are not known in advance) accepts any device name.
// Every listed point must exist, a writable point must be writable by its
// adapter, and its type must be the kind the adapter decodes. Paths are
// relative to Config. Call it after Validate.
func (c *Config) Check(points []edgegw.PointInfo) error {
	cat := catalog{devices: map[devKey]map[string]edgegw.PointInfo{}, adapters: map[string][]string{}}
	for _, p := range points {
		if _, ok := cat.adapters[p.Adapter]; !ok {
			cat.adapters[p.Adapter] = nil
		}
		if p.Device == "" {
			continue
		}
		k := devKey{p.Adapter, p.Device}
		if cat.devices[k] == nil {
			cat.devices[k] = map[string]edgegw.PointInfo{}
			cat.adapters[p.Adapter] = append(cat.adapters[p.Adapter], p.Device)
		}
		if p.Point != "" {
			cat.devices[k][p.Point] = p
		}
	}
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	for i, d := range c.Devices {
		path := fmt.Sprintf("devices[%d]", i)
		if !cat.device(path, d.Adapter, d.Device, add) {
			continue
		}
		infos := cat.devices[devKey{d.Adapter, d.Device}]
		for j, p := range d.Points {
			pp := fmt.Sprintf("%s.points[%d]", path, j)
			info, ok := infos[p.Name]
			if !ok {
				add(pp+".name", "unknown point %q of %s/%s (points: %s)", p.Name, d.Adapter, d.Device, keys(infos))
				continue
			}
			if p.Writable && !info.Writable {
				add(pp+".writable", "point %q of %s/%s cannot be written by its adapter", p.Name, d.Adapter, d.Device)
			}
			if k := p.Type.Kind(); p.Type != "" && k != info.Kind {
				add(pp+".type", "is %s but the adapter decodes point %q as %s", k, p.Name, info.Kind)
			}
		}
	}
	for i, m := range c.Methods {
		for j, a := range m.Actions {
			path := fmt.Sprintf("methods[%d].actions[%d]", i, j)
			switch a.Kind {
			case "send", "call":
				cat.device(path, a.Adapter, a.Device, add)
			case "publish":
				cat.adapter(path, a.Adapter, add)
			}
		}
	}
	for i, r := range c.C2D {
		path := fmt.Sprintf("c2d[%d]", i)
		switch r.Kind {
		case "send":
			cat.device(path, r.Adapter, r.Device, add)
		case "publish":
			cat.adapter(path, r.Adapter, add)
		}
	}
	return errors.Join(errs...)
}

type catalog struct {
	devices  map[devKey]map[string]edgegw.PointInfo
	adapters map[string][]string // adapter -> devices, in catalog order
}

// adapter checks that the adapter is known.
func (c *catalog) adapter(path, adapter string, add adder) bool {
	if _, ok := c.adapters[adapter]; !ok {
		have := make([]string, 0, len(c.adapters))
		for a := range c.adapters {
			have = append(have, a)
		}
		add(path+".adapter", "unknown adapter %q (adapters: %s)", adapter, list(have))
		return false
	}
	return true
}

// device checks that adapter/device is known, and reports whether the
// device's points can be checked (false for an adapter that lists none).
func (c *catalog) device(path, adapter, device string, add adder) bool {
	if !c.adapter(path, adapter, add) {
		return false
	}
	devs := c.adapters[adapter]
	if len(devs) == 0 {
		return false
	}
	if c.devices[devKey{adapter, device}] == nil {
		add(path+".device", "unknown device %q of adapter %q (devices: %s)", device, adapter, list(devs))
		return false
	}
	return true
}

func keys(m map[string]edgegw.PointInfo) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return list(out)
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	s = append([]string(nil), s...)
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// CheckIdentities checks that every identity a rule names is one the
// gateway owns (configures a connection for). Paths are relative to Config.
func (c *Config) CheckIdentities(owned []edgegw.DeviceID) error {
	have := make(map[edgegw.DeviceID]bool, len(owned))
	for _, id := range owned {
		have[id] = true
	}
	var errs []error
	check := func(path string, id edgegw.DeviceID) {
		if id != "" && !have[id] {
			errs = append(errs, edgegw.Errorf(path, "identity %q is not configured", id))
		}
	}
	for i, d := range c.Devices {
		check(fmt.Sprintf("devices[%d].identity", i), d.Identity)
	}
	for i, m := range c.Methods {
		check(fmt.Sprintf("methods[%d].identity", i), m.Identity)
	}
	for i, r := range c.C2D {
		check(fmt.Sprintf("c2d[%d].identity", i), r.Identity)
	}
	return errors.Join(errs...)
}
