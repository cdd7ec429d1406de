package simulator

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/edgegw/edgegw"
)

// Config lists the simulated devices.
type Config struct {
	Devices []Device `yaml:"devices"`
}

// Device is one simulated device that reports all its points every Interval.
type Device struct {
	Name     string        `yaml:"name"`
	Interval time.Duration `yaml:"interval"` // default 1s
	Points   []Point       `yaml:"points"`
}

// Point is one simulated value. Kinds:
//
//	sine      float, Min..Max, one full wave per Period
//	ramp      float, rises from Min to Max over Period, then starts again
//	random    float, uniform in Min..Max (reproducible: seeded by name)
//	constant  float, Value
//	toggle    bool, flips every Period
//	counter   int, 0, 1, 2, ... one step per report; wraps to 0 after Max when Max > 0
//
// A Writable point holds the last value written to it (a setpoint) and
// reports that instead of its generated value from then on.
type Point struct {
	Name     string        `yaml:"name"`
	Kind     string        `yaml:"kind"`
	Min      float64       `yaml:"min"`
	Max      float64       `yaml:"max"`
	Value    float64       `yaml:"value"`  // constant's value
	Period   time.Duration `yaml:"period"` // default 60s (sine, ramp, toggle)
	Unit     string        `yaml:"unit"`
	Writable bool          `yaml:"writable"`
}

// Defaults.
const (
	DefaultInterval = time.Second
	DefaultPeriod   = time.Minute
)

// maxCounter is the largest counter max: 2^53, the largest float64 below
// which every integer is exact.
const maxCounter = 1 << 53

var kinds = map[string]edgegw.Kind{
	"sine": edgegw.KindFloat, "ramp": edgegw.KindFloat, "random": edgegw.KindFloat,
	"constant": edgegw.KindFloat, "toggle": edgegw.KindBool, "counter": edgegw.KindInt,
}

// SetDefaults fills zero fields with defaults.
func (c *Config) SetDefaults() {
	for i := range c.Devices {
		d := &c.Devices[i]
		edgegw.SetDefault(&d.Interval, DefaultInterval)
		for j := range d.Points {
			if d.Points[j].Period == 0 {
				d.Points[j].Period = DefaultPeriod
			}
		}
	}
}

// Validate checks c after SetDefaults.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, edgegw.Errorf(path, format, args...)) }
	if len(c.Devices) == 0 {
		add("devices", "must list at least one device")
	}
	names := edgegw.NewNames("devices")
	for i, d := range c.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		if err := names.Check(p+".name", i, d.Name); err != nil {
			errs = append(errs, err)
		}
		if d.Interval < time.Millisecond {
			add(p+".interval", "must be >= 1ms (got %s)", d.Interval)
		}
		if len(d.Points) == 0 {
			add(p+".points", "must list at least one point")
		}
		pnames := edgegw.NewNames("points")
		for j, pt := range d.Points {
			pp := fmt.Sprintf("%s.points[%d]", p, j)
			if err := pnames.Check(pp+".name", j, pt.Name); err != nil {
				errs = append(errs, err)
			}
			if _, ok := kinds[pt.Kind]; !ok {
				add(pp+".kind", "must be sine, ramp, random, constant, toggle or counter (got %q)", pt.Kind)
			}
			for _, f := range []struct {
				name string
				v    float64
			}{{"min", pt.Min}, {"max", pt.Max}, {"value", pt.Value}} {
				if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
					add(pp+"."+f.name, "must be a finite number (got %g)", f.v)
				}
			}
			switch {
			case pt.Min > pt.Max:
				add(pp+".max", "must be >= min (got min %g, max %g)", pt.Min, pt.Max)
			case math.IsInf(pt.Max-pt.Min, 0):
				add(pp+".max", "max - min must be a finite number (got min %g, max %g)", pt.Min, pt.Max)
			}
			if pt.Kind == "counter" && !(pt.Max >= 0 && pt.Max <= maxCounter && pt.Max == math.Trunc(pt.Max)) {
				add(pp+".max", "must be an integer in 0..2^53 for a counter (got %g)", pt.Max)
			}
			if pt.Period <= 0 {
				add(pp+".period", "must be > 0 (got %s)", pt.Period)
			}
		}
	}
	return errors.Join(errs...)
}

// Points describes every configured point.
func (c *Config) Points(adapter string) []edgegw.PointInfo {
	var out []edgegw.PointInfo
	for _, d := range c.Devices {
		for _, p := range d.Points {
			out = append(out, edgegw.PointInfo{Adapter: adapter, Device: d.Name, Point: p.Name, Kind: kinds[p.Kind], Writable: p.Writable})
		}
	}
	return out
}
