package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/mapping"
	"github.com/edgegw/edgegw/northbound"
	"github.com/edgegw/edgegw/ops"
	"github.com/edgegw/edgegw/southbound"
	"github.com/edgegw/edgegw/southbound/modbus"
)

// uplink is the road up: readings become messages, made durable.
type uplink struct {
	mapper     *mapping.Mapper
	queue      *buffer.Queue
	log        *slog.Logger
	*twinStore             // relayed identities' twins (southbound.Twins)
	points     *ops.Points // latest values for the page; nil for none
}

var (
	_ southbound.Pipeline = (*uplink)(nil)
	_ southbound.Twins    = (*uplink)(nil)
)

// Submit maps r and appends the messages in one durable batch. Readings no
// rule routes, and messages too large for the hub, are rejected: retrying
// cannot help.
func (u *uplink) Submit(ctx context.Context, r edgegw.Reading) error {
	if u.points != nil {
		u.points.Observe(r)
	}
	entries, err := u.entries(r)
	if err != nil || len(entries) == 0 {
		return err
	}
	err = u.queue.Append(ctx, entries...)
	if err != nil {
		u.mapper.Forget(r) // not stored: its points are due again on the next reading
	}
	return u.rejected(r, err)
}

// Start is Submit without the wait, for readings that carry a ready
// message (a LAN publish): mapping routes it and the buffer's group
// commit takes it in the order Start is called. A reading of points goes
// through Submit, because the mapper must forget what was not stored.
func (u *uplink) Start(ctx context.Context, r edgegw.Reading, done chan error) {
	if r.Message == nil {
		done <- u.Submit(ctx, r)
		return
	}
	if u.points != nil {
		u.points.Observe(r)
	}
	entries, err := u.entries(r)
	if err != nil || len(entries) == 0 {
		done <- err
		return
	}
	if err := u.queue.AppendAsync(ctx, done, entries...); err != nil {
		done <- u.rejected(r, err)
	}
}

// entries maps r to the buffer entries it makes.
func (u *uplink) entries(r edgegw.Reading) ([]buffer.Entry, error) {
	msgs, err := u.mapper.Up(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", southbound.ErrRejected, err)
	}
	if len(msgs) == 0 {
		return nil, nil // nothing changed beyond the deadband
	}
	entries := make([]buffer.Entry, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if err := northbound.CheckSize(m); err != nil {
			return nil, fmt.Errorf("%w: %s/%s: %w", southbound.ErrRejected, r.Adapter, r.Device, err)
		}
		data, _ := m.MarshalBinary()
		entries = append(entries, buffer.Entry{Stream: string(m.Identity), Data: data, Alarm: m.Alarm})
	}
	return entries, nil
}

// rejected marks an append that can never succeed as a rejection.
func (u *uplink) rejected(r edgegw.Reading, err error) error {
	if errors.Is(err, buffer.ErrTooLarge) {
		return fmt.Errorf("%w: %s/%s: %w", southbound.ErrRejected, r.Adapter, r.Device, err)
	}
	return err
}

// downlink is the road down: commands become validated device actions,
// executed in order; the outcome goes back as a result and, for desired
// properties, as a durable reported-properties acknowledgement.
type downlink struct {
	mapper *mapping.Mapper
	queue  *buffer.Queue
	twins  *twinStore
	log    *slog.Logger

	mu        sync.RWMutex                   // a reload adds and removes adapters (reload.go)
	executors map[string]southbound.Executor // by adapter name
	relayers  []southbound.Relayer
	commands  *ops.CommandLog // outcomes; nil for none
}

var (
	_ northbound.Downlink     = (*downlink)(nil)
	_ northbound.TwinObserver = (*downlink)(nil)
)

// Handle carries out one command and logs its outcome at info: identity,
// kind, name or version, status and latency (commands are rare beside
// telemetry; an operator wants each one on record). The whole desired
// section read from the twin after every connect is logged at debug when
// it asked for nothing (every identity has one per connect).
func (d *downlink) Handle(ctx context.Context, cmd edgegw.Command) edgegw.Result {
	start := time.Now()
	res, acted := d.handle(ctx, cmd)
	attrs := []any{"identity", cmd.Identity, "kind", cmd.Kind.String()}
	switch cmd.Kind {
	case edgegw.Method:
		attrs = append(attrs, "name", cmd.Name)
	case edgegw.Desired:
		attrs = append(attrs, "version", cmd.Version)
	}
	if d.relayer(cmd.Identity) != nil {
		attrs = append(attrs, "relayed", true)
	}
	attrs = append(attrs, "status", res.Status, "latency", time.Since(start).Round(time.Microsecond))
	level := slog.LevelInfo
	if cmd.Kind == edgegw.Desired && cmd.Full && res.Status == 200 && !acted {
		level = slog.LevelDebug
	}
	d.log.Log(ctx, level, "command", attrs...)
	if d.commands != nil {
		d.commands.Record(ops.CommandRecord{Time: start.UTC(), Identity: string(cmd.Identity), Kind: cmd.Kind.String(),
			Name: commandName(&cmd), Status: res.Status, Seconds: time.Since(start).Seconds()})
	}
	return res
}

