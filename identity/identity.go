// Package identity holds the device and module identities the gateway
// speaks for at the hub, and their credentials: SAS tokens (signed and
// renewed on a jittered schedule) and X.509 client certificates. Secrets
// never reach a log.
//
// A [Config] is what the YAML file says; [Load] turns it into an [Identity]
// by decoding keys and reading key and certificate files (the only I/O this
// package does). An Identity is immutable and safe for concurrent use.
package identity

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/edgegw/edgegw"
)

// Config is one identity from the config file.
type Config struct {
	// ID is the device id, or "device/module" for a module identity.
	ID string `yaml:"id"`
	// Key is the base64 symmetric key (the device's primary key, or the
	// key of the shared access policy named by Policy).
	Key edgegw.Secret `yaml:"key"`
	// SecondaryKey is tried when the hub refuses the primary key.
	SecondaryKey edgegw.Secret `yaml:"secondary_key"`
	// KeyFile is an alternative to Key: a file holding the base64 key.
	KeyFile string `yaml:"key_file"`
	// Policy names a shared access policy with DeviceConnect permission
	// (such as "device"); Key is then that policy's key and tokens carry
	// skn=Policy. Empty means Key is the identity's own key.
	Policy string `yaml:"policy"`
	// CertFile and CertKeyFile are the X.509 client certificate and its
	// private key (PEM). Used instead of a key (IoT Hub), or in addition
	// to username/password (mqtt profile).
	CertFile    string `yaml:"cert_file"`
	CertKeyFile string `yaml:"cert_key_file"`
	// Username and Password authenticate at a generic MQTT broker (mqtt
	// profile only).
	Username string        `yaml:"username"`
	Password edgegw.Secret `yaml:"password"`

	// DPS, when set, has the identity provisioned by the Device
	// Provisioning Service: it learns its hub and device id by registering
	// (dps.go).
	DPS *DPSConfig `yaml:"dps"`
	// Count makes the entry a fleet of Count identities provisioned by one
	// group enrollment: ID then holds "{n}" (or "{n:W}", zero-padded to W
	// digits), replaced by First, First+1, ... (fleet.go).
	Count int `yaml:"count"`
	// First is the number of the fleet's first identity; default 1.
	First *int `yaml:"first"`
}

// MaxIDLength is IoT Hub's limit for device and module ids.
const MaxIDLength = 128

// Validate checks c on its own; which credentials a hub profile requires
// is checked by the profile. Paths are relative to this identity.
func (c *Config) Validate() error {
	var errs []error
	if c.Count != 0 || c.First != nil {
		errs = append(errs, c.validateFleet())
	} else if err := validID(c.ID); err != nil {
		errs = append(errs, edgegw.Errorf("id", "%v (got %q)", err, c.ID))
	}
	if c.Key != "" && c.KeyFile != "" {
		errs = append(errs, edgegw.Errorf("key_file", "set either key or key_file, not both"))
	}
	if c.Key != "" {
		if _, err := decodeKey(c.Key.Reveal()); err != nil {
			errs = append(errs, edgegw.Errorf("key", "%v", err))
		}
	}
	if c.SecondaryKey != "" {
		if _, err := decodeKey(c.SecondaryKey.Reveal()); err != nil {
			errs = append(errs, edgegw.Errorf("secondary_key", "%v", err))
		}
	}
	if c.Policy != "" && c.Key == "" && c.KeyFile == "" {
		errs = append(errs, edgegw.Errorf("policy", "needs the policy's key in key or key_file"))
	}
	if (c.CertFile == "") != (c.CertKeyFile == "") {
		errs = append(errs, edgegw.Errorf("cert_key_file", "cert_file and cert_key_file go together (got cert_file %q, cert_key_file %q)", c.CertFile, c.CertKeyFile))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, edgegw.Errorf("username", "must be set when password is"))
	}
	if c.DPS != nil {
		errs = append(errs, c.validateDPS())
	}
	return errors.Join(errs...)
}

// HasKey reports whether c carries a symmetric key (inline or in a file,
// its own or, with DPS, a group enrollment key it derives its own from).
func (c *Config) HasKey() bool {
	return c.Key != "" || c.KeyFile != "" || c.DPS != nil && c.DPS.hasGroupKey()
}

