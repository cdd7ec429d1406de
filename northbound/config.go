package northbound

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
)

// Profiles and transports.
const (
	ProfileIoTHub = "azure-iothub"
	ProfileMQTT   = "mqtt"

	TransportMQTT      = "mqtt"
	TransportWebSocket = "websocket"
)

// Config is the `hub:` section: where the hub is and how to talk to it.
type Config struct {
	// Profile is "azure-iothub" (default) or "mqtt" (any MQTT 3.1.1 broker).
	Profile string `yaml:"profile"`
	// Host is the hub's host name, e.g. myhub.azure-devices.net. For IoT Hub
	// it is also the name in MQTT usernames and SAS token audiences.
	// Identities provisioned by DPS connect to the hub DPS assigns them
	// instead (with Port, CAFile, Transport from here), so Host may be
	// empty when every identity is.
	Host string `yaml:"host"`
	// Port defaults to 8883 (443 for websocket; 1883 and 80 when insecure).
	Port int `yaml:"port"`
	// Address, if set, is the host:port dialled instead of Host:Port (a
	// proxy or a local hub emulator); TLS verifies its host part.
	Address string `yaml:"address"`
	// Transport is "mqtt" (default, MQTT over TLS) or "websocket" (MQTT over
	// WebSockets on 443 for networks that block 8883).
	Transport string `yaml:"transport"`
	// WebSocketPath is the path of the WebSocket endpoint; default
	// "/$iothub/websocket" (azure-iothub) or "/mqtt".
	WebSocketPath string `yaml:"websocket_path"`
	// CAFile holds the PEM CA certificates the hub's certificate must chain
	// to; "" means the system roots.
	CAFile string `yaml:"ca_file"`
	// RootCAs is set programmatically (embedded hub emulator); it overrides
	// CAFile.
	RootCAs *x509.CertPool `yaml:"-"`
	// Insecure connects without TLS. Local tests only.
	Insecure bool `yaml:"insecure"`

	// ConnectRate is the number of new connections per second, gateway-wide
	// (IoT Hub throttles new device connections); default 50.
	ConnectRate float64 `yaml:"connect_rate"`
	// ConnectBurst is how many connections may start at once; default 1.
	ConnectBurst int `yaml:"connect_burst"`
	// BackoffMin and BackoffMax bound the jittered exponential delay between
	// failed connection attempts of one identity; defaults 1s and 2m.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// ConnectTimeout bounds one connection attempt (dial, TLS, CONNACK);
	// default 30s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// KeepAlive is the MQTT keep-alive; default 4m (IoT Hub allows up to
	// 1177s).
	KeepAlive time.Duration `yaml:"keep_alive"`
	// AckTimeout is how long a PUBACK, SUBACK or twin response may take
	// before the connection is considered broken; default 30s.
	AckTimeout time.Duration `yaml:"ack_timeout"`

	// TokenTTL is the lifetime of the SAS tokens the gateway signs; default
	// 1h. Tokens are renewed, by a planned reconnect, when 70-80% of it has
	// passed.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// APIVersion is the IoT Hub api-version in the MQTT username; default
	// 2021-04-12.
	APIVersion string `yaml:"api_version"`
	// ModelID is an optional IoT Plug and Play model id sent at connect.
	ModelID string `yaml:"model_id"`

	// InFlight is the number of messages one identity may have sent and not
	// yet had acknowledged; default 20.
	InFlight int `yaml:"in_flight"`
	// MaxCommands is how many commands of one identity run at once;
	// default 4. A method call that finds them all running is answered 429
	// at once.
	MaxCommands int `yaml:"max_commands"`
	// DesiredRetryMin and DesiredRetryMax bound the jittered exponential
	// delay before desired properties whose write failed for a passing
	// reason (device unavailable, 503; timed out, 504) are written again,
	// and before the reconnect that has a C2D message that failed so
	// redelivered; defaults 5s and 2m.
	DesiredRetryMin time.Duration `yaml:"desired_retry_min"`
	DesiredRetryMax time.Duration `yaml:"desired_retry_max"`

	// Topics are the mqtt profile's per-identity topic templates.
	Topics Topics `yaml:"topics"`

	// ProvisioningDir is where the hubs DPS assigned are kept (one file
	// per registration id); set by the gateway to <state_dir>/dps. Empty:
	// identities register at every start.
	ProvisioningDir string `yaml:"-"`
}

