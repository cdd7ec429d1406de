package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/mapping"
	"github.com/edgegw/edgegw/northbound"
	"github.com/edgegw/edgegw/southbound"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
	"github.com/edgegw/edgegw/southbound/modbus"
	"github.com/edgegw/edgegw/southbound/opcua"
	"github.com/edgegw/edgegw/southbound/serial"
	"github.com/edgegw/edgegw/southbound/simulator"
)

// A reload applies a new config file to the running gateway as a
// difference (see Reload). live holds what it changes; Run makes it once
// the rooms are built and drops it before it stops them.
type live struct {
	mapper  *mapping.Mapper
	pool    *northbound.Pool
	down    *downlink
	up      *uplink
	ctx     context.Context // the adapters' context: Run ends it to stop them
	wg      *sync.WaitGroup // Run waits for every adapter's goroutine on it
	running map[string]*runningAdapter
}

// runningAdapter is one adapter instance whose Run runs on a goroutine of
// live.wg until its own context ends.
type runningAdapter struct {
	namedAdapter
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
}

// ended reports whether ra's Run has returned while it is still listed as
// running: an adapter a reload started that failed (a LAN listen address
// taken).
func (ra *runningAdapter) ended() bool {
	select {
	case <-ra.done:
		return true
	default:
		return false
	}
}

// start runs a on a goroutine Run waits for, with a context of its own so
// that a reload can stop it alone; onFail is told when its Run fails.
// The adapter's commands and relayed devices are wired to the downlink.
func (lv *live) start(a namedAdapter, onFail func(error)) {
	ctx, cancel := context.WithCancel(lv.ctx)
	ra := &runningAdapter{namedAdapter: a, cancel: cancel, done: make(chan struct{})}
	lv.running[a.name] = ra
	lv.down.mu.Lock()
	if ex, ok := a.Adapter.(southbound.Executor); ok {
		lv.down.executors[a.name] = ex
	}
	if r, ok := a.Adapter.(southbound.Relayer); ok && !slices.Contains(lv.down.relayers, r) {
		lv.down.relayers = append(lv.down.relayers, r)
	}
	lv.down.mu.Unlock()
	lv.wg.Go(func() {
		defer close(ra.done)
		defer cancel()
		if err := a.Run(ctx, lv.up); err != nil {
			onFail(err)
		}
	})
}

// stop takes the adapter named name off the downlink, ends its Run and
// waits for it: what it had in flight (a reading being stored, a LAN
// publish being committed) is finished or refused by then.
func (lv *live) stop(name string) {
	ra := lv.running[name]
	if ra == nil {
		return
	}
	delete(lv.running, name)
	lv.down.mu.Lock()
	delete(lv.down.executors, name)
	if r, ok := ra.Adapter.(southbound.Relayer); ok {
		lv.down.relayers = slices.DeleteFunc(lv.down.relayers, func(x southbound.Relayer) bool { return x == r })
	}
	lv.down.mu.Unlock()
	ra.cancel()
	<-ra.done
}

// ErrNotRunning is returned by Reload before the gateway is ready or after
// it stopped.
var ErrNotRunning = errors.New("the gateway is not running")

