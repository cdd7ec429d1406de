package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/mapping"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// configDiff is what a reload changes, worked out from the config the
// gateway runs on and the one read from the file.
type configDiff struct {
	// effective is the new config with the settings that need a restart
	// kept as they were: what the gateway runs on after the reload.
	effective *Config
	restart   []string // the settings that need a restart, by config path

	identities changes // by id
	adapters   changes // by name; a changed LAN broker is in restart instead
	rules      changes // device rules adapter/device, methods identity.name, c2d identity
	users      []userChange
	userLog    []string            // +adapter/user ~... -..., as applied
	lanDevices map[string][]string // devices of the users of added and removed LAN brokers
}

// changes lists what was added, changed and removed, in config order.
type changes struct{ added, changed, removed []string }

func (c changes) none() bool { return len(c.added)+len(c.changed)+len(c.removed) == 0 }

// String lists the changes, at most 20 of them and how many more (a fleet
// that grows by thousands is one line, not thousands of names).
func (c changes) String() string {
	all := prefixed("", c.added, c.changed, c.removed)
	if len(all) > 20 {
		return strings.Join(all[:20], " ") + fmt.Sprintf(" and %d more", len(all)-20)
	}
	return strings.Join(all, " ")
}

// members expands the fleets among ids: one config per identity.
func members(ids []identity.Config) []identity.Config {
	var out []identity.Config
	for i := range ids {
		out = append(out, ids[i].Members()...)
	}
	return out
}

// prefixed writes each name as +name, ~name or -name.
func prefixed(prefix string, added, changed, removed []string) []string {
	var out []string
	for _, l := range []struct {
		mark  string
		names []string
	}{{"+", added}, {"~", changed}, {"-", removed}} {
		for _, n := range l.names {
			out = append(out, l.mark+prefix+n)
		}
	}
	return out
}

// userChange is a LAN broker that runs on, whose users change.
type userChange struct {
	adapter string
	index   int // in effective.Southbound
	users   []lanmqtt.User
	old     []lanmqtt.User
	devices []string // the identities of the users added, changed or removed
}

// summary is the reload's log line: what changed, + added, ~ changed,
// - removed.
func (d *configDiff) summary() []any {
	var args []any
	add := func(key, val string) {
		if val != "" {
			args = append(args, key, val)
		}
	}
	add("identities", d.identities.String())
	add("users", strings.Join(d.userLog, " "))
	add("rules", d.rules.String())
	add("adapters", d.adapters.String())
	if len(args) == 0 {
		args = append(args, "changes", "none")
	}
	return args
}

// diffConfigs compares cur (running) and next (read from the file).
func diffConfigs(cur, next *Config) *configDiff {
	eff := *next
	eff.Southbound = slices.Clone(next.Southbound)
	d := &configDiff{effective: &eff, lanDevices: map[string][]string{}}
	keep := func(path string, same bool, restore func()) {
		if !same {
			d.restart = append(d.restart, path)
			restore()
		}
	}
	keep("log", sameValue(cur.Log, next.Log), func() { eff.Log = cur.Log })
	keep("state_dir", cur.StateDir == next.StateDir, func() { eff.StateDir = cur.StateDir })
	keep("buffer", sameValue(cur.Buffer, next.Buffer), func() { eff.Buffer = cur.Buffer })
	keep("hub", sameValue(cur.Hub, next.Hub), func() { eff.Hub = cur.Hub })
	keep("hubsim", sameValue(cur.Hubsim, next.Hubsim), func() { eff.Hubsim = cur.Hubsim })
	keep("status", sameValue(cur.Status, next.Status), func() { eff.Status = cur.Status })
	keep("memory", sameValue(cur.Memory, next.Memory), func() { eff.Memory = cur.Memory })

	d.identities = diffBy(members(cur.Identities), members(next.Identities), func(c identity.Config) string { return c.ID })

	old := map[string]SouthboundConfig{}
	for _, s := range cur.Southbound {
		old[s.Name] = s
	}
	for i, s := range next.Southbound {
		o, ok := old[s.Name]
		delete(old, s.Name)
		switch {
		case !ok:
			d.adapters.added = append(d.adapters.added, s.Name)
			d.lanDevices[s.Name] = lanDevices(s)
		case o.LANMQTT != nil && s.LANMQTT != nil:
			c := *s.LANMQTT
			c.Users = o.LANMQTT.Users
			if !sameValue(*o.LANMQTT, c) {
				d.restart = append(d.restart, "southbound."+s.Name+".lanmqtt")
				c = *o.LANMQTT
				c.Users = s.LANMQTT.Users
				eff.Southbound[i].LANMQTT = &c
			}
			if !sameValue(o.LANMQTT.Users, s.LANMQTT.Users) {
				d.users = append(d.users, userChange{adapter: s.Name, index: i, users: s.LANMQTT.Users,
					old: o.LANMQTT.Users, devices: changedDevices(o.LANMQTT.Users, s.LANMQTT.Users)})
			}
		case !sameValue(o, s):
			d.adapters.changed = append(d.adapters.changed, s.Name)
		}
	}
	for _, s := range cur.Southbound {
		if _, gone := old[s.Name]; gone {
			d.adapters.removed = append(d.adapters.removed, s.Name)
			d.lanDevices[s.Name] = lanDevices(s)
		}
	}

	m, n := &cur.Mapping, &next.Mapping
	if m.UnknownMethodStatus != n.UnknownMethodStatus {
		d.rules.changed = append(d.rules.changed, "unknown_method_status")
	}
	add := func(c changes) {
		d.rules.added = append(d.rules.added, c.added...)
		d.rules.changed = append(d.rules.changed, c.changed...)
		d.rules.removed = append(d.rules.removed, c.removed...)
	}
	add(diffBy(m.Devices, n.Devices, func(r mapping.DeviceRule) string { return r.Adapter + "/" + r.Device }))
	add(diffBy(m.Methods, n.Methods, func(r mapping.MethodRule) string { return string(r.Identity) + "." + r.Name }))
	add(diffBy(m.C2D, n.C2D, func(r mapping.C2DRule) string { return "c2d." + string(r.Identity) }))
	return d
}

