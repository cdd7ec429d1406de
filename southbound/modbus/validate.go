package modbus

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound/tty"
)

// Validate checks the config after SetDefaults. Error paths are relative to
// the `modbus:` block, e.g. "devices[1].points[0].address".
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	switch {
	case c.TCP == "" && c.RTU == nil:
		add("", "one of tcp or rtu must be set")
	case c.TCP != "" && c.RTU != nil:
		add("", "only one of tcp or rtu may be set (got both)")
	case c.TCP != "":
		if host, port, err := net.SplitHostPort(c.TCP); err != nil {
			add("tcp", "must be host:port (got %q)", c.TCP)
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			add("tcp", "must be host:port with a port 1-65535 (got %q)", c.TCP)
		}
	default:
		errs = append(errs, edgegw.PrefixErrors("rtu", c.RTU.validate()))
	}
	if c.Timeout <= 0 {
		add("timeout", "must be > 0 (got %s)", c.Timeout)
	}
	if c.BackoffMax <= 0 {
		add("backoff_max", "must be > 0 (got %s)", c.BackoffMax)
	}
	if len(c.Devices) == 0 {
		add("devices", "at least one device is required")
	}
	names := map[string]bool{}
	for i := range c.Devices {
		d := &c.Devices[i]
		path := fmt.Sprintf("devices[%d]", i)
		if d.Name != "" && names[d.Name] {
			add(path+".name", "duplicate device name %q", d.Name)
		}
		names[d.Name] = true
		errs = append(errs, edgegw.PrefixErrors(path, d.validate(c.RTU != nil)))
	}
	return errors.Join(errs...)
}

// parities maps the Modbus spelling of parity to tty's.
var parities = map[string]tty.Parity{"N": tty.ParityNone, "E": tty.ParityEven, "O": tty.ParityOdd}

// settings is the serial line of r for tty.Open.
func (r *RTUConfig) settings() tty.Settings {
	return tty.Settings{Device: r.Device, Baud: r.Baud, Parity: parities[r.Parity],
		DataBits: r.DataBits, StopBits: r.StopBits, RS485: r.RS485}
}

// validate checks the Modbus spelling of parity and the 7 or 8 data bits a
// Modbus line carries, then leaves the rest of the line to tty.
func (r *RTUConfig) validate() error {
	var errs []error
	s := r.settings()
	if _, ok := parities[r.Parity]; !ok {
		errs = append(errs, edgegw.Errorf("parity", `must be "N", "E" or "O" (got %q)`, r.Parity))
		s.Parity = tty.ParityNone // reported above, in the spelling of this config
	}
	if r.DataBits != 7 && r.DataBits != 8 {
		errs = append(errs, edgegw.Errorf("data_bits", "must be 7 or 8 (got %d)", r.DataBits))
		s.DataBits = 8 // reported above: narrower than tty's 5..8
	}
	errs = append(errs, s.Validate())
	if r.FrameGap < 0 {
		errs = append(errs, edgegw.Errorf("frame_gap", "must be >= 0 (got %s)", r.FrameGap))
	}
	return errors.Join(errs...)
}

