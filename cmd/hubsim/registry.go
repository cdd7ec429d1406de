package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
	"gopkg.in/yaml.v3"
)

// registryFile lists devices to create (or update) on start:
//
//	devices:
//	  - id: boiler-1                 # keys are generated when empty
//	  - id: press-7
//	    primary_key: <base64>        # fixed keys survive re-creating the data dir
//	    secondary_key: <base64>
//	    modules: [opcua]
//	  - id: camera-2
//	    auth: selfSigned             # sas (default), selfSigned, certificateAuthority
//	    primary_thumbprint: 6F...
type registryFile struct {
	Devices []registryDevice `yaml:"devices"`
}

type registryDevice struct {
	ID                  string        `yaml:"id"`
	Auth                string        `yaml:"auth"`
	PrimaryKey          edgegw.Secret `yaml:"primary_key"`
	SecondaryKey        edgegw.Secret `yaml:"secondary_key"`
	PrimaryThumbprint   string        `yaml:"primary_thumbprint"`
	SecondaryThumbprint string        `yaml:"secondary_thumbprint"`
	Disabled            bool          `yaml:"disabled"`
	Modules             []string      `yaml:"modules"`
}

// loadRegistry reads and validates a registry file; errors name the file
// and the field.
func loadRegistry(name string) (*registryFile, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var r registryFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := r.Validate(); err != nil {
		// Name the file on every line.
		var errs []error
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			errs = append(errs, fmt.Errorf("%s: %w", name, e))
		}
		return nil, errors.Join(errs...)
	}
	return &r, nil
}

// Validate checks ids, auth types and duplicates.
func (r *registryFile) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, d := range r.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		if d.ID == "" {
			errs = append(errs, edgegw.Errorf(p+".id", "must be set"))
		} else if seen[d.ID] {
			errs = append(errs, edgegw.Errorf(p+".id", "duplicate device %q", d.ID))
		}
		seen[d.ID] = true
		switch hubsim.AuthType(d.Auth) {
		case "", hubsim.AuthSAS, hubsim.AuthCA:
		case hubsim.AuthSelfSigned:
			if d.PrimaryThumbprint == "" {
				errs = append(errs, edgegw.Errorf(p+".primary_thumbprint", "must be set for auth selfSigned"))
			}
		default:
			errs = append(errs, edgegw.Errorf(p+".auth", "must be sas, selfSigned or certificateAuthority (got %q)", d.Auth))
		}
		for j, m := range d.Modules {
			if m == "" {
				errs = append(errs, edgegw.Errorf(fmt.Sprintf("%s.modules[%d]", p, j), "must not be empty"))
			}
		}
	}
	return errors.Join(errs...)
}

// apply creates missing identities and updates existing ones whose file
// entry sets keys or thumbprints.
func (r *registryFile) apply(h *hubsim.Hub) error {
	for _, rd := range r.Devices {
		d := hubsim.Device{
			ID: rd.ID, Auth: hubsim.AuthType(rd.Auth), PrimaryKey: rd.PrimaryKey.Reveal(), SecondaryKey: rd.SecondaryKey.Reveal(),
			PrimaryThumbprint: rd.PrimaryThumbprint, SecondaryThumbprint: rd.SecondaryThumbprint, Disabled: rd.Disabled,
		}
		if err := upsert(h, d); err != nil {
			return err
		}
		for _, m := range rd.Modules {
			if err := upsert(h, hubsim.Device{ID: rd.ID, ModuleID: m}); err != nil {
				return err
			}
		}
	}
	return nil
}

func upsert(h *hubsim.Hub, d hubsim.Device) error {
	old, err := h.Device(d.ID, d.ModuleID)
	if errors.Is(err, hubsim.ErrDeviceNotFound) {
		_, err = h.AddDevice(d)
		return err
	}
	if err != nil {
		return err
	}
	if d.PrimaryKey == "" && d.SecondaryKey == "" && d.PrimaryThumbprint == "" && d.Disabled == old.Disabled && (d.Auth == "" || d.Auth == old.Auth) {
		return nil // nothing fixed in the file: keep the stored identity
	}
	if d.Auth == "" || d.Auth == hubsim.AuthSAS {
		if d.PrimaryKey == "" {
			d.PrimaryKey = old.PrimaryKey
		}
		if d.SecondaryKey == "" {
			d.SecondaryKey = old.SecondaryKey
		}
	}
	_, err = h.UpdateDevice(d, "*")
	return err
}
