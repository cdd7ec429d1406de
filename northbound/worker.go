package northbound

import (
	"context"
	"sync"
	"time"
)

// An identity's worker connects, drains the stream and reconnects. It is a
// goroutine only while there is work: once everything in the stream has
// been sent it arms its wake-ups and exits (parks), so an idle connected
// identity holds one goroutine, its connection's reader. kick starts it
// again; these kick:
//
//   - the queue, when a record is appended to the stream (Queue.Notify);
//   - the session's timer, when the keep-alive or the token renewal is due;
//   - the end of the session (connection lost, acknowledgement timeout);
//   - the end of the pool's Run context.
//
// At most one worker runs per identity; a kick while it runs makes it go
// round once more before it parks, so no wake-up is lost.

// Worker states (link.wstate).
const (
	stopped int32 = iota // not started, or Run is over: kicks do nothing
	parked               // no goroutine; a kick starts one
	running              // the worker runs
	kicked               // the worker runs and was kicked meanwhile
)

// start begins the identity's part of a Run; wg counts it until it stops.
func (l *link) start(ctx context.Context, wg *sync.WaitGroup) {
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	l.connCtx, l.cancelConn = context.WithCancel(l.ctx)
	l.wg, l.stopped = wg, make(chan struct{})
	l.retiring.Store(false)
	l.sv.fails, l.sv.lastRefused = 0, false // an earlier Run's failures do not delay this one
	l.handlers.open()
	wg.Add(1) // released by stop
	// stopKick is set before any worker can run: an earlier Run's Notify
	// callback may kick as soon as the state is parked. A context already
	// ended is caught by the kick below.
	l.stopKick = context.AfterFunc(l.ctx, l.kickFn) // l.ctx: it has ended when the kick runs
	l.wstate.Store(parked)
	l.kick()
}

// kick makes the worker run (again) soon. It never blocks; any goroutine
// and callback may call it.
func (l *link) kick() {
	for {
		switch st := l.wstate.Load(); st {
		case parked:
			if l.wstate.CompareAndSwap(parked, running) {
				l.wg.Add(1)
				go l.work()
				return
			}
		case running:
			if l.wstate.CompareAndSwap(running, kicked) {
				return
			}
		default: // kicked already, or stopped
			return
		}
	}
}

// work is the worker: it steps until a step leaves nothing to do, then
// parks, or stops the identity when the Run context has ended.
func (l *link) work() {
	defer l.wg.Done()
	for {
		// running, also over kicked: a kick from before this point is
		// served by this round, which checks everything again.
		l.wstate.Store(running)
		if l.ctx.Err() == nil {
			l.step()
		}
		if l.ctx.Err() != nil {
			l.stop()
			return
		}
		if l.wstate.CompareAndSwap(running, parked) {
			return
		}
	}
}

// step connects when there is no session (with back-off and the rate
// limit) and drains. It returns when the stream is drained and the
// session's wake-ups are armed, or when the Run context ends: the only way
// next fails, so the worker never parks without a session and nothing to
// wake it.
func (l *link) step() {
	for l.ctx.Err() == nil {
		if l.sess == nil {
			if !l.sv.next(l.connCtx) {
				if l.retiring.Load() {
					l.cancel(errRemoved) // work stops the identity
				}
				return
			}
			l.sess.startDesired()
		}
		s := l.sess
		reason := s.drain()
		if reason == nil {
			return
		}
		reason = s.finish(reason)
		l.lastEnd = endReason(reason)
		l.sess = nil
		if l.retiring.Load() {
			l.cancel(errRemoved)
			return
		}
		if l.ctx.Err() == nil {
			l.sv.ended(reason, s.start)
		}
	}
}

// stop closes the session and waits for the commands still running.
func (l *link) stop() {
	if s := l.sess; s != nil {
		s.finish(context.Cause(l.ctx))
		l.sess = nil
	}
	l.stopKick()
	l.handlers.close()
	l.cancel(nil)
	l.wstate.Store(stopped)
	close(l.stopped)
	l.wg.Done() // start's count
}

// arm sets the session's timer to wake the parked worker when the
// keep-alive (due in ka, zero for never) or the token renewal is due.
func (s *session) arm(now time.Time, ka time.Duration) {
	d := ka
	if !s.renewAt.IsZero() {
		if r := s.renewAt.Sub(now); d == 0 || r < d {
			d = max(r, time.Millisecond)
		}
	}
	switch {
	case d == 0:
	case s.timer == nil:
		s.timer = time.AfterFunc(d, s.l.kickFn)
	default:
		s.timer.Reset(d)
	}
}