// Reload applies next, a config that Parse or LoadFile accepted, to the
// running gateway as a difference from the config it runs on:
//
//   - identities, LAN users, mapping rules and adapters that did not
//     change keep their connections, sessions and queues untouched;
//   - added identities connect and added adapters start; an adapter whose
//     settings changed is stopped and started again;
//   - a removed identity stops after the messages in flight landed (its
//     queue stays on disk); a removed adapter stops after finishing what
//     it had in flight; the connections of removed or changed LAN users
//     are closed;
//   - settings that cannot change while running (log, state_dir, buffer,
//     hub, hubsim, status, memory, and a LAN broker's settings other than
//     its users) keep their old values, and a warning names them.
//
// Everything that can fail (an identity's key file, a new adapter's
// settings, the rules) is checked before anything changes: on an error
// nothing does, and the gateway runs on as it was. One log line says what
// changed. ctx bounds the wait for removed identities.
func (g *Gateway) Reload(ctx context.Context, next *Config) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	g.mu.Lock()
	lv := g.live
	g.mu.Unlock()
	select {
	case <-g.ready:
	default:
		lv = nil
	}
	if lv == nil {
		return ErrNotRunning
	}
	// systemd shows the unit reloading until READY=1 (Type=notify).
	_ = sdNotify("RELOADING=1")
	defer func() { _ = sdNotify("READY=1") }()
	d := diffConfigs(&g.cfg, next)
	for _, s := range next.Southbound {
		if ra := lv.running[s.Name]; ra != nil && ra.ended() {
			d.restartFailed(s.Name, next)
		}
	}
	eff := d.effective
	if err := eff.Validate(); err != nil { // next is valid: the old settings kept do not fit it
		var errs []error
		for _, e := range flatten(err) {
			errs = append(errs, fmt.Errorf("%w (with the settings that need a restart kept as they are: %s)", e, strings.Join(d.restart, ", ")))
		}
		return &ConfigError{File: next.File, Err: errors.Join(errs...)}
	}

	// Prepare: everything that can fail, before anything changes.
	g.mu.Lock()
	hub := g.hub
	g.mu.Unlock()
	loaded := map[string]*identity.Identity{}
	var errs []error
	wanted := func(id string) bool {
		return slices.Contains(d.identities.added, id) || slices.Contains(d.identities.changed, id)
	}
	for i, ic := range eff.Identities {
		if ic.Count > 0 { // a fleet: load it whole (its keys derive from one group key), keep what changed
			if !slices.ContainsFunc(ic.IDs(), wanted) {
				continue
			}
			all, err := identity.LoadAll(ic, g.log.With("room", "northbound"))
			if err != nil {
				errs = append(errs, edgegw.PrefixErrors(fmt.Sprintf("identities[%d]", i), err))
				continue
			}
			for _, id := range all {
				if wanted(string(id.ID)) {
					loaded[string(id.ID)] = id
				}
			}
			continue
		}
		if !wanted(ic.ID) {
			continue
		}
		if hub != nil {
			one := []identity.Config{ic}
			if err := register(hub, one); err != nil {
				errs = append(errs, edgegw.PrefixErrors(fmt.Sprintf("identities[%d]", i), err))
				continue
			}
			ic = one[0]
		}
		id, err := identity.Load(ic, g.log.With("room", "northbound"))
		if err != nil {
			errs = append(errs, edgegw.PrefixErrors(fmt.Sprintf("identities[%d]", i), err))
			continue
		}
		loaded[ic.ID] = id
	}
	fresh := map[string]namedAdapter{}
	for _, s := range eff.Southbound {
		if !slices.Contains(d.adapters.added, s.Name) && !slices.Contains(d.adapters.changed, s.Name) {
			continue
		}
		a, err := newAdapter(s, g.log)
		if err != nil {
			errs = append(errs, fmt.Errorf("southbound %s: %w", s.Name, err))
			continue
		}
		fresh[s.Name] = namedAdapter{s.Name, a}
	}
	if _, err := mapping.New(eff.Mapping); err != nil {
		errs = append(errs, edgegw.PrefixErrors("mapping", err))
	}
	if len(errs) > 0 {
		return &ConfigError{File: next.File, Err: errors.Join(errs...)}
	}

	// Apply: identities first, so that new rules have somewhere to go;
	// removed identities last, so that nothing is routed to a stream
	// nobody drains for longer than needed.
	for _, id := range d.identities.added {
		if err := lv.pool.Add(loaded[id]); err != nil {
			return err // cannot happen: the pool has what g.cfg has
		}
	}
	removeIdentities(ctx, lv.pool, d.identities.changed) // they reconnect with their new settings
	for _, id := range d.identities.changed {
		if err := lv.pool.Add(loaded[id]); err != nil {
			return err
		}
	}
	for _, name := range slices.Concat(d.adapters.removed, d.adapters.changed) {
		lv.stop(name)
	}
	if err := lv.mapper.Reconfigure(eff.Mapping); err != nil {
		return err // cannot happen: compiled above
	}
	touched := map[edgegw.DeviceID]bool{} // identities whose relaying may have changed
	for _, id := range d.identities.added {
		touched[edgegw.DeviceID(id)] = true
	}
	for _, s := range eff.Southbound {
		a, ok := fresh[s.Name]
		if !ok {
			continue
		}
		if r, ok := a.Adapter.(southbound.Relayer); ok {
			r.WatchListening(g.watchListening(lv))
		}
		lv.start(a, func(err error) {
			g.log.Error("an adapter started by a reload failed; it stays stopped until the next reload starts it again",
				"adapter", a.name, "err", err)
		})
	}
	var userErrs []error
	for _, u := range d.users {
		a, _ := lv.running[u.adapter].Adapter.(*lanmqtt.Adapter)
		if a == nil {
			continue
		}
		added, changed, removed, err := a.ApplyUsers(u.users)
		if err != nil { // a change TLS was not set up for: the old users stay
			userErrs = append(userErrs, fmt.Errorf("southbound %s: users: %w", u.adapter, err))
			c := *eff.Southbound[u.index].LANMQTT // not next's
			c.Users = u.old
			eff.Southbound[u.index].LANMQTT = &c
			continue
		}
		d.userLog = append(d.userLog, prefixed(u.adapter+"/", added, changed, removed)...)
		for _, dev := range u.devices {
			touched[edgegw.DeviceID(dev)] = true
		}
	}
	for _, name := range slices.Concat(d.adapters.added, d.adapters.removed) {
		for _, dev := range d.lanDevices[name] {
			touched[edgegw.DeviceID(dev)] = true
		}
	}
	for id := range touched {
		on := lv.down.relayer(id) == nil // a relayed identity listens while its device does
		lv.pool.SetListening(id, edgegw.Method, on)
		lv.pool.SetListening(id, edgegw.C2D, on)
	}
	removeIdentities(ctx, lv.pool, d.identities.removed)

	adapters := make([]namedAdapter, 0, len(eff.Southbound))
	for _, s := range eff.Southbound {
		if ra := lv.running[s.Name]; ra != nil {
			adapters = append(adapters, ra.namedAdapter)
		}
	}
	g.mu.Lock()
	g.cfg, g.adapters = *eff, adapters
	g.mu.Unlock()

	if len(d.restart) > 0 || len(userErrs) > 0 {
		args := []any{"settings", d.restart}
		if len(userErrs) > 0 {
			args = append(args, "err", errors.Join(userErrs...))
		}
		g.log.Warn("config reload: changes that need a restart were not applied", args...)
	}
	g.log.Info("config reloaded", d.summary()...)
	return nil
}

