package opcua

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/edgegw/edgegw"
)

func TestParseNodeID(t *testing.T) {
	for _, c := range []struct {
		in, out string
		err     string
	}{
		{in: "ns=2;s=Boiler.T", out: "ns=2;s=Boiler.T"},
		{in: "ns=1;s=a;b", out: "ns=1;s=a;b"},
		{in: "i=85", out: "i=85"},
		{in: "ns=0;i=2258", out: "i=2258"},
		{in: "ns=7;i=4294967295", out: "ns=7;i=4294967295"},
		{in: "ns=1;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63", out: "ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63"},
		{in: "ns=1;b=Ym9pbGVy", out: "ns=1;b=Ym9pbGVy"},
		{in: "", err: "empty NodeId"},
		{in: "Boiler", err: "want <i|s|g|b>="},
		{in: "ns=1;s=", err: "empty string identifier"},
		{in: "ns=1", err: "want ns=<index>;"},
		{in: "ns=65536;i=1", err: "namespace index must be 0-65535"},
		{in: "ns=01;i=1", err: "namespace index must be 0-65535"},
		{in: "ns=1;i=4294967296", err: "numeric identifier"},
		{in: "ns=1;i=x", err: "numeric identifier"},
		{in: "ns=1;g=not-a-guid", err: "GUID identifier"},
		{in: "ns=1;b=%%", err: "opaque identifier"},
		{in: "ns=1;x=1", err: `identifier type must be i, s, g or b (got "x")`},
		{in: "nsu=urn:plc;s=T", err: "namespace URIs are not supported"},
		{in: "ns=1;s=" + strings.Repeat("x", maxIdentifier+1), err: "longer than 4096"},
	} {
		id, err := ParseNodeID(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || formatNodeID(id) != c.out {
			t.Errorf("%q: %v %v, want %s", c.in, id, err, c.out)
		}
	}
}

func validConfig() Config {
	return Config{Endpoint: "opc.tcp://127.0.0.1:4840/UA", PKIDir: "/tmp/pki", Devices: []DeviceConfig{{Name: "d",
		Points: []PointConfig{{Name: "p", Node: "ns=1;s=P", Type: "double"}}}}}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		edit func(c *Config)
		want string
	}{
		{func(c *Config) { c.Endpoint = "" }, "endpoint: is required"},
		{func(c *Config) { c.Endpoint = "tcp://h:1" }, "endpoint: must be opc.tcp://"},
		{func(c *Config) { c.Endpoint = "opc.tcp://h" }, "endpoint: must name a port"},
		{func(c *Config) { c.Endpoint = "opc.tcp://h:0" }, "port 1-65535"},
		{func(c *Config) { c.Security = SecurityConfig{Policy: "Basic128Rsa15"} }, "security.policy: must be None, Basic256Sha256 or Aes128Sha256RsaOaep"},
		{func(c *Config) { c.Security = SecurityConfig{Policy: "None", Mode: "Sign"} }, "security.mode: must be None exactly when"},
		{func(c *Config) { c.Security = SecurityConfig{Policy: "Basic256Sha256", Mode: "None"} }, "security.mode: must be None exactly when"},
		{func(c *Config) { c.Security = SecurityConfig{Policy: "Basic256Sha256", Mode: "Encrypt"} }, "security.mode: must be None, Sign or SignAndEncrypt"},
		{func(c *Config) { c.Trusted = []string{"abc"} }, "trusted[0]: must be a SHA-1 thumbprint"},
		{func(c *Config) { c.Auth = AuthConfig{Kind: "kerberos"} }, "auth.kind: must be anonymous, username or certificate"},
		{func(c *Config) { c.Auth = AuthConfig{Kind: "username"} }, "auth.username: is required"},
		{func(c *Config) { c.Auth = AuthConfig{Kind: "certificate", CertFile: "c"} }, "auth.key_file: is required"},
		{func(c *Config) { c.Auth = AuthConfig{Password: "x"} }, "auth: anonymous takes no"},
		{func(c *Config) { c.ApplicationURI = "plant" }, "application_uri: must be a URI"},
		{func(c *Config) { c.Timeout = -time.Second }, "timeout: must be > 0"},
		{func(c *Config) { c.Devices = nil }, "devices: at least one device is required"},
		{func(c *Config) { c.Devices = append(c.Devices, c.Devices[0]) }, `devices[1].name: duplicate device name "d"`},
		{func(c *Config) { c.Devices[0].Mode = "push" }, "devices[0].mode: must be subscribe or poll"},
		{func(c *Config) { c.Devices[0].Points[0].Node = "P" }, "devices[0].points[0].node: NodeId"},
		{func(c *Config) { c.Devices[0].Points[0].Type = "real" }, "devices[0].points[0].type: must be one of"},
		{func(c *Config) { c.Devices[0].Points[0].Name = "p[1]" }, "must not contain '['"},
		{func(c *Config) { c.Devices[0].Points[0].Type = "string"; c.Devices[0].Points[0].Scale = 2 }, "scale: applies to numeric types only"},
		{func(c *Config) { c.Devices[0].Points[0].Length = 5000 }, "length: must be 0 (a scalar) or 1-4096"},
		{func(c *Config) { c.Devices[0].Points[0].Length = 2; c.Devices[0].Points[0].Writable = true }, "writable: arrays cannot be written"},
		{func(c *Config) { c.Devices[0].Points[0].Deadband = -1 }, "deadband: must be >= 0"},
		{func(c *Config) {
			c.Devices[0].Points[0].Deadband = 120
			c.Devices[0].Points[0].DeadbandType = "percent"
		}, "percent deadband must be 0-100"},
		{func(c *Config) { c.Devices[0].Points[0].Deadband = 1; c.Devices[0].Points[0].DeadbandType = "relative" }, "deadband_type: must be absolute or percent"},
		{func(c *Config) { c.Devices[0].Mode = "poll"; c.Devices[0].Points[0].Deadband = 1 }, "deadband: applies to subscriptions only"},
		{func(c *Config) {
			c.Devices[0].Methods = []MethodConfig{{Name: "m", Object: "ns=1;s=O", Method: "x", Inputs: []string{"int"}, Outputs: []string{"a", "a"}}}
		}, "methods[0].method: NodeId"},
		{func(c *Config) {
			c.Devices[0].Methods = []MethodConfig{{Name: "m", Object: "ns=1;s=O", Method: "ns=1;s=M", Inputs: []string{"int"}}}
		}, "methods[0].inputs[0]: must be one of the point types"},
		{func(c *Config) {
			c.Devices[0].Methods = []MethodConfig{{Name: "m", Object: "ns=1;s=O", Method: "ns=1;s=M", Outputs: []string{"a", "a"}}}
		}, "methods[0].outputs[1]: must be a unique non-empty name"},
	} {
		cfg := validConfig()
		c.edit(&cfg)
		cfg.SetDefaults()
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
	cfg := validConfig()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Security.Mode != "None" || cfg.Auth.Kind != "anonymous" || cfg.Devices[0].Mode != "subscribe" ||
		cfg.Devices[0].Points[0].SamplingInterval != time.Second || cfg.Devices[0].Points[0].QueueSize != DefaultQueueSize {
		t.Errorf("defaults %+v", cfg)
	}
	sec := Config{Security: SecurityConfig{Policy: "Basic256Sha256"}}
	sec.SetDefaults()
	if sec.Security.Mode != "SignAndEncrypt" {
		t.Errorf("a secure policy defaults to mode %s", sec.Security.Mode)
	}
}

func TestPoints(t *testing.T) {
	cfg := Config{Devices: []DeviceConfig{{Name: "d", Points: []PointConfig{
		{Name: "i", Type: "int16"}, {Name: "s", Type: "int16", Scale: 0.1, Writable: true},
		{Name: "a", Type: "boolean", Length: 2}, {Name: "t", Type: "datetime"}, {Name: "x", Type: "nope"},
	}}}}
	got := map[string]edgegw.Kind{}
	for _, p := range cfg.Points("opc") {
		got[p.Point] = p.Kind
		if p.Point == "s" && !p.Writable {
			t.Errorf("s not writable")
		}
	}
	want := map[string]edgegw.Kind{"": edgegw.KindInvalid, "i": edgegw.KindInt, "s": edgegw.KindFloat, "a[0]": edgegw.KindBool,
		"a[1]": edgegw.KindBool, "t": edgegw.KindString, "x": edgegw.KindInvalid}
	if len(got) != len(want) {
		t.Errorf("points %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: kind %s, want %s", k, got[k], v)
		}
	}
}

