package modbus

import (
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound/tty"
)

// Config is the `modbus:` block of one southbound entry: one bus (a Modbus
// TCP connection or an RTU serial line) and the devices (unit ids) on it.
// Exactly one of TCP and RTU is set.
type Config struct {
	// TCP is "host:port" of a Modbus TCP device or gateway.
	TCP string `yaml:"tcp"`
	// RTU is the serial line of a Modbus RTU bus.
	RTU *RTUConfig `yaml:"rtu"`
	// Timeout bounds one request: send, then the whole response. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// BackoffMax caps the back-off of a dead device and of reconnects to
	// the bus. Default 30s.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// Devices are the unit ids polled on this bus.
	Devices []DeviceConfig `yaml:"devices"`
}

// RTUConfig is a serial line. Parity, data and stop bits must match the
// devices on the bus.
type RTUConfig struct {
	Device string `yaml:"device"` // "/dev/ttyUSB0"
	// Required makes a missing or inaccessible Device a config error
	// (edgegw check, and run at start, exit 2); without it the bus is
	// opened when the device appears.
	Required bool   `yaml:"required"`
	Baud     int    `yaml:"baud"`      // default 9600
	Parity   string `yaml:"parity"`    // "N", "E" or "O"; default "E" (the Modbus default)
	DataBits int    `yaml:"data_bits"` // 7 or 8; default 8
	StopBits int    `yaml:"stop_bits"` // 1 or 2; default 1
	// FrameGap is the silence kept between frames (t3.5). Default 3.5
	// character times, at least 1.75ms (the Modbus rule above 19200 baud).
	FrameGap time.Duration `yaml:"frame_gap"`
	// RS485 switches the UART to kernel RS-485 mode (TIOCSRS485). Leave it
	// out for adapters that switch direction in hardware.
	RS485 *RS485Config `yaml:"rs485"`
}

// RS485Config is the kernel RS-485 mode of a UART (struct serial_rs485).
type RS485Config = tty.RS485

// DeviceConfig is one unit id on the bus with its points.
type DeviceConfig struct {
	Name string `yaml:"name"` // unique within the adapter
	// Unit is the Modbus unit (slave) id: 1-247 on RTU, 0-255 on TCP.
	Unit uint8 `yaml:"unit"`
	// Poll is the interval between two reads of all points. Default 1s.
	Poll time.Duration `yaml:"poll"`
	// MaxGap is the largest run of unused registers bridged to read two
	// points in one request (bits: 16 times as many). Default 0: only
	// adjacent points share a request, which every device accepts.
	MaxGap int `yaml:"max_gap"`
	// MaxRegisters and MaxBits cap one read request. Defaults 125 and 2000,
	// the protocol limits; some devices need less.
	MaxRegisters int           `yaml:"max_registers"`
	MaxBits      int           `yaml:"max_bits"`
	Points       []PointConfig `yaml:"points"`
}

// PointConfig is one value of a device.
//
// Types: bool (coil, discrete), bit (one bit of an input or holding
// register, numbered 0-15 from the least significant), int16, uint16,
// int32, uint32, int64, uint64, float32, float64 (input, holding) and
// string (Length registers, two bytes each; cut at the first NUL, trailing
// spaces trimmed; written NUL-padded).
//
// Order gives how the bytes A (most significant) to D of a 32-bit value
// lie in the registers: ABCD (big-endian, the default), CDAB (word
// swapped), BADC (byte swapped), DCBA (little-endian). 16-bit and 64-bit
// values follow the same rule (swap words, swap bytes within words);
// strings take ABCD or BADC.
//
// A numeric value is raw*Scale + Offset when Scale or Offset is set (and is
// then a float); writes apply the inverse and round to the raw type.
type PointConfig struct {
	Name    string  `yaml:"name"`
	Table   string  `yaml:"table"` // coil, discrete, input, holding
	Address uint16  `yaml:"address"`
	Type    string  `yaml:"type"`  // default bool on coil/discrete, uint16 on registers
	Order   string  `yaml:"order"` // default ABCD
	Scale   float64 `yaml:"scale"` // 0 means unscaled
	Offset  float64 `yaml:"offset"`
	Unit    string  `yaml:"unit"`   // engineering unit passed up with the value
	Bit     uint8   `yaml:"bit"`    // type bit: 0-15
	Length  uint16  `yaml:"length"` // type string: registers, 1-123
	// Writable lets the downlink write the point (coil and holding only).
	Writable bool `yaml:"writable"`
	// Verify reads the point back after a write and fails the write when
	// the device holds another value.
	Verify bool `yaml:"verify"`
	// WriteMultiple writes with function 15/16 even for one coil or
	// register, for devices that lack functions 5/6.
	WriteMultiple bool `yaml:"write_multiple"`
}

// Defaults.
const (
	DefaultTimeout    = time.Second
	DefaultBackoffMax = 30 * time.Second
	DefaultPoll       = time.Second
	DefaultBaud       = 9600
	maxRegsPerRead    = 125
	maxBitsPerRead    = 2000
	maxRegsPerWrite   = 123
)

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	edgegw.SetDefault(&c.Timeout, DefaultTimeout)
	edgegw.SetDefault(&c.BackoffMax, DefaultBackoffMax)
	if r := c.RTU; r != nil {
		edgegw.SetDefault(&r.Baud, DefaultBaud)
		edgegw.SetDefault(&r.Parity, "E")
		edgegw.SetDefault(&r.DataBits, 8)
		edgegw.SetDefault(&r.StopBits, 1)
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		edgegw.SetDefault(&d.Poll, DefaultPoll)
		edgegw.SetDefault(&d.MaxRegisters, maxRegsPerRead)
		edgegw.SetDefault(&d.MaxBits, maxBitsPerRead)
		for j := range d.Points {
			p := &d.Points[j]
			if p.Type == "" {
				switch p.Table {
				case "coil", "discrete":
					p.Type = "bool"
				case "input", "holding":
					p.Type = "uint16"
				}
			}
			edgegw.SetDefault(&p.Order, "ABCD")
		}
	}
}

// Points lists what this bus provides, for mapping's cross-check: the kind
// of each value after decoding and scaling.
func (c *Config) Points(adapter string) []edgegw.PointInfo {
	var out []edgegw.PointInfo
	for _, d := range c.Devices {
		for _, p := range d.Points {
			k := edgegw.KindInvalid
			if cd, err := newCodec(p); err == nil {
				k = cd.kind()
			}
			out = append(out, edgegw.PointInfo{
				Adapter: adapter, Device: d.Name, Point: p.Name,
				Kind: k, Writable: p.Writable,
			})
		}
	}
	return out
}

// CheckFiles checks that a required RTU port exists and may be opened (see
// tty.Check). Paths are relative to this config.
func (c *Config) CheckFiles() error {
	if c.RTU == nil || !c.RTU.Required {
		return nil
	}
	if err := tty.Check(c.RTU.Device); err != nil {
		return edgegw.Errorf("rtu.device", "%v", err)
	}
	return nil
}
