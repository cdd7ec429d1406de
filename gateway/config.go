package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/mapping"
	"github.com/edgegw/edgegw/northbound"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
	"github.com/edgegw/edgegw/southbound/modbus"
	"github.com/edgegw/edgegw/southbound/opcua"
	"github.com/edgegw/edgegw/southbound/serial"
	"github.com/edgegw/edgegw/southbound/simulator"
)

var reflectTypeOfConfig = reflect.TypeFor[Config]()

// Config is the whole gateway configuration: one YAML file. The files in
// configs/ document every section; each room's Config type documents its
// keys and defaults.
type Config struct {
	Log        LogConfig          `yaml:"log"`
	StateDir   string             `yaml:"state_dir"`  // default $STATE_DIRECTORY, else /var/lib/edgegw
	Buffer     buffer.Config      `yaml:"buffer"`     // buffer.dir defaults to <state_dir>/queue
	Hub        northbound.Config  `yaml:"hub"`        // the upstream hub
	Identities []identity.Config  `yaml:"identities"` // who the gateway speaks for at the hub
	Southbound []SouthboundConfig `yaml:"southbound"` // local device adapters
	Mapping    mapping.Config     `yaml:"mapping"`    // readings up, commands down
	Hubsim     *HubsimConfig      `yaml:"hubsim"`     // an embedded hub emulator, for demos
	Status     StatusConfig       `yaml:"status"`     // an HTTP status endpoint for operations
	Memory     MemoryConfig       `yaml:"memory"`     // garbage collector target and memory limit

	// File is the file the config was read from, for errors found later
	// (a key or CA file that cannot be read when the gateway starts).
	File string `yaml:"-"`
}

// LogConfig sets up logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// SouthboundConfig is one adapter instance: a name and exactly one kind.
type SouthboundConfig struct {
	Name      string            `yaml:"name"`
	LANMQTT   *lanmqtt.Config   `yaml:"lanmqtt"`
	Modbus    *modbus.Config    `yaml:"modbus"`
	OPCUA     *opcua.Config     `yaml:"opcua"`
	Serial    *serial.Config    `yaml:"serial"`
	Simulator *simulator.Config `yaml:"simulator"`
}

// HubsimConfig runs the hub emulator inside the gateway process, so the
// quickstart shows data flowing without a cloud account. When enabled, the
// hub section's host, port and CA are taken from the emulator, and each
// identity without a key is registered with a generated one.
type HubsimConfig struct {
	Enabled  bool   `yaml:"enabled"`
	MQTTAddr string `yaml:"mqtt_listen"` // default 127.0.0.1:8883
	HTTPAddr string `yaml:"http_listen"` // default 127.0.0.1:8443
}

// ConfigError is a configuration that cannot be used: it names the file and,
// for each problem, the path and the reason. The binary exits 2 on it.
type ConfigError struct {
	File string
	Err  error // one or more (joined) edgegw.FieldErrors or decoding errors
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	for i, err := range flatten(e.Err) {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File + ": " + err.Error())
	}
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// LoadFile reads, decodes, defaults and validates the config file at path.
// It does no other I/O. Every problem is reported in one *ConfigError.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Err: fmt.Errorf("cannot read: %w", err)}
	}
	return Parse(path, data)
}

// Parse decodes data (named name in errors) strictly, applies defaults and
// validates the result.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &ConfigError{File: name, Err: errors.New(strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	lines := map[int]string{}
	if errs := walkNode(&root, reflectTypeOfConfig, "", lines); len(errs) > 0 {
		return nil, &ConfigError{File: name, Err: errors.Join(errs...)}
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && err != io.EOF {
		return nil, &ConfigError{File: name, Err: typeErrors(err, lines)}
	}
	cfg.File = name
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, &ConfigError{File: name, Err: err}
	}
	return &cfg, nil
}

// SetDefaults fills every unset field; it is the only place defaults are
// decided (each room's SetDefaults for its own section).
func (c *Config) SetDefaults() {
	edgegw.SetDefault(&c.Log.Level, "info")
	edgegw.SetDefault(&c.Log.Format, "text")
	if c.StateDir == "" {
		c.StateDir = os.Getenv("STATE_DIRECTORY")
		if i := strings.IndexByte(c.StateDir, ':'); i >= 0 { // systemd may list several
			c.StateDir = c.StateDir[:i]
		}
		edgegw.SetDefault(&c.StateDir, "/var/lib/edgegw")
	}
	edgegw.SetDefault(&c.Buffer.Dir, c.StateDir+"/queue")
	c.Buffer.SetDefaults()
	if c.Hubsim != nil && c.Hubsim.Enabled {
		edgegw.SetDefault(&c.Hubsim.MQTTAddr, "127.0.0.1:8883")
		edgegw.SetDefault(&c.Hubsim.HTTPAddr, "127.0.0.1:8443")
		edgegw.SetDefault(&c.Hub.Host, "localhost")
	}
	c.Hub.SetDefaults()
	c.Hub.ProvisioningDir = filepath.Join(c.StateDir, "dps")
	for i := range c.Southbound {
		if s := c.Southbound[i]; s.LANMQTT != nil {
			if t := s.LANMQTT.TLS; t != nil && t.Auto {
				edgegw.SetDefault(&t.Dir, c.StateDir+"/lan-ca")
			}
			s.LANMQTT.SetDefaults()
		} else if s.Modbus != nil {
			s.Modbus.SetDefaults()
		} else if s.OPCUA != nil {
			edgegw.SetDefault(&s.OPCUA.PKIDir, c.StateDir+"/opcua-pki")
			s.OPCUA.SetDefaults()
		} else if s.Serial != nil {
			s.Serial.SetDefaults()
		} else if s.Simulator != nil {
			s.Simulator.SetDefaults()
		}
	}
	c.Mapping.Identities = c.Mapping.Identities[:0]
	for _, id := range c.Identities {
		for _, s := range id.IDs() { // a fleet stands for many
			c.Mapping.Identities = append(c.Mapping.Identities, edgegw.DeviceID(s))
		}
	}
	c.Mapping.SetDefaults()
	c.Status.SetDefaults()
}

