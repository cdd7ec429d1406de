package ops

import (
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/edgegw/edgegw"
)

// Config is the status listener's section of the gateway config.
type Config struct {
	// Listen is the listener's host:port, e.g. 127.0.0.1:9470; empty
	// turns the listener off.
	Listen string `yaml:"listen"`
	// AllowRemote says that binding beyond loopback is meant: the page
	// and /status show device values and have no authentication. Without
	// it, a listener on another address starts with a warning.
	AllowRemote bool `yaml:"allow_remote"`
	// Pprof serves Go's profiler under /debug/pprof/. Off by default.
	Pprof bool `yaml:"pprof"`
	// StallAfter is how long an identity with messages waiting may go
	// without an acknowledgement from the hub before /readyz fails.
	// Default 2m.
	StallAfter time.Duration `yaml:"stall_after"`
	// PlotResolution is the spacing of the samples the page plots over the
	// last hour: one sample per point per step, the newest value of the
	// step. A finer step keeps more samples per point and so tracks fewer
	// points (see MaxSamples). Default 10s; 1s to 1m.
	PlotResolution time.Duration `yaml:"plot_resolution"`
}

// Defaults.
const (
	DefaultStallAfter     = 2 * time.Minute
	DefaultPlotResolution = 10 * time.Second
	// PlotWindow is how far back the page's plots reach.
	PlotWindow = time.Hour
	// MaxSamples bounds the samples kept for all points together (16
	// bytes each): 360,000 samples are 1,000 points at the default
	// resolution, 6.1 MiB with their names (BenchmarkPointsFull).
	MaxSamples = 360_000
)

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	edgegw.SetDefault(&c.StallAfter, DefaultStallAfter)
	edgegw.SetDefault(&c.PlotResolution, DefaultPlotResolution)
}

// Validate checks c after SetDefaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, edgegw.Errorf("listen", "must be host:port (got %q)", c.Listen))
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			errs = append(errs, edgegw.Errorf("listen", "port must be a number from 0 to 65535 (got %q)", port))
		}
	}
	if c.StallAfter <= 0 {
		errs = append(errs, edgegw.Errorf("stall_after", "must be > 0 (got %v)", c.StallAfter))
	}
	if c.PlotResolution < time.Second || c.PlotResolution > time.Minute {
		errs = append(errs, edgegw.Errorf("plot_resolution", "must be between 1s and 1m (got %v)", c.PlotResolution))
	}
	return errors.Join(errs...)
}

// maxPoints is how many points fit MaxSamples at resolution res.
func maxPoints(res time.Duration) int {
	return MaxSamples / samplesPerPoint(res)
}

func samplesPerPoint(res time.Duration) int {
	return int(PlotWindow / res)
}
