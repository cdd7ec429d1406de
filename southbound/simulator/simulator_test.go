package simulator

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type recorder struct {
	mu   sync.Mutex
	rs   []edgegw.Reading
	fail error
}

func (r *recorder) Submit(_ context.Context, rd edgegw.Reading) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.rs = append(r.rs, rd)
	return nil
}

func (r *recorder) byDevice(name string) []edgegw.Reading {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []edgegw.Reading
	for _, rd := range r.rs {
		if rd.Device == name {
			out = append(out, rd)
		}
	}
	return out
}

func testConfig() Config {
	return Config{Devices: []Device{
		{Name: "boiler", Points: []Point{
			{Name: "temp", Kind: "sine", Min: 20, Max: 80, Period: 4 * time.Second, Unit: "degC"},
			{Name: "level", Kind: "ramp", Min: 0, Max: 100, Period: 10 * time.Second},
			{Name: "noise", Kind: "random", Min: -1, Max: 1},
			{Name: "setpoint", Kind: "constant", Value: 55, Min: 0, Max: 100, Writable: true},
			{Name: "pump", Kind: "toggle", Period: 2 * time.Second, Writable: true},
			{Name: "n", Kind: "counter", Max: 2},
		}},
		{Name: "meter", Interval: 500 * time.Millisecond, Points: []Point{{Name: "kwh", Kind: "counter"}}},
	}}
}

func value(t *testing.T, r edgegw.Reading, point string) edgegw.Value {
	t.Helper()
	for _, p := range r.Points {
		if p.Name == point {
			return p.Value
		}
	}
	t.Fatalf("no point %s in %v", point, r.Points)
	return edgegw.Value{}
}

func TestReportsOnFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New("sim", testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx, rec) }()

		time.Sleep(5*time.Second + time.Millisecond)
		synctest.Wait()
		boiler, meter := rec.byDevice("boiler"), rec.byDevice("meter")
		if len(boiler) != 5 || len(meter) != 10 {
			t.Fatalf("got %d boiler and %d meter readings, want 5 and 10", len(boiler), len(meter))
		}
		// t=1s: sine at a quarter period is Max; ramp at 10%; toggle off.
		r1 := boiler[0]
		if v := value(t, r1, "temp"); v != edgegw.Float(80) {
			t.Errorf("temp at 1s = %v, want 80", v)
		}
		if r1.Points[0].Unit != "degC" || r1.Adapter != "sim" || r1.Time.IsZero() {
			t.Errorf("reading %+v", r1)
		}
		if v := value(t, boiler[2], "temp"); v != edgegw.Float(20) { // t=3s: three quarters
			t.Errorf("temp at 3s = %v, want 20", v)
		}
		if v := value(t, r1, "level"); v != edgegw.Float(10) {
			t.Errorf("level at 1s = %v, want 10", v)
		}
		if v := value(t, boiler[1], "pump"); v != edgegw.Bool(true) { // t=2s: second period
			t.Errorf("pump at 2s = %v, want true", v)
		}
		for i, want := range []int64{0, 1, 2, 0, 1} {
			if v := value(t, boiler[i], "n"); v != edgegw.Int(want) {
				t.Errorf("counter report %d = %v, want %d", i, v, want)
			}
		}
		for _, r := range boiler {
			if f, _ := value(t, r, "noise").Float(); f < -1 || f > 1 {
				t.Errorf("noise %v out of range", f)
			}
		}

		// A setpoint is reported from the next report on.
		if err := s.Execute(ctx, edgegw.Action{Kind: edgegw.WritePoint, Device: "boiler", Point: "setpoint", Value: edgegw.Int(60)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Execute(ctx, edgegw.Action{Kind: edgegw.WritePoint, Device: "boiler", Point: "pump", Value: edgegw.Bool(false)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		boiler = rec.byDevice("boiler")
		last := boiler[len(boiler)-1]
		if v := value(t, last, "setpoint"); v != edgegw.Float(60) {
			t.Errorf("setpoint after write = %v, want 60", v)
		}
		// At 6s and 7s the generated toggle is true; the setpoint wins.
		for _, r := range boiler[len(boiler)-2:] {
			if v := value(t, r, "pump"); v != edgegw.Bool(false) {
				t.Errorf("pump after write = %v, want the setpoint false", v)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Submitted != uint64(len(rec.rs)) || st.Failed != 0 {
			t.Errorf("stats %+v, %d readings", st, len(rec.rs))
		}
	})
}

func TestSubmitFailuresCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New("sim", testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx, &recorder{fail: errors.New("disk full")}) }()
		time.Sleep(2*time.Second + time.Millisecond)
		synctest.Wait()
		cancel()
		<-done
		if st := s.Stats(); st.Failed != 2+4 || st.Submitted != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestExecuteErrors(t *testing.T) {
	s, err := New("sim", testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := func(dev, point string, v edgegw.Value) edgegw.Action {
		return edgegw.Action{Kind: edgegw.WritePoint, Device: dev, Point: point, Value: v}
	}
	if err := s.Execute(ctx, w("boiler", "setpoint", edgegw.Float(1))); !errors.Is(err, southbound.ErrUnavailable) {
		t.Errorf("before Run: %v, want ErrUnavailable", err)
	}
	s.running.Store(true)
	for _, tc := range []struct {
		a    edgegw.Action
		want error
	}{
		{w("nope", "setpoint", edgegw.Float(1)), southbound.ErrUnknownTarget},
		{w("boiler", "nope", edgegw.Float(1)), southbound.ErrUnknownTarget},
		{w("boiler", "temp", edgegw.Float(1)), southbound.ErrUnknownTarget}, // not writable
		{edgegw.Action{Kind: edgegw.SendFrame, Device: "boiler"}, southbound.ErrUnknownTarget},
	} {
		if err := s.Execute(ctx, tc.a); !errors.Is(err, tc.want) {
			t.Errorf("%v: %v, want %v", tc.a, err, tc.want)
		}
	}
	for _, a := range []edgegw.Action{
		w("boiler", "setpoint", edgegw.Float(101)),
		w("boiler", "setpoint", edgegw.String("x")),
		w("boiler", "pump", edgegw.Int(1)),
	} {
		if err := s.Execute(ctx, a); err == nil || errors.Is(err, southbound.ErrUnknownTarget) {
			t.Errorf("%v: %v, want a value error", a, err)
		}
	}
}

func TestConfig(t *testing.T) {
	c := testConfig()
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Devices[0].Interval != time.Second || c.Devices[0].Points[2].Period != time.Minute {
		t.Errorf("defaults: %+v", c.Devices[0])
	}
	c.Devices[0].Points[5].Max = 1 << 53 // the largest counter max
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	pts := c.Points("sim")
	if len(pts) != 7 || pts[0] != (edgegw.PointInfo{Adapter: "sim", Device: "boiler", Point: "temp", Kind: edgegw.KindFloat}) ||
		pts[4].Kind != edgegw.KindBool || !pts[4].Writable || pts[5].Kind != edgegw.KindInt {
		t.Errorf("points %+v", pts)
	}
	for _, tc := range []struct {
		mutate func(*Config)
		path   string
	}{
		{func(c *Config) { c.Devices = nil }, "devices"},
		{func(c *Config) { c.Devices[1].Name = "boiler" }, "devices[1].name"},
		{func(c *Config) { c.Devices[0].Interval = -time.Second }, "devices[0].interval"},
		{func(c *Config) { c.Devices[0].Points[1].Kind = "square" }, "devices[0].points[1].kind"},
		{func(c *Config) { c.Devices[0].Points[1].Name = "temp" }, "devices[0].points[1].name"},
		{func(c *Config) { c.Devices[0].Points[0].Min = 100 }, "devices[0].points[0].max"},
		{func(c *Config) { c.Devices[1].Points = nil }, "devices[1].points"},
		{func(c *Config) { c.Devices[0].Points[0].Min = math.NaN() }, "devices[0].points[0].min"},
		{func(c *Config) { c.Devices[0].Points[1].Max = math.NaN() }, "devices[0].points[1].max"},
		{func(c *Config) { c.Devices[0].Points[1].Max = math.Inf(1) }, "devices[0].points[1].max"},
		{func(c *Config) { c.Devices[0].Points[3].Value = math.NaN() }, "devices[0].points[3].value"},
		{func(c *Config) {
			c.Devices[0].Points[2].Min, c.Devices[0].Points[2].Max = -math.MaxFloat64, math.MaxFloat64
		}, "devices[0].points[2].max"},
		{func(c *Config) { c.Devices[0].Points[5].Max = 1e300 }, "devices[0].points[5].max"},
		{func(c *Config) { c.Devices[0].Points[5].Max = 1<<53 + 2 }, "devices[0].points[5].max"},
		{func(c *Config) { c.Devices[0].Points[5].Max = 2.5 }, "devices[0].points[5].max"},
		{func(c *Config) { c.Devices[0].Points[5].Min, c.Devices[0].Points[5].Max = -3, -1 }, "devices[0].points[5].max"},
	} {
		c := testConfig()
		c.SetDefaults()
		tc.mutate(&c)
		err := c.Validate()
		var fe *edgegw.FieldError
		if !errors.As(err, &fe) || fe.Path != tc.path {
			t.Errorf("want error at %s, got %v", tc.path, err)
		} else if !strings.Contains(fe.Reason, "must") && !strings.Contains(fe.Reason, "duplicate") {
			t.Errorf("reason %q", fe.Reason)
		}
	}
}
