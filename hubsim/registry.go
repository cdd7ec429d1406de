package hubsim

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// AuthType is a registry authentication type, spelled as IoT Hub spells it.
type AuthType string

// Authentication types.
const (
	AuthSAS        AuthType = "sas"
	AuthSelfSigned AuthType = "selfSigned"           // X.509, by SHA-1 thumbprint
	AuthCA         AuthType = "certificateAuthority" // X.509, chain to a trusted CA
)

// Registry errors; REST maps them to IoT Hub error codes.
var (
	ErrDeviceNotFound = errors.New("device not found")
	ErrDeviceExists   = errors.New("device already exists")
	ErrBadDeviceID    = errors.New("invalid device id")
	ErrETagMismatch   = errors.New("etag mismatch")
)

// Device is one registry identity: a device, or a module when ModuleID is set.
type Device struct {
	ID           string   `json:"deviceId"`
	ModuleID     string   `json:"moduleId,omitempty"`
	Auth         AuthType `json:"authType,omitempty"` // "" = sas
	PrimaryKey   string   `json:"primaryKey,omitempty"`
	SecondaryKey string   `json:"secondaryKey,omitempty"`
	// Thumbprints of self-signed client certificates (SHA-1 hex, any case).
	PrimaryThumbprint   string    `json:"primaryThumbprint,omitempty"`
	SecondaryThumbprint string    `json:"secondaryThumbprint,omitempty"`
	Disabled            bool      `json:"disabled,omitempty"`
	GenerationID        string    `json:"generationId,omitempty"`
	ETag                string    `json:"etag,omitempty"`
	Updated             time.Time `json:"updated"`
}

// key returns the identity key "device" or "device/module".
func (d Device) key() string { return identityKey(d.ID, d.ModuleID) }

func identityKey(device, module string) string {
	if module != "" {
		return device + "/" + module
	}
	return device
}

// validID checks a device or module id with IoT Hub's rules: up to 128
// ASCII letters, digits and - . % _ * ? ! ( ) , : = @ $ '.
func validID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%w: %q must be 1-128 characters", ErrBadDeviceID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.%_*?!(),:=@$'", c) >= 0 {
			continue
		}
		return fmt.Errorf("%w: %q contains %q", ErrBadDeviceID, id, c)
	}
	return nil
}

// normalize fills generated fields of a new or replaced identity.
func (d *Device) normalize() error {
	if err := validID(d.ID); err != nil {
		return err
	}
	if d.ModuleID != "" {
		if err := validID(d.ModuleID); err != nil {
			return err
		}
	}
	if d.Auth == "" {
		d.Auth = AuthSAS
		if d.PrimaryThumbprint != "" || d.SecondaryThumbprint != "" {
			d.Auth = AuthSelfSigned
		}
	}
	switch d.Auth {
	case AuthSAS:
		if d.PrimaryKey == "" {
			d.PrimaryKey = NewKey()
		}
		if d.SecondaryKey == "" {
			d.SecondaryKey = NewKey()
		}
	case AuthSelfSigned:
		if d.PrimaryThumbprint == "" {
			return fmt.Errorf("device %q: selfSigned authentication needs a primary thumbprint", d.ID)
		}
	case AuthCA:
	default:
		return fmt.Errorf("device %q: unknown authentication type %q", d.ID, d.Auth)
	}
	d.PrimaryThumbprint = strings.ToUpper(d.PrimaryThumbprint)
	d.SecondaryThumbprint = strings.ToUpper(d.SecondaryThumbprint)
	if d.GenerationID == "" {
		d.GenerationID = fmt.Sprintf("%d", time.Now().UnixNano())
	}
	d.Updated = time.Now().UTC()
	d.ETag = etagOf(d.Updated.UnixNano())
	return nil
}

// CreateDevice registers a device with generated SAS keys.
func (h *Hub) CreateDevice(id string) (Device, error) {
	return h.AddDevice(Device{ID: id})
}

// CreateModule registers a module of an existing device with generated keys.
func (h *Hub) CreateModule(deviceID, moduleID string) (Device, error) {
	if moduleID == "" {
		return Device{}, fmt.Errorf("%w: empty module id", ErrBadDeviceID)
	}
	return h.AddDevice(Device{ID: deviceID, ModuleID: moduleID})
}

// AddDevice registers d; empty keys are generated. It fails with
// ErrDeviceExists if the identity exists.
func (h *Hub) AddDevice(d Device) (Device, error) {
	if err := d.normalize(); err != nil {
		return Device{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	if _, ok := h.idents[d.key()]; ok {
		return Device{}, fmt.Errorf("%w: %s", ErrDeviceExists, d.key())
	}
	if d.ModuleID != "" {
		if _, ok := h.idents[d.ID]; !ok {
			return Device{}, fmt.Errorf("%w: %s (parent of module %s)", ErrDeviceNotFound, d.ID, d.ModuleID)
		}
	}
	h.idents[d.key()] = newIdent(d)
	h.dirtyLocked()
	return d, nil
}

// UpdateDevice replaces an existing identity (keys, status, auth). An empty
// etag or "*" matches any; otherwise it must equal the current etag.
// Disabling a connected identity closes its connection.
func (h *Hub) UpdateDevice(d Device, etag string) (Device, error) {
	if err := d.normalize(); err != nil {
		return Device{}, err
	}
	h.mu.Lock()
	id, ok := h.idents[d.key()]
	if !ok {
		h.mu.Unlock()
		return Device{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, d.key())
	}
	if etag != "" && etag != "*" && etag != id.dev.ETag {
		h.mu.Unlock()
		return Device{}, ErrETagMismatch
	}
	d.GenerationID = id.dev.GenerationID
	id.dev = d
	c := id.conn
	h.dirtyLocked()
	h.mu.Unlock()
	if d.Disabled && c != nil {
		c.kick()
	}
	return d, nil
}

// Device returns the registry entry of a device (module "" ) or module.
func (h *Hub) Device(deviceID, moduleID string) (Device, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.idents[identityKey(deviceID, moduleID)]
	if !ok {
		return Device{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, identityKey(deviceID, moduleID))
	}
	return id.dev, nil
}

// Devices lists all devices (not modules), ordered by id.
func (h *Hub) Devices() []Device {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Device
	for _, k := range h.sortedKeysLocked() {
		if d := h.idents[k].dev; d.ModuleID == "" {
			out = append(out, d)
		}
	}
	return out
}

// DeleteDevice removes a device (and its modules) or a module, closing its
// connections. etag as in UpdateDevice.
func (h *Hub) DeleteDevice(deviceID, moduleID, etag string) error {
	key := identityKey(deviceID, moduleID)
	h.mu.Lock()
	id, ok := h.idents[key]
	if !ok {
		h.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrDeviceNotFound, key)
	}
	if etag != "" && etag != "*" && etag != id.dev.ETag {
		h.mu.Unlock()
		return ErrETagMismatch
	}
	var kick []*conn
	for k, other := range h.idents {
		if k == key || moduleID == "" && strings.HasPrefix(k, deviceID+"/") {
			if other.conn != nil {
				kick = append(kick, other.conn)
			}
			delete(h.idents, k)
		}
	}
	h.dirtyLocked()
	h.mu.Unlock()
	for _, c := range kick {
		c.kick()
	}
	return nil
}
