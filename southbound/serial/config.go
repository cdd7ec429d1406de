package serial

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound/tty"
)

// Config configures one serial port and the devices whose lines arrive on it.
type Config struct {
	// Device is the port's path, e.g. /dev/ttyUSB0 or a /dev/serial/by-id link.
	Device string `yaml:"device"`
	// Required makes a missing or inaccessible Device a config error
	// (edgegw check, and run at start, exit 2). Without it the gateway
	// starts anyway and opens the port when it appears, as for a USB
	// adapter plugged in later.
	Required bool   `yaml:"required"`
	Baud     int    `yaml:"baud"`      // default 9600
	Parity   string `yaml:"parity"`    // none (default), even, odd
	DataBits int    `yaml:"data_bits"` // 5..8, default 8
	StopBits int    `yaml:"stop_bits"` // 1 (default) or 2
	// Delimiter ends each incoming line (default "\n"). With "\n", a
	// trailing "\r" is removed from the line too.
	Delimiter string `yaml:"delimiter"`
	// Terminator is appended to every frame sent (SendFrame), default
	// "\r\n", unless the frame already ends with it: a frame is never
	// terminated twice.
	Terminator string `yaml:"terminator"`
	// MaxLine is the longest line accepted, in bytes without the delimiter
	// (default 1024). Longer lines are counted as garbage and skipped up to
	// the next delimiter.
	MaxLine int `yaml:"max_line"`
	// Poll, when set, is written as is (include its terminator, e.g.
	// "READ?\r\n") every PollInterval while the port is open.
	Poll         string        `yaml:"poll"`
	PollInterval time.Duration `yaml:"poll_interval"` // default 1s
	// WriteTimeout bounds one write (default 2s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// ReopenMax caps the back-off between attempts to reopen a port that
	// is missing or failed (default 30s; attempts start at 100ms).
	ReopenMax time.Duration `yaml:"reopen_max"`
	// Devices parse the lines. Each line goes to the first device whose
	// pattern matches; a line no pattern matches is counted as garbage.
	Devices []Device `yaml:"devices"`
}

// Device is one logical device on the port: a regular expression whose
// named groups become points.
type Device struct {
	Name    string  `yaml:"name"`
	Pattern string  `yaml:"pattern"` // e.g. 'T=(?P<temp>-?\d+\.\d+)'
	Points  []Point `yaml:"points"`
}

// Point is one named group of the pattern.
type Point struct {
	Name string `yaml:"name"` // the group's name
	Kind string `yaml:"kind"` // float (default), int, uint, bool, string
	Unit string `yaml:"unit"`
}

// Defaults.
const (
	DefaultBaud         = 9600
	DefaultDelimiter    = "\n"
	DefaultTerminator   = "\r\n"
	DefaultMaxLine      = 1024
	DefaultPollInterval = time.Second
	DefaultWriteTimeout = 2 * time.Second
	DefaultReopenMax    = 30 * time.Second
)

var kinds = map[string]edgegw.Kind{
	"float": edgegw.KindFloat, "int": edgegw.KindInt, "uint": edgegw.KindUint,
	"bool": edgegw.KindBool, "string": edgegw.KindString,
}

// parities maps the spelling of parity in this config to tty's.
var parities = map[string]tty.Parity{"none": tty.ParityNone, "even": tty.ParityEven, "odd": tty.ParityOdd}

// settings is the serial line of c for tty.Open.
func (c *Config) settings() tty.Settings {
	return tty.Settings{Device: c.Device, Baud: c.Baud, Parity: parities[c.Parity],
		DataBits: c.DataBits, StopBits: c.StopBits}
}

