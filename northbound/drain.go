package northbound

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/northbound/mqtt3"
)

// flight is one publish awaiting its acknowledgement: a telemetry message,
// or a run of reported patches merged into one.
type flight struct {
	last   uint64            // highest stream sequence it covers
	tok    *mqtt3.Token      // PUBACK (QoS 1)
	err    error             // the publish could not be written
	twin   chan twinResponse // twin response (IoT Hub reported patch)
	rid    string
	sent   bool  // published: counted in Status.InFlight
	poison error // not sendable: ack it and count it dropped
}

// item is one unit to send, made from one or more records.
type item struct {
	last  uint64
	msg   edgegw.Message // telemetry, or reported with Body merged
	count int            // records merged into it
	bad   error
}

// errAckTimeout ends a session whose hub stopped acknowledging.
var errAckTimeout = errors.New("no acknowledgement from the hub in time")

// errKeepAlive interrupts a wait for new records when the connection's
// keep-alive is due.
var errKeepAlive = errors.New("keep-alive due")

// drain publishes the identity's stream from the session's cursor, in
// order, holding at most InFlight unacknowledged. It returns nil once
// everything has been sent and the wake-ups are armed (the queue's Notify
// for new records, the timer for keep-alive and renewal): the worker may
// park. Otherwise it returns why the session is over: errRenew when the
// token is due, errRedeliver when a C2D message is to be redelivered, or
// the session's end cause.
func (s *session) drain() error {
	l := s.l
	var items []item // reused while the worker runs
	for {
		if s.ctx.Err() != nil {
			return context.Cause(s.ctx)
		}
		now := time.Now()
		if !s.renewAt.IsZero() && !now.Before(s.renewAt) {
			return errRenew
		}
		if s.redeliverDue.Load() {
			return errRedeliver
		}
		if l.retiring.Load() {
			return errRemoved
		}
		ka := s.conn.KeepAlive(now) // sends PINGREQ when due
		if l.p.q.Notify(l.stream, s.cursor, l.kickFn) {
			s.arm(now, ka)
			return nil
		}
		recs, err := s.read(s.cursor)
		if err != nil {
			if s.ctx.Err() != nil {
				return context.Cause(s.ctx)
			}
			switch {
			case errors.Is(err, errRenew):
				return errRenew
			case errors.Is(err, errKeepAlive):
				continue
			}
			l.p.warn.warn("reading the buffer failed; retrying", "identity", l.stream, "err", err)
			t := time.NewTimer(time.Second)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return context.Cause(s.ctx)
			case <-t.C:
			}
			continue
		}
		items = batch(items[:0], recs)
		for rest := items; len(rest) > 0; {
			n, err := s.reserve(len(rest))
			if err != nil {
				return err
			}
			s.send(rest[:n])
			s.cursor = rest[n-1].last
			rest = rest[n:]
		}
	}
}

// read waits for records after cursor, or until the session ends. Notify
// said some exist, so it returns at once, unless all of them had expired
// (the buffer drops them); then the wait is cut short with errRenew when
// the token is due and with errKeepAlive when the keep-alive is (drain
// then goes round again, which sends the PINGREQ).
func (s *session) read(cursor uint64) ([]buffer.Record, error) {
	ctx, now := s.ctx, time.Now()
	wake := s.renewAt
	if d := s.conn.KeepAlive(now); d > 0 && (wake.IsZero() || now.Add(d).Before(wake)) {
		wake = now.Add(d)
	}
	if !wake.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, wake, errKeepAlive)
		defer cancel()
	}
	recs, err := s.l.p.q.Read(ctx, s.l.stream, cursor, s.l.p.cfg.InFlight)
	if err != nil && s.ctx.Err() == nil && context.Cause(ctx) == errKeepAlive {
		if !s.renewAt.IsZero() && !time.Now().Before(s.renewAt) {
			return nil, errRenew
		}
		return nil, errKeepAlive
	}
	return recs, err
}

// batch decodes records into items appended to items, merging runs of
// consecutive reported patches.
func batch(items []item, recs []buffer.Record) []item {
	for _, r := range recs {
		items = append(items, item{last: r.Seq, count: 1})
		it := &items[len(items)-1]
		if err := it.msg.UnmarshalBinary(r.Data); err != nil {
			it.bad = err
			continue
		}
		if err := CheckSize(&it.msg); err != nil {
			it.bad = err
			continue
		}
		if it.msg.Kind == edgegw.Reported && len(items) > 1 {
			prev := &items[len(items)-2]
			if prev.bad == nil && prev.msg.Kind == edgegw.Reported {
				if merged, ok := mergeReported(prev.msg.Body, it.msg.Body); ok && len(merged) <= MaxReportedBytes {
					prev.msg.Body, prev.last = merged, r.Seq
					prev.count++
					items = items[:len(items)-1]
				}
			}
		}
	}
	return items
}

