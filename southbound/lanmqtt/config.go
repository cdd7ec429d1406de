package lanmqtt

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/edgegw/edgegw"
)

// Config configures one embedded LAN broker.
type Config struct {
	// Listen is the TCP address for MQTT clients (default "127.0.0.1:1883").
	// Use ":1883" or a LAN address to serve the plant network.
	Listen string `yaml:"listen"`
	// TLS, when set, serves MQTT over TLS on Listen (and on Websocket).
	TLS *TLSConfig `yaml:"tls"`
	// Websocket is an optional address for MQTT over websockets (path "/",
	// subprotocol "mqtt"). Empty means no websocket listener.
	Websocket string `yaml:"websocket"`
	// Users who may connect. Each has a password and topic ACLs.
	Users []User `yaml:"users"`
	// AllowAnonymous lets clients without a username connect. Anonymous
	// clients may publish and subscribe to every topic and speak for every
	// identity: use it only on an isolated network or for a demo.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// Topics routes plain topics (the topic surface) to local device names.
	// The first matching rule wins.
	Topics []TopicRule `yaml:"topics"`
	// MaxMessageBytes is the largest payload accepted for intake (default
	// 256 KiB, IoT Hub's D2C limit). Larger ones are rejected.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// IntakeWindow is how many publishes of one connection may wait for
	// the disk at once (default 256). The gateway keeps reading a device's
	// publishes while earlier ones commit, and acknowledges each in order
	// once it is on disk; past this many (or IntakeWindowBytes of payload)
	// it stops reading that connection until commits catch up, so a slow
	// disk slows the device down instead of filling memory.
	IntakeWindow int `yaml:"intake_window"`
	// IntakeWindowBytes bounds the payload bytes of one connection waiting
	// for the disk (default 1 MiB; a single larger message is still taken
	// on its own).
	IntakeWindowBytes int `yaml:"intake_window_bytes"`
	// MethodTimeout bounds how long a direct method relayed to a device
	// waits for its answer (default 5m, IoT Hub's longest: the hub, which
	// knows the caller's timeout, answers 504 first).
	MethodTimeout time.Duration `yaml:"method_timeout"`
	// C2DTimeout bounds how long a C2D message relayed to a device waits
	// for its PUBACK (default 1m); then the hub redelivers it.
	C2DTimeout time.Duration `yaml:"c2d_timeout"`
	// MaxPending is the per-client queue of outbound packets (default 256).
	// A subscriber that falls further behind loses messages (counted).
	MaxPending int `yaml:"max_pending"`
	// MaxInflight bounds unacknowledged QoS>0 messages held per client
	// (default 64). It is also the memory bound of a session, connected or
	// offline and persistent: up to max_inflight × max_message_bytes each
	// (16 MiB with the defaults), times max_clients in the worst case.
	MaxInflight int `yaml:"max_inflight"`
	// SessionExpiry is how long a disconnected persistent session is kept
	// (default 1h).
	SessionExpiry time.Duration `yaml:"session_expiry"`
	// ConnectTimeout is how long a new connection may take to send CONNECT
	// (default 10s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxClients bounds concurrent connections (default 1000).
	MaxClients int `yaml:"max_clients"`
}

// User is one LAN account.
//
// Publish and Subscribe are MQTT topic filters; the placeholders
// {username}, {device} and {module} are replaced by the user's name and
// identity parts ("pump-7" gives {device}=pump-7; "gw-1/modbus" gives
// {device}=gw-1, {module}=modbus). When Device is set and Publish or
// Subscribe is empty, the IoT Hub defaults apply:
// devices/{device}/messages/events/# and devices/{device}/messages/devicebound/#
// (for a module identity devices/{device}/modules/{module}/messages/events/#
// and devices/{device}/modules/{module}/#).
//
// Devices built on the Azure IoT device SDKs connect as they would to IoT
// Hub: client id = device id, username {host}/{device}/?api-version=...
// (which selects the user whose Device it names), and a SAS token as
// password, checked against SASKey (the device's symmetric key from its
// connection string), or no password and a client certificate over TLS
// (X509Thumbprint, or TLSConfig.ClientCAFile). Any host name is accepted
// in username and token.
type User struct {
	Username string `yaml:"username"`
	// Password is the user's password in plain text (accepted, with a
	// warning from edgegw check), or better its PBKDF2-SHA512 hash as
	// `edgegw passwd` or mosquitto_passwd make it: "$7$<iterations>$...".
	Password edgegw.Secret `yaml:"password"`
	// SASKey is the base64 symmetric key of Device; with it, a SAS token
	// signed with that key is accepted as password.
	SASKey edgegw.Secret `yaml:"sas_key"`
	// X509Thumbprint lets Device authenticate with a self-signed client
	// certificate instead of a password: the SHA-1 (as IoT Hub shows it)
	// or SHA-256 hex digest of the certificate (DER). Needs tls.
	X509Thumbprint string `yaml:"x509_thumbprint"`
	// Device is the hub identity this user may speak for on the IoT Hub
	// surface. When set, the MQTT client id must equal it, as at IoT Hub.
	Device string `yaml:"device"`
	// Relay, for a user with a Device, says whether the device speaks the
	// whole IoT Hub device protocol through the gateway (a leaf device of a
	// transparent gateway): its twin requests are answered, and the hub's
	// methods, desired properties and C2D messages for its identity are
	// passed on to it, unless the gateway's mapping has command rules for
	// that identity. Default true; false keeps the device on telemetry
	// only, its commands mapped by rules.
	Relay     *bool    `yaml:"relay"`
	Publish   []string `yaml:"publish"`
	Subscribe []string `yaml:"subscribe"`
}

