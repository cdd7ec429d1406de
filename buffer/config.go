package buffer

import (
	"errors"
	"time"

	"github.com/edgegw/edgegw"
)

// Config configures the queue. Zero fields take the defaults of
// [Config.SetDefaults].
type Config struct {
	// Dir holds the badger files. The gateway sets a default under its
	// state directory. The queue owns the directory: nothing else may
	// write there.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the stored bytes: every record counts its payload
	// plus RecordOverhead (key and header), so empty payloads are bounded
	// too. When an append would go over it, the oldest telemetry records
	// (then, if no telemetry is left, the oldest alarms) are dropped.
	// Default 1 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxAge is how long a telemetry record is kept unacknowledged
	// before it is dropped. Default 7 days.
	MaxAge time.Duration `yaml:"max_age"`
	// AlarmMaxAge is MaxAge for alarms; at least MaxAge. Default 30 days.
	AlarmMaxAge time.Duration `yaml:"alarm_max_age"`
	// MinFreeBytes is the free space the queue keeps on its filesystem:
	// below it Append fails with an error matching ErrDiskFull (and
	// syscall.ENOSPC) instead of writing. Badger writes through mmap, where
	// a full disk is a SIGBUS that kills the process, not an error, so
	// this reserve is what turns a full disk into a refused append.
	// Default 64 MiB.
	MinFreeBytes int64 `yaml:"min_free_bytes"`
	// SweepInterval is how often expired records are dropped and the
	// disk use is checked for reclamation. Default 1 minute.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// DropLogInterval is the shortest time between two log lines about
	// dropped records; drops in between are counted and summed into the
	// next line. Default 1 minute.
	DropLogInterval time.Duration `yaml:"drop_log_interval"`

	// reclaimSlack replaces the reclamation threshold's constant in tests.
	reclaimSlack int64
}

// Defaults.
const (
	DefaultMaxBytes        = 1 << 30
	DefaultMaxAge          = 7 * 24 * time.Hour
	DefaultAlarmMaxAge     = 30 * 24 * time.Hour
	DefaultMinFreeBytes    = 64 << 20
	DefaultSweepInterval   = time.Minute
	DefaultDropLogInterval = time.Minute
)

// SetDefaults fills zero fields with their defaults. Dir has no default
// here: the gateway sets it.
func (c *Config) SetDefaults() {
	edgegw.SetDefault(&c.MaxBytes, DefaultMaxBytes)
	edgegw.SetDefault(&c.MaxAge, DefaultMaxAge)
	edgegw.SetDefault(&c.AlarmMaxAge, max(DefaultAlarmMaxAge, c.MaxAge))
	edgegw.SetDefault(&c.MinFreeBytes, DefaultMinFreeBytes)
	edgegw.SetDefault(&c.SweepInterval, DefaultSweepInterval)
	edgegw.SetDefault(&c.DropLogInterval, DefaultDropLogInterval)
	edgegw.SetDefault(&c.reclaimSlack, reclaimSlack)
}

// Validate reports every invalid field, with paths relative to Config.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, edgegw.Errorf("dir", "must be set"))
	}
	if c.MaxBytes <= 0 {
		errs = append(errs, edgegw.Errorf("max_bytes", "must be > 0 (got %d)", c.MaxBytes))
	}
	if c.MaxAge <= 0 {
		errs = append(errs, edgegw.Errorf("max_age", "must be > 0 (got %v)", c.MaxAge))
	}
	if c.AlarmMaxAge < c.MaxAge {
		errs = append(errs, edgegw.Errorf("alarm_max_age", "must be >= max_age %v (got %v)", c.MaxAge, c.AlarmMaxAge))
	}
	if c.MinFreeBytes < 0 {
		errs = append(errs, edgegw.Errorf("min_free_bytes", "must be >= 0 (got %d)", c.MinFreeBytes))
	}
	if c.SweepInterval <= 0 {
		errs = append(errs, edgegw.Errorf("sweep_interval", "must be > 0 (got %v)", c.SweepInterval))
	}
	if c.DropLogInterval <= 0 {
		errs = append(errs, edgegw.Errorf("drop_log_interval", "must be > 0 (got %v)", c.DropLogInterval))
	}
	return errors.Join(errs...)
}

// maxAge returns the time to live of a record of class c.
func (c *Config) maxAge(cl class) time.Duration {
	if cl == alarm {
		return c.AlarmMaxAge
	}
	return c.MaxAge
}
