package testpeer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
)

// Uplink is a southbound.Uplink that records every reading it accepts and
// can refuse or hold Submit calls. The zero value accepts everything.
type Uplink struct {
	mu       sync.Mutex
	readings []edgegw.Reading
	calls    int
	fail     func(n int) error
	gate     <-chan struct{}
	got      chan struct{} // signalled (non-blocking) after each Submit
}

var _ southbound.Uplink = (*Uplink)(nil)

// Submit records r unless the fail function refuses call n (counted from
// 1), after waiting for the gate to close when one is set.
func (u *Uplink) Submit(ctx context.Context, r edgegw.Reading) error {
	u.mu.Lock()
	u.calls++
	n, fail, gate, got := u.calls, u.fail, u.gate, u.notify()
	u.mu.Unlock()
	defer func() {
		select {
		case got <- struct{}{}:
		default:
		}
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(n); err != nil {
			return err
		}
	}
	u.mu.Lock()
	u.readings = append(u.readings, r)
	u.mu.Unlock()
	return nil
}

// notify returns the channel signalled after each Submit; u.mu is held.
func (u *Uplink) notify() chan struct{} {
	if u.got == nil {
		u.got = make(chan struct{}, 1)
	}
	return u.got
}

// SetFail makes Submit return fail(n) for call n when that is not nil;
// nil accepts every call.
func (u *Uplink) SetFail(fail func(n int) error) {
	u.mu.Lock()
	u.fail = fail
	u.mu.Unlock()
}

// SetGate makes Submit wait until gate is closed (or its ctx ends).
func (u *Uplink) SetGate(gate <-chan struct{}) {
	u.mu.Lock()
	u.gate = gate
	u.mu.Unlock()
}

// Readings returns a copy of the readings accepted so far.
func (u *Uplink) Readings() []edgegw.Reading {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]edgegw.Reading(nil), u.readings...)
}

// Count returns how many readings of device were accepted.
func (u *Uplink) Count(device string) int {
	n := 0
	for _, r := range u.Readings() {
		if r.Device == device {
			n++
		}
	}
	return n
}

// Last returns the newest accepted reading of device.
func (u *Uplink) Last(device string) (edgegw.Reading, bool) {
	all := u.Readings()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Device == device {
			return all[i], true
		}
	}
	return edgegw.Reading{}, false
}

// Wait waits up to 10s until n readings are accepted and returns them all,
// or fails the test.
func (u *Uplink) Wait(t testing.TB, n int) []edgegw.Reading {
	t.Helper()
	u.mu.Lock()
	got := u.notify()
	u.mu.Unlock()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if rs := u.Readings(); len(rs) >= n {
			return rs
		}
		select {
		case <-got:
		case <-deadline.C:
			t.Fatalf("want %d accepted readings, have %d", n, len(u.Readings()))
		}
	}
}
