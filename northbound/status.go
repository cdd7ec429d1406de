package northbound

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/edgegw/edgegw"
	"golang.org/x/time/rate"
)

// Status is one identity's connection state, for operations.
type Status struct {
	Identity       edgegw.DeviceID
	Hub            string // the hub connected to: the configured one, or the one DPS assigned ("" until known)
	DeviceID       string // the device id at that hub (DPS may assign another than Identity)
	Connected      bool
	ConnectedSince time.Time // zero when not connected
	LastPUBACK     time.Time // last acknowledgement from the hub
	InFlight       int       // sent, not yet acknowledged
	Acked          uint64    // highest stream sequence acked to the buffer
	Sent           uint64    // messages published (including re-sends)
	Resent         uint64    // of Sent, messages published again after a reconnect
	Acknowledged   uint64    // messages the hub acknowledged (or, for twin patches, answered)
	Dropped        uint64    // undecodable or oversized messages skipped
	Commands       uint64    // commands handed to the downlink
	Throttled      uint64    // commands turned away: every command slot was taken (method calls answered 429)
	Reconnects     uint64    // connections after the first (incl. renewals)
	// ReconnectsBy counts Reconnects by why the connection before ended:
	// one of the Reconnect* reasons. Nil until the first reconnect.
	ReconnectsBy  map[string]uint64
	Renewals      uint64    // planned reconnects for a new SAS token
	TokenExpiry   time.Time // expiry of the current SAS token
	LastError     string    // "" until something failed
	LastErrorTime time.Time
	// LastErrorCleared is when a connection succeeded after LastError;
	// zero while the error stands.
	LastErrorCleared time.Time
}

// Reasons a connection ended, for Status.ReconnectsBy. The set is closed,
// so a label of these values stays small.
const (
	ReconnectRenewal    = "token_renewal"   // planned: a new SAS token
	ReconnectRedelivery = "c2d_redelivery"  // planned: a C2D message is to come again
	ReconnectAckTimeout = "ack_timeout"     // the hub stopped acknowledging
	ReconnectLost       = "connection_lost" // the connection broke or the hub closed it
	ReconnectOther      = "other"           // anything else (a failed subscribe, a refused token)
)

// endReason names why a session ended, one of the Reconnect* reasons.
func endReason(err error) string {
	switch {
	case errors.Is(err, errRenew):
		return ReconnectRenewal
	case errors.Is(err, errRedeliver):
		return ReconnectRedelivery
	case errors.Is(err, errAckTimeout):
		return ReconnectAckTimeout
	case errors.Is(err, errLost):
		return ReconnectLost
	}
	return ReconnectOther
}

// state is the mutable Status of one identity.
type state struct {
	mu sync.Mutex
	s  Status
}

func (st *state) update(f func(s *Status)) {
	st.mu.Lock()
	f(&st.s)
	st.mu.Unlock()
}

func (st *state) get() Status {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.s
	s.ReconnectsBy = maps.Clone(s.ReconnectsBy)
	return s
}

// Status returns every identity's state, in configuration order.
func (p *Pool) Status() []Status {
	p.mu.Lock()
	links := slices.Clone(p.links)
	p.mu.Unlock()
	out := make([]Status, len(links))
	for i, l := range links {
		out[i] = l.st.get()
	}
	return out
}

// floodLog turns a flood of warnings (thousands of identities failing
// together during a hub outage) into at most one line per interval, with
// the number of lines left out.
type floodLog struct {
	log        *slog.Logger
	lim        *rate.Limiter
	mu         sync.Mutex
	suppressed int
}

func newFloodLog(log *slog.Logger, every time.Duration, burst int) *floodLog {
	return &floodLog{log: log, lim: rate.NewLimiter(rate.Every(every), burst)}
}

func (f *floodLog) warn(msg string, args ...any) { f.emit(slog.LevelWarn, msg, args...) }

func (f *floodLog) info(msg string, args ...any) { f.emit(slog.LevelInfo, msg, args...) }

func (f *floodLog) emit(level slog.Level, msg string, args ...any) {
	f.mu.Lock()
	if !f.lim.Allow() {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	n := f.suppressed
	f.suppressed = 0
	f.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	f.log.Log(context.Background(), level, msg, args...)
}
