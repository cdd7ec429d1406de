package hubsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Enrollment errors; the REST API maps them to DPS error codes.
var (
	ErrEnrollmentNotFound = errors.New("enrollment not found")
	ErrBadEnrollment      = errors.New("invalid enrollment")
)

// Attestation types.
const (
	AttestationSymmetricKey = "symmetricKey"
	AttestationX509         = "x509"
)

// Allocation policies, as DPS spells them. Hashed is the portal's "evenly
// weighted distribution"; geoLatency is treated as hashed (every emulated
// hub is equally near).
const (
	AllocationHashed     = "hashed"
	AllocationGeoLatency = "geoLatency"
	AllocationStatic     = "static"
)

// Enrollment is an individual enrollment or, with GroupID set, an
// enrollment group, in the JSON of the provisioning service API
// (registrationId or enrollmentGroupId; attestation; allocation).
type Enrollment struct {
	RegistrationID     string             `json:"registrationId,omitempty"`    // individual
	GroupID            string             `json:"enrollmentGroupId,omitempty"` // group
	DeviceID           string             `json:"deviceId,omitempty"`          // individual; "" = registrationId
	Attestation        Attestation        `json:"attestation"`
	ProvisioningStatus string             `json:"provisioningStatus,omitempty"` // enabled (default) or disabled
	AllocationPolicy   string             `json:"allocationPolicy,omitempty"`   // "" = the DPS default
	IoTHubs            []string           `json:"iotHubs,omitempty"`            // candidate hubs by name; empty = all linked hubs
	ReprovisionPolicy  *ReprovisionPolicy `json:"reprovisionPolicy,omitempty"`
	InitialTwin        *InitialTwin       `json:"initialTwin,omitempty"`
	Capabilities       map[string]any     `json:"capabilities,omitempty"`
	ETag               string             `json:"etag,omitempty"`
	Created            string             `json:"createdDateTimeUtc,omitempty"`
	Updated            string             `json:"lastUpdatedDateTimeUtc,omitempty"`
}

// Attestation is how devices of an enrollment prove who they are.
type Attestation struct {
	Type         string                   `json:"type"` // symmetricKey or x509
	SymmetricKey *SymmetricKeyAttestation `json:"symmetricKey,omitempty"`
	X509         *X509Attestation         `json:"x509,omitempty"`
}