// SetDefaults fills zero fields with defaults.
func (c *Config) SetDefaults() {
	edgegw.SetDefault(&c.Baud, DefaultBaud)
	edgegw.SetDefault(&c.Parity, "none")
	edgegw.SetDefault(&c.DataBits, 8)
	edgegw.SetDefault(&c.StopBits, 1)
	edgegw.SetDefault(&c.Delimiter, DefaultDelimiter)
	edgegw.SetDefault(&c.Terminator, DefaultTerminator)
	edgegw.SetDefault(&c.MaxLine, DefaultMaxLine)
	edgegw.SetDefault(&c.PollInterval, DefaultPollInterval)
	edgegw.SetDefault(&c.WriteTimeout, DefaultWriteTimeout)
	edgegw.SetDefault(&c.ReopenMax, DefaultReopenMax)
	for i := range c.Devices {
		for j := range c.Devices[i].Points {
			if c.Devices[i].Points[j].Kind == "" {
				c.Devices[i].Points[j].Kind = "float"
			}
		}
	}
}

// Validate checks c after SetDefaults.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, edgegw.Errorf(path, format, args...)) }
	line := c.settings()
	if _, ok := parities[c.Parity]; !ok {
		add("parity", "must be none, even or odd (got %q)", c.Parity)
		line.Parity = tty.ParityNone // reported above, in the spelling of this config
	}
	errs = append(errs, line.Validate())
	if len(c.Delimiter) > 8 {
		add("delimiter", "must be at most 8 bytes (got %d)", len(c.Delimiter))
	}
	if c.MaxLine < 1 || c.MaxLine > 1<<20 {
		add("max_line", "must be 1..1048576 (got %d)", c.MaxLine)
	}
	if c.PollInterval < 10*time.Millisecond {
		add("poll_interval", "must be >= 10ms (got %s)", c.PollInterval)
	}
	if c.WriteTimeout <= 0 {
		add("write_timeout", "must be > 0 (got %s)", c.WriteTimeout)
	}
	if c.ReopenMax < 100*time.Millisecond {
		add("reopen_max", "must be >= 100ms (got %s)", c.ReopenMax)
	}
	if len(c.Devices) == 0 {
		add("devices", "must list at least one device")
	}
	names := edgegw.NewNames("devices")
	for i, d := range c.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		if err := names.Check(p+".name", i, d.Name); err != nil {
			errs = append(errs, err)
		}
		re, err := regexp.Compile(d.Pattern)
		if d.Pattern == "" || err != nil {
			add(p+".pattern", "must be a regular expression with named groups (got %q: %v)", d.Pattern, err)
			continue
		}
		groups := map[string]bool{}
		for _, g := range re.SubexpNames() {
			if g != "" {
				groups[g] = true
			}
		}
		if len(d.Points) == 0 {
			add(p+".points", "must list at least one point")
		}
		seen := map[string]bool{}
		for j, pt := range d.Points {
			pp := fmt.Sprintf("%s.points[%d]", p, j)
			if !groups[pt.Name] {
				add(pp+".name", "must name a group (?P<name>...) of the pattern (got %q)", pt.Name)
			}
			if seen[pt.Name] {
				add(pp+".name", "duplicate point %q", pt.Name)
			}
			seen[pt.Name] = true
			if _, ok := kinds[pt.Kind]; !ok {
				add(pp+".kind", "must be float, int, uint, bool or string (got %q)", pt.Kind)
			}
		}
		for g := range groups {
			if !seen[g] {
				add(p+".points", "group %q of the pattern has no point", g)
			}
		}
	}
	return errors.Join(errs...)
}

// Points describes every configured point; none is writable (SendFrame
// sends commands as text instead).
func (c *Config) Points(adapter string) []edgegw.PointInfo {
	var out []edgegw.PointInfo
	for _, d := range c.Devices {
		for _, p := range d.Points {
			k, ok := kinds[p.Kind]
			if !ok {
				k = edgegw.KindFloat
			}
			out = append(out, edgegw.PointInfo{Adapter: adapter, Device: d.Name, Point: p.Name, Kind: k})
		}
	}
	return out
}

// CheckFiles checks that a Required port exists and may be opened; see
// tty.Check. Paths are relative to this config.
func (c *Config) CheckFiles() error {
	if !c.Required {
		return nil
	}
	if err := tty.Check(c.Device); err != nil {
		return edgegw.Errorf("device", "%v", err)
	}
	return nil
}
