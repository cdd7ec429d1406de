package modbus

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"gopkg.in/yaml.v3"
)

const exampleYAML = `
rtu:
  device: /dev/ttyUSB0
  baud: 19200
  parity: N
  stop_bits: 2
  rs485:
    rts_on_send: true
timeout: 500ms
devices:
  - name: meter
    unit: 3
    poll: 2s
    max_gap: 4
    points:
      - {name: voltage, table: input, address: 0, type: float32, order: CDAB, unit: V}
      - {name: energy, table: input, address: 2, type: uint32, scale: 0.01, unit: kWh}
      - {name: serial, table: holding, address: 100, type: string, length: 8}
      - {name: alarm, table: holding, address: 10, type: bit, bit: 4}
      - {name: setpoint, table: holding, address: 20, type: int16, writable: true, verify: true}
      - {name: pump, table: coil, address: 0, writable: true}
      - {name: door, table: discrete, address: 7}
`

func decodeStrict(t *testing.T, src string) Config {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	return c
}

func TestConfigExample(t *testing.T) {
	c := decodeStrict(t, exampleYAML)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Timeout != 500*time.Millisecond || c.RTU.DataBits != 8 || c.RTU.Parity != "N" || c.Devices[0].MaxRegisters != 125 {
		t.Errorf("defaults: %+v %+v", c, *c.RTU)
	}
	want := map[string]edgegw.Kind{
		"voltage": edgegw.KindFloat, "energy": edgegw.KindFloat, "serial": edgegw.KindString,
		"alarm": edgegw.KindBool, "setpoint": edgegw.KindInt, "pump": edgegw.KindBool, "door": edgegw.KindBool,
	}
	pts := c.Points("south")
	if len(pts) != len(want) {
		t.Fatalf("%d points", len(pts))
	}
	for _, p := range pts {
		if p.Adapter != "south" || p.Device != "meter" || p.Kind != want[p.Point] {
			t.Errorf("%+v, want kind %s", p, want[p.Point])
		}
		if p.Writable != (p.Point == "setpoint" || p.Point == "pump") {
			t.Errorf("%s writable = %v", p.Point, p.Writable)
		}
	}
	if _, err := New("south", c, nil); err != nil {
		t.Errorf("New: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	base := func() Config {
		return Config{TCP: "127.0.0.1:502", Devices: []DeviceConfig{{Name: "d", Unit: 1,
			Points: []PointConfig{{Name: "p", Table: "holding", Address: 0}}}}}
	}
	cases := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"no bus", func(c *Config) { c.TCP = "" }, "one of tcp or rtu must be set"},
		{"both", func(c *Config) { c.RTU = &RTUConfig{Device: "/dev/x"} }, "only one of tcp or rtu"},
		{"bad tcp", func(c *Config) { c.TCP = "localhost" }, `tcp: must be host:port (got "localhost")`},
		{"bad port", func(c *Config) { c.TCP = "h:0" }, "tcp: must be host:port with a port 1-65535"},
		{"timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout: must be > 0 (got -1s)"},
		{"rtu parity", func(c *Config) { c.TCP = ""; c.RTU = &RTUConfig{Device: "/dev/x", Parity: "X"} }, `rtu.parity: must be "N", "E" or "O" (got "X")`},
		{"rtu baud", func(c *Config) { c.TCP = ""; c.RTU = &RTUConfig{Device: "/dev/x", Baud: 1234} }, "rtu.baud: unsupported baud rate (got 1234)"},
		{"rtu unit", func(c *Config) { c.TCP = ""; c.RTU = &RTUConfig{Device: "/dev/x"}; c.Devices[0].Unit = 0 }, "devices[0].unit: must be 1-247 on an RTU bus (got 0)"},
		{"no devices", func(c *Config) { c.Devices = nil }, "devices: at least one device is required"},
		{"dup device", func(c *Config) { c.Devices = append(c.Devices, c.Devices[0]) }, `devices[1].name: duplicate device name "d"`},
		{"poll", func(c *Config) { c.Devices[0].Poll = -1 }, "devices[0].poll: must be > 0"},
		{"max_registers", func(c *Config) { c.Devices[0].MaxRegisters = 126 }, "devices[0].max_registers: must be 1-125 (got 126)"},
		{"dup point", func(c *Config) { c.Devices[0].Points = append(c.Devices[0].Points, c.Devices[0].Points[0]) }, `devices[0].points[1].name: duplicate point name "p"`},
		{"table", func(c *Config) { c.Devices[0].Points[0].Table = "memory" }, `devices[0].points[0].table: must be "coil", "discrete", "input" or "holding" (got "memory")`},
		{"type", func(c *Config) { c.Devices[0].Points[0].Type = "int8" }, `devices[0].points[0].type: unknown type "int8"`},
		{"bool on register", func(c *Config) { c.Devices[0].Points[0].Type = "bool" }, "devices[0].points[0].type: bool is for coils"},
		{"int on coil", func(c *Config) { c.Devices[0].Points[0].Table = "coil"; c.Devices[0].Points[0].Type = "int16" }, "type must be bool (got int16)"},
		{"order", func(c *Config) { c.Devices[0].Points[0].Order = "ABDC" }, `devices[0].points[0].order: must be "ABCD", "CDAB", "BADC" or "DCBA" (got "ABDC")`},
		{"bit", func(c *Config) { c.Devices[0].Points[0].Type = "bit"; c.Devices[0].Points[0].Bit = 16 }, "devices[0].points[0].bit: must be 0-15 (got 16)"},
		{"string length", func(c *Config) { c.Devices[0].Points[0].Type = "string" }, "devices[0].points[0].length: a string needs length 1-123 registers (got 0)"},
		{"scale on bit", func(c *Config) { c.Devices[0].Points[0].Type = "bit"; c.Devices[0].Points[0].Scale = 2 }, "scale and offset apply to numbers only"},
		{"writable input", func(c *Config) { c.Devices[0].Points[0].Table = "input"; c.Devices[0].Points[0].Writable = true }, "devices[0].points[0].writable: only coils and holding"},
		{"verify", func(c *Config) { c.Devices[0].Points[0].Verify = true }, "devices[0].points[0].verify: verify and write_multiple need writable: true"},
		{"past end", func(c *Config) { c.Devices[0].Points[0].Address = 65535; c.Devices[0].Points[0].Type = "int32" }, "devices[0].points[0].address: point of 2 registers at 65535 runs past 65535"},
		{"wider than max", func(c *Config) {
			c.Devices[0].MaxRegisters = 4
			c.Devices[0].Points[0].Type = "string"
			c.Devices[0].Points[0].Length = 5
		}, "point needs 5 registers, more than max_registers 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			c.SetDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v\nwant it to contain %q", err, tc.want)
			}
			if _, err := New("x", c, nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
	c := base()
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("base config: %v", err)
	}
}

func TestConfigUnknownKey(t *testing.T) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader("tcp: h:1\nslave_id: 3\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err == nil {
		t.Error("unknown key accepted")
	}
}
