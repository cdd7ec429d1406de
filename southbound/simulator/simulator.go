// Package simulator is a southbound adapter that simulates devices: each
// reports its points (sine waves, ramps, random values, constants, toggles,
// counters) at a fixed interval, and writable points accept setpoints that
// it then reports. It serves the quickstart, commissioning (try mapping
// rules before the PLC is wired) and tests.
//
// Values are a function of the time since Run started, so a run under a
// fake clock (testing/synctest) is reproducible.
package simulator

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
)

// Simulator is one simulator adapter instance.
type Simulator struct {
	name    string
	cfg     Config
	log     *slog.Logger
	devices map[string]*device
	started atomic.Bool
	running atomic.Bool

	submitted, failed atomic.Uint64
}

var (
	_ southbound.Adapter  = (*Simulator)(nil)
	_ southbound.Executor = (*Simulator)(nil)
)

type device struct {
	cfg    Device
	mu     sync.Mutex
	set    map[string]edgegw.Value // written setpoints
	count  uint64                  // reports so far (counter points)
	random map[string]*rand.Rand
}

// New returns a simulator for cfg (SetDefaults and Validate are applied).
// A nil log discards.
func New(name string, cfg Config, log *slog.Logger) (*Simulator, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("simulator %s: %w", name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Simulator{name: name, cfg: cfg, log: log.With("adapter", name), devices: map[string]*device{}}
	for _, d := range cfg.Devices {
		dev := &device{cfg: d, set: map[string]edgegw.Value{}, random: map[string]*rand.Rand{}}
		for _, p := range d.Points {
			if p.Kind == "random" {
				h := fnv.New64a()
				h.Write([]byte(d.Name + "\x00" + p.Name))
				dev.random[p.Name] = rand.New(rand.NewPCG(h.Sum64(), 0x5eed))
			}
		}
		s.devices[d.Name] = dev
	}
	return s, nil
}

// Stats are the simulator's counters.
type Stats struct {
	Submitted uint64 // readings the uplink accepted
	Failed    uint64 // readings the uplink refused (dropped)
}

// Stats returns a snapshot of the counters.
func (s *Simulator) Stats() Stats {
	return Stats{Submitted: s.submitted.Load(), Failed: s.failed.Load()}
}

// Run reports every device's points every interval until ctx ends.
func (s *Simulator) Run(ctx context.Context, up southbound.Uplink) error {
	if !s.started.CompareAndSwap(false, true) {
		return fmt.Errorf("simulator %s: Run called twice", s.name)
	}
	start := time.Now()
	s.running.Store(true)
	defer s.running.Store(false)
	var wg sync.WaitGroup
	for _, d := range s.devices {
		wg.Go(func() { s.runDevice(ctx, up, d, start) })
	}
	wg.Wait()
	return nil
}

func (s *Simulator) runDevice(ctx context.Context, up southbound.Uplink, d *device, start time.Time) {
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r := edgegw.Reading{Adapter: s.name, Device: d.cfg.Name, Time: now, Points: d.sample(now.Sub(start))}
			if err := up.Submit(ctx, r); err != nil {
				if ctx.Err() != nil {
					return
				}
				if s.failed.Add(1)%100 == 1 {
					s.log.Warn("simulator: reading dropped", "device", d.cfg.Name, "err", err, "dropped", s.failed.Load())
				}
				continue
			}
			s.submitted.Add(1)
		}
	}
}

// sample returns the device's point values at elapsed time since start.
func (d *device) sample(elapsed time.Duration) []edgegw.Point {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.count++
	out := make([]edgegw.Point, 0, len(d.cfg.Points))
	for _, p := range d.cfg.Points {
		v, ok := d.set[p.Name]
		if !ok {
			v = d.generate(p, elapsed)
		}
		out = append(out, edgegw.Point{Name: p.Name, Value: v, Unit: p.Unit})
	}
	return out
}

func (d *device) generate(p Point, elapsed time.Duration) edgegw.Value {
	phase := float64(elapsed%p.Period) / float64(p.Period) // 0..1
	span := p.Max - p.Min
	switch p.Kind {
	case "sine":
		return edgegw.Float(round(p.Min + span*(1+math.Sin(2*math.Pi*phase))/2))
	case "ramp":
		return edgegw.Float(round(p.Min + span*phase))
	case "random":
		return edgegw.Float(round(p.Min + span*d.random[p.Name].Float64()))
	case "toggle":
		return edgegw.Bool((elapsed/p.Period)%2 == 1)
	case "counter":
		n := d.count - 1
		if p.Max > 0 {
			n %= uint64(p.Max) + 1
		}
		return edgegw.Int(int64(n))
	}
	return edgegw.Float(p.Value) // constant
}

// round keeps six decimals, so reports read well.
func round(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// Execute writes a setpoint to a writable point. Numbers are accepted for
// float points (within min..max when max > min), bools for toggles and
// integers for counters.
func (s *Simulator) Execute(ctx context.Context, a edgegw.Action) error {
	if a.Kind != edgegw.WritePoint {
		return fmt.Errorf("simulator %s: %s: %w", s.name, a.Kind, southbound.ErrUnknownTarget)
	}
	d, ok := s.devices[a.Device]
	if !ok {
		return fmt.Errorf("simulator %s: device %q: %w", s.name, a.Device, southbound.ErrUnknownTarget)
	}
	var p *Point
	for i := range d.cfg.Points {
		if d.cfg.Points[i].Name == a.Point {
			p = &d.cfg.Points[i]
		}
	}
	if p == nil || !p.Writable {
		return fmt.Errorf("simulator %s: %s/%s: no such writable point: %w", s.name, a.Device, a.Point, southbound.ErrUnknownTarget)
	}
	if !s.running.Load() {
		return fmt.Errorf("simulator %s: not running: %w", s.name, southbound.ErrUnavailable)
	}
	v, err := convert(*p, a.Value)
	if err != nil {
		return fmt.Errorf("simulator %s: %s/%s: %w", s.name, a.Device, a.Point, err)
	}
	d.mu.Lock()
	d.set[p.Name] = v
	d.mu.Unlock()
	return nil
}

func convert(p Point, v edgegw.Value) (edgegw.Value, error) {
	switch kinds[p.Kind] {
	case edgegw.KindBool:
		if b, ok := v.Bool(); ok {
			return edgegw.Bool(b), nil
		}
	case edgegw.KindInt:
		if i, ok := v.Int(); ok {
			return edgegw.Int(i), nil
		}
	default:
		if f, ok := v.Float(); ok {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return v, fmt.Errorf("value %g is not a number", f)
			}
			if p.Max > p.Min && (f < p.Min || f > p.Max) {
				return v, fmt.Errorf("value %g outside %g..%g", f, p.Min, p.Max)
			}
			return edgegw.Float(f), nil
		}
	}
	return v, fmt.Errorf("value %s does not fit a %s point", v, p.Kind)
}
