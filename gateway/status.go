package gateway

import (
	"context"
	"maps"
	"strconv"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/northbound"
	"github.com/edgegw/edgegw/ops"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
	"github.com/edgegw/edgegw/southbound/modbus"
	"github.com/edgegw/edgegw/southbound/opcua"
	"github.com/edgegw/edgegw/southbound/serial"
	"github.com/edgegw/edgegw/southbound/simulator"
)

// StatusConfig is the status listener's section (status:): the page at /,
// GET /status, /metrics, /healthz, /readyz and, if enabled, pprof.
type StatusConfig = ops.Config

// Status returns a snapshot of every room's state for operations, in the
// documented schema of GET /status, with its readiness. It is valid once
// Ready is closed.
func (g *Gateway) Status() ops.Status {
	st := g.snapshot()
	g.mu.Lock()
	stallAfter := g.cfg.Status.StallAfter // a reload rewrites g.cfg (the status section stays)
	g.mu.Unlock()
	select {
	case <-g.ready:
		st.Ready = ops.Evaluate(&st, stallAfter)
	default:
		st.Ready = ops.Readiness{Reasons: []ops.Reason{{Kind: ops.NotStarted, Detail: "the gateway is starting"}}}
	}
	return st
}

// snapshot collects the rooms' counters into the status schema, without
// the readiness.
func (g *Gateway) snapshot() ops.Status {
	g.mu.Lock()
	pool, q, start, adapters := g.pool, g.queue, g.start, g.adapters
	g.mu.Unlock()
	now := time.Now().UTC()
	st := ops.Status{Time: now, StartTime: start, UptimeSeconds: now.Sub(start).Seconds(),
		Identities: []ops.Identity{}, Adapters: []ops.Adapter{}, Commands: g.commands.Snapshot()}
	if start.IsZero() {
		st.UptimeSeconds = 0
	}
	streams := map[string]*buffer.StreamStats{}
	if q != nil {
		bs := q.Stats()
		st.Buffer = bufferStatus(&bs)
		for i := range bs.Streams {
			streams[bs.Streams[i].Stream] = &bs.Streams[i]
		}
	}
	if pool != nil {
		for _, s := range pool.Status() {
			st.Identities = append(st.Identities, identityStatus(&s, streams[string(s.Identity)], now))
		}
	}
	for _, a := range adapters {
		st.Adapters = append(st.Adapters, adapterStatus(a.name, a.Adapter))
	}
	return st
}

// timePtr is &t, or nil for the zero time: absent, not 0001-01-01.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// The closed sets of reasons an identity's counters are kept by: each is
// listed from the start, at 0, so that a scraper's increase() sees the
// first reconnect or drop of a reason.
var (
	reconnectReasons = []string{northbound.ReconnectLost, northbound.ReconnectAckTimeout,
		northbound.ReconnectRenewal, northbound.ReconnectRedelivery, northbound.ReconnectOther}
	dropReasons = []string{buffer.DropExpired, buffer.DropAlarmExpired, buffer.DropFull, buffer.DropAlarmFull}
)

// withZeros returns a copy of counts with every key of keys, 0 when absent.
func withZeros(counts map[string]uint64, keys []string) map[string]uint64 {
	out := make(map[string]uint64, len(keys))
	for _, k := range keys {
		out[k] = 0
	}
	maps.Copy(out, counts)
	return out
}

func identityStatus(s *northbound.Status, ss *buffer.StreamStats, now time.Time) ops.Identity {
	id := ops.Identity{
		ID:                 string(s.Identity),
		Hub:                s.Hub,
		DeviceID:           s.DeviceID,
		Connected:          s.Connected,
		ConnectedSince:     timePtr(s.ConnectedSince),
		InFlight:           s.InFlight,
		LastAck:            timePtr(s.LastPUBACK),
		Sent:               s.Sent,
		Resent:             s.Resent,
		Acknowledged:       s.Acknowledged,
		Undeliverable:      s.Dropped,
		CommandsReceived:   s.Commands,
		CommandsThrottled:  s.Throttled,
		Reconnects:         s.Reconnects,
		ReconnectsByReason: withZeros(s.ReconnectsBy, reconnectReasons),
		BufferDrops:        withZeros(nil, dropReasons),
		TokenRenewals:      s.Renewals,
		TokenExpiry:        timePtr(s.TokenExpiry),
	}
	if s.LastError != "" {
		id.LastError = &ops.LastError{Message: s.LastError, Time: s.LastErrorTime.UTC(), Cleared: timePtr(s.LastErrorCleared)}
	}
	if ss != nil {
		id.Queued, id.QueuedBytes, id.BufferDrops = ss.Depth, ss.Bytes, withZeros(ss.Drops, dropReasons)
		if ss.Depth > 0 && !ss.Oldest.IsZero() {
			id.OldestQueued = timePtr(ss.Oldest)
			age := max(0, now.Sub(ss.Oldest).Seconds())
			id.OldestAgeSeconds = &age
		}
	}
	return id
}

func bufferStatus(b *buffer.Stats) ops.Buffer {
	out := ops.Buffer{Records: b.Records, StoredBytes: b.Bytes, MaxBytes: b.MaxBytes, DiskFull: b.DiskFull,
		Appended: b.Appended, Commits: b.Commits, AppendCommits: b.AppendCommits, AppendErrors: b.AppendErrors, Drops: b.Drops, Compactions: b.Compactions}
	if b.DiskBytes >= 0 {
		out.DiskUsageBytes = &b.DiskBytes
	}
	if b.DiskFree >= 0 {
		out.DiskFreeBytes = &b.DiskFree
	}
	return out
}