// HasCert reports whether c carries an X.509 client certificate.
func (c *Config) HasCert() bool { return c.CertFile != "" }

// validID checks an IoT Hub device id or "device/module" id: ASCII letters,
// digits and -.%_*?!(),:=@$' , at most 128 characters each part.
func validID(id string) error {
	if id == "" {
		return errors.New("must not be empty")
	}
	dev, mod, isModule := strings.Cut(id, "/")
	parts := []string{dev}
	if isModule {
		parts = append(parts, mod)
	}
	for _, p := range parts {
		if p == "" {
			return errors.New("device and module ids must not be empty")
		}
		if len(p) > MaxIDLength {
			return fmt.Errorf("longer than %d characters", MaxIDLength)
		}
		for _, r := range p {
			if !idChar(r) {
				return fmt.Errorf("character %q not allowed (letters, digits and -.%%_*?!(),:=@$' only, one / between device and module)", r)
			}
		}
	}
	return nil
}

func idChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("-.%_*?!(),:=@$'", r)
}

// Identity is a loaded identity: decoded keys and parsed certificate.
type Identity struct {
	ID       edgegw.DeviceID
	Device   string // device id
	Module   string // module id, "" for a device identity
	Policy   string // shared access policy name, "" for the identity's own key
	Username string
	Password edgegw.Secret

	// DPS is how the identity learns its hub, nil when the hub is
	// configured. ID and Device are then the registration id until the
	// hub side is known (see WithDevice).
	DPS *Provisioning

	keys [][]byte // primary, then secondary; decoded
	cert *tls.Certificate
}

// Load validates c, decodes its keys and reads its key and certificate
// files (a fleet entry needs LoadAll). A key or certificate-key file readable by group or others gives
// one warning on log (nil discards); the key itself is never logged.
func Load(c Config, log *slog.Logger) (*Identity, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Count != 0 {
		return nil, errors.New("a fleet entry (count) stands for several identities: use LoadAll")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := &Identity{ID: edgegw.DeviceID(c.ID), Policy: c.Policy, Username: c.Username, Password: c.Password}
	id.Device, id.Module, _ = strings.Cut(c.ID, "/")
	primary := c.Key.Reveal()
	if c.KeyFile != "" {
		b, err := readSecretFile(c.KeyFile, c.ID, log)
		if err != nil {
			return nil, edgegw.Errorf("key_file", "%v", err)
		}
		primary = strings.TrimSpace(string(b))
	}
	for i, s := range []string{primary, c.SecondaryKey.Reveal()} {
		if s == "" {
			continue
		}
		k, err := decodeKey(s)
		if err != nil {
			return nil, edgegw.Errorf([]string{"key_file", "secondary_key"}[i], "%v", err)
		}
		id.keys = append(id.keys, k)
	}
	if c.CertFile != "" {
		cert, err := loadCert(c.CertFile, c.CertKeyFile, c.ID, log)
		if err != nil {
			return nil, edgegw.Errorf("cert_file", "%v", err)
		}
		id.cert = cert
	}
	if c.DPS != nil {
		if err := id.loadDPS(c, log); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// Keys reports how many symmetric keys the identity has (0, 1 or 2).
func (id *Identity) Keys() int { return len(id.keys) }

// Certificate returns the X.509 client certificate, or nil.
func (id *Identity) Certificate() *tls.Certificate { return id.cert }

// IsModule reports whether id is a module identity.
func (id *Identity) IsModule() bool { return id.Module != "" }

// decodeKey decodes a base64 key (standard alphabet, padding optional).
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		k, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("not valid base64 (the key is not shown)")
	}
	if len(k) == 0 {
		return nil, errors.New("decodes to an empty key")
	}
	return k, nil
}

// readSecretFile reads a file holding a secret and warns once if it can be
// read by group or others.
func readSecretFile(path, id string, log *slog.Logger) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("secret file is readable by group or others; chmod 600 it",
			"identity", id, "file", path, "mode", fmt.Sprintf("%04o", perm))
	}
	return os.ReadFile(path)
}
