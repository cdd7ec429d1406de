package hubsim

import (
	"math"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"golang.org/x/time/rate"
)

// Faults are runtime fault-injection knobs, set with Hub.SetFaults. The zero
// value injects nothing.
type Faults struct {
	// RefuseConnect, if non-zero, refuses every CONNECT with this CONNACK
	// return code (3 = server unavailable, which SDKs retry; 5 = not
	// authorized, which they do not).
	RefuseConnect byte
	// ConnectRate limits new connections per second hub-wide (like IoT Hub's
	// connection throttle); excess CONNECTs get CONNACK 3. 0 = unlimited.
	ConnectRate float64
	// PubackDelay delays the PUBACK of every telemetry message.
	PubackDelay time.Duration
	// WithholdPuback drops telemetry without recording or acknowledging it
	// (the device times out and resends).
	WithholdPuback bool
	// Stall stops the hub from processing anything devices send (CONNECT
	// included) until cleared: connections stay open but go silent.
	Stall bool
}

type faultState struct {
	f       Faults
	limiter *rate.Limiter
	stalled chan struct{} // closed when Stall is cleared
}

// SetFaults replaces the fault-injection knobs.
func (h *Hub) SetFaults(f Faults) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	old := h.faults
	h.faults.f = f
	h.faults.limiter = nil
	if f.ConnectRate > 0 {
		burst := int(math.Ceil(f.ConnectRate))
		h.faults.limiter = rate.NewLimiter(rate.Limit(f.ConnectRate), burst)
	}
	switch {
	case f.Stall && !old.f.Stall:
		h.faults.stalled = make(chan struct{})
	case !f.Stall && old.f.Stall:
		close(old.stalled)
		h.faults.stalled = nil
	default:
		h.faults.stalled = old.stalled
	}
}

// Faults returns the current fault-injection knobs.
func (h *Hub) Faults() Faults {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.faults.f
}

// DropConnections closes every device connection without a DISCONNECT, as a
// hub failover would, and returns how many it closed. Persistent sessions
// survive.
func (h *Hub) DropConnections() int {
	h.mu.Lock()
	cs := make([]*conn, 0, len(h.conns))
	for _, c := range h.conns {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.kick()
	}
	return len(cs)
}

// Disconnect closes the connection of one device (module "") or module and
// reports whether it was connected.
func (h *Hub) Disconnect(deviceID, moduleID string) bool {
	h.mu.Lock()
	var c *conn
	if id, ok := h.idents[identityKey(deviceID, moduleID)]; ok {
		c = id.conn
	}
	h.mu.Unlock()
	if c == nil {
		return false
	}
	c.kick()
	return true
}

// connectFault returns the CONNACK code to refuse a new connection with, or 0.
func (h *Hub) connectFault() byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.faults.f.RefuseConnect != 0 {
		return h.faults.f.RefuseConnect
	}
	if l := h.faults.limiter; l != nil && !l.Allow() {
		return 3
	}
	return 0
}

// stallWait blocks while the hub is stalled, until the stall is cleared,
// the client is closed or the hub closes.
func (h *Hub) stallWait(cl *mqtt.Client) {
	h.mu.Lock()
	ch := h.faults.stalled
	h.mu.Unlock()
	if ch == nil {
		return
	}
	var done <-chan struct{}
	if h.ctx != nil {
		done = h.ctx.Done()
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ch:
			return
		case <-done:
			return
		case <-t.C:
			if cl.Closed() {
				return
			}
		}
	}
}

// pubackFault applies BeforePuback and the PUBACK knobs to a telemetry
// message and reports whether to record and acknowledge it.
func (h *Hub) pubackFault(m Telemetry) bool {
	h.mu.Lock()
	f := h.faults.f
	h.mu.Unlock()
	if f.WithholdPuback {
		return false
	}
	if f.PubackDelay > 0 {
		t := time.NewTimer(f.PubackDelay)
		select {
		case <-t.C:
		case <-h.ctx.Done():
			t.Stop()
			return false
		}
	}
	if h.BeforePuback != nil {
		return h.BeforePuback(m)
	}
	return true
}
