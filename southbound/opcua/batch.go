package opcua

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/edgegw/edgegw"
)

// emit hands a reading to the submitter, waiting while it is behind.
func (s *session) emit(ctx context.Context, r edgegw.Reading) bool {
	select {
	case s.out <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// batch collects the values of one device into readings: values whose
// source timestamps fall in the same window, as long as the device's
// interval, make one reading stamped with the newest of them. (One
// reading per exact timestamp would make a message per value of a server
// that stamps each variable on its own.)
type batch struct {
	dev      *device
	readings []edgegw.Reading
	windows  []time.Time // the window of each reading
	st       DeviceStats // counts to add
	polled   bool        // values read, not notified: no duplicates to drop
	problem  string      // the first Bad value or type mismatch, for the log
}

// add converts one data value of it and files it by source timestamp.
func (b *batch) add(it *item, dv *ua.DataValue, received time.Time) {
	if dv == nil {
		return
	}
	if isBad(dv.Status) {
		addCount(&b.st.Bad, statusName(dv.Status), 1)
		if b.problem == "" {
			b.problem = fmt.Sprintf("point %s (%s): status %s", it.name, it.nodeText, statusName(dv.Status))
		}
		return
	}
	ts := dv.SourceTimestamp
	if !b.polled && !ts.IsZero() && ts.Equal(it.lastSrc) {
		b.st.Duplicates++
		return
	}
	when := ts
	if when.IsZero() {
		when = dv.ServerTimestamp
	}
	if when.IsZero() {
		when = received
	}
	win := when.Truncate(b.dev.cfg.Interval)
	i := slices.IndexFunc(b.windows, win.Equal)
	if i < 0 {
		b.readings = append(b.readings, edgegw.Reading{Device: b.dev.name, Time: when})
		b.windows = append(b.windows, win)
		i = len(b.readings) - 1
	}
	r := &b.readings[i]
	if when.After(r.Time) {
		r.Time = when
	}
	before := len(r.Points)
	var err error
	r.Points, err = it.conv.points(it.name, it.unit, it.length, dv.Value, r.Points)
	if err != nil {
		b.st.TypeErrors++
		if b.problem == "" {
			b.problem = fmt.Sprintf("point %s (%s): %v", it.name, it.nodeText, err)
		}
		return
	}
	if isUncertain(dv.Status) {
		b.st.Uncertain++
	}
	b.st.Values += uint64(len(r.Points) - before)
	it.lastSrc = ts
}

// flush counts the batch and hands its readings up.
func (s *session) flush(ctx context.Context, b *batch) bool {
	a := s.a
	if b.problem != "" && s.qualityLog.Allow(time.Now()) {
		a.log.Warn("opcua values left out (counted in stats)", "device", b.dev.name, "first", b.problem)
	}
	a.st.device(b.dev.idx, func(d *DeviceStats) {
		d.Values += b.st.Values
		d.Uncertain += b.st.Uncertain
		d.TypeErrors += b.st.TypeErrors
		d.Duplicates += b.st.Duplicates
		d.Polls += b.st.Polls
		for k, n := range b.st.Bad {
			addCount(&d.Bad, k, n)
		}
		for k, n := range b.st.Refused {
			addCount(&d.Refused, k, n)
		}
	})
	for _, r := range b.readings {
		if len(r.Points) == 0 {
			continue
		}
		r.Adapter = a.name
		if !s.emit(ctx, r) {
			return false
		}
	}
	return true
}