// adapterStatus returns the counters of an adapter of a kind the gateway
// knows; another kind is listed by name, as kind "other", without counters.
func adapterStatus(name string, a any) ops.Adapter {
	out := ops.Adapter{Name: name, Kind: "other"}
	switch a := a.(type) {
	case *lanmqtt.Adapter:
		s := a.Stats()
		out.Kind = "lanmqtt"
		out.LAN = &ops.LAN{Clients: s.Clients, Connects: s.Connects, AuthFailures: s.AuthFailures, ACLDenials: s.ACLDenied,
			PublishesReceived: s.Received, PublishesStored: s.Stored,
			PublishesRefused: map[string]uint64{"too_large": s.RejectedTooLarge, "bad_property_bag": s.RejectedBadBag,
				"unroutable": s.RejectedUnroutable, "not_stored": s.Failed},
			ClosedOnRefusal: s.RefusedClosed, ConnectionErrors: s.ConnErrors, SubscriberDrops: s.Dropped, CommandsPublished: s.Published}
	case *modbus.Adapter:
		out.Kind = "modbus"
		out.Modbus = modbusStatus(a.Stats())
	case *opcua.Adapter:
		out.Kind = "opcua"
		out.OPCUA = opcuaStatus(a.Stats())
	case *serial.Adapter:
		s := a.Stats()
		out.Kind = "serial"
		out.Serial = &ops.Serial{Open: s.Open, Lines: s.Lines, Garbage: s.Garbage, Overlong: s.Overlong, Readings: s.Readings,
			BadValues: s.BadValues, Refused: s.Failed, Reopens: s.Reopens, OpenFailures: s.OpenFails, Writes: s.Writes}
	case *simulator.Simulator:
		s := a.Stats()
		out.Kind = "simulator"
		out.Simulator = &ops.Simulator{Readings: s.Submitted, Refused: s.Failed}
	}
	return out
}

var modbusBounds = func() []float64 {
	out := make([]float64, len(modbus.LatencyBounds))
	for i, b := range modbus.LatencyBounds {
		out[i] = b.Seconds()
	}
	return out
}()

func modbusStatus(s modbus.Stats) *ops.Modbus {
	out := &ops.Modbus{Bus: s.Bus, Connected: s.Connected, Connects: s.Connects, ConnectErrors: s.ConnectErrs,
		Disconnects: s.Disconnects, Devices: make([]ops.ModbusDevice, 0, len(s.Devices))}
	for _, d := range s.Devices {
		e := d.Errors
		md := ops.ModbusDevice{Name: d.Name, Unit: d.Unit, State: d.State, Polls: d.Polls, Requests: d.Requests,
			Readings: d.Readings, SubmitErrors: d.SubmitErrors, Dropped: d.Dropped, Writes: d.Writes, WriteErrors: d.WriteErrors,
			Errors: map[string]uint64{"timeout": e.Timeout, "crc": e.CRC, "short": e.Short, "wrong_unit": e.WrongUnit,
				"protocol": e.Protocol, "link": e.Link, "verify": e.Verify, "other": e.Other},
			Exceptions:  map[string]uint64{},
			Latency:     ops.NewHistogram(modbusBounds, d.Latency.Counts[:], d.Latency.Sum.Seconds()),
			NextAttempt: timePtr(d.NextAttempt),
		}
		for code, n := range e.Exceptions {
			md.Exceptions[strconv.Itoa(int(code))] = n
		}
		if d.LastError != "" {
			md.LastError = &ops.LastError{Message: d.LastError, Time: d.LastErrorTime.UTC(), Cleared: timePtr(d.LastErrorClear)}
		}
		out.Devices = append(out.Devices, md)
	}
	return out
}

func opcuaStatus(s opcua.Stats) *ops.OPCUA {
	out := &ops.OPCUA{Endpoint: s.Endpoint, Security: s.Security, Connected: s.Connected, Connects: s.Connects,
		ConnectErrors: s.ConnectErrs, Disconnects: s.Disconnects, UntrustedCertificate: s.Untrusted,
		Devices: make([]ops.OPCUADevice, 0, len(s.Devices))}
	if s.LastError != "" {
		out.LastError = &ops.LastError{Message: s.LastError, Time: s.LastErrorTime.UTC(), Cleared: timePtr(s.LastErrorCleared)}
	}
	for _, d := range s.Devices {
		od := ops.OPCUADevice{Name: d.Name, Mode: d.Mode, Values: d.Values, Readings: d.Readings, SubmitErrors: d.SubmitErrors,
			BadValues: d.Bad, Uncertain: d.Uncertain, TypeErrors: d.TypeErrors, Duplicates: d.Duplicates, Refused: d.Refused,
			Polls: d.Polls, Writes: d.Writes, Calls: d.Calls, WriteErrors: d.WriteErrors, CallErrors: d.CallErrors}
		if od.BadValues == nil {
			od.BadValues = map[string]uint64{}
		}
		if od.Refused == nil {
			od.Refused = map[string]uint64{}
		}
		out.Devices = append(out.Devices, od)
	}
	return out
}

// serveStatus starts the status listener; the returned func stops it.
func (g *Gateway) serveStatus(ctx context.Context) (func(), error) {
	srv := ops.NewServer(g.cfg.Status, g.snapshot, g.ready, g.points, g.log.With("room", "status"))
	addr, stop, err := srv.Start(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.statusAddr = addr
	g.mu.Unlock()
	return stop, nil
}

// StatusAddr returns the status endpoint's address, or "" when it is off.
func (g *Gateway) StatusAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.statusAddr
}