// Relayed reports whether u's device is relayed (see Relay).
func (u *User) Relayed() bool { return u.Device != "" && (u.Relay == nil || *u.Relay) }

// TopicRule routes publishes matching Filter to the local device Device of
// this adapter. Device may contain {N} (N >= 1), replaced by the N-th level
// of the published topic: filter "plant/+/temp" with device "line-{2}"
// turns plant/7/temp into device "line-7". A placeholder must name a level
// that exists in the filter and is not "#".
type TopicRule struct {
	Filter string `yaml:"filter"`
	Device string `yaml:"device"`
}

// Defaults.
const (
	DefaultListen            = "127.0.0.1:1883"
	DefaultMaxMessageBytes   = 256 * 1024
	DefaultMaxPending        = 256
	DefaultIntakeWindow      = 256
	DefaultIntakeWindowBytes = 1 << 20
	DefaultMaxInflight       = 64
	DefaultSessionExpiry     = time.Hour
	DefaultConnectTimeout    = 10 * time.Second
	DefaultMaxClients        = 1000
)

// SetDefaults fills zero fields with defaults.
func (c *Config) SetDefaults() {
	edgegw.SetDefault(&c.Listen, DefaultListen)
	edgegw.SetDefault(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	edgegw.SetDefault(&c.MaxPending, DefaultMaxPending)
	edgegw.SetDefault(&c.IntakeWindow, DefaultIntakeWindow)
	edgegw.SetDefault(&c.MethodTimeout, DefaultMethodTimeout)
	edgegw.SetDefault(&c.C2DTimeout, DefaultC2DTimeout)
	edgegw.SetDefault(&c.IntakeWindowBytes, DefaultIntakeWindowBytes)
	edgegw.SetDefault(&c.MaxInflight, DefaultMaxInflight)
	edgegw.SetDefault(&c.SessionExpiry, DefaultSessionExpiry)
	edgegw.SetDefault(&c.ConnectTimeout, DefaultConnectTimeout)
	edgegw.SetDefault(&c.MaxClients, DefaultMaxClients)
}

var placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)

