package northbound

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"golang.org/x/time/rate"
)

// backoff computes the delay before the next connection attempt of one
// identity: exponential in the number of consecutive failures, capped, with
// "equal jitter" (half fixed, half random) so that identities that failed
// together spread out instead of retrying in lock-step. A refusal of the
// credentials (CONNACK 4/5) starts four doublings further on: retrying a
// bad key quickly only burns the hub's connection budget.
type backoff struct {
	min, max time.Duration
	jitter   func() float64 // [0, 1); nil = math/rand/v2
}

func (b backoff) delay(fails int, refused bool) time.Duration {
	if fails <= 0 {
		return 0
	}
	n := fails - 1
	if refused {
		n += 4
	}
	d := b.min
	for range min(n, 40) {
		if d >= b.max/2 {
			d = b.max
			break
		}
		d *= 2
	}
	d = min(d, b.max)
	j := rand.Float64
	if b.jitter != nil {
		j = b.jitter
	}
	return d/2 + time.Duration(j()*float64(d/2))
}

// errRenew ends a session on purpose: its token is due for renewal.
var errRenew = errors.New("token renewal")

// errRedeliver ends a session on purpose: a C2D message was left
// unacknowledged for a passing reason, and the hub redelivers only after a
// reconnect.
var errRedeliver = errors.New("reconnect for the redelivery of a cloud-to-device message")

// planned reports whether a session ended on purpose: a reconnect that is
// no failure and lets what is in flight land first.
func planned(err error) bool {
	return errors.Is(err, errRenew) || errors.Is(err, errRedeliver) || errors.Is(err, errRemoved)
}

// stableAfter is how long a connection must have lasted for its loss to
// count as a first failure again (the back-off resets).
const stableAfter = 30 * time.Second

// supervisor paces the connects of one identity. connect makes one
// attempt. report is told
// about every failure with the number of consecutive failures. Every
// attempt, also a renewal, first takes a token from lim, the gateway-wide
// connect rate limit.
//
// A link calls its two halves: next until connected, ended when the
// connection is over (an idle identity holds no goroutine, so nothing
// blocks for the life of a connection).
type supervisor struct {
	lim     *rate.Limiter
	bo      backoff
	connect func(ctx context.Context) error
	report  func(err error, fails int)
	refused func(err error) bool // credentials refused: longer back-off

	fails       int  // consecutive failures
	lastRefused bool // the last failure was a refusal
}

// next waits out the back-off and the rate limit and connects, until it
// succeeds (true) or ctx ends (false).
func (s *supervisor) next(ctx context.Context) bool {
	for {
		if d := s.bo.delay(s.fails, s.lastRefused); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
		if err := s.lim.Wait(ctx); err != nil {
			return false // ctx ended (or can never get a token)
		}
		err := s.connect(ctx)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			return true
		}
		s.fails++
		s.lastRefused = s.refused(err)
		s.report(err, s.fails)
	}
}

// ended accounts for a connection that started at start and ended with
// err: a renewal is no failure; a loss after a stable connection counts as
// the first failure again.
func (s *supervisor) ended(err error, start time.Time) {
	s.lastRefused = false
	if planned(err) {
		s.fails = 0
		return
	}
	if time.Since(start) >= stableAfter {
		s.fails = 0
	}
	s.fails++
	s.report(err, s.fails)
}
