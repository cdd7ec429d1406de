package gateway

import (
	"errors"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/edgegw/edgegw"
)

// DefaultGCPercent is the garbage collector's target the gateway runs
// with: a collection starts when the heap has grown by half of what is
// live. Go's own default, 100, lets the heap reach twice what is live;
// the gateway's memory is mostly long-lived connection state (one TLS
// connection per identity), so that headroom is RAM a small device does
// not have. Measured on a 2-core VM: 10,000 TLS identities hold 22-27 KiB
// of resident memory each at 50 against 26-44 KiB at 100
// (northbound.BenchmarkConnect, several runs); the whole up road
// (BenchmarkEndToEnd) kept 0.17-0.18 of the direct-to-hub rate at 50
// against 0.18-0.20 at 100, a difference of the order of the run-to-run
// noise.
const DefaultGCPercent = 50

// MemoryConfig tunes how the Go runtime uses memory.
type MemoryConfig struct {
	// GCPercent is how much the heap may grow, in percent of live memory,
	// before the next collection: lower uses less memory and more CPU.
	// 0 takes DefaultGCPercent, unless the environment sets GOGC.
	GCPercent int `yaml:"gc_percent"`
	// LimitBytes is a soft limit on the memory the process uses: near it
	// the collector runs as often as needed to stay under it (it does not
	// fail allocations). Set it below the device's RAM when other
	// processes share the device. 0 means no limit, unless the environment
	// sets GOMEMLIMIT.
	//
	// It also caps the peaks of a backlog building up: the queue's
	// compactions need tens of MB of heap for moments. With 400k messages
	// of 200 bytes arriving from 100 LAN devices while the hub was
	// unreachable, the high-water mark was 142-173 MB without a limit,
	// 112-124 MB with 80 MiB (for 0-35% more CPU per message while the
	// backlog built, 4 runs) and 96-104 MB with 64 MiB (about 30% more, 2
	// runs). The gateway sets no limit by default because the heap of its
	// connected identities (22-27 KiB each) must fit well under it.
	LimitBytes int64 `yaml:"limit_bytes"`
}

// Validate checks the ranges.
func (c *MemoryConfig) Validate() error {
	var errs []error
	if c.GCPercent != 0 && (c.GCPercent < 10 || c.GCPercent > 1000) {
		errs = append(errs, edgegw.Errorf("gc_percent", "must be 10-1000, or 0 for the default (got %d)", c.GCPercent))
	}
	if c.LimitBytes != 0 && c.LimitBytes < 32<<20 {
		errs = append(errs, edgegw.Errorf("limit_bytes", "must be at least 33554432 (32 MiB), or 0 for none (got %d)", c.LimitBytes))
	}
	return errors.Join(errs...)
}

// Apply sets the process-wide garbage collector target and memory limit.
// An explicit setting wins over the environment (GOGC, GOMEMLIMIT), the
// environment over the defaults.
func (c *MemoryConfig) Apply(log *slog.Logger) {
	pct, from := c.GCPercent, "config"
	if pct == 0 {
		pct, from = DefaultGCPercent, "default"
		if v, set := os.LookupEnv("GOGC"); set {
			pct, from = 0, "GOGC="+v
		}
	}
	if pct != 0 {
		debug.SetGCPercent(pct)
	}
	if c.LimitBytes > 0 {
		debug.SetMemoryLimit(c.LimitBytes)
	}
	if log != nil {
		log.Debug("memory settings", "gc_percent", pct, "from", from, "limit_bytes", debug.SetMemoryLimit(-1))
	}
}