// diffBy compares two lists of named entries.
func diffBy[T any](cur, next []T, key func(T) string) changes {
	var c changes
	old := map[string]T{}
	for _, v := range cur {
		old[key(v)] = v
	}
	for _, v := range next {
		k := key(v)
		o, ok := old[k]
		delete(old, k)
		switch {
		case !ok:
			c.added = append(c.added, k)
		case !sameValue(o, v):
			c.changed = append(c.changed, k)
		}
	}
	for _, v := range cur {
		if _, gone := old[key(v)]; gone {
			c.removed = append(c.removed, key(v))
		}
	}
	return c
}

// lanDevices lists the identities of a LAN broker's users.
func lanDevices(s SouthboundConfig) []string {
	if s.LANMQTT == nil {
		return nil
	}
	var out []string
	for _, u := range s.LANMQTT.Users {
		if u.Device != "" {
			out = append(out, u.Device)
		}
	}
	return out
}

// changedDevices lists the identities of the users that differ between
// cur and next.
func changedDevices(cur, next []lanmqtt.User) []string {
	c := diffBy(cur, next, func(u lanmqtt.User) string { return u.Username })
	dev := map[string]string{}
	for _, u := range slices.Concat(cur, next) {
		if u.Device != "" {
			dev[u.Username] = u.Device
		}
	}
	var out []string
	for _, n := range slices.Concat(c.added, c.changed, c.removed) {
		if d, ok := dev[n]; ok {
			out = append(out, d)
		}
	}
	// A changed user may have moved from one device to another.
	for _, u := range cur {
		for _, v := range next {
			if u.Username == v.Username && u.Device != v.Device && u.Device != "" {
				out = append(out, u.Device)
			}
		}
	}
	return out
}

// restartFailed makes the adapter name, which a reload started and which
// failed, start again with all of next's settings: with no connection or
// session to keep, the settings a LAN broker keeps until a restart apply
// too (a listen address that was taken can be changed).
func (d *configDiff) restartFailed(name string, next *Config) {
	i := slices.IndexFunc(next.Southbound, func(s SouthboundConfig) bool { return s.Name == name })
	if i < 0 || slices.Contains(d.adapters.added, name) || slices.Contains(d.adapters.changed, name) {
		return // removed, or started afresh anyway
	}
	d.effective.Southbound[i] = next.Southbound[i]
	d.restart = slices.DeleteFunc(d.restart, func(p string) bool { return p == "southbound."+name+".lanmqtt" })
	d.users = slices.DeleteFunc(d.users, func(u userChange) bool { return u.adapter == name })
	d.adapters.changed = append(d.adapters.changed, name)
}