// handle carries out cmd; acted reports whether a mapped command ran an
// action (a relayed one is passed on to its device whole).
func (d *downlink) handle(ctx context.Context, cmd edgegw.Command) (res edgegw.Result, acted bool) {
	if r := d.relayer(cmd.Identity); r != nil {
		if cmd.Kind == edgegw.Desired {
			d.twins.Desired(cmd.Identity, cmd.Payload, cmd.Version, cmd.Full)
		}
		return r.Relay(ctx, cmd), !cmd.Full
	}
	plan := d.mapper.Down(cmd)
	acted = len(plan.Actions) > 0
	errs := make([]error, len(plan.Actions))
	failed := false
	for i, a := range plan.Actions {
		if failed {
			errs[i] = mapping.ErrNotRun
			continue
		}
		d.mu.RLock()
		ex, ok := d.executors[a.Adapter]
		d.mu.RUnlock()
		if !ok {
			errs[i] = mapping.WithStatus(fmt.Errorf("adapter %q cannot execute actions: %w", a.Adapter, southbound.ErrUnknownTarget), 404)
		} else if a.Kind == edgegw.CallMethod {
			errs[i] = withStatus(call(ctx, ex, plan, i))
		} else {
			errs[i] = withStatus(ex.Execute(ctx, a))
		}
		if errs[i] != nil {
			failed = true
			d.log.Warn("command action failed", "identity", cmd.Identity, "command", cmd.Kind, "action", a.String(), "err", errs[i])
		}
	}
	res, reported := d.mapper.Complete(plan, errs)
	if reported != nil {
		reported.Created = time.Now().UTC()
		data, _ := reported.MarshalBinary()
		if err := d.queue.Append(ctx, buffer.Entry{Stream: string(reported.Identity), Data: data}); err != nil {
			// The write is done but the twin would never hear of it. A
			// passing failure makes northbound apply the version again
			// after its back-off (writing the same values is harmless), so
			// the acknowledgement is queued once the buffer takes it again
			// (disk space back).
			if ctx.Err() == nil {
				d.log.Warn("cannot queue the reported acknowledgement; the desired properties will be applied again",
					"identity", reported.Identity, "version", cmd.Version, "err", err)
			}
			return edgegw.Result{Status: 503, Payload: errorBody(fmt.Errorf("reported acknowledgement not queued: %w", err))}, acted
		}
	}
	return res, acted
}

// ObserveTwin keeps the hub's reported section of a relayed identity's
// twin when the gateway knows none yet (a new gateway, or a device that
// never reported through it). Afterwards the device's own patches, which
// go through the gateway, keep it current; the desired section comes with
// the desired document that follows every twin read.
func (d *downlink) ObserveTwin(identity edgegw.DeviceID, twin []byte) {
	if d.relayer(identity) != nil {
		d.twins.Seed(identity, twin)
	}
}

// relayer returns the adapter that relays identity's device whole, or nil
// when its commands are mapped: an identity with command rules is always
// mapped.
func (d *downlink) relayer(identity edgegw.DeviceID) southbound.Relayer {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, r := range d.relayers {
		if r.Relays(identity) {
			if d.mapper.HasCommandRules(identity) {
				return nil
			}
			return r
		}
	}
	return nil
}

// commandName names a command for the page's list: a method's name; for
// desired properties their version, and whether it is the whole desired
// section read after a connect (which nobody at the hub sent) or a patch.
func commandName(cmd *edgegw.Command) string {
	switch {
	case cmd.Kind == edgegw.Desired && cmd.Full:
		return fmt.Sprintf("version %d, read after connect", cmd.Version)
	case cmd.Kind == edgegw.Desired:
		return fmt.Sprintf("version %d, patch", cmd.Version)
	}
	return cmd.Name
}

// errorBody is a result payload {"error": "..."}.
func errorBody(err error) []byte {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	return b
}

// withStatus gives an adapter's error the status the hub should see: the
// adapter refused the value (400), the device or point does not exist
// (404), the device is not reachable now (503) or did not answer (504).
// Other device errors (exceptions, failed verification) are 502.
func withStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, southbound.ErrRejected):
		return mapping.WithStatus(err, 400)
	case errors.Is(err, southbound.ErrUnknownTarget):
		return mapping.WithStatus(err, 404)
	case errors.Is(err, southbound.ErrUnavailable):
		return mapping.WithStatus(err, 503)
	case errors.Is(err, modbus.ErrTimeout):
		return mapping.WithStatus(err, 504) // the device did not answer: retried like 503
	}
	return err
}

// call runs action i of plan, a procedure call, and keeps its output for
// the method response.
func call(ctx context.Context, ex southbound.Executor, plan *mapping.Plan, i int) error {
	c, ok := ex.(southbound.Caller)
	if !ok {
		return fmt.Errorf("adapter %q cannot call procedures: %w", plan.Actions[i].Adapter, southbound.ErrUnknownTarget)
	}
	out, err := c.Call(ctx, plan.Actions[i])
	if err == nil {
		plan.SetOutput(i, out)
	}
	return err
}
