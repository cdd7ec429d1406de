package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/iothub"
)

// DefaultDPSHost is the global device endpoint of Azure's Device
// Provisioning Service.
const DefaultDPSHost = "global.azure-devices-provisioning.net"

// DPSConfig says how an identity is provisioned by the Device Provisioning
// Service (DPS). The attestation is the identity's own credentials: its key
// (key or key_file: an individual enrollment), its certificate (cert_file:
// X.509, the registration id is the certificate's subject CN), or a group
// enrollment key given here, from which the identity's key is derived as
// the Azure SDKs derive it: base64(HMAC-SHA256(group key, registration id)).
// The same key or certificate then authenticates at the hub DPS assigns.
type DPSConfig struct {
	// Host is the DPS endpoint; default global.azure-devices-provisioning.net.
	Host string `yaml:"host"`
	// Port defaults to 8883 (MQTT over TLS).
	Port int `yaml:"port"`
	// Address, if set, is the host:port dialled instead of Host:Port (a
	// proxy or a local emulator); TLS still verifies Host.
	Address string `yaml:"address"`
	// IDScope is the DPS instance's ID scope, such as 0ne00ABCDEF.
	IDScope string `yaml:"id_scope"`
	// RegistrationID defaults to the identity's id. Not allowed in a fleet
	// (each member's id is its registration id).
	RegistrationID string `yaml:"registration_id"`
	// GroupKey (or GroupKeyFile, a file holding it) is the symmetric key of
	// a group enrollment, base64. The device key derived from it is what
	// the identity signs with, at DPS and at its hub.
	GroupKey     edgegw.Secret `yaml:"group_key"`
	GroupKeyFile string        `yaml:"group_key_file"`
}

func (d *DPSConfig) hasGroupKey() bool { return d.GroupKey != "" || d.GroupKeyFile != "" }

// SetDefaults fills the zero fields of d.
func (d *DPSConfig) SetDefaults() {
	edgegw.SetDefault(&d.Host, DefaultDPSHost)
	edgegw.SetDefault(&d.Port, 8883)
}

// MaxRegistrationIDLength is DPS's limit for registration ids.
const MaxRegistrationIDLength = 128

// validRegistrationID checks a DPS registration id: letters, digits and
// - . _ : , at most 128 characters. DPS documents lower case; upper case is
// accepted by the service and left to it.
func validRegistrationID(r string) error {
	if r == "" {
		return errors.New("must not be empty")
	}
	if len(r) > MaxRegistrationIDLength {
		return fmt.Errorf("longer than %d characters", MaxRegistrationIDLength)
	}
	for _, c := range r {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._:", c)
		if !ok {
			return fmt.Errorf("character %q not allowed (letters, digits and - . _ : only)", c)
		}
	}
	return nil
}

// validIDScope checks an ID scope: letters and digits (DPS issues
// "0ne" followed by hexadecimal digits).
func validIDScope(s string) error {
	if s == "" {
		return errors.New("must be set (the DPS instance's ID scope, such as 0ne00ABCDEF)")
	}
	if len(s) > 64 {
		return errors.New("longer than 64 characters")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("character %q not allowed (letters and digits only)", c)
		}
	}
	return nil
}

// validateDPS checks the dps section of c and how it combines with the
// rest of the identity. Called from Validate after the other fields.
func (c *Config) validateDPS() error {
	d := c.DPS
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf(path, format, args...))
	}
	if d.Host != "" && strings.ContainsAny(d.Host, "/: ") {
		add("dps.host", "must be a host name without scheme, port or path (got %q)", d.Host)
	}
	if d.Port < 0 || d.Port > 65535 {
		add("dps.port", "must be 1-65535 (got %d)", d.Port)
	}
	if d.Address != "" {
		host, port, err := net.SplitHostPort(d.Address)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			add("dps.address", "must be host:port, the address to dial instead of host:port (got %q)", d.Address)
		}
	}
	if err := validIDScope(d.IDScope); err != nil {
		add("dps.id_scope", "%v (got %q)", err, d.IDScope)
	}
	if d.RegistrationID != "" {
		if c.Count != 0 {
			add("dps.registration_id", "not allowed in a fleet (count): each identity's id is its registration id")
		} else if err := validRegistrationID(d.RegistrationID); err != nil {
			add("dps.registration_id", "%v (got %q)", err, d.RegistrationID)
		}
	} else if c.Count == 0 && validID(c.ID) == nil {
		if err := validRegistrationID(c.ID); err != nil {
			add("id", "is the DPS registration id: %v (got %q); set dps.registration_id", err, c.ID)
		}
	}
	if d.GroupKey != "" && d.GroupKeyFile != "" {
		add("dps.group_key_file", "set either group_key or group_key_file, not both")
	}
	if d.GroupKey != "" {
		if _, err := decodeKey(d.GroupKey.Reveal()); err != nil {
			add("dps.group_key", "%v", err)
		}
	}
	own := c.Key != "" || c.KeyFile != ""
	switch n := btoi(own) + btoi(d.hasGroupKey()) + btoi(c.HasCert()); {
	case n == 0:
		add("dps", "needs an attestation: a group enrollment key (dps.group_key or dps.group_key_file), an individual enrollment key (key or key_file) or a certificate (cert_file)")
	case n > 1:
		add("dps", "set one attestation: dps.group_key(_file), key(_file) or cert_file")
	}
	if c.SecondaryKey != "" && !own {
		add("secondary_key", "goes with key or key_file (an individual enrollment)")
	}
	if c.Policy != "" {
		add("policy", "not allowed with dps: a provisioned device signs with its own key")
	}
	if strings.Contains(c.ID, "/") {
		add("id", "DPS provisions devices, not modules (got %q)", c.ID)
	}
	if c.Username != "" || c.Password != "" {
		add("username", "not allowed with dps (IoT Hub only)")
	}
	if c.Count != 0 && own {
		add("key", "a fleet (count) shares no individual key: use dps.group_key")
	}
	return errors.Join(errs...)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// DeriveKey returns the device key of registrationID in a symmetric-key