// removeIdentities removes ids from the pool together: each lets its
// in-flight messages land, at most the hub's acknowledgement timeout.
func removeIdentities(ctx context.Context, pool *northbound.Pool, ids []string) {
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { pool.Remove(ctx, edgegw.DeviceID(id)) })
	}
	wg.Wait()
}

// watchListening is the callback that lets an identity whose device is
// relayed listen for commands at the hub only while the device does.
func (g *Gateway) watchListening(lv *live) func(edgegw.DeviceID, edgegw.CommandKind, bool) {
	return func(id edgegw.DeviceID, kind edgegw.CommandKind, on bool) {
		if lv.down.relayer(id) != nil {
			lv.pool.SetListening(id, kind, on)
		}
	}
}

// newAdapter builds the adapter s configures. It does no I/O.
func newAdapter(s SouthboundConfig, log *slog.Logger) (southbound.Adapter, error) {
	switch {
	case s.LANMQTT != nil:
		return lanmqtt.New(s.Name, *s.LANMQTT, log)
	case s.Modbus != nil:
		return modbus.New(s.Name, *s.Modbus, log)
	case s.OPCUA != nil:
		return opcua.New(s.Name, *s.OPCUA, log)
	case s.Serial != nil:
		return serial.New(s.Name, *s.Serial, log)
	case s.Simulator != nil:
		return simulator.New(s.Name, *s.Simulator, log)
	}
	return nil, errors.New("no adapter kind set")
}

// sameValue reports whether two config values are the same.
func sameValue(a, b any) bool { return reflect.DeepEqual(a, b) }