// Validate checks c after SetDefaults.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, edgegw.Errorf(path, format, args...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen", "must be host:port (got %q)", c.Listen)
	}
	if c.Websocket != "" {
		if _, _, err := net.SplitHostPort(c.Websocket); err != nil {
			add("websocket", "must be host:port (got %q)", c.Websocket)
		}
	}
	if c.TLS != nil {
		errs = append(errs, c.TLS.validate()...)
	}
	if c.MaxMessageBytes <= 0 || c.MaxMessageBytes > 16<<20 {
		add("max_message_bytes", "must be in 1..16777216 (got %d)", c.MaxMessageBytes)
	}
	if c.MaxPending < 1 || c.MaxPending > 65535 {
		add("max_pending", "must be in 1..65535 (got %d)", c.MaxPending)
	}
	if c.IntakeWindow < 1 || c.IntakeWindow > 65535 {
		add("intake_window", "must be in 1..65535 (got %d)", c.IntakeWindow)
	}
	if c.MethodTimeout < time.Second || c.MethodTimeout > 10*time.Minute {
		add("method_timeout", "must be between 1s and 10m (got %s)", c.MethodTimeout)
	}
	if c.C2DTimeout < time.Second {
		add("c2d_timeout", "must be at least 1s (got %s)", c.C2DTimeout)
	}
	if c.IntakeWindowBytes < 1 {
		add("intake_window_bytes", "must be at least 1 (got %d)", c.IntakeWindowBytes)
	}
	if c.MaxInflight < 1 || c.MaxInflight > 65535 {
		add("max_inflight", "must be in 1..65535 (got %d)", c.MaxInflight)
	}
	if c.SessionExpiry < time.Second {
		add("session_expiry", "must be >= 1s (got %s)", c.SessionExpiry)
	}
	if c.ConnectTimeout <= 0 {
		add("connect_timeout", "must be > 0 (got %s)", c.ConnectTimeout)
	}
	if c.MaxClients < 1 {
		add("max_clients", "must be > 0 (got %d)", c.MaxClients)
	}
	if len(c.Users) == 0 && !c.AllowAnonymous {
		add("users", "must list at least one user unless allow_anonymous is true")
	}
	usernames, devices := edgegw.NewNames("users"), map[string]int{}
	for i, u := range c.Users {
		p := fmt.Sprintf("users[%d]", i)
		if err := usernames.Check(p+".username", i, u.Username); err != nil {
			errs = append(errs, err)
		}
		if IsPasswordHash(u.Password.Reveal()) {
			if _, err := parsePasswordHash(u.Password.Reveal()); err != nil {
				add(p+".password", "%v", err)
			}
		}
		if u.Password == "" && u.SASKey == "" && !u.mayUseCert(c) {
			add(p+".password", "must be set (or sas_key, or x509_thumbprint, or device with tls.client_ca_file)")
		}
		errs = append(errs, u.checkX509(c, p)...)
		if u.SASKey != "" {
			if k, err := base64.StdEncoding.DecodeString(u.SASKey.Reveal()); err != nil || len(k) == 0 {
				add(p+".sas_key", "must be a base64 key")
			} else if u.Device == "" {
				add(p+".sas_key", "needs device set")
			}
		}
		if u.Device != "" {
			if j, dup := devices[u.Device]; dup {
				add(p+".device", "duplicate of users[%d] (%q)", j, u.Device)
			}
			devices[u.Device] = i
		}
		if u.Device != "" {
			if err := checkIdentity(u.Device); err != nil {
				add(p+".device", "%v (got %q)", err, u.Device)
			}
		} else if len(u.Publish) == 0 && len(u.Subscribe) == 0 {
			add(p, "needs a device or publish/subscribe filters")
		}
		for j, f := range u.Publish {
			if err := checkUserFilter(u, f); err != nil {
				add(fmt.Sprintf("%s.publish[%d]", p, j), "%v (got %q)", err, f)
			}
		}
		for j, f := range u.Subscribe {
			if err := checkUserFilter(u, f); err != nil {
				add(fmt.Sprintf("%s.subscribe[%d]", p, j), "%v (got %q)", err, f)
			}
		}
	}
	for i, r := range c.Topics {
		p := fmt.Sprintf("topics[%d]", i)
		if err := checkFilter(r.Filter); err != nil {
			add(p+".filter", "%v (got %q)", err, r.Filter)
			continue
		}
		if r.Device == "" {
			add(p+".device", "must be set")
			continue
		}
		levels := strings.Split(r.Filter, "/")
		for _, m := range placeholderRE.FindAllStringSubmatch(r.Device, -1) {
			n, err := strconv.Atoi(m[1])
			if err != nil || n < 1 || n > len(levels) || levels[n-1] == "#" {
				add(p+".device", "placeholder %s must name a level 1..%d of the filter that is not # (got %q)", m[0], len(levels), r.Device)
			}
		}
	}
	return errors.Join(errs...)
}

// Points returns nil: LAN devices declare no points.
func (c *Config) Points(adapter string) []edgegw.PointInfo { return nil }

// checkIdentity accepts "device" or "device/module".
func checkIdentity(id string) error {
	parts := strings.Split(id, "/")
	if len(parts) > 2 {
		return errors.New("must be a device id or device/module")
	}
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, "+#") {
			return errors.New("must not be empty or contain + or #")
		}
	}
	return nil
}

// checkFilter validates an MQTT topic filter.
func checkFilter(f string) error {
	if f == "" {
		return errors.New("must not be empty")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return errors.New("# must be the last level")
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return errors.New("wildcards must occupy a whole level")
		}
	}
	return nil
}

func checkUserFilter(u User, f string) error {
	for _, m := range placeholderRE.FindAllStringSubmatch(f, -1) {
		switch m[1] {
		case "username":
			if strings.ContainsAny(u.Username, "+#/") {
				return errors.New("{username} needs a username without + # /")
			}
		case "device":
			if u.Device == "" {
				return errors.New("{device} needs the user's device set")
			}
		case "module":
			if !strings.Contains(u.Device, "/") {
				return errors.New("{module} needs a module identity (device/module)")
			}
		default:
			return fmt.Errorf("unknown placeholder %s (want {username}, {device} or {module})", m[0])
		}
	}
	return checkFilter(f)
}
