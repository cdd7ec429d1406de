// Package mapping translates between device values and hub messages, both
// ways, with validation. It is pure: no sockets, no disk, no goroutines.
//
// Up: a Reading becomes telemetry Messages and reported-property patches for
// identities, according to the configured rules (see [Config]). Points with
// a deadband are sent on change only, and again after max_silence.
//
// Down: a Command becomes a [Plan]: the Actions to run on devices, or a
// rejection with a status (400, 501, ...) when any part of it is invalid, in
// which case the plan has no action at all. After running the actions the
// gateway calls [Mapper.Complete] to get the method response, or for a
// desired-property patch the acknowledgement to report, in the IoT Plug and
// Play form {"<prop>": {"value": v, "ac": 200, "av": <$version>, "ad": "..."}}.
//
// A Mapper is safe for concurrent use; it keeps only change-of-value state
// and the desired versions it has applied, under one mutex.
package mapping

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw"
)

// ErrNoRoute is wrapped by Up's error when no rule routes a reading (no
// device rule for its adapter and device, or a ready-made message for an
// identity the gateway does not own).
var ErrNoRoute = errors.New("no route")

// ErrNotRun is the outcome the gateway gives, in Complete's errs, to the
// actions it did not run because an earlier one failed. Missing entries of
// errs count as ErrNotRun too.
var ErrNotRun = errors.New("not run: an earlier action failed")

// Mapper applies the rules of one Config.
type Mapper struct {
	t atomic.Pointer[tables] // replaced whole by Reconfigure

	mu      sync.Mutex
	cov     map[covKey]covState   // last sent per point and destination
	applied map[ackKey]appliedRec // last desired value acknowledged per property
}

type covKey struct {
	adapter, device, point string
	property               bool
}

type covState struct {
	value edgegw.Value
	at    time.Time
	alarm bool
}

type ackKey struct {
	identity edgegw.DeviceID
	field    string
}

// appliedRec is what the cloud last asked of one writable property and
// what became of it.
type appliedRec struct {
	version int64        // desired version of the last write attempted
	value   edgegw.Value // the value then written
	status  int          // its outcome
	seen    int64        // the newest desired version seen, written or refused
}

// New builds a Mapper from cfg, which SetDefaults and Validate have seen;
// it returns Validate's error otherwise.
func New(cfg Config) (*Mapper, error) {
	t, err := compile(&cfg)
	if err != nil {
		return nil, err
	}
	m := &Mapper{cov: map[covKey]covState{}, applied: map[ackKey]appliedRec{}}
	m.t.Store(t)
	return m, nil
}

// rules returns the rules in force.
func (m *Mapper) rules() *tables { return m.t.Load() }

// Plan is what Down makes of a command: the actions to run in order, or a
// rejection. It is never nil.
type Plan struct {
	Command edgegw.Command
	// Actions to run, in order, stopping at the first failure. Empty when
	// the command is rejected or needs no action.
	Actions []edgegw.Action
	// Rejected is set when the command is invalid as a whole: nothing may
	// be run. Its Payload is {"error": "..."}.
	Rejected *edgegw.Result
	// Note says, for a plan with no actions, why (for the gateway's log),
	// such as "no c2d rule for identity plc-3: acknowledged only".
	Note string

	method  *method
	outputs [][]byte   // Method: what each call action returned (SetOutput)
	props   []propPlan // Desired: one per property acknowledged
	skipped int        // Desired: properties already applied at this version
}

// propPlan is one property of a desired patch and what became of it.
type propPlan struct {
	field   string
	value   []byte // the desired value as received (JSON)
	action  int    // index into Actions, or -1
	status  int    // when action is -1: the ack status (400, 404)
	desc    string
	point   *point
	applied edgegw.Value
}
