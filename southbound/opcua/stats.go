package opcua

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/gopcua/opcua/ua"
)

// Stats is a snapshot of an adapter's counters.
type Stats struct {
	Endpoint    string
	Security    string // "Basic256Sha256/SignAndEncrypt"
	Connected   bool
	Connects    uint64 // sessions opened
	ConnectErrs uint64 // failed attempts
	Disconnects uint64 // sessions lost
	// Untrusted is the thumbprint of the last server certificate refused
	// because it is not in the trust list.
	Untrusted     string
	LastError     string
	LastErrorTime time.Time
	// LastErrorCleared is when a session opened after LastError (zero
	// while the error stands).
	LastErrorCleared time.Time
	Devices          []DeviceStats
}

// DeviceStats are the counters of one device.
type DeviceStats struct {
	Name string
	Mode string // subscribe or poll
	// Values counts point values passed up; Readings the readings stored
	// by the uplink, SubmitErrors those it refused.
	Values, Readings, SubmitErrors uint64
	// Bad counts values left out for a Bad status, by status name
	// ("BadSensorFailure").
	Bad map[string]uint64
	// Uncertain counts values passed up with an Uncertain status.
	Uncertain uint64
	// TypeErrors counts values of another type than configured (left out).
	TypeErrors uint64
	// Duplicates counts values sent again by the server with a source
	// timestamp already passed up (after a new subscription), left out.
	Duplicates uint64
	// Refused counts monitored items or reads the server refused, by
	// status name.
	Refused map[string]uint64
	Polls   uint64
	Writes  uint64
	Calls   uint64
	// WriteErrors and CallErrors count failed writes and method calls.
	WriteErrors, CallErrors uint64
}

// stats is the live, locked counterpart of Stats.
type stats struct {
	mu sync.Mutex
	s  Stats
}

func (st *stats) update(f func(s *Stats)) {
	st.mu.Lock()
	f(&st.s)
	st.mu.Unlock()
}

func (st *stats) device(i int, f func(d *DeviceStats)) {
	st.mu.Lock()
	f(&st.s.Devices[i])
	st.mu.Unlock()
}

func (st *stats) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.s
	s.Devices = append([]DeviceStats(nil), s.Devices...)
	for i := range s.Devices {
		s.Devices[i].Bad = maps.Clone(s.Devices[i].Bad)
		s.Devices[i].Refused = maps.Clone(s.Devices[i].Refused)
	}
	return s
}

// statusName is the short name of a status code ("BadSensorFailure"), or
// its hex value when unknown.
func statusName(c ua.StatusCode) string {
	if d, ok := ua.StatusCodes[c]; ok {
		return strings.TrimPrefix(d.Name, "Status")
	}
	if d, ok := ua.StatusCodes[c&0xFFFF0000]; ok { // with info bits
		return strings.TrimPrefix(d.Name, "Status")
	}
	return fmt.Sprintf("0x%08X", uint32(c))
}

// isBad and isUncertain read the severity bits of a status code.
func isBad(c ua.StatusCode) bool       { return c&0xC0000000 == 0x80000000 || c&0xC0000000 == 0xC0000000 }
func isUncertain(c ua.StatusCode) bool { return c&0xC0000000 == 0x40000000 }

func addCount(m *map[string]uint64, key string, n uint64) {
	if *m == nil {
		*m = map[string]uint64{}
	}
	(*m)[key] += n
}
