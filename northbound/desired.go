package northbound

import (
	"time"

	"github.com/edgegw/edgegw"
)

// Desired properties reach the downlink through one pending slot per
// identity and a runner goroutine (runDesired) that applies what the slot
// holds, one document at a time. A runner exists only while there is work:
// the connection's reader offers a patch to the slot and starts a runner if
// none runs for the session; the runner exits when the slot is empty.
//
//   - the reader never waits for a write, and patches that arrive while
//     one is being applied are merged into the one waiting in the slot;
//   - after every connect the whole desired section is read from the twin
//     and offered too (the hub pushes no patches to an offline device);
//   - a document whose outcome is transient (see transient) is not
//     handled: it goes back into the slot, due after a jittered back-off
//     (Config.DesiredRetryMin doubling to DesiredRetryMax, reset by any
//     other outcome), and is applied again then, at the next connect, or
//     at once merged with a newer patch, whichever comes first.

// desiredDoc is a desired-properties document not yet applied.
type desiredDoc struct {
	doc       []byte
	version   int64     // its $version; 0 when the hub gives none
	full      bool      // the whole desired section (twin GET), not a patch
	collapsed bool      // patches were merged into it while it waited
	due       time.Time // a retry's earliest time; zero: now
}

// transient reports whether a command's status means it was not carried
// out for a passing reason, so that trying again later may succeed: 503
// (the device is unavailable: not connected, adapter stopping, gateway
// stopping) and 504 (timed out). mapping.Transient is the same rule on the
// other side of the downlink.
func transient(status int) bool { return status == 503 || status == 504 }

// offer puts d into the identity's pending slot, merged with what waits
// there, and wakes the session's desired goroutine. It does not wait for
// the downlink.
func (s *session) offer(d *desiredDoc) {
	l := s.l
	l.slotMu.Lock()
	l.slot = combine(l.slot, d)
	start := !s.desired
	s.desired = start || s.desired
	twin := start && s.twinDue
	if start {
		s.twinDue = false
	}
	l.slotMu.Unlock()
	if start {
		if !l.spawn(func() { s.runDesired(twin) }) {
			s.stopDesired()
		}
		return
	}
	select {
	case l.desiredWake <- struct{}{}:
	default:
	}
}

// startDesired starts the session's runner at connect. It always does: the
// twin is to be read (IoT Hub), a document may wait from an earlier session,
// or an earlier session's runner may still be applying one that fails for a
// passing reason and goes back into the slot after this check. The runner
// waits its turn and exits when the slot is empty.
func (s *session) startDesired() {
	l := s.l
	l.slotMu.Lock()
	start := !s.desired
	s.desired = s.desired || start
	twin := start && s.twinDue
	if start {
		s.twinDue = false
	}
	l.slotMu.Unlock()
	if start && !l.spawn(func() { s.runDesired(twin) }) {
		s.stopDesired()
	}
}

func (s *session) stopDesired() {
	s.l.slotMu.Lock()
	s.desired = false
	s.l.slotMu.Unlock()
}

// combine returns the document with the effect of both a and b: the newer
// (by version; b when they tie or b has none) over the older. A full
// document on top replaces the other; a patch on top is merged into it as
// a JSON merge patch and the result is marked collapsed (when the two
// cannot be merged, the patch alone stands and the twin GET that follows a
// collapse supplies the rest). The result is due now.
func combine(a, b *desiredDoc) *desiredDoc {
	if a == nil {
		return b
	}
	older, top := a, b
	if b.version != 0 && a.version > b.version {
		older, top = b, a
	}
	out := *top
	out.due = time.Time{}
	if top.full {
		return &out
	}
	if merged, ok := mergeReported(older.doc, top.doc); ok {
		out.doc, out.full = merged, older.full
	}
	out.collapsed = true
	return &out
}

// take returns the document to apply now, or when the waiting one is due.
// With neither, the session's runner is marked stopped (under the lock that
// offer takes, so no offer is missed) and it must exit.
func (s *session) take(now time.Time) (*desiredDoc, time.Time) {
	l := s.l
	l.slotMu.Lock()
	defer l.slotMu.Unlock()
	d := l.slot
	switch {
	case d == nil:
		s.desired = false
		return nil, time.Time{}
	case d.due.After(now):
		return nil, d.due
	}
	l.slot = nil
	return d, time.Time{}
}

