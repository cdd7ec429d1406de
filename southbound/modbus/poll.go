package modbus

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
)

// device is one unit on the bus. The fields after the blank line belong
// to the bus goroutine.
type device struct {
	idx    int
	name   string
	unit   uint8
	poll   time.Duration
	points map[string]*point
	down   atomic.Bool // the unit did not answer its last poll

	reqs       []request
	next       time.Time           // when it is polled next
	fails      int                 // consecutive polls without an answer
	lastErr    error               // of the last failed request
	logLim     southbound.LogLimit // state-change lines: one per minute
	loggedDown bool                // the last state line said "down"
}

// poll reads every request of d once and hands up the points read. It
// stops at the first timeout, so a dead unit costs one timeout.
func (b *bus) poll(d *device) {
	start := time.Now()
	due := d.next
	var pts []edgegw.Point
	answered, silent := false, false
	for i := 0; i < len(d.reqs); i++ {
		b.serveWrites()
		if !b.a.connected.Load() {
			break
		}
		r := &d.reqs[i]
		data, err := b.read(d, r)
		if err != nil {
			d.lastErr = err
		}
		if !b.afterRequest(d, err) {
			silent = true
			break
		}
		answered = true
		if err != nil {
			if code := exceptionCode(err); code == 2 && len(r.points) > 1 {
				// The device refuses a range over addresses it lacks:
				// read these points one by one from now on.
				b.a.log.Warn("modbus device refused a batched read; reading its points singly",
					"device", d.name, "table", r.table.String(), "address", r.addr, "count", r.count)
				d.reqs = append(d.reqs[:i], append(split(*r), d.reqs[i+1:]...)...)
				i--
			}
			continue
		}
		for _, p := range r.points {
			v, err := r.extract(p, data)
			if err != nil {
				now := time.Now()
				b.a.st.device(d.idx, func(s *DeviceStats) {
					s.countError(fmt.Errorf("point %s: %w", p.name, err), now)
				})
				continue
			}
			pts = append(pts, edgegw.Point{Name: p.name, Value: v, Unit: p.unit})
		}
	}
	b.schedule(d, due, answered && !silent)
	if len(pts) == 0 {
		return
	}
	b.a.st.device(d.idx, func(s *DeviceStats) { s.Polls++ })
	r := edgegw.Reading{Adapter: b.a.name, Device: d.name, Time: start, Points: pts}
	select {
	case b.out <- r:
	default:
		b.a.st.device(d.idx, func(s *DeviceStats) { s.Dropped++ })
		if b.dropLog.Allow(time.Now()) {
			b.a.log.Warn("modbus reading dropped: uplink is behind", "device", d.name)
		}
	}
}

// schedule sets d's next poll: on its cadence when it answered, after a
// growing back-off when it did not.
func (b *bus) schedule(d *device, due time.Time, ok bool) {
	now := time.Now()
	if !b.a.connected.Load() && !ok {
		d.next = now // polled again right after the reconnect
		return
	}
	if ok {
		if d.loggedDown {
			b.a.log.Info("modbus device answers again", "device", d.name)
			d.loggedDown = false
		}
		d.fails = 0
		d.down.Store(false)
		d.next = due.Add(d.poll)
		if d.next.Before(now) {
			d.next = now
		}
		b.a.st.device(d.idx, func(s *DeviceStats) {
			s.State = "up"
			s.NextAttempt = time.Time{}
			if s.LastError != "" && s.LastErrorClear.IsZero() {
				s.LastErrorClear = now
			}
		})
		return
	}
	d.fails++
	if !d.down.Load() && d.logLim.Allow(now) {
		b.a.log.Warn("modbus device does not answer; backing off", "device", d.name, "unit", d.unit, "err", d.lastErr)
		d.loggedDown = true
	}
	d.down.Store(true)
	d.next = now.Add(backoff(2*d.poll, max(b.a.cfg.BackoffMax, d.poll), d.fails))
	b.a.st.device(d.idx, func(s *DeviceStats) { s.State = "down"; s.NextAttempt = d.next })
}

// read sends one read request to d.
func (b *bus) read(d *device, r *request) ([]byte, error) {
	b.pk.SetSlave(d.unit)
	var data []byte
	var err error
	start := time.Now()
	switch r.table {
	case tableCoil:
		data, err = b.cl.ReadCoils(r.addr, r.count)
	case tableDiscrete:
		data, err = b.cl.ReadDiscreteInputs(r.addr, r.count)
	case tableInput:
		data, err = b.cl.ReadInputRegisters(r.addr, r.count)
	case tableHolding:
		data, err = b.cl.ReadHoldingRegisters(r.addr, r.count)
	}
	took := time.Since(start)
	b.a.st.device(d.idx, func(s *DeviceStats) { s.Requests++; s.Latency.observe(took) })
	if err != nil {
		return nil, fmt.Errorf("read %s %d+%d: %w", r.table, r.addr, r.count, fromClient(err))
	}
	return data, nil
}
