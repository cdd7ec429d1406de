package opcua

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/gopcua/opcua/ua"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
)

// Execute writes one point (WritePoint only). The value is converted with
// the inverse of the point's scale and offset and checked against the
// node's type before anything is sent: a value that does not fit fails
// with an error wrapping southbound.ErrRejected and nothing is written, as
// does a write the server refuses for its value (BadTypeMismatch,
// BadOutOfRange). Unknown devices and points give ErrUnknownTarget; no
// open session gives ErrUnavailable; a server that does not answer in
// time gives context.DeadlineExceeded.
func (a *Adapter) Execute(ctx context.Context, act edgegw.Action) error {
	if act.Kind == edgegw.CallMethod {
		_, err := a.Call(ctx, act)
		return err
	}
	if act.Kind != edgegw.WritePoint {
		return fmt.Errorf("opcua %s: %s: only writes and calls are supported: %w", a.name, act.Kind, southbound.ErrRejected)
	}
	d := a.byName[act.Device]
	if d == nil {
		return fmt.Errorf("opcua %s: device %q: %w", a.name, act.Device, southbound.ErrUnknownTarget)
	}
	it := d.points[act.Point]
	if it == nil {
		return fmt.Errorf("opcua %s: device %s: point %q: %w", a.name, d.name, act.Point, southbound.ErrUnknownTarget)
	}
	fail := func(err error) error {
		a.st.device(d.idx, func(s *DeviceStats) { s.WriteErrors++ })
		return fmt.Errorf("opcua %s: write %s/%s = %s: %w", a.name, d.name, it.name, act.Value, err)
	}
	if !it.writable {
		return fail(fmt.Errorf("point is not writable: %w", southbound.ErrRejected))
	}
	v, err := it.conv.encode(act.Value)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", southbound.ErrRejected, err))
	}
	c := a.current()
	if c == nil {
		return fail(fmt.Errorf("no session with %s: %w", a.cfg.Endpoint, southbound.ErrUnavailable))
	}
	tctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	res, err := c.Write(tctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{
		NodeID: it.node, AttributeID: ua.AttributeIDValue,
		Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: v},
	}}})
	if err != nil {
		return fail(requestError(err))
	}
	if len(res.Results) != 1 {
		return fail(fmt.Errorf("%d results for one write", len(res.Results)))
	}
	if st := res.Results[0]; st != ua.StatusOK {
		return fail(statusError(st))
	}
	a.st.device(d.idx, func(s *DeviceStats) { s.Writes++ })
	return nil
}

// Call calls a configured method (CallMethod only) with act.Args converted
// to the method's input types, and returns the output arguments as a JSON
// object: {"<output name>": value, ...}, or {"outputs": [...]} when the
// config names none. Arguments that do not fit give ErrRejected and
// nothing is called; errors otherwise as Execute's.
func (a *Adapter) Call(ctx context.Context, act edgegw.Action) ([]byte, error) {
	if act.Kind != edgegw.CallMethod {
		return nil, fmt.Errorf("opcua %s: %s is not a call: %w", a.name, act.Kind, southbound.ErrRejected)
	}
	d := a.byName[act.Device]
	if d == nil {
		return nil, fmt.Errorf("opcua %s: device %q: %w", a.name, act.Device, southbound.ErrUnknownTarget)
	}
	m := d.methods[act.Method]
	if m == nil {
		return nil, fmt.Errorf("opcua %s: device %s: method %q: %w", a.name, d.name, act.Method, southbound.ErrUnknownTarget)
	}
	fail := func(err error) ([]byte, error) {
		a.st.device(d.idx, func(s *DeviceStats) { s.CallErrors++ })
		return nil, fmt.Errorf("opcua %s: call %s/%s: %w", a.name, d.name, m.name, err)
	}
	if len(act.Args) != len(m.inputs) {
		return fail(fmt.Errorf("%w: %d arguments for %d inputs", southbound.ErrRejected, len(act.Args), len(m.inputs)))
	}
	args := make([]*ua.Variant, len(m.inputs))
	for i, in := range m.inputs {
		v, err := in.encode(act.Args[i])
		if err != nil {
			return fail(fmt.Errorf("%w: input %d (%s): %w", southbound.ErrRejected, i, m.inputNames[i], err))
		}
		args[i] = v
	}
	c := a.current()
	if c == nil {
		return fail(fmt.Errorf("no session with %s: %w", a.cfg.Endpoint, southbound.ErrUnavailable))
	}
	tctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	res, err := c.Call(tctx, &ua.CallMethodRequest{ObjectID: m.object, MethodID: m.method, InputArguments: args})
	if err != nil {
		return fail(requestError(err))
	}
	if isBad(res.StatusCode) {
		return fail(statusError(res.StatusCode))
	}
	for i, st := range res.InputArgumentResults {
		if isBad(st) {
			return fail(fmt.Errorf("input %d: %w", i, statusError(st)))
		}
	}
	a.st.device(d.idx, func(s *DeviceStats) { s.Calls++ })
	return outputJSON(m.outputs, res.OutputArguments), nil
}

// outputJSON is the method response of a call's output arguments.
func outputJSON(names []string, outs []*ua.Variant) []byte {
	if len(names) == 0 {
		vals := make([]any, len(outs))
		for i, o := range outs {
			vals[i] = valueJSON(o)
		}
		b, _ := json.Marshal(map[string]any{"outputs": vals})
		return b
	}
	obj := map[string]any{}
	for i, n := range names {
		if i < len(outs) {
			obj[n] = valueJSON(outs[i])
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}

// ErrTimeout is a request the server did not answer in time; it wraps
// context.DeadlineExceeded, which the mapping answers with 504.
var ErrTimeout = fmt.Errorf("opcua request timed out: %w", context.DeadlineExceeded)

// requestError classifies a failed request: a timeout, a session that is
// gone (ErrUnavailable), or the server's status.
func requestError(err error) error {
	var sc ua.StatusCode
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ua.StatusBadTimeout), errors.Is(err, ua.StatusBadRequestTimeout):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET), // the connection broke
		errors.Is(err, ua.StatusBadServerNotConnected), errors.Is(err, ua.StatusBadSessionClosed),
		errors.Is(err, ua.StatusBadSessionIDInvalid), errors.Is(err, ua.StatusBadSecureChannelClosed),
		errors.Is(err, ua.StatusBadConnectionClosed), errors.Is(err, ua.StatusBadCommunicationError):
		return fmt.Errorf("%w: %w", southbound.ErrUnavailable, err)
	case errors.As(err, &sc):
		return statusError(sc)
	}
	return err
}

// statusError is the error of a Bad status for one operation: a refusal
// of the value or arguments is ErrRejected (nothing was done).
func statusError(st ua.StatusCode) error {
	switch st {
	case ua.StatusBadTypeMismatch, ua.StatusBadOutOfRange, ua.StatusBadInvalidArgument,
		ua.StatusBadArgumentsMissing, ua.StatusBadTooManyArguments, ua.StatusBadNotWritable,
		ua.StatusBadUserAccessDenied, ua.StatusBadWriteNotSupported:
		return fmt.Errorf("%w: server status %s", southbound.ErrRejected, statusName(st))
	case ua.StatusBadNodeIDUnknown, ua.StatusBadMethodInvalid, ua.StatusBadNodeIDInvalid:
		return fmt.Errorf("%w: server status %s", southbound.ErrUnknownTarget, statusName(st))
	}
	return fmt.Errorf("server status %s", statusName(st))
}
