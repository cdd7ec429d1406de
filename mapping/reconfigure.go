package mapping

import (
	"reflect"

	"github.com/edgegw/edgegw"
)

// Reconfigure puts the rules of cfg (which SetDefaults has seen) in force
// while the mapper is in use, as a reloaded configuration asks. On an
// invalid cfg it returns Validate's error and changes nothing. What the
// mapper remembers is kept for the device rules that did not change (the
// last value sent per point, for deadbands and max_silence) and for the
// identities whose writable points did not change (the desired versions
// already applied); the rest is forgotten, so a changed rule starts afresh.
func (m *Mapper) Reconfigure(cfg Config) error {
	t, err := compile(&cfg)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.t.Load()
	for k := range m.cov {
		dk := devKey{k.adapter, k.device}
		if !sameRule(old.devices[dk], t.devices[dk]) {
			delete(m.cov, k)
		}
	}
	for k := range m.applied {
		if !reflect.DeepEqual(writableFields(old, k.identity), writableFields(t, k.identity)) {
			delete(m.applied, k)
		}
	}
	m.t.Store(t)
	return nil
}

func sameRule(a, b *devRule) bool {
	return a != nil && b != nil && reflect.DeepEqual(a.cfg, b.cfg)
}

// writableFields is what decides how identity's desired properties are
// applied: its writable points' rules.
func writableFields(t *tables, identity edgegw.DeviceID) map[string]PointRule {
	out := map[string]PointRule{}
	for _, r := range t.devices {
		if r.identity != identity {
			continue
		}
		for _, p := range r.cfg.Points {
			if p.Writable {
				out[p.Field+"\x00"+r.cfg.Adapter+"\x00"+r.cfg.Device] = p
			}
		}
	}
	return out
}
