package opcua

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/gopcua/opcua/ua"

	"github.com/edgegw/edgegw"
)

// policies maps the config spelling of a security policy to its URI.
var policies = map[string]string{
	"None":                ua.SecurityPolicyURINone,
	"Basic256Sha256":      ua.SecurityPolicyURIBasic256Sha256,
	"Aes128Sha256RsaOaep": ua.SecurityPolicyURIAes128Sha256RsaOaep,
}

// modes maps the config spelling of a security mode to its value.
var modes = map[string]ua.MessageSecurityMode{
	"None":           ua.MessageSecurityModeNone,
	"Sign":           ua.MessageSecurityModeSign,
	"SignAndEncrypt": ua.MessageSecurityModeSignAndEncrypt,
}

// Validate checks the config after SetDefaults. Error paths are relative to
// the `opcua:` block, e.g. "devices[1].points[0].node".
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	if err := checkEndpoint(c.Endpoint); err != nil {
		add("endpoint", "%v", err)
	}
	if _, ok := policies[c.Security.Policy]; !ok {
		add("security.policy", "must be None, Basic256Sha256 or Aes128Sha256RsaOaep (got %q)", c.Security.Policy)
	}
	if _, ok := modes[c.Security.Mode]; !ok {
		add("security.mode", "must be None, Sign or SignAndEncrypt (got %q)", c.Security.Mode)
	} else if (c.Security.Policy == "None") != (c.Security.Mode == "None") {
		add("security.mode", "must be None exactly when the policy is None (policy %s, mode %s)", c.Security.Policy, c.Security.Mode)
	}
	for i, t := range c.Trusted {
		if _, err := parseThumbprint(t); err != nil {
			add(fmt.Sprintf("trusted[%d]", i), "%v", err)
		}
	}
	switch a := c.Auth; a.Kind {
	case "anonymous":
		if a.Username != "" || a.Password != "" || a.CertFile != "" || a.KeyFile != "" {
			add("auth", "anonymous takes no username, password, cert_file or key_file")
		}
	case "username":
		if a.Username == "" {
			add("auth.username", "is required for kind username")
		}
		if a.CertFile != "" || a.KeyFile != "" {
			add("auth", "kind username takes no cert_file or key_file")
		}
	case "certificate":
		if a.CertFile == "" {
			add("auth.cert_file", "is required for kind certificate")
		}
		if a.KeyFile == "" {
			add("auth.key_file", "is required for kind certificate")
		}
		if a.Username != "" || a.Password != "" {
			add("auth", "kind certificate takes no username or password")
		}
	default:
		add("auth.kind", "must be anonymous, username or certificate (got %q)", a.Kind)
	}
	if c.ApplicationURI != "" {
		if u, err := url.Parse(c.ApplicationURI); err != nil || u.Scheme == "" {
			add("application_uri", "must be a URI such as urn:edgegw:line-3 (got %q)", c.ApplicationURI)
		}
	}
	if c.Timeout <= 0 {
		add("timeout", "must be > 0 (got %s)", c.Timeout)
	}
	if c.BackoffMax <= 0 {
		add("backoff_max", "must be > 0 (got %s)", c.BackoffMax)
	}
	if c.Keepalive <= 0 {
		add("keepalive", "must be > 0 (got %s)", c.Keepalive)
	}
	if len(c.Devices) == 0 {
		add("devices", "at least one device is required")
	}
	names := map[string]bool{}
	for i := range c.Devices {
		d := &c.Devices[i]
		path := fmt.Sprintf("devices[%d]", i)
		if d.Name == "" {
			add(path+".name", "is required")
		} else if names[d.Name] {
			add(path+".name", "duplicate device name %q", d.Name)
		}
		names[d.Name] = true
		errs = append(errs, edgegw.PrefixErrors(path, d.validate()))
	}
	return errors.Join(errs...)
}

