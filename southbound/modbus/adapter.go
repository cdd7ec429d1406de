package modbus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
)

var (
	_ southbound.Adapter  = (*Adapter)(nil)
	_ southbound.Executor = (*Adapter)(nil)
)

// Adapter polls and writes the devices of one Modbus bus.
type Adapter struct {
	name    string
	busName string
	cfg     Config
	log     *slog.Logger
	devs    []*device
	byName  map[string]*device

	writes    chan *writeReq // to the bus goroutine
	connected atomic.Bool
	started   atomic.Bool
	stopping  atomic.Bool
	stopped   chan struct{} // closed when Run returns
	st        stats
}

// New builds an adapter from a config that passed SetDefaults and
// Validate. It does no I/O. A nil log discards.
func New(name string, cfg Config, log *slog.Logger) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("modbus %s: %w", name, err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Adapter{
		name: name, cfg: cfg, log: log.With("adapter", name),
		byName:  map[string]*device{},
		writes:  make(chan *writeReq, 16),
		stopped: make(chan struct{}),
	}
	if cfg.TCP != "" {
		a.busName = "tcp " + cfg.TCP
	} else {
		a.busName = "rtu " + cfg.RTU.Device
	}
	a.st.s.Bus = a.busName
	for i, dc := range cfg.Devices {
		d := &device{idx: i, name: dc.Name, unit: dc.Unit, poll: dc.Poll, points: map[string]*point{},
			logLim: southbound.LogLimit{Every: time.Minute}}
		var pts []*point
		for _, pc := range dc.Points {
			c, err := newCodec(pc)
			if err != nil {
				return nil, fmt.Errorf("modbus %s: device %s: %w", name, dc.Name, err)
			}
			p := &point{name: pc.Name, unit: pc.Unit, addr: pc.Address, codec: c,
				writable: pc.Writable, verify: pc.Verify, multiple: pc.WriteMultiple}
			pts = append(pts, p)
			d.points[pc.Name] = p
		}
		d.reqs = plan(pts, dc.MaxGap, dc.MaxRegisters, dc.MaxBits)
		a.devs = append(a.devs, d)
		a.byName[d.name] = d
		a.st.s.Devices = append(a.st.s.Devices, DeviceStats{Name: d.name, Unit: d.unit, State: "unknown"})
	}
	return a, nil
}

// Run polls the bus until ctx ends, reconnecting forever with back-off, and
// hands readings to up. It returns nil after every goroutine it started has
// exited. It is called once.
func (a *Adapter) Run(ctx context.Context, up southbound.Uplink) error {
	if !a.started.CompareAndSwap(false, true) {
		return fmt.Errorf("modbus %s: Run called twice", a.name)
	}
	defer close(a.stopped)
	stop := context.AfterFunc(ctx, func() { a.stopping.Store(true) })
	defer stop()

	var l link
	if a.cfg.TCP != "" {
		l = newTCPLink(ctx, a.cfg.TCP, a.cfg.Timeout)
	} else {
		l = newRTULink(ctx, *a.cfg.RTU, a.cfg.Timeout)
	}
	readings := make(chan edgegw.Reading, max(16, 2*len(a.devs)))
	var wg sync.WaitGroup
	wg.Go(func() { a.submit(ctx, up, readings) })
	newBus(a, l, readings).run(ctx)
	a.connected.Store(false)
	a.st.update(func(s *Stats) { s.Connected = false })
	wg.Wait()
	return nil
}

func (a *Adapter) ctxDone() bool { return a.stopping.Load() }

// submit hands readings to the uplink, one at a time, so that a slow
// uplink never holds up the bus.
func (a *Adapter) submit(ctx context.Context, up southbound.Uplink, in <-chan edgegw.Reading) {
	southbound.SubmitAll(ctx, up, in, a.log, "modbus", func(r edgegw.Reading, err error) {
		a.st.device(a.byName[r.Device].idx, func(s *DeviceStats) {
			if err != nil {
				s.SubmitErrors++
			} else {
				s.Readings++
			}
		})
	})
}

// Execute writes one point (WritePoint only). The value is converted with
// the inverse of the point's scale and offset and range-checked for its
// register type before anything is sent: a value that does not fit fails
// with an error wrapping southbound.ErrRejected and nothing is written.
// Unknown devices and points give southbound.ErrUnknownTarget; a bus that
// is not connected or a device that does not answer gives
// southbound.ErrUnavailable. Device errors wrap ErrTimeout, *Exception,
// ErrVerify and the other request errors.
func (a *Adapter) Execute(ctx context.Context, act edgegw.Action) error {
	if act.Kind != edgegw.WritePoint {
		return fmt.Errorf("modbus %s: %s: only writes are supported: %w", a.name, act.Kind, southbound.ErrRejected)
	}
	d := a.byName[act.Device]
	if d == nil {
		return fmt.Errorf("modbus %s: device %q: %w", a.name, act.Device, southbound.ErrUnknownTarget)
	}
	p := d.points[act.Point]
	if p == nil {
		return fmt.Errorf("modbus %s: device %s: point %q: %w", a.name, d.name, act.Point, southbound.ErrUnknownTarget)
	}
	fail := func(err error) error {
		return fmt.Errorf("modbus %s: write %s/%s = %s: %w", a.name, d.name, p.name, act.Value, err)
	}
	if !p.writable {
		return fail(fmt.Errorf("point is not writable: %w", southbound.ErrRejected))
	}
	w := &writeReq{ctx: ctx, dev: d, p: p, done: make(chan error, 1)}
	var err error
	if p.codec.isBits() || p.codec.typ == typeBit {
		w.bit, err = encodeBool(act.Value)
	} else {
		w.img, err = p.codec.encode(act.Value)
	}
	if err != nil {
		return fail(fmt.Errorf("%w: %w", southbound.ErrRejected, err))
	}
	if !a.connected.Load() {
		return fail(errUnavailable("bus not connected"))
	}
	if d.down.Load() {
		return fail(errUnavailable("device does not answer"))
	}
	select {
	case a.writes <- w:
	case <-a.stopped:
		return fail(errUnavailable("adapter stopped"))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	select {
	case err = <-w.done:
	case <-a.stopped:
		select {
		case err = <-w.done:
		default:
			err = errUnavailable("adapter stopped")
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

func errUnavailable(why string) error {
	return fmt.Errorf("%s: %w", why, southbound.ErrUnavailable)
}

// Stats returns a snapshot of the adapter's counters.
func (a *Adapter) Stats() Stats { return a.st.snapshot() }
