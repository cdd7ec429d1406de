package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
	"gopkg.in/yaml.v3"
)

// registryFile lists devices (in hub 1) and DPS enrollments to create
// (or update) on start; the format is in usage (hubsim -h) and README.
type registryFile struct {
	Devices     []registryDevice     `yaml:"devices"`
	Enrollments []registryEnrollment `yaml:"enrollments"`

	dir string // the file's directory, for relative certificate paths
}

type registryEnrollment struct {
	Group          string        `yaml:"group"`
	RegistrationID string        `yaml:"registration_id"`
	DeviceID       string        `yaml:"device_id"`
	PrimaryKey     edgegw.Secret `yaml:"primary_key"`
	SecondaryKey   edgegw.Secret `yaml:"secondary_key"`
	Certificate    string        `yaml:"certificate"`
	Allocation     string        `yaml:"allocation"`
	Hubs           []int         `yaml:"hubs"`
	Disabled       bool          `yaml:"disabled"`

	certPEM string // read by Validate
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

// yamlFault rewrites the YAML decoder's messages without Go type names:
// "field x not found in type main.registryDevice" reads "x: unknown key",
// "into []main.registryDevice" "into a list", "into main.registryFile" "into
// a mapping", "into edgegw.Secret" "into a string".
var yamlFault = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`field (\S+) not found in type \S+`), "$1: unknown key"},
	{regexp.MustCompile(` into edgegw\.Secret$`), " into a string"},
	{regexp.MustCompile(` into \[\]\S+$`), " into a list"},
	{regexp.MustCompile(` into main\.\S+$`), " into a mapping"},
}

// loadRegistry reads and validates a registry file; errors name the file
// and the field.
func loadRegistry(name string, hubs int, dps bool) (*registryFile, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	r := registryFile{dir: filepath.Dir(name)}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		// One line per fault, without the decoder's Go type names.
		var errs []error
		for _, m := range te.Errors {
			for _, f := range yamlFault {
				m = f.re.ReplaceAllString(m, f.with)
			}
			errs = append(errs, fmt.Errorf("%s: %s", name, m))
		}
		return nil, errors.Join(errs...)
	}
	if err := r.Validate(hubs, dps); err != nil {
		// Name the file on every line.
		var errs []error
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			errs = append(errs, fmt.Errorf("%s: %w", name, e))
		}
		return nil, errors.Join(errs...)
	}
	return &r, nil
}

// Validate checks ids, auth types, duplicates and enrollments (for a
// hubsim with hubs hubs, and a DPS if dps); it reads enrollment
// certificates.
func (r *registryFile) Validate(hubs int, dps bool) error {
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
	if len(r.Enrollments) > 0 && !dps {
		errs = append(errs, edgegw.Errorf("enrollments", "need -dps"))
	}
	seenE := map[string]bool{}
	for i := range r.Enrollments {
		e := &r.Enrollments[i]
		p := fmt.Sprintf("enrollments[%d]", i)
		id := "group " + e.Group
		switch {
		case (e.Group == "") == (e.RegistrationID == ""):
			errs = append(errs, edgegw.Errorf(p, "set exactly one of group and registration_id"))
		case e.Group != "" && e.DeviceID != "":
			errs = append(errs, edgegw.Errorf(p+".device_id", "only for an individual enrollment (a group's devices take their registration id)"))
		case e.RegistrationID != "":
			id = "individual " + e.RegistrationID
		}
		if seenE[id] {
			errs = append(errs, edgegw.Errorf(p, "duplicate enrollment %s", id))
		}
		seenE[id] = true
		if e.Certificate != "" {
			if e.PrimaryKey.Reveal() != "" || e.SecondaryKey.Reveal() != "" {
				errs = append(errs, edgegw.Errorf(p+".certificate", "an enrollment has keys or a certificate, not both"))
			}
			f := e.Certificate
			if !filepath.IsAbs(f) {
				f = filepath.Join(r.dir, f)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, edgegw.Errorf(p+".certificate", "%v", err))
			}
			e.certPEM = string(b)
		}
		switch e.Allocation {
		case "", hubsim.AllocationHashed, hubsim.AllocationGeoLatency:
		case hubsim.AllocationStatic:
			if len(e.Hubs) != 1 {
				errs = append(errs, edgegw.Errorf(p+".hubs", "allocation static needs exactly one hub (got %d)", len(e.Hubs)))
			}
		default:
			errs = append(errs, edgegw.Errorf(p+".allocation", "must be hashed, geoLatency or static (got %q)", e.Allocation))
		}
		for j, n := range e.Hubs {
			if n < 1 || n > hubs {
				errs = append(errs, edgegw.Errorf(fmt.Sprintf("%s.hubs[%d]", p, j), "must be a hub number 1-%d (got %d)", hubs, n))
			}
		}
	}
	return errors.Join(errs...)
}

// enrollment returns the DPS enrollment of a file entry; hub numbers
// become the linked hubs' names.
func (e registryEnrollment) enrollment(d *hubsim.DPS) hubsim.Enrollment {
	out := hubsim.Enrollment{GroupID: e.Group, RegistrationID: e.RegistrationID, DeviceID: e.DeviceID, AllocationPolicy: e.Allocation}
	if e.Disabled {
		out.ProvisioningStatus = "disabled"
	}
	names := d.HubNames()
	for _, n := range e.Hubs {
		out.IoTHubs = append(out.IoTHubs, names[n-1])
	}
	if e.certPEM == "" {
		out.Attestation = hubsim.Attestation{Type: hubsim.AttestationSymmetricKey, SymmetricKey: &hubsim.SymmetricKeyAttestation{
			PrimaryKey: e.PrimaryKey.Reveal(), SecondaryKey: e.SecondaryKey.Reveal()}}
		return out
	}
	certs := &hubsim.X509Certificates{Primary: &hubsim.X509Certificate{Certificate: e.certPEM}}
	x := &hubsim.X509Attestation{ClientCertificates: certs}
	if e.Group != "" {
		x = &hubsim.X509Attestation{SigningCertificates: certs}
	}
	out.Attestation = hubsim.Attestation{Type: hubsim.AttestationX509, X509: x}
	return out
}

// apply creates missing identities (in hub 1) and updates existing ones
// whose file entry sets keys or thumbprints, then creates or replaces the
// enrollments (keeping generated keys the file does not set).
func (r *registryFile) apply(f *fleet) error {
	h := f.hubs[0]
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
	for _, re := range r.Enrollments {
		if _, err := f.dps.PutEnrollment(re.enrollment(f.dps), ""); err != nil {
			return err
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