// SymmetricKeyAttestation holds base64 keys. For a group they are the group
// keys from which each device key is derived (DeriveDeviceKey).
type SymmetricKeyAttestation struct {
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

// X509Attestation: ClientCertificates for an individual enrollment (the
// device's own certificate), SigningCertificates for a group (a root or
// intermediate CA that signed the devices' certificates).
type X509Attestation struct {
	ClientCertificates  *X509Certificates `json:"clientCertificates,omitempty"`
	SigningCertificates *X509Certificates `json:"signingCertificates,omitempty"`
}

// X509Certificates is a primary and an optional secondary certificate.
type X509Certificates struct {
	Primary   *X509Certificate `json:"primary,omitempty"`
	Secondary *X509Certificate `json:"secondary,omitempty"`
}

// X509Certificate is a PEM certificate and what DPS shows of it.
type X509Certificate struct {
	Certificate string    `json:"certificate,omitempty"`
	Info        *CertInfo `json:"info,omitempty"`
}

// CertInfo is filled in by the service.
type CertInfo struct {
	SubjectName      string `json:"subjectName"`
	SHA1Thumbprint   string `json:"sha1Thumbprint"`
	SHA256Thumbprint string `json:"sha256Thumbprint"`
	IssuerName       string `json:"issuerName"`
	NotBefore        string `json:"notBeforeUtc"`
	NotAfter         string `json:"notAfterUtc"`
	SerialNumber     string `json:"serialNumber"`
	Version          int    `json:"version"`
}

// ReprovisionPolicy says what a repeated registration does. Both default to
// true: re-evaluate the hub each time, and carry the twin along when the
// hub changes.
type ReprovisionPolicy struct {
	UpdateHubAssignment bool `json:"updateHubAssignment"`
	MigrateDeviceData   bool `json:"migrateDeviceData"`
}

// InitialTwin is the twin a newly created device starts with.
type InitialTwin struct {
	Tags       map[string]any `json:"tags,omitempty"`
	Properties struct {
		Desired map[string]any `json:"desired,omitempty"`
	} `json:"properties"`
}

// DeriveDeviceKey returns a group member's key as the SDKs derive it:
// base64(HMAC-SHA256(base64decode(groupKey), registrationID)).
func DeriveDeviceKey(groupKey, registrationID string) (string, error) {
	k, err := base64.StdEncoding.DecodeString(groupKey)
	if err != nil {
		return "", fmt.Errorf("decode group key: %w", err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

func (e *Enrollment) isGroup() bool { return e.GroupID != "" }

func (e *Enrollment) id() string {
	if e.isGroup() {
		return e.GroupID
	}
	return e.RegistrationID
}

func (e *Enrollment) disabled() bool { return strings.EqualFold(e.ProvisioningStatus, "disabled") }

func (e *Enrollment) reprovision() ReprovisionPolicy {
	if e.ReprovisionPolicy == nil {
		return ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
	}
	return *e.ReprovisionPolicy
}

// normalize validates e and fills generated fields (keys, certificate
// info, status, etag, times). prev is the enrollment it replaces, if any.
func (e *Enrollment) normalize(prev *Enrollment) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrBadEnrollment, e.id(), fmt.Sprintf(format, args...))
	}
	if e.isGroup() == (e.RegistrationID != "") {
		return fmt.Errorf("%w: exactly one of registrationId and enrollmentGroupId must be set", ErrBadEnrollment)
	}
	if err := validRegistrationID(e.id()); err != nil {
		return fmt.Errorf("%w: %v", ErrBadEnrollment, err)
	}
	if e.isGroup() && e.DeviceID != "" {
		return bad("a group enrollment has no deviceId (its devices take their registration id)")
	}
	if e.DeviceID != "" {
		if err := validID(e.DeviceID); err != nil {
			return bad("%v", err)
		}
	}
	switch strings.ToLower(e.ProvisioningStatus) {
	case "":
		e.ProvisioningStatus = "enabled"
	case "enabled", "disabled":
		e.ProvisioningStatus = strings.ToLower(e.ProvisioningStatus)
	default:
		return bad("provisioningStatus must be enabled or disabled (got %q)", e.ProvisioningStatus)
	}
	switch e.AllocationPolicy {
	case "", AllocationHashed, AllocationGeoLatency:
	case AllocationStatic:
		if len(e.IoTHubs) != 1 {
			return bad("allocationPolicy static needs exactly one hub in iotHubs (got %d)", len(e.IoTHubs))
		}
	case "custom":
		return bad("allocationPolicy custom (webhooks) is not emulated")
	default:
		return bad("allocationPolicy must be hashed, geoLatency or static (got %q)", e.AllocationPolicy)
	}
	a := &e.Attestation
	switch a.Type {
	case AttestationSymmetricKey:
		if a.X509 != nil {
			return bad("attestation symmetricKey has an x509 section")
		}
		if a.SymmetricKey == nil {
			a.SymmetricKey = &SymmetricKeyAttestation{}
		}
		k := a.SymmetricKey
		if prev != nil && prev.Attestation.SymmetricKey != nil {
			if k.PrimaryKey == "" && k.SecondaryKey == "" {
				*k = *prev.Attestation.SymmetricKey
			}
		}
		for _, p := range []*string{&k.PrimaryKey, &k.SecondaryKey} {
			if *p == "" {
				*p = newKey(64)
				continue
			}
			b, err := base64.StdEncoding.DecodeString(*p)
			if err != nil || len(b) < 16 || len(b) > 64 {
				return bad("symmetric keys must be base64 of 16-64 bytes")
			}
		}
	case AttestationX509:
		if a.SymmetricKey != nil || a.X509 == nil {
			return bad("attestation x509 needs an x509 section and no symmetricKey")
		}
		certs := a.X509.ClientCertificates
		want, other := "clientCertificates", a.X509.SigningCertificates
		if e.isGroup() {
			certs, want, other = a.X509.SigningCertificates, "signingCertificates", a.X509.ClientCertificates
		}
		if other != nil {
			return bad("x509 attestation of this enrollment kind takes %s only", want)
		}
		if certs == nil || certs.Primary == nil {
			return bad("x509 attestation needs %s.primary", want)
		}
		for _, c := range []*X509Certificate{certs.Primary, certs.Secondary} {
			if c == nil {
				continue
			}
			if _, err := c.parse(); err != nil {
				return bad("x509 %s: %v", want, err)
			}
		}
	case "tpm", "none":
		return bad("attestation %s is not emulated (symmetricKey and x509 are)", a.Type)
	default:
		return bad("attestation.type must be symmetricKey or x509 (got %q)", a.Type)
	}
	now := time.Now().UTC()
	e.Created = timeString(now)
	if prev != nil {
		e.Created = prev.Created
	}
	e.Updated = timeString(now)
	e.ETag = etagOf(now.UnixNano())
	return nil
}

// parse decodes the PEM certificate and fills Info.
func (c *X509Certificate) parse() (*x509.Certificate, error) {
	blk, _ := pem.Decode([]byte(c.Certificate))
	der := []byte(nil)
	if blk != nil && blk.Type == "CERTIFICATE" {
		der = blk.Bytes
	} else if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.Certificate)); err == nil {
		der = b // the service also takes bare base64 DER
	}
	if der == nil {
		return nil, errors.New("certificate is not PEM or base64 DER")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	s256 := sha256.Sum256(der)
	c.Info = &CertInfo{
		SubjectName: cert.Subject.String(), SHA1Thumbprint: Thumbprint(der),
		SHA256Thumbprint: strings.ToUpper(hex.EncodeToString(s256[:])), IssuerName: cert.Issuer.String(),
		NotBefore: timeString(cert.NotBefore.UTC()), NotAfter: timeString(cert.NotAfter.UTC()),
		SerialNumber: strings.ToUpper(cert.SerialNumber.Text(16)), Version: cert.Version,
	}
	return cert, nil
}

