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
	poison error // not sendable: ack it and count it dropped
}

// item is one unit to send, made from one or more records.
type item struct {
	last  uint64
	msg   *edgegw.Message // telemetry, or reported with Body merged
	count int             // records merged into it
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
		for _, it := range batch(recs) {
			select {
			case s.slots <- struct{}{}:
			case <-s.ctx.Done():
				return context.Cause(s.ctx)
			}
			if s.ctx.Err() != nil { // both were ready: send nothing more
				<-s.slots
				return context.Cause(s.ctx)
			}
			s.push(s.send(it))
			s.cursor = it.last
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

// push hands a sent flight to the acker, starting one if none runs.
func (s *session) push(f *flight) {
	s.queue <- f // never blocks: a slot is held
	s.ackMu.Lock()
	if !s.acking {
		s.acking = true
		s.ackers.Add(1)
		go s.ackLoop()
	}
	s.ackMu.Unlock()
}

// batch decodes records and merges runs of consecutive reported patches.
func batch(recs []buffer.Record) []item {
	items := make([]item, 0, len(recs))
	for _, r := range recs {
		m := new(edgegw.Message)
		if err := m.UnmarshalBinary(r.Data); err != nil {
			items = append(items, item{last: r.Seq, bad: err, count: 1})
			continue
		}
		if err := CheckSize(m); err != nil {
			items = append(items, item{last: r.Seq, bad: err, count: 1})
			continue
		}
		if m.Kind == edgegw.Reported && len(items) > 0 {
			prev := &items[len(items)-1]
			if prev.bad == nil && prev.msg.Kind == edgegw.Reported {
				if merged, ok := mergeReported(prev.msg.Body, m.Body); ok && len(merged) <= MaxReportedBytes {
					prev.msg.Body, prev.last = merged, r.Seq
					prev.count++
					continue
				}
			}
		}
		items = append(items, item{last: r.Seq, msg: m, count: 1})
	}
	return items
}

// send publishes one item and returns what to wait for.
func (s *session) send(it item) *flight {
	l := s.l
	if it.bad != nil {
		return &flight{last: it.last, poison: it.bad}
	}
	f := &flight{last: it.last}
	switch it.msg.Kind {
	case edgegw.Reported:
		rid := l.nextRID()
		topic, twin := l.p.prof.reportedTopic(l.id, rid)
		if twin {
			f.twin, f.rid = s.expect(rid), rid
			_, f.err = s.conn.Publish(topic, 0, it.msg.Body)
		} else {
			f.tok, f.err = s.conn.Publish(topic, 1, it.msg.Body)
		}
	default:
		f.tok, f.err = s.conn.Publish(string(l.p.prof.appendTelemetryTopic(nil, l.id, it.msg)), 1, it.msg.Body)
	}
	l.st.update(func(st *Status) { st.Sent++; st.InFlight++ })
	return f
}

// ackLoop waits for each flight in order and acks the buffer up to the
// last one acknowledged, batching acks while more are already done. It
// exits when nothing is in flight (push starts another). The first failure
// ends the session; nothing after it is acked.
func (s *session) ackLoop() {
	defer s.ackers.Done()
	l := s.l
	var done uint64 // acknowledged by the hub, not yet acked to the buffer
	flush := func() {
		if done <= l.acked.Load() {
			return
		}
		if err := l.p.q.Ack(l.stream, done); err != nil {
			l.p.warn.warn("acking the buffer failed", "identity", l.stream, "err", err)
		}
		l.acked.Store(done)
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
		err := s.await(f)
		<-s.slots
		if err != nil {
			l.st.update(func(st *Status) { st.InFlight-- })
			flush()
			// acking stays true: the session is over, drain sends nothing
			// more, and what it sent is not acked (finish resets InFlight).
			s.end(err)
			return
		}
		done = f.last
		now := time.Now()
		l.st.update(func(st *Status) {
			st.InFlight--
			st.LastPUBACK, st.Acked = now, f.last
			if f.poison != nil {
				st.Dropped++
			}
		})
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

// await waits for f's acknowledgement. A nil error means ack it.
func (s *session) await(f *flight) error {
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
	timer := time.NewTimer(l.p.cfg.AckTimeout)
	defer timer.Stop()
	if f.twin != nil {
		select {
		case r := <-f.twin:
			switch {
			case r.status >= 200 && r.status < 300:
				return nil
			case r.status >= 400 && r.status < 500 && r.status != 429:
				// The hub will never take this patch: skip it, don't block the stream.
				f.poison = fmt.Errorf("twin PATCH refused with %d: %s", r.status, truncate(r.body, 200))
				return s.await(f)
			}
			return fmt.Errorf("twin PATCH answered %d", r.status)
		case <-timer.C:
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
	case <-timer.C:
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
