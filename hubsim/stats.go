package hubsim

import "sync/atomic"

// Stats are counters since Start. Per-event logs are at Debug level; these
// counters are how to see floods (a device retrying a bad key, say).
type Stats struct {
	Connected        int    // connections open now
	Connects         uint64 // accepted CONNECTs
	ConnectsRefused  uint64 // CONNACK != 0 (auth failures and injected faults)
	ProtocolClosures uint64 // connections closed for protocol violations
	Telemetry        uint64 // telemetry messages recorded
	TelemetryDropped uint64 // telemetry not acknowledged (faults, BeforePuback)
	TwinRequests     uint64 // twin GET/PATCH requests answered
	MethodCalls      uint64 // direct methods written to devices
	C2DCompleted     uint64 // C2D messages acknowledged by devices
}

type counters struct {
	connects, refused, closures, telemetry, dropped, twin, methods, c2dDone atomic.Uint64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n := len(h.conns)
	h.mu.Unlock()
	c := &h.stats
	return Stats{
		Connected: n, Connects: c.connects.Load(), ConnectsRefused: c.refused.Load(),
		ProtocolClosures: c.closures.Load(), Telemetry: c.telemetry.Load(), TelemetryDropped: c.dropped.Load(),
		TwinRequests: c.twin.Load(), MethodCalls: c.methods.Load(), C2DCompleted: c.c2dDone.Load(),
	}
}
