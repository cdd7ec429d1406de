package opcua

import (
	"time"

	"github.com/edgegw/edgegw"
)

// Config is the `opcua:` block of one southbound entry: one OPC UA server
// (one endpoint, one session) and the devices read from it.
//
//	opcua:
//	  endpoint: opc.tcp://10.0.0.5:4840/UA/Boiler
//	  security: {policy: Basic256Sha256, mode: SignAndEncrypt}
//	  pki_dir: /var/lib/edgegw/opcua-pki   # default <state_dir>/opcua-pki
//	  trusted: ["9F1C...E2"]               # server certificate SHA-1 thumbprints, besides pki_dir/trusted
//	  auth: {kind: username, username: operator, password: s3cret}
//	  timeout: 5s
//	  backoff_max: 30s
//	  keepalive: 5s
//	  devices:
//	    - name: boiler
//	      mode: subscribe            # or poll
//	      interval: 1s               # publishing interval, or poll interval
//	      sampling_interval: 500ms   # default: interval
//	      queue_size: 10
//	      points:
//	        - {name: temperature, node: "ns=1;s=Boiler.Temperature", type: double, deadband: 0.5}
//	        - {name: setpoint, node: "ns=1;s=Boiler.Setpoint", type: double, writable: true}
//	        - {name: temps, node: "ns=1;s=Boiler.Temps", type: double, length: 4}
//	      methods:
//	        - {name: start, object: "ns=1;s=Boiler", method: "ns=1;s=Boiler.Start", inputs: [double, uint32], outputs: [accepted, message]}
type Config struct {
	// Endpoint is the server's endpoint URL, opc.tcp://host:port[/path].
	Endpoint string `yaml:"endpoint"`
	// Security is the secure channel's policy and mode. Default None/None.
	Security SecurityConfig `yaml:"security"`
	// PKIDir holds the gateway's application certificate (own/, created on
	// first start), the trusted server certificates (trusted/, DER or PEM)
	// and the refused ones (rejected/, written for an operator to move to
	// trusted/). The gateway sets it to <state_dir>/opcua-pki by default.
	PKIDir string `yaml:"pki_dir"`
	// Trusted lists SHA-1 thumbprints (hex, colons allowed) of server
	// certificates trusted besides those in PKIDir/trusted.
	Trusted []string `yaml:"trusted"`
	// Auth is the user identity of the session. Default anonymous.
	Auth AuthConfig `yaml:"auth"`
	// ApplicationURI names the gateway in its certificate and session.
	// Default urn:edgegw:<hostname>.
	ApplicationURI string `yaml:"application_uri"`
	// Timeout bounds one request (connect, read, write, call). Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// BackoffMax caps the back-off between connection attempts. Default 30s.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// Keepalive is how often the session is checked with a read of the
	// server's clock when nothing else shows it alive. Default 5s.
	Keepalive time.Duration `yaml:"keepalive"`
	// Devices are the groups of points of this server, each one device of
	// the mapping.
	Devices []DeviceConfig `yaml:"devices"`
}

// SecurityConfig is a secure channel's policy and mode.
type SecurityConfig struct {
	// Policy is None, Basic256Sha256 or Aes128Sha256RsaOaep.
	Policy string `yaml:"policy"`
	// Mode is None (with policy None), Sign or SignAndEncrypt.
	Mode string `yaml:"mode"`
}

