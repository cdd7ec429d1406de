package modbus

import (
	"maps"
	"sync"
	"time"
)

// Stats is a snapshot of an adapter's counters.
type Stats struct {
	Bus         string // "tcp host:port" or "rtu /dev/ttyX"
	Connected   bool
	Connects    uint64 // successful connects or port opens
	ConnectErrs uint64 // failed attempts
	Disconnects uint64 // connections lost or dropped after link errors
	Devices     []DeviceStats
}

// DeviceStats are the counters of one device (unit).
type DeviceStats struct {
	Name string
	Unit uint8
	// State is "unknown" (not yet polled), "up", "down" (does not answer;
	// in back-off) or "disconnected" (the bus is not connected).
	State string
	// Polls counts poll cycles that read at least one point; Requests
	// counts every request sent (reads, writes, read-backs).
	Polls, Requests uint64
	Readings        uint64 // readings handed to the uplink and stored
	SubmitErrors    uint64 // readings the uplink refused
	Dropped         uint64 // readings dropped because the uplink was behind
	Writes          uint64 // successful writes
	WriteErrors     uint64
	Errors          ErrorCounts
	Latency         Latency // round trips of answered and failed requests
	LastError       string
	LastErrorTime   time.Time
	LastErrorClear  time.Time // when the device answered again after LastError; zero while it stands
	NextAttempt     time.Time // when a device that is down is tried again
}

// LatencyBounds are the upper bounds of Latency's buckets: from a fast
// TCP device on the LAN to an RTU bus at 9600 baud near its timeout.
var LatencyBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
}

// Latency is a histogram of request round trips.
type Latency struct {
	// Counts[i] counts requests that took at most LatencyBounds[i] (and
	// more than the bound before); the last one counts the slower rest.
	Counts [len(LatencyBounds) + 1]uint64
	Sum    time.Duration // of every request counted
}

func (l *Latency) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	l.Counts[i]++
	l.Sum += d
}

// ErrorCounts counts failed requests by cause.
type ErrorCounts struct {
	Timeout    uint64
	CRC        uint64
	Short      uint64 // frames shorter than their function needs
	WrongUnit  uint64 // answers from another unit id
	Protocol   uint64 // other malformed answers
	Link       uint64 // requests lost to a broken connection or port
	Verify     uint64 // read-back after a write differed
	Other      uint64
	Exceptions map[uint8]uint64 // by exception code
}

// Total is the sum of all counters.
func (e ErrorCounts) Total() uint64 {
	n := e.Timeout + e.CRC + e.Short + e.WrongUnit + e.Protocol + e.Link + e.Verify + e.Other
	for _, v := range e.Exceptions {
		n += v
	}
	return n
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
		s.Devices[i].Errors.Exceptions = maps.Clone(s.Devices[i].Errors.Exceptions)
	}
	return s
}

// countError adds err to d's counters.
func (d *DeviceStats) countError(err error, now time.Time) {
	e := &d.Errors
	switch classify(err) {
	case kindTimeout:
		e.Timeout++
	case kindException:
		if e.Exceptions == nil {
			e.Exceptions = map[uint8]uint64{}
		}
		e.Exceptions[exceptionCode(err)]++
	case kindCRC:
		e.CRC++
	case kindShort:
		e.Short++
	case kindWrongUnit:
		e.WrongUnit++
	case kindProtocol:
		e.Protocol++
	case kindLink:
		e.Link++
	case kindVerify:
		e.Verify++
	default:
		e.Other++
	}
	d.LastError = err.Error()
	d.LastErrorTime = now
	d.LastErrorClear = time.Time{}
}
