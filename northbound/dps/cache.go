package dps

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Assignment is what DPS assigned an identity: its hub and its device id
// there, and the registration it answers.
type Assignment struct {
	DPSHost        string    `json:"dps_host"`
	IDScope        string    `json:"id_scope"`
	RegistrationID string    `json:"registration_id"`
	Hub            string    `json:"assigned_hub"` // host name, or host:port
	DeviceID       string    `json:"device_id"`
	Substatus      string    `json:"substatus,omitempty"`
	Time           time.Time `json:"time"` // when DPS answered
}

// Cache keeps assignments in a directory, one small JSON file per
// registration id, so a gateway that restarts offline connects to the hubs
// it was assigned without asking DPS. Writes are atomic (a temporary file,
// fsynced, renamed over the old one, the directory fsynced): a crash leaves
// the old assignment or the new one, never a torn file. Safe for
// concurrent use with different registration ids.
type Cache struct {
	Dir string
}

// path names the file of a registration id; ids are letters, digits and
// "-._:" (checked by the identity's config), and the suffix keeps "." and
// ".." from naming directories.
func (c *Cache) path(registrationID string) string {
	return filepath.Join(c.Dir, registrationID+".json")
}

// Load returns the cached assignment of the registration at dpsHost and
// idScope. ok is false when there is none, or when the file is for another
// DPS instance or scope (the config changed): the identity registers
// again. An unreadable or damaged file is an error, and not ok.
func (c *Cache) Load(dpsHost, idScope, registrationID string) (a Assignment, ok bool, err error) {
	b, err := os.ReadFile(c.path(registrationID))
	if errors.Is(err, fs.ErrNotExist) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("dps cache: %w", err)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return Assignment{}, false, fmt.Errorf("dps cache %s: %w", c.path(registrationID), err)
	}
	if a.DPSHost != dpsHost || a.IDScope != idScope || a.RegistrationID != registrationID {
		return Assignment{}, false, nil
	}
	if err := checkHub(a.Hub); err != nil {
		return Assignment{}, false, fmt.Errorf("dps cache %s: assigned_hub: %w", c.path(registrationID), err)
	}
	if err := checkDeviceID(a.DeviceID); err != nil || a.DeviceID == "" {
		return Assignment{}, false, fmt.Errorf("dps cache %s: device_id %q is not a device id", c.path(registrationID), a.DeviceID)
	}
	return a, true, nil
}

// Store writes a atomically and durably.
func (c *Cache) Store(a Assignment) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("dps cache: %w", err)
	}
	f, err := os.CreateTemp(c.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("dps cache: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), c.path(a.RegistrationID))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("dps cache: %w", err)
	}
	return syncDir(c.Dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("dps cache: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("dps cache: sync %s: %w", dir, err)
	}
	return nil
}