// AuthConfig is a session's user identity token.
type AuthConfig struct {
	// Kind is anonymous (default), username or certificate.
	Kind     string        `yaml:"kind"`
	Username string        `yaml:"username"`
	Password edgegw.Secret `yaml:"password"`
	// CertFile and KeyFile are the user's X.509 certificate (PEM or DER)
	// and RSA private key (PEM) for kind certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DeviceConfig is one device: points read together, by a subscription
// (the default) or by polling.
type DeviceConfig struct {
	Name string `yaml:"name"` // unique within the adapter
	// Mode is subscribe (monitored items, the default) or poll (reads).
	Mode string `yaml:"mode"`
	// Interval is the subscription's publishing interval, or the poll
	// interval. Default 1s.
	Interval time.Duration `yaml:"interval"`
	// SamplingInterval is the monitored items' default sampling interval.
	// Default: Interval.
	SamplingInterval time.Duration `yaml:"sampling_interval"`
	// QueueSize is the monitored items' default server queue. Default 10.
	QueueSize uint32         `yaml:"queue_size"`
	Points    []PointConfig  `yaml:"points"`
	Methods   []MethodConfig `yaml:"methods"`
}

// PointConfig is one variable of the server.
//
// Types: boolean, sbyte, byte, int16, uint16, int32, uint32, int64,
// uint64, float, double, string and datetime (passed up as an RFC 3339
// string). A numeric value is raw*Scale + Offset when Scale or Offset is
// set (and is then a float); writes apply the inverse and must fit the
// type. Length > 0 reads a one-dimensional array of Type as the points
// name[0] .. name[Length-1]; elements the server does not send are left
// out.
type PointConfig struct {
	Name   string  `yaml:"name"`
	Node   string  `yaml:"node"` // NodeId: ns=2;s=..., ns=2;i=..., ns=2;g=..., ns=2;b=...
	Type   string  `yaml:"type"`
	Length int     `yaml:"length"`
	Scale  float64 `yaml:"scale"` // 0 means unscaled
	Offset float64 `yaml:"offset"`
	Unit   string  `yaml:"unit"`
	// SamplingInterval and QueueSize override the device's for this
	// monitored item.
	SamplingInterval time.Duration `yaml:"sampling_interval"`
	QueueSize        uint32        `yaml:"queue_size"`
	// Deadband filters changes at the server: absolute (in raw units) or
	// percent of the variable's EURange, by DeadbandType.
	Deadband     float64 `yaml:"deadband"`
	DeadbandType string  `yaml:"deadband_type"` // absolute (default) or percent
	// Writable lets the downlink write the variable.
	Writable bool `yaml:"writable"`
}

// MethodConfig is one OPC UA method a mapping call action may invoke.
type MethodConfig struct {
	Name   string `yaml:"name"`   // the name call actions use
	Object string `yaml:"object"` // NodeId of the object the method is called on
	Method string `yaml:"method"` // NodeId of the method
	// Inputs are the types of the input arguments, in order (the point
	// types; no arrays, no datetime).
	Inputs []string `yaml:"inputs"`
	// Outputs name the output arguments in the method response; without
	// names the response is {"outputs": [...]}.
	Outputs []string `yaml:"outputs"`
}

// Defaults.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultBackoffMax = 30 * time.Second
	DefaultKeepalive  = 5 * time.Second
	DefaultInterval   = time.Second
	DefaultQueueSize  = 10
)

// SetDefaults fills zero fields with their defaults. PKIDir is set by the
// gateway (it knows the state directory).
func (c *Config) SetDefaults() {
	edgegw.SetDefault(&c.Security.Policy, "None")
	if c.Security.Policy == "None" {
		edgegw.SetDefault(&c.Security.Mode, "None")
	} else {
		edgegw.SetDefault(&c.Security.Mode, "SignAndEncrypt")
	}
	edgegw.SetDefault(&c.Auth.Kind, "anonymous")
	edgegw.SetDefault(&c.Timeout, DefaultTimeout)
	edgegw.SetDefault(&c.BackoffMax, DefaultBackoffMax)
	edgegw.SetDefault(&c.Keepalive, DefaultKeepalive)
	for i := range c.Devices {
		d := &c.Devices[i]
		edgegw.SetDefault(&d.Mode, "subscribe")
		edgegw.SetDefault(&d.Interval, DefaultInterval)
		edgegw.SetDefault(&d.SamplingInterval, d.Interval)
		edgegw.SetDefault(&d.QueueSize, DefaultQueueSize)
		for j := range d.Points {
			p := &d.Points[j]
			edgegw.SetDefault(&p.SamplingInterval, d.SamplingInterval)
			edgegw.SetDefault(&p.QueueSize, d.QueueSize)
			if p.Deadband != 0 {
				edgegw.SetDefault(&p.DeadbandType, "absolute")
			}
		}
	}
}

// Points lists what this server provides, for mapping's cross-check: the
// kind of each value after conversion and scaling, array elements by
// index.
func (c *Config) Points(adapter string) []edgegw.PointInfo {
	var out []edgegw.PointInfo
	for _, d := range c.Devices {
		out = append(out, edgegw.PointInfo{Adapter: adapter, Device: d.Name})
		for _, p := range d.Points {
			k := edgegw.KindInvalid
			if t, ok := types[p.Type]; ok {
				k = t.kind
				if (p.Scale != 0 || p.Offset != 0) && t.numeric {
					k = edgegw.KindFloat
				}
			}
			if p.Length == 0 {
				out = append(out, edgegw.PointInfo{Adapter: adapter, Device: d.Name, Point: p.Name,
					Kind: k, Writable: p.Writable})
				continue
			}
			for i := range min(p.Length, maxArray) {
				out = append(out, edgegw.PointInfo{Adapter: adapter, Device: d.Name, Point: elemName(p.Name, i), Kind: k})
			}
		}
	}
	return out
}
