package mapping

import (
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// TestForgetResendsAfterAFailedStore: a property's value that could not be
// stored must be sent again by the next reading, even unchanged.
func TestForgetResendsAfterAFailedStore(t *testing.T) {
	cfg := Config{
		Identities: []edgegw.DeviceID{"d1"},
		Devices: []DeviceRule{{Adapter: "plc", Device: "p", Identity: "d1",
			Points: []PointRule{{Name: "mode", Property: true}, {Name: "temp", Deadband: ptr(0.5)}}}},
	}
	cfg.SetDefaults()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := func(at time.Duration) edgegw.Reading {
		return edgegw.Reading{Adapter: "plc", Device: "p", Time: now.Add(at),
			Points: []edgegw.Point{{Name: "mode", Value: edgegw.Int(3)}, {Name: "temp", Value: edgegw.Float(20)}}}
	}
	if msgs, err := m.Up(r(0)); err != nil || len(msgs) != 2 {
		t.Fatalf("first reading: %d messages, %v; want telemetry and reported", len(msgs), err)
	}
	if msgs, _ := m.Up(r(time.Second)); len(msgs) != 0 {
		t.Fatalf("unchanged reading: %d messages, want none", len(msgs))
	}
	m.Forget(r(time.Second)) // the store of the first messages failed
	if msgs, _ := m.Up(r(2 * time.Second)); len(msgs) != 2 {
		t.Fatalf("after Forget: %d messages, want telemetry and reported again", len(msgs))
	}
}

func ptr[T any](v T) *T { return &v }