// checkEndpoint accepts opc.tcp://host:port[/path].
func checkEndpoint(s string) error {
	if s == "" {
		return errors.New("is required (opc.tcp://host:port/path)")
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "opc.tcp" || u.Host == "" {
		return fmt.Errorf("must be opc.tcp://host:port[/path] (got %q)", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return fmt.Errorf("must name a port: opc.tcp://host:port[/path] (got %q)", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return fmt.Errorf("must have a host and a port 1-65535 (got %q)", s)
	}
	return nil
}

func (d *DeviceConfig) validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	if d.Mode != "subscribe" && d.Mode != "poll" {
		add("mode", "must be subscribe or poll (got %q)", d.Mode)
	}
	if d.Interval <= 0 {
		add("interval", "must be > 0 (got %s)", d.Interval)
	}
	if d.SamplingInterval < 0 {
		add("sampling_interval", "must be >= 0 (got %s)", d.SamplingInterval)
	}
	if len(d.Points) == 0 && len(d.Methods) == 0 {
		add("points", "a device needs points or methods")
	}
	names := map[string]bool{}
	for i := range d.Points {
		p := &d.Points[i]
		path := fmt.Sprintf("points[%d]", i)
		if p.Name == "" {
			add(path+".name", "is required")
		} else if strings.ContainsAny(p.Name, "[]") {
			add(path+".name", "must not contain '[' or ']' (array elements are named name[i]) (got %q)", p.Name)
		} else if names[p.Name] {
			add(path+".name", "duplicate point name %q", p.Name)
		}
		names[p.Name] = true
		errs = append(errs, edgegw.PrefixErrors(path, p.validate(d.Mode)))
	}
	methods := map[string]bool{}
	for i := range d.Methods {
		m := &d.Methods[i]
		path := fmt.Sprintf("methods[%d]", i)
		if m.Name == "" {
			add(path+".name", "is required")
		} else if methods[m.Name] {
			add(path+".name", "duplicate method name %q", m.Name)
		}
		methods[m.Name] = true
		errs = append(errs, edgegw.PrefixErrors(path, m.validate()))
	}
	return errors.Join(errs...)
}

func (p *PointConfig) validate(mode string) error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	if _, err := ParseNodeID(p.Node); err != nil {
		add("node", "%v", err)
	}
	t, ok := types[p.Type]
	if !ok {
		add("type", "must be one of boolean, sbyte, byte, int16, uint16, int32, uint32, int64, uint64, float, double, string, datetime (got %q)", p.Type)
	}
	if ok && !t.numeric && (p.Scale != 0 || p.Offset != 0) {
		add("scale", "applies to numeric types only (type is %s)", p.Type)
	}
	if p.Length < 0 || p.Length > maxArray {
		add("length", "must be 0 (a scalar) or 1-%d array elements (got %d)", maxArray, p.Length)
	}
	if p.Length > 0 && p.Writable {
		add("writable", "arrays cannot be written")
	}
	if p.SamplingInterval < 0 {
		add("sampling_interval", "must be >= 0 (got %s)", p.SamplingInterval)
	}
	switch {
	case p.Deadband < 0:
		add("deadband", "must be >= 0 (got %g)", p.Deadband)
	case p.Deadband > 0 && ok && !t.numeric:
		add("deadband", "applies to numeric types only (type is %s)", p.Type)
	case p.Deadband > 0 && mode == "poll":
		add("deadband", "applies to subscriptions only (the device polls; use the mapping's deadband)")
	}
	switch p.DeadbandType {
	case "", "absolute":
	case "percent":
		if p.Deadband > 100 {
			add("deadband", "a percent deadband must be 0-100 (got %g)", p.Deadband)
		}
	default:
		add("deadband_type", "must be absolute or percent (got %q)", p.DeadbandType)
	}
	return errors.Join(errs...)
}

func (m *MethodConfig) validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	if _, err := ParseNodeID(m.Object); err != nil {
		add("object", "%v", err)
	}
	if _, err := ParseNodeID(m.Method); err != nil {
		add("method", "%v", err)
	}
	for i, in := range m.Inputs {
		if _, ok := types[in]; !ok {
			add(fmt.Sprintf("inputs[%d]", i), "must be one of the point types (got %q)", in)
		}
	}
	seen := map[string]bool{}
	for i, out := range m.Outputs {
		if out == "" || seen[out] {
			add(fmt.Sprintf("outputs[%d]", i), "must be a unique non-empty name (got %q)", out)
		}
		seen[out] = true
	}
	return errors.Join(errs...)
}

// parseThumbprint reads a SHA-1 thumbprint in hex, with or without colons
// or spaces.
func parseThumbprint(s string) ([]byte, error) {
	h := strings.NewReplacer(":", "", " ", "").Replace(s)
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 20 {
		return nil, fmt.Errorf("must be a SHA-1 thumbprint of 40 hex digits (got %q)", s)
	}
	return b, nil
}
