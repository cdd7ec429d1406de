package mapping

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/edgegw/edgegw"
)

// Check checks the rules against the points the adapters provide: every
// device a rule names must exist, every listed point must exist, a
// writable point must be writable by its adapter and its type must be the
// kind the adapter decodes. Send actions must name a known device. An
// adapter that lists no points at all (such as a LAN broker) is not checked
// unless a rule lists points for it; the gateway checks that such adapters
// exist. Paths are relative to Config. Call it after Validate.
func (c *Config) Check(points []edgegw.PointInfo) error {
	cat := catalog{devices: map[devKey]map[string]edgegw.PointInfo{}, adapters: map[string][]string{}}
	for _, p := range points {
		k := devKey{p.Adapter, p.Device}
		if cat.devices[k] == nil {
			cat.devices[k] = map[string]edgegw.PointInfo{}
			cat.adapters[p.Adapter] = append(cat.adapters[p.Adapter], p.Device)
		}
		cat.devices[k][p.Point] = p
	}
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	for i, d := range c.Devices {
		path := fmt.Sprintf("devices[%d]", i)
		if !cat.device(path, d.Adapter, d.Device, len(d.Points) > 0, add) {
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
			if a.Kind == "send" {
				cat.device(fmt.Sprintf("methods[%d].actions[%d]", i, j), a.Adapter, a.Device, true, add)
			}
		}
	}
	for i, r := range c.C2D {
		if r.Kind == "send" {
			cat.device(fmt.Sprintf("c2d[%d]", i), r.Adapter, r.Device, true, add)
		}
	}
	return errors.Join(errs...)
}

type catalog struct {
	devices  map[devKey]map[string]edgegw.PointInfo
	adapters map[string][]string // adapter -> devices, in catalog order
}

// device checks that adapter/device is in the catalog. An adapter absent
// from the catalog is an error only when required; it reports whether the
// device's points can be checked.
func (c *catalog) device(path, adapter, device string, required bool, add adder) bool {
	devs, ok := c.adapters[adapter]
	if !ok {
		if required {
			have := make([]string, 0, len(c.adapters))
			for a := range c.adapters {
				have = append(have, a)
			}
			add(path+".adapter", "adapter %q provides no devices (adapters with devices: %s)", adapter, list(have))
		}
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
