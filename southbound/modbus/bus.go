package modbus

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
	gmodbus "github.com/grid-x/modbus"
)

// bus is the one goroutine that owns a connection or serial line. It
// polls every device on its schedule, one request at a time, and runs
// queued writes between two requests, ahead of polls. A device that does
// not answer is backed off on its own schedule, so it costs its neighbours
// at most one timeout per back-off period.
type bus struct {
	a   *Adapter
	l   link
	pk  gmodbus.Packager
	cl  gmodbus.Client
	out chan<- edgegw.Reading
	tcp bool

	connFails   int                 // consecutive failed connects
	drops       int                 // links lost soon after opening, in a row
	connectedAt time.Time           // when the link was last opened
	timeouts    int                 // consecutive timeouts on the bus, any unit
	connLog     southbound.LogLimit // rate limit for connect-failure lines
	dropLog     southbound.LogLimit // rate limit for dropped-reading lines
	timer       *time.Timer
}

// maxBusTimeouts is how many timeouts in a row, with no answer from any
// unit, make a TCP bus reconnect (a half-open connection looks like that).
const maxBusTimeouts = 3

// stableLink is how long a link must last for its loss to be reconnected
// without back-off.
const stableLink = time.Minute

func newBus(a *Adapter, l link, out chan<- edgegw.Reading) *bus {
	pk := l.packager()
	return &bus{
		a: a, l: l, pk: pk, cl: gmodbus.NewClient2(pk, l), out: out, tcp: a.cfg.TCP != "",
		connLog: southbound.LogLimit{Every: time.Minute}, dropLog: southbound.LogLimit{Every: time.Minute},
	}
}

func (b *bus) run(ctx context.Context) {
	b.timer = time.NewTimer(time.Hour)
	defer b.timer.Stop()
	defer b.l.close()
	defer b.failQueued()
	now := time.Now()
	for _, d := range b.a.devs {
		d.next = now
	}
	for ctx.Err() == nil {
		if !b.a.connected.Load() {
			b.connect(ctx)
			continue
		}
		d := b.nextDevice()
		if wait := time.Until(d.next); wait > 0 {
			b.timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case w := <-b.a.writes:
				b.write(w)
				continue
			case <-b.timer.C:
			}
		}
		b.poll(d)
	}
}

func (b *bus) nextDevice() *device {
	next := b.a.devs[0]
	for _, d := range b.a.devs[1:] {
		if d.next.Before(next.next) {
			next = d
		}
	}
	return next
}

// connect opens the link once, or waits out a back-off after a failure.
// It never gives up: a dead device is retried until the adapter stops.
func (b *bus) connect(ctx context.Context) {
	if b.drops > 0 {
		// A link that broke soon after it was opened is not reopened at
		// once: a device that accepts and drops must not be hammered.
		b.sleep(ctx, backoff(100*time.Millisecond, b.a.cfg.BackoffMax, b.drops))
		if ctx.Err() != nil {
			return
		}
	}
	err := b.l.open(ctx)
	if err == nil {
		b.a.connected.Store(true)
		b.connectedAt = time.Now()
		b.timeouts = 0
		b.a.st.update(func(s *Stats) { s.Connects++; s.Connected = true })
		if b.connFails > 0 {
			b.a.log.Info("modbus bus connected", "bus", b.a.busName, "after_failures", b.connFails)
		}
		b.connFails = 0
		return
	}
	if ctx.Err() != nil {
		return
	}
	b.connFails++
	b.a.st.update(func(s *Stats) {
		s.ConnectErrs++
		for i := range s.Devices {
			s.Devices[i].State = "disconnected"
		}
	})
	if b.connLog.Allow(time.Now()) {
		b.a.log.Warn("modbus bus connect failed; retrying with back-off", "bus", b.a.busName,
			"failures", b.connFails, "err", err)
	}
	wait := backoff(500*time.Millisecond, b.a.cfg.BackoffMax, b.connFails)
	b.sleep(ctx, wait)
}

// sleep waits, answering queued writes with ErrUnavailable meanwhile.
func (b *bus) sleep(ctx context.Context, d time.Duration) {
	b.timer.Reset(d)
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-b.a.writes:
			w.done <- errUnavailable("bus not connected")
		case <-b.timer.C:
			return
		}
	}
}

// disconnect closes a link that broke; the run loop reopens it.
func (b *bus) disconnect(err error) {
	if !b.a.connected.Load() {
		return
	}
	b.l.close()
	b.a.connected.Store(false)
	if time.Since(b.connectedAt) < stableLink {
		b.drops++
	} else {
		b.drops = 0
	}
	b.a.st.update(func(s *Stats) {
		s.Disconnects++
		s.Connected = false
		for i := range s.Devices {
			s.Devices[i].State = "disconnected"
		}
	})
	if b.a.ctxDone() {
		return
	}
	b.a.log.Warn("modbus bus connection lost; reconnecting", "bus", b.a.busName, "err", err)
}

// failQueued answers writes still queued when the bus stops.
func (b *bus) failQueued() {
	for {
		select {
		case w := <-b.a.writes:
			w.done <- errUnavailable("adapter stopped")
		default:
			return
		}
	}
}

// serveWrites runs every queued write.
func (b *bus) serveWrites() {
	for b.a.connected.Load() {
		select {
		case w := <-b.a.writes:
			b.write(w)
		default:
			return
		}
	}
}

// afterRequest does the bookkeeping common to reads and writes: counters,
// bus-level timeouts, broken links. It reports whether the unit answered.
func (b *bus) afterRequest(d *device, err error) (answered bool) {
	if err == nil {
		b.timeouts = 0
		return true
	}
	now := time.Now()
	b.a.st.device(d.idx, func(s *DeviceStats) { s.countError(err, now) })
	switch classify(err) {
	case kindLink:
		b.disconnect(err)
		return false
	case kindTimeout:
		b.timeouts++
		if b.tcp && b.timeouts >= maxBusTimeouts {
			b.disconnect(errors.New("no answer from any unit to several requests in a row"))
		}
		return false
	}
	b.timeouts = 0
	return true // the unit is alive, even if its answer was an exception or garbled
}

// backoff is an exponential delay with jitter: base*2^(n-1), capped at
// limit, then scaled by a random factor in [0.5, 1).
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