// Topics are topic templates for the mqtt profile. "{id}" is replaced by
// the identity's id, "{device}" and "{module}" by its parts.
type Topics struct {
	ClientID string `yaml:"client_id"` // default "{id}"
	// Telemetry is where telemetry goes (QoS 1); "{bag}" in it is
	// replaced by the URL-encoded property bag as IoT Hub encodes it.
	// Default "devices/{id}/telemetry".
	Telemetry string `yaml:"telemetry"`
	// Reported is where reported-property patches go (QoS 1); default
	// "devices/{id}/reported".
	Reported string `yaml:"reported"`
	// Desired is subscribed for desired-property patches (JSON objects,
	// optional "$version"); default "devices/{id}/desired".
	Desired string `yaml:"desired"`
	// Commands is the prefix of method calls: "<commands>/<name>[/<rid>]"
	// with a JSON payload, subscribed at QoS 1; default "devices/{id}/commands".
	Commands string `yaml:"commands"`
	// Responses is the prefix of method responses:
	// "<responses>/<name>[/<rid>]" with {"status":N,"payload":...}; default
	// "devices/{id}/responses".
	Responses string `yaml:"responses"`
	// C2D is subscribed for cloud-to-device messages (QoS 1); default
	// "devices/{id}/c2d".
	C2D string `yaml:"c2d"`
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	edgegw.SetDefault(&c.Profile, ProfileIoTHub)
	edgegw.SetDefault(&c.Transport, TransportMQTT)
	if c.Port == 0 {
		switch {
		case c.Transport == TransportWebSocket && c.Insecure:
			c.Port = 80
		case c.Transport == TransportWebSocket:
			c.Port = 443
		case c.Insecure:
			c.Port = 1883
		default:
			c.Port = 8883
		}
	}
	if c.WebSocketPath == "" {
		c.WebSocketPath = "/mqtt"
		if c.Profile == ProfileIoTHub {
			c.WebSocketPath = "/$iothub/websocket"
		}
	}
	edgegw.SetDefault(&c.ConnectRate, 50)
	edgegw.SetDefault(&c.ConnectBurst, 1)
	edgegw.SetDefault(&c.BackoffMin, time.Second)
	edgegw.SetDefault(&c.BackoffMax, 2*time.Minute)
	edgegw.SetDefault(&c.ConnectTimeout, 30*time.Second)
	edgegw.SetDefault(&c.KeepAlive, 4*time.Minute)
	edgegw.SetDefault(&c.AckTimeout, 30*time.Second)
	edgegw.SetDefault(&c.TokenTTL, time.Hour)
	edgegw.SetDefault(&c.APIVersion, "2021-04-12")
	edgegw.SetDefault(&c.InFlight, 20)
	edgegw.SetDefault(&c.MaxCommands, 4)
	edgegw.SetDefault(&c.DesiredRetryMin, 5*time.Second)
	edgegw.SetDefault(&c.DesiredRetryMax, 2*time.Minute)
	t := &c.Topics
	edgegw.SetDefault(&t.ClientID, "{id}")
	edgegw.SetDefault(&t.Telemetry, "devices/{id}/telemetry")
	edgegw.SetDefault(&t.Reported, "devices/{id}/reported")
	edgegw.SetDefault(&t.Desired, "devices/{id}/desired")
	edgegw.SetDefault(&t.Commands, "devices/{id}/commands")
	edgegw.SetDefault(&t.Responses, "devices/{id}/responses")
	edgegw.SetDefault(&t.C2D, "devices/{id}/c2d")
}

// Validate checks c after SetDefaults. Paths are relative to the section.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, edgegw.Errorf(path, format, args...)) }
	if c.Profile != ProfileIoTHub && c.Profile != ProfileMQTT {
		add("profile", "must be %q or %q (got %q)", ProfileIoTHub, ProfileMQTT, c.Profile)
	}
	if strings.ContainsAny(c.Host, "/: ") { // set unless DPS assigns every identity's hub (ValidateIdentities)
		add("host", "must be a host name without scheme, port or path (got %q)", c.Host)
	}
	if c.Port < 1 || c.Port > 65535 {
		add("port", "must be 1-65535 (got %d)", c.Port)
	}
	if c.Address != "" {
		host, port, err := net.SplitHostPort(c.Address)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			add("address", "must be host:port, the address to dial instead of host:port (got %q)", c.Address)
		}
	}
	if c.Transport != TransportMQTT && c.Transport != TransportWebSocket {
		add("transport", "must be %q or %q (got %q)", TransportMQTT, TransportWebSocket, c.Transport)
	}
	if !strings.HasPrefix(c.WebSocketPath, "/") {
		add("websocket_path", "must start with / (got %q)", c.WebSocketPath)
	}
	if c.Insecure && c.CAFile != "" {
		add("ca_file", "makes no sense with insecure: true (plaintext has no certificates)")
	}
	if c.ConnectRate <= 0 {
		add("connect_rate", "must be > 0 (got %v)", c.ConnectRate)
	}
	if c.ConnectBurst < 1 {
		add("connect_burst", "must be >= 1 (got %d)", c.ConnectBurst)
	}
	if c.BackoffMin <= 0 {
		add("backoff_min", "must be > 0 (got %v)", c.BackoffMin)
	}
	if c.BackoffMax < c.BackoffMin {
		add("backoff_max", "must be >= backoff_min %v (got %v)", c.BackoffMin, c.BackoffMax)
	}
	positive := map[string]time.Duration{"connect_timeout": c.ConnectTimeout, "ack_timeout": c.AckTimeout}
	for _, k := range []string{"connect_timeout", "ack_timeout"} {
		if positive[k] <= 0 {
			add(k, "must be > 0 (got %v)", positive[k])
		}
	}
	if c.KeepAlive < time.Second || c.KeepAlive > 1177*time.Second {
		add("keep_alive", "must be 1s-1177s (IoT Hub's limit) (got %v)", c.KeepAlive)
	}
	if c.TokenTTL < time.Second {
		add("token_ttl", "must be >= 1s (got %v)", c.TokenTTL)
	}
	if c.InFlight < 1 || c.InFlight > 1000 {
		add("in_flight", "must be 1-1000 (got %d)", c.InFlight)
	}
	if c.MaxCommands < 1 {
		add("max_commands", "must be >= 1 (got %d)", c.MaxCommands)
	}
	if c.DesiredRetryMin <= 0 {
		add("desired_retry_min", "must be > 0 (got %v)", c.DesiredRetryMin)
	}
	if c.DesiredRetryMax < c.DesiredRetryMin {
		add("desired_retry_max", "must be >= desired_retry_min %v (got %v)", c.DesiredRetryMin, c.DesiredRetryMax)
	}
	if c.Profile == ProfileMQTT {
		errs = append(errs, edgegw.PrefixErrors("topics", c.Topics.validate()))
	}
	return errors.Join(errs...)
}

