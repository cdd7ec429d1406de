package mapping

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// BenchmarkUp maps a 20-point reading (half the points behind a deadband)
// to telemetry.
func BenchmarkUp(b *testing.B) {
	cfg := Config{Devices: []DeviceRule{{Adapter: "plc", Device: "plc-3", Identity: "plc-3",
		Properties: map[string]string{"source": "plc-3"}, Body: Body{Timestamp: "ts"}}}}
	var pts []edgegw.Point
	for i := range 20 {
		name := fmt.Sprintf("p%02d", i)
		pr := PointRule{Name: name}
		if i%2 == 0 {
			db := 0.5
			pr.Deadband = &db
		}
		cfg.Devices[0].Points = append(cfg.Devices[0].Points, pr)
		pts = append(pts, edgegw.Point{Name: name, Value: edgegw.Float(float64(i)), Unit: "degC"})
	}
	cfg.SetDefaults()
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	r := edgegw.Reading{Adapter: "plc", Device: "plc-3", Time: time.Unix(1e9, 0), Points: pts}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Time = r.Time.Add(time.Second)
		pts[0].Value = edgegw.Float(float64(i % 3))
		if _, err := m.Up(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownMethod validates a four-action method call and completes it.
func BenchmarkDownMethod(b *testing.B) {
	m, err := New(fuzzConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	cmd := edgegw.Command{Identity: "plc-3", Kind: edgegw.Method, Name: "configure",
		Payload: []byte(`{"mode":2,"speed":250.5,"label":"night","count":7}`)}
	b.ReportAllocs()
	for b.Loop() {
		p := m.Down(cmd)
		if len(p.Actions) != 5 {
			b.Fatalf("%d actions, rejected %v", len(p.Actions), p.Rejected)
		}
		m.Complete(p, make([]error, len(p.Actions)))
	}
}

// BenchmarkDownDesired plans a three-property desired patch and builds its
// acknowledgement.
func BenchmarkDownDesired(b *testing.B) {
	m, err := New(fuzzConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	cmd := edgegw.Command{Identity: "plc-3", Kind: edgegw.Desired, Version: 9,
		Payload: []byte(`{"speed":800,"mode":2,"setpoint":21.5,"$version":9}`)}
	b.ReportAllocs()
	for b.Loop() {
		p := m.Down(cmd)
		if len(p.Actions) != 3 {
			b.Fatalf("%d actions, rejected %v", len(p.Actions), p.Rejected)
		}
		m.Complete(p, make([]error, len(p.Actions)))
	}
}