// group enrollment with the (decoded) group key:
// HMAC-SHA256(groupKey, registrationID). Its base64 form is what the
// Azure SDK samples print.
func DeriveKey(groupKey []byte, registrationID string) []byte {
	m := hmac.New(sha256.New, groupKey)
	m.Write([]byte(registrationID))
	return m.Sum(nil)
}

// Provisioning is where and as whom a loaded identity registers with DPS.
type Provisioning struct {
	Host           string // DPS host name: TLS server name
	Port           int
	Address        string // host:port dialled; "" dials Host:Port
	IDScope        string
	RegistrationID string
}

// Dial returns the host:port to dial.
func (p *Provisioning) Dial() string {
	if p.Address != "" {
		return p.Address
	}
	return fmt.Sprintf("%s:%d", p.Host, p.Port)
}

// ProvisioningToken returns the SAS token the identity registers with,
// valid until expiry: audience "{idScope}/registrations/{registrationId}",
// key name "registration", signed with the identity's (possibly derived)
// key, as the Azure C SDK sends it. It returns ErrNoKey for an identity
// that attests with a certificate, and an error for one without DPS.
func (id *Identity) ProvisioningToken(expiry time.Time, secondary bool) (string, error) {
	if id.DPS == nil {
		return "", errors.New("identity is not provisioned by DPS")
	}
	if len(id.keys) == 0 {
		return "", ErrNoKey
	}
	k := id.keys[0]
	if secondary && len(id.keys) > 1 {
		k = id.keys[1]
	}
	return iothub.SASToken(id.DPS.IDScope+"/registrations/"+id.DPS.RegistrationID, k, "registration", expiry), nil
}

// WithDevice returns the identity as its hub knows it: device id device
// (the one DPS assigned), with the same keys and certificate. The id the
// gateway routes by stays id.ID: callers keep both.
func (id *Identity) WithDevice(device string) *Identity {
	if device == id.Device && id.Module == "" {
		return id
	}
	c := *id
	c.ID, c.Device, c.Module = edgegw.DeviceID(device), device, ""
	return &c
}

// EncodeKey returns the base64 form of a key, as DPS and the SDKs show
// derived keys.
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// loadDPS completes a loaded identity provisioned by DPS: its
// registration, and its key derived from a group key.
func (id *Identity) loadDPS(c Config, log *slog.Logger) error {
	d := *c.DPS
	d.SetDefaults()
	id.DPS = &Provisioning{Host: d.Host, Port: d.Port, Address: d.Address, IDScope: d.IDScope, RegistrationID: d.RegistrationID}
	if id.DPS.RegistrationID == "" {
		id.DPS.RegistrationID = c.ID
	}
	group, err := groupKey(c, log)
	if err != nil {
		return err
	}
	if group != nil {
		id.keys = [][]byte{DeriveKey(group, id.DPS.RegistrationID)}
	}
	if id.cert != nil && id.cert.Leaf != nil && id.cert.Leaf.Subject.CommonName != id.DPS.RegistrationID {
		return edgegw.Errorf("cert_file", "subject CN %q is not the registration id %q (DPS takes the registration id from the CN)",
			id.cert.Leaf.Subject.CommonName, id.DPS.RegistrationID)
	}
	return nil
}