func (t *Topics) validate() error {
	var errs []error
	for _, f := range []struct {
		name, v  string
		wildcard bool
	}{{"client_id", t.ClientID, true}, {"telemetry", t.Telemetry, false}, {"reported", t.Reported, false},
		{"desired", t.Desired, false}, {"commands", t.Commands, false}, {"responses", t.Responses, false}, {"c2d", t.C2D, false}} {
		switch {
		case f.v == "":
			errs = append(errs, edgegw.Errorf(f.name, "must not be empty"))
		case !f.wildcard && strings.ContainsAny(f.v, "#+"):
			errs = append(errs, edgegw.Errorf(f.name, "must not contain MQTT wildcards # or + (got %q)", f.v))
		case f.name != "client_id" && !strings.Contains(f.v, "{id}") && !strings.Contains(f.v, "{device}"):
			errs = append(errs, edgegw.Errorf(f.name, "must contain {id} or {device} so identities do not share topics (got %q)", f.v))
		}
	}
	if !strings.Contains(t.ClientID, "{id}") && !strings.Contains(t.ClientID, "{device}") {
		errs = append(errs, edgegw.Errorf("client_id", "must contain {id} or {device}: client ids must differ (got %q)", t.ClientID))
	}
	return errors.Join(errs...)
}

// ValidateHost checks that Host is set unless DPS assigns the hub of every
// identity in ids.
func (c *Config) ValidateHost(ids []identity.Config) error {
	if c.Host != "" {
		return nil
	}
	for _, ic := range ids {
		if ic.DPS == nil {
			return edgegw.Errorf("host", "must be set (the hub's host name) unless DPS assigns every identity's hub (dps)")
		}
	}
	return nil
}

// ValidateIdentities checks the identities against the profile: unique ids
// (and registration ids), and credentials the profile can use; a fleet
// entry is checked once, its ids each. Paths are "[i].field".
func (c *Config) ValidateIdentities(ids []identity.Config) error {
	var errs []error
	seen, regs := map[string]int{}, map[string]int{}
	for i := range ids {
		ic := &ids[i]
		path := fmt.Sprintf("[%d]", i)
		if err := ic.Validate(); err != nil {
			errs = append(errs, edgegw.PrefixErrors(path, err))
			continue
		}
		for _, id := range ic.IDs() {
			if j, dup := seen[id]; dup {
				errs = append(errs, edgegw.Errorf(path+".id", "duplicate of identities[%d] (got %q)", j, id))
				break
			}
			seen[id] = i
		}
		if ic.DPS != nil {
			if c.Profile != ProfileIoTHub {
				errs = append(errs, edgegw.Errorf(path+".dps", "DPS assigns IoT Hubs: needs hub.profile %s", ProfileIoTHub))
			}
			if c.Insecure {
				errs = append(errs, edgegw.Errorf(path+".dps", "DPS and the hubs it assigns speak TLS only: remove hub.insecure"))
			}
			reg := ic.IDs() // a registration id is the id unless set
			if ic.DPS.RegistrationID != "" {
				reg = []string{ic.DPS.RegistrationID}
			}
			for _, r := range reg {
				if j, dup := regs[r]; dup && j != i {
					errs = append(errs, edgegw.Errorf(path+".dps", "registration id %q is also the registration id of identities[%d]", r, j))
					break
				}
				regs[r] = i
			}
			continue
		}
		if c.Profile == ProfileIoTHub {
			switch {
			case !ic.HasKey() && !ic.HasCert():
				errs = append(errs, edgegw.Errorf(path, "needs a key, key_file or cert_file for IoT Hub"))
			case ic.HasKey() && ic.HasCert():
				errs = append(errs, edgegw.Errorf(path+".cert_file", "set either a key or a certificate for IoT Hub, not both"))
			case ic.Username != "" || ic.Password != "":
				errs = append(errs, edgegw.Errorf(path+".username", "is for the mqtt profile only (IoT Hub builds its own)"))
			}
		}
	}
	return errors.Join(errs...)
}