// runDesired applies desired properties for one session until the slot is
// empty or the session ends, first reading the twin's whole desired section
// when getTwin is set. One runner works at a time per identity (the previous
// session's may still be finishing a write).
func (s *session) runDesired(getTwin bool) {
	l := s.l
	select {
	case l.desiredTurn <- struct{}{}:
	case <-s.ctx.Done():
		s.stopDesired()
		return
	}
	defer func() { <-l.desiredTurn }()
	if getTwin {
		doc, version, err := s.getTwin(l.nextRID())
		switch {
		case err == nil:
			s.offer(&desiredDoc{doc: doc, version: version, full: true})
		case s.ctx.Err() == nil:
			l.p.warn.warn("twin GET failed; desired properties not reconciled", "identity", l.stream, "err", err)
		}
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for s.ctx.Err() == nil {
		d, next := s.take(time.Now())
		if d != nil {
			l.apply(s, d)
			continue
		}
		if next.IsZero() {
			return // nothing waits; take marked the runner stopped
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(next))
		} else {
			timer.Reset(time.Until(next))
		}
		select {
		case <-s.ctx.Done():
		case <-l.desiredWake:
		case <-timer.C:
		}
		timer.Stop()
	}
	s.stopDesired() // the slot keeps what is left for the next session
}

// apply hands one document to the downlink. Versions order documents:
// one not newer than the version handled is skipped. A patch that skips a
// version (one was missed), or patches merged while waiting, are replaced
// by the twin's whole desired section when the hub keeps a twin. A
// transient outcome leaves the version unhandled and puts the document
// back into the slot for a retry.
func (l *link) apply(s *session, d *desiredDoc) {
	if d.version != 0 && d.version <= l.desiredVersion {
		return // stale or already handled
	}
	doc, version, full := d.doc, d.version, d.full
	gap := !full && l.desiredVersion > 0 && version > l.desiredVersion+1
	if l.p.hasTwin() && (d.collapsed || gap) {
		td, tv, err := s.getTwin(l.nextRID())
		if err != nil {
			if s.ctx.Err() == nil {
				l.p.warn.warn("twin GET for the newest desired properties failed; applying the patches received",
					"identity", l.stream, "err", err)
			}
		} else {
			doc, version, full = td, tv, true
		}
		if version != 0 && version <= l.desiredVersion {
			return
		}
	}
	res := l.handle(edgegw.Command{Identity: l.id.ID, Kind: edgegw.Desired, Payload: doc, Version: version, Full: full}, l.ctx.Done())
	if transient(res.Status) {
		l.desiredRetries++
		delay := backoff{min: l.p.cfg.DesiredRetryMin, max: l.p.cfg.DesiredRetryMax}.delay(l.desiredRetries, false)
		retry := &desiredDoc{doc: doc, version: version, full: full, due: time.Now().Add(delay)}
		l.slotMu.Lock()
		if l.slot != nil {
			retry = combine(retry, l.slot) // a newer one came: both, now
		}
		l.slot = retry
		l.slotMu.Unlock()
		switch {
		case l.ctx.Err() != nil:
		case l.desiredRetries == 1:
			l.p.note.info("desired properties not applied for now; retrying with back-off", "identity", l.stream,
				"version", version, "status", res.Status, "retry_in", delay.Round(time.Millisecond), "result", truncate(res.Payload, 200))
		default:
			l.log.Debug("desired properties still not applied", "version", version, "status", res.Status,
				"attempts", l.desiredRetries, "retry_in", delay.Round(time.Millisecond))
		}
		return
	}
	l.desiredRetries = 0
	if version > 0 {
		l.desiredVersion = version
	}
	if res.Status >= 300 {
		l.log.Info("desired properties not fully applied", "version", version, "status", res.Status, "result", truncate(res.Payload, 200))
	}
}