// ackLoop waits for each flight in order and acks the buffer up to the
// last one acknowledged, batching acks (and the Status they move) while
// more are already done. It exits when nothing is in flight (send starts
// another). The first failure ends the session; nothing after it is acked.
func (s *session) ackLoop() {
	defer s.ackers.Done()
	l := s.l
	var done uint64            // acknowledged by the hub, not yet acked to the buffer
	var n, landed, dropped int // flights done since the last flush; of them sent, and dropped
	var timer *time.Timer      // the acknowledgement timeout, reused
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	flush := func() {
		if done > l.acked.Load() {
			if err := l.p.q.Ack(l.stream, done); err != nil {
				l.p.warn.warn("acking the buffer failed", "identity", l.stream, "err", err)
			}
			l.acked.Store(done)
		}
		if n == 0 {
			return
		}
		now := time.Now()
		l.st.update(func(st *Status) {
			st.InFlight -= landed
			st.Acknowledged += uint64(landed)
			st.Dropped += uint64(dropped)
			st.LastPUBACK, st.Acked = now, done
		})
		n, landed, dropped = 0, 0, 0
	}
	for {
		var f *flight
		select {
		case f = <-s.queue:
		default:
			flush()
			s.ackMu.Lock()
			idle := len(s.queue) == 0
			s.acking = !idle
			s.ackMu.Unlock()
			if idle {
				return
			}
			continue
		}
		if !f.ready() {
			flush() // about to wait: ack what has landed so far
		}
		err := s.await(f, &timer)
		<-s.slots
		if err != nil {
			flush()
			// acking stays true: the session is over, drain sends nothing
			// more, and what it sent is not acked (finish resets InFlight).
			s.end(err)
			return
		}
		done = f.last
		n++
		if f.sent {
			landed++
		}
		if f.poison != nil {
			dropped++
		}
	}
}

func (f *flight) ready() bool {
	if f.poison != nil || f.err != nil {
		return true
	}
	if f.twin != nil {
		return len(f.twin) > 0
	}
	select {
	case <-f.tok.Done():
		return true
	default:
		return false
	}
}

// await waits for f's acknowledgement, at most AckTimeout on *timer
// (made on first use). A nil error means ack it.
func (s *session) await(f *flight, timer **time.Timer) error {
	l := s.l
	if f.poison != nil {
		l.p.warn.warn("dropping a message the hub cannot take", "identity", l.stream, "seq", f.last, "err", f.poison)
		return nil
	}
	if f.err != nil {
		return fmt.Errorf("publish seq %d: %w", f.last, f.err)
	}
	if f.twin == nil && f.ready() { // landed already: don't let a racing session end hide it
		if err := f.tok.Err(); err != nil {
			return fmt.Errorf("publish seq %d: %w", f.last, err)
		}
		return nil
	}
	if *timer == nil {
		*timer = time.NewTimer(l.p.cfg.AckTimeout)
	} else {
		(*timer).Reset(l.p.cfg.AckTimeout)
	}
	t := *timer
	defer t.Stop()
	if f.twin != nil {
		select {
		case r := <-f.twin:
			switch {
			case r.status >= 200 && r.status < 300:
				return nil
			case r.status >= 400 && r.status < 500 && r.status != 429:
				// The hub will never take this patch: skip it, don't block the stream.
				f.poison = fmt.Errorf("twin PATCH refused with %d: %s", r.status, truncate(r.body, 200))
				return s.await(f, timer)
			}
			return fmt.Errorf("twin PATCH answered %d", r.status)
		case <-t.C:
			s.forget(f.rid)
			return fmt.Errorf("twin PATCH seq %d: %w", f.last, errAckTimeout)
		case <-s.ctx.Done():
			return context.Cause(s.ctx)
		}
	}
	select {
	case <-f.tok.Done():
		if err := f.tok.Err(); err != nil {
			return fmt.Errorf("publish seq %d: %w", f.last, err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("publish seq %d: %w", f.last, errAckTimeout)
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
