package mapping

import (
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// TestReconfigureKeepsStateOfUnchangedRules: after Reconfigure, a device
// whose rule did not change stays within its deadband (nothing resent);
// a device whose rule changed starts afresh; a device whose rule was
// removed has no route; a new rule routes at once; an invalid config
// changes nothing.
func TestReconfigureKeepsStateOfUnchangedRules(t *testing.T) {
	rule := func(dev string, id edgegw.DeviceID) DeviceRule {
		return DeviceRule{Adapter: "plc", Device: dev, Identity: id, Points: []PointRule{{Name: "temp", Deadband: ptr(1.0)}}}
	}
	cfg := Config{Identities: []edgegw.DeviceID{"d1", "d2"}, Devices: []DeviceRule{rule("a", "d1"), rule("b", "d1"), rule("c", "d1")}}
	cfg.SetDefaults()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	up := func(dev string, v float64) ([]edgegw.Message, error) {
		now = now.Add(time.Second)
		return m.Up(edgegw.Reading{Adapter: "plc", Device: dev, Time: now, Points: []edgegw.Point{{Name: "temp", Value: edgegw.Float(v)}}})
	}
	for _, d := range []string{"a", "b", "c"} {
		if msgs, err := up(d, 20); err != nil || len(msgs) != 1 {
			t.Fatalf("%s: first reading: %d messages, %v", d, len(msgs), err)
		}
	}

	bad := cfg
	bad.Devices = []DeviceRule{rule("a", "nobody")}
	if err := m.Reconfigure(bad); err == nil {
		t.Fatal("a rule for an identity not owned was accepted")
	}
	if msgs, _ := up("c", 20.5); len(msgs) != 0 {
		t.Fatalf("after a refused Reconfigure, c sent %d messages within its deadband", len(msgs))
	}

	next := Config{Identities: cfg.Identities, Devices: []DeviceRule{rule("a", "d1"), rule("b", "d2"), rule("new", "d2")}}
	next.SetDefaults()
	if err := m.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := up("a", 20.5); len(msgs) != 0 {
		t.Errorf("unchanged rule a: %d messages within its deadband, want none", len(msgs))
	}
	if msgs, _ := up("b", 20.5); len(msgs) != 1 || msgs[0].Identity != "d2" {
		t.Errorf("changed rule b: %v, want one message for d2", msgs)
	}
	if _, err := up("c", 30); err == nil {
		t.Error("removed rule c still routes")
	}
	if msgs, err := up("new", 1); err != nil || len(msgs) != 1 {
		t.Errorf("new rule: %d messages, %v", len(msgs), err)
	}
}
