package mapping

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgegw/edgegw"
)

// Complete turns the outcome of a plan into the answer to its command.
// errs[i] is the outcome of p.Actions[i]: nil when done, ErrNotRun when not
// run; entries missing from errs count as ErrNotRun.
//
// For a Method it returns the method response: 200 with the rule's response
// body, or the status of the first failure with {"error": "...", "done": n}
// (n actions succeeded), or the rejection. For a Desired patch the Result
// sums up (200, or the first failure's status) and the message is the
// acknowledgement patch to queue (Kind Reported, Identity set, Created left
// zero for the caller to stamp), one {"value","ac","av","ad"} entry per
// property; it is nil when there is nothing to acknowledge. For a C2D
// message the Result is 200 or the failure's status, with no message.
//
// An action error's status is 504 for context.DeadlineExceeded, the one
// given with WithStatus, 424 for ErrNotRun, and 502 otherwise.
//
// A desired property whose write failed with a Transient status, or was
// not run because an earlier action of the plan did, is acknowledged with
// that status but otherwise left as it was: the gateway tries the version
// again, so later reports of the point keep the version last applied (or
// refused for good) until a retry succeeds.
func (m *Mapper) Complete(p *Plan, errs []error) (edgegw.Result, *edgegw.Message) {
	outcome := func(i int) error {
		if i < len(errs) {
			return errs[i]
		}
		return ErrNotRun
	}
	var res edgegw.Result
	if p.Rejected != nil {
		res = *p.Rejected
	} else {
		res.Status = 200
		for i, a := range p.Actions {
			if err := outcome(i); err != nil {
				res.Status = StatusOf(err)
				var o obj
				o.val("error", fmt.Sprintf("actions[%d] (%s): %v", i, a, err))
				o.val("done", i)
				res.Payload = o.bytes()
				break
			}
		}
		if res.Status == 200 && p.Command.Kind == edgegw.Method && p.method != nil {
			res.Payload = append([]byte(nil), p.method.response...)
			if out := p.output(); p.method.outputs && out != nil {
				res.Payload = out
			}
		}
	}
	if p.Command.Kind != edgegw.Desired || len(p.props) == 0 {
		return res, nil
	}
	var o obj
	retried := p.Rejected == nil && Transient(res.Status)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pp := range p.props {
		status, desc, value := pp.status, pp.desc, pp.value
		key := ackKey{p.Command.Identity, pp.field}
		rec := m.applied[key]
		remember := pp.point != nil // a writable point: remember a refused version too
		if pp.action >= 0 {
			err := outcome(pp.action)
			if err != nil {
				status, desc = StatusOf(err), err.Error()
			} else {
				status, desc = 200, "applied"
				value, _ = pp.applied.MarshalJSON()
				m.reportedApplied(p.Actions[pp.action], pp)
			}
			// Not tried for a passing reason: the version will be tried
			// again, so the device has not dealt with it yet.
			if Transient(status) || (retried && errors.Is(err, ErrNotRun)) {
				remember = false
			} else {
				rec.version, rec.value, rec.status = p.Command.Version, pp.applied, status
			}
		}
		if remember {
			rec.seen = max(rec.seen, p.Command.Version)
			m.applied[key] = rec
		}
		o.raw(pp.field, ackBody(value, status, p.Command.Version, desc))
	}
	if p.Rejected == nil && res.Status == 200 {
		res.Payload = o.bytes()
	}
	return res, &edgegw.Message{
		Identity:        p.Command.Identity,
		Kind:            edgegw.Reported,
		Body:            o.bytes(),
		ContentType:     DefaultContentType,
		ContentEncoding: DefaultContentEncoding,
	}
}

// reportedApplied records, for a property point just written, the value
// written as the one last reported: the acknowledgement reports it, so the
// next reading of that value is not reported again (a second, identical
// acknowledgement that a twin merges away but a plain MQTT broker passes
// on). A reading of another value is reported as usual. Called with m.mu
// held.
func (m *Mapper) reportedApplied(a edgegw.Action, pp propPlan) {
	if pp.point == nil || !pp.point.property || a.Kind != edgegw.WritePoint {
		return
	}
	m.cov[covKey{a.Adapter, a.Device, a.Point, true}] = covState{value: pp.applied, alarm: pp.point.inAlarm(pp.applied)}
}

// Transient reports whether a command's result status means it was not
// carried out for a passing reason, so that trying again later may
// succeed: 503 (the device is unavailable) and 504 (timed out). The
// gateway retries desired properties with such an outcome and leaves such
// C2D messages unacknowledged for the hub to redeliver.
func Transient(status int) bool { return status == 503 || status == 504 }

// statusError carries the result status of an action error.
type statusError struct {
	err    error
	status int
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// WithStatus returns err marked with the result status Complete reports
// for it, such as 404 for an unknown target. It returns nil for a nil err.
func WithStatus(err error, status int) error {
	if err == nil {
		return nil
	}
	return &statusError{err: err, status: status}
}

// StatusOf returns the result status for an action error (see Complete).
func StatusOf(err error) int {
	var se *statusError
	switch {
	case err == nil:
		return 200
	case errors.As(err, &se):
		return se.status
	case errors.Is(err, ErrNotRun):
		return 424
	case errors.Is(err, context.DeadlineExceeded):
		return 504
	}
	return 502
}