func (d *DeviceConfig) validate(rtu bool) error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	if d.Name == "" {
		add("name", "must be set")
	}
	if rtu && (d.Unit < 1 || d.Unit > 247) {
		add("unit", "must be 1-247 on an RTU bus (got %d)", d.Unit)
	}
	if d.Poll <= 0 {
		add("poll", "must be > 0 (got %s)", d.Poll)
	}
	if d.MaxGap < 0 || d.MaxGap > maxRegsPerRead {
		add("max_gap", "must be 0-%d (got %d)", maxRegsPerRead, d.MaxGap)
	}
	if d.MaxRegisters < 1 || d.MaxRegisters > maxRegsPerRead {
		add("max_registers", "must be 1-%d (got %d)", maxRegsPerRead, d.MaxRegisters)
	}
	if d.MaxBits < 1 || d.MaxBits > maxBitsPerRead {
		add("max_bits", "must be 1-%d (got %d)", maxBitsPerRead, d.MaxBits)
	}
	if len(d.Points) == 0 {
		add("points", "at least one point is required")
	}
	names := map[string]bool{}
	for i := range d.Points {
		p := &d.Points[i]
		path := fmt.Sprintf("points[%d]", i)
		if p.Name != "" && names[p.Name] {
			add(path+".name", "duplicate point name %q", p.Name)
		}
		names[p.Name] = true
		if err := p.validate(); err != nil {
			errs = append(errs, edgegw.PrefixErrors(path, err))
			continue
		}
		cd, _ := newCodec(*p)
		if cd.isBits() && cd.width() > d.MaxBits || !cd.isBits() && cd.width() > d.MaxRegisters {
			add(path+".length", "point needs %d registers, more than max_registers %d", cd.width(), d.MaxRegisters)
		}
	}
	return errors.Join(errs...)
}

func (p *PointConfig) validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	if p.Name == "" {
		add("name", "must be set")
	}
	if _, ok := tables[p.Table]; !ok {
		add("table", `must be "coil", "discrete", "input" or "holding" (got %q)`, p.Table)
		return errors.Join(errs...)
	}
	t, ok := types[p.Type]
	if !ok {
		add("type", "unknown type %q (want bool, bit, int16, uint16, int32, uint32, int64, uint64, float32, float64 or string)", p.Type)
		return errors.Join(errs...)
	}
	bits := p.Table == "coil" || p.Table == "discrete"
	switch {
	case bits && t != typeBool:
		add("type", "a %s holds one bit: type must be bool (got %s)", p.Table, p.Type)
	case !bits && t == typeBool:
		add("type", "bool is for coils and discrete inputs; use type bit with bit: 0-15 for a bit of a register")
	}
	if _, ok := orders[p.Order]; !ok {
		add("order", `must be "ABCD", "CDAB", "BADC" or "DCBA" (got %q)`, p.Order)
	} else if t == typeString && p.Order != "ABCD" && p.Order != "BADC" {
		add("order", `a string takes "ABCD" or "BADC" (got %q)`, p.Order)
	}
	if t == typeBit && p.Bit > 15 {
		add("bit", "must be 0-15 (got %d)", p.Bit)
	}
	if t != typeBit && p.Bit != 0 {
		add("bit", "only for type bit (got %d on type %s)", p.Bit, p.Type)
	}
	if t == typeString && (p.Length < 1 || p.Length > maxRegsPerWrite) {
		add("length", "a string needs length 1-%d registers (got %d)", maxRegsPerWrite, p.Length)
	}
	if t != typeString && p.Length != 0 {
		add("length", "only for type string (got %d on type %s)", p.Length, p.Type)
	}
	numeric := t != typeBool && t != typeBit && t != typeString
	if !numeric && (p.Scale != 0 || p.Offset != 0) {
		add("scale", "scale and offset apply to numbers only (type %s)", p.Type)
	}
	if math.IsNaN(p.Scale) || math.IsInf(p.Scale, 0) {
		add("scale", "must be a finite number (got %v)", p.Scale)
	}
	if math.IsNaN(p.Offset) || math.IsInf(p.Offset, 0) {
		add("offset", "must be a finite number (got %v)", p.Offset)
	}
	if p.Writable && p.Table != "coil" && p.Table != "holding" {
		add("writable", "only coils and holding registers can be written (table %s)", p.Table)
	}
	if (p.Verify || p.WriteMultiple) && !p.Writable {
		add("verify", "verify and write_multiple need writable: true")
	}
	if len(errs) == 0 {
		width := int(typeWidth(t, p.Length))
		if int(p.Address)+width > 65536 {
			add("address", "point of %d registers at %d runs past 65535", width, p.Address)
		}
	}
	return errors.Join(errs...)
}