// certs returns the parsed certificates of an x509 attestation section.
func (x *X509Certificates) certs() []*x509.Certificate {
	var out []*x509.Certificate
	if x == nil {
		return nil
	}
	for _, c := range []*X509Certificate{x.Primary, x.Secondary} {
		if c == nil {
			continue
		}
		if cert, err := c.parse(); err == nil {
			out = append(out, cert)
		}
	}
	return out
}

// deviceKeys returns the keys a device of e signs with: the enrollment's
// own, or derived from the group's.
func (e *Enrollment) deviceKeys(registrationID string) (primary, secondary string) {
	k := e.Attestation.SymmetricKey
	if k == nil {
		return "", ""
	}
	if !e.isGroup() {
		return k.PrimaryKey, k.SecondaryKey
	}
	primary, _ = DeriveDeviceKey(k.PrimaryKey, registrationID)
	secondary, _ = DeriveDeviceKey(k.SecondaryKey, registrationID)
	return primary, secondary
}

// deviceID returns the hub device id for registrationID under e.
func (e *Enrollment) deviceID(registrationID string) string {
	if e.DeviceID != "" {
		return e.DeviceID
	}
	return registrationID
}

// matchesCert reports whether the TLS client chain (leaf first) attests
// under e: for an individual enrollment the leaf is one of its
// certificates; for a group, the leaf chains (through the presented
// intermediates) to one of its signing certificates.
func (e *Enrollment) matchesCert(chain []*x509.Certificate) bool {
	x := e.Attestation.X509
	if x == nil || len(chain) == 0 {
		return false
	}
	leaf := chain[0]
	if !e.isGroup() {
		for _, c := range x.ClientCertificates.certs() {
			if c.Equal(leaf) {
				return true
			}
		}
		return false
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	signing := x.SigningCertificates.certs()
	if len(signing) == 0 {
		return false
	}
	for _, c := range signing {
		roots.AddCert(c)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}