// TestEncode: writes are converted to the node's type, scaled back and
// range-checked; nothing that does not fit gets through.
func TestEncode(t *testing.T) {
	for _, c := range []struct {
		typ   string
		scale float64
		in    edgegw.Value
		want  any
		err   string
	}{
		{typ: "boolean", in: edgegw.Bool(true), want: true},
		{typ: "boolean", in: edgegw.Int(1), err: "want a bool"},
		{typ: "sbyte", in: edgegw.Int(-128), want: int8(-128)},
		{typ: "sbyte", in: edgegw.Int(128), err: "does not fit sbyte"},
		{typ: "byte", in: edgegw.Int(-1), err: "does not fit byte"},
		{typ: "int16", in: edgegw.Float(12.6), want: int16(13)},
		{typ: "int16", scale: 0.1, in: edgegw.Float(55.5), want: int16(555)},
		{typ: "int16", scale: 0.1, in: edgegw.Float(4000), err: "does not fit int16"},
		{typ: "uint16", in: edgegw.Uint(65535), want: uint16(65535)},
		{typ: "uint32", in: edgegw.Int(-5), err: "does not fit uint32"},
		{typ: "int64", in: edgegw.Int(math.MinInt64), want: int64(math.MinInt64)},
		{typ: "uint64", in: edgegw.Uint(math.MaxUint64), want: uint64(math.MaxUint64)},
		{typ: "int64", in: edgegw.Uint(math.MaxUint64), err: "does not fit int64"},
		{typ: "uint64", in: edgegw.Float(1e20), err: "does not fit uint64"},
		{typ: "float", in: edgegw.Float(1.5), want: float32(1.5)},
		{typ: "float", in: edgegw.Float(1e39), err: "does not fit a float"},
		{typ: "double", in: edgegw.Float(math.Inf(1)), err: "not a number a device accepts"},
		{typ: "double", in: edgegw.Int(3), want: float64(3)},
		{typ: "double", in: edgegw.String("3"), err: "want a number"},
		{typ: "string", in: edgegw.String("V2"), want: "V2"},
		{typ: "datetime", in: edgegw.String("2026-01-02T03:04:05Z"), want: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{typ: "datetime", in: edgegw.String("yesterday"), err: "RFC 3339"},
	} {
		cv := newConv(PointConfig{Type: c.typ, Scale: c.scale})
		got, err := cv.native(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s: %v %v, want error %q", c.typ, c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s %s: %v (%T) %v, want %v (%T)", c.typ, c.in, got, got, err, c.want, c.want)
		}
		if v, err := cv.encode(c.in); err != nil || v.Type() != types[c.typ].id {
			t.Errorf("%s %s: variant %v %v", c.typ, c.in, v, err)
		}
	}
}

func TestStatusName(t *testing.T) {
	for c, want := range map[ua.StatusCode]string{
		ua.StatusBadSensorFailure:          "BadSensorFailure",
		ua.StatusBadSensorFailure | 0x0400: "BadSensorFailure",
		ua.StatusCode(0x80FF0000):          "0x80FF0000",
	} {
		if got := statusName(c); got != want {
			t.Errorf("%#x: %s, want %s", uint32(c), got, want)
		}
	}
	if !isBad(ua.StatusBadSensorFailure) || isBad(ua.StatusUncertain) || !isUncertain(ua.StatusUncertain) || isBad(ua.StatusOK) {
		t.Error("severity bits")
	}
}