// Validate checks every section and the references between them.
func (c *Config) Validate() error {
	var errs []error
	add := func(prefix string, err error) {
		if err != nil {
			errs = append(errs, edgegw.PrefixErrors(prefix, err))
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", fmt.Errorf("must be debug, info, warn or error (got %q)", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", fmt.Errorf("must be text or json (got %q)", c.Log.Format))
	}
	add("status", c.Status.Validate())
	add("memory", c.Memory.Validate())
	add("buffer", c.Buffer.Validate())
	add("hub", c.Hub.Validate())
	add("hub", c.Hub.ValidateHost(c.Identities))
	if len(c.Identities) == 0 {
		add("identities", errors.New("must list at least one identity"))
	}
	ids := c.Identities
	if c.Hubsim != nil && c.Hubsim.Enabled {
		// The embedded hub registers identities that have no credentials
		// and hands out their keys at start; validate them as keyed.
		ids = slices.Clone(ids)
		for i := range ids {
			if !ids[i].HasKey() && !ids[i].HasCert() && ids[i].DPS == nil {
				ids[i].Key = edgegw.Secret(hubsim.NewKey())
			}
		}
	}
	add("identities", c.Hub.ValidateIdentities(ids))
	owned := map[string]bool{}
	for _, id := range c.Mapping.Identities {
		owned[string(id)] = true
	}
	names, caDirs := map[string]int{}, map[string]int{}
	var points []edgegw.PointInfo
	for i, s := range c.Southbound {
		p := "southbound[" + strconv.Itoa(i) + "]"
		if s.Name == "" {
			add(p+".name", errors.New("must be set"))
		} else if j, dup := names[s.Name]; dup {
			add(p+".name", fmt.Errorf("%q is already used by southbound[%d]", s.Name, j))
		}
		names[s.Name] = i
		points = append(points, edgegw.PointInfo{Adapter: s.Name}) // announces the adapter itself
		kinds := 0
		if s.LANMQTT != nil {
			kinds++
			add(p+".lanmqtt", s.LANMQTT.Validate())
			add(p+".lanmqtt", checkLANDevices(s.Name, s.LANMQTT, owned, &c.Mapping))
			if t := s.LANMQTT.TLS; t != nil && t.Auto && t.Dir != "" {
				if j, dup := caDirs[t.Dir]; dup {
					add(p+".lanmqtt.tls.dir", fmt.Errorf("%s is already used by southbound[%d]: set a dir for each adapter", t.Dir, j))
				}
				caDirs[t.Dir] = i
			}
			points = append(points, s.LANMQTT.Points(s.Name)...)
		}
		if s.Modbus != nil {
			kinds++
			add(p+".modbus", s.Modbus.Validate())
			points = append(points, s.Modbus.Points(s.Name)...)
		}
		if s.OPCUA != nil {
			kinds++
			add(p+".opcua", s.OPCUA.Validate())
			points = append(points, s.OPCUA.Points(s.Name)...)
		}
		if s.Serial != nil {
			kinds++
			add(p+".serial", s.Serial.Validate())
			points = append(points, s.Serial.Points(s.Name)...)
		}
		if s.Simulator != nil {
			kinds++
			add(p+".simulator", s.Simulator.Validate())
			points = append(points, s.Simulator.Points(s.Name)...)
		}
		if kinds != 1 {
			add(p, fmt.Errorf("must set exactly one of lanmqtt, modbus, opcua, serial, simulator (got %d)", kinds))
		}
	}
	if err := c.Mapping.Validate(); err != nil {
		add("mapping", err)
	} else {
		add("mapping", c.Mapping.Check(points))
	}
	errs = append(errs, checkCalls(c)...)
	return errors.Join(errs...)
}

// checkLANDevices refuses LAN users who would speak for an identity the
// gateway does not own, and topic rules whose fixed device no mapping rule
// routes: their messages could never be forwarded.
func checkLANDevices(adapter string, c *lanmqtt.Config, owned map[string]bool, m *mapping.Config) error {
	var errs []error
	for i, u := range c.Users {
		if u.Device != "" && !owned[u.Device] {
			errs = append(errs, edgegw.Errorf(fmt.Sprintf("users[%d].device", i), "%q is not one of the identities", u.Device))
		}
	}
	for i, r := range c.Topics {
		if strings.Contains(r.Device, "{") {
			continue // named by the topic: checked per message
		}
		routed := false
		for _, d := range m.Devices {
			routed = routed || d.Adapter == adapter && d.Device == r.Device
		}
		if !routed {
			errs = append(errs, edgegw.Errorf(fmt.Sprintf("topics[%d].device", i),
				"no mapping.devices rule routes %s/%s to an identity", adapter, r.Device))
		}
	}
	return errors.Join(errs...)
}
