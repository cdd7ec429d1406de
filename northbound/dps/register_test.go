package dps

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/identity"
)

const groupKey = "ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY="

// startDPS runs hubsim's DPS in front of two hubs, with a symmetric-key
// group enrollment "plant".
func startDPS(t *testing.T, mod func(d *hubsim.DPS)) (*hubsim.DPS, *hubsim.CA) {
	t.Helper()
	ca, err := hubsim.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	d := &hubsim.DPS{CA: ca}
	for range 2 {
		h := &hubsim.Hub{CA: ca}
		if err := h.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		d.Hubs = append(d.Hubs, hubsim.LinkedHub{Hub: h})
	}
	if mod != nil {
		mod(d)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.PutEnrollment(hubsim.Enrollment{GroupID: "plant", Attestation: hubsim.Attestation{Type: hubsim.AttestationSymmetricKey,
		SymmetricKey: &hubsim.SymmetricKeyAttestation{PrimaryKey: groupKey}}}, ""); err != nil {
		t.Fatal(err)
	}
	return d, ca
}

// ident loads an identity of c, provisioned by d.
func ident(t *testing.T, d *hubsim.DPS, c identity.Config) *identity.Identity {
	t.Helper()
	_, port, _ := net.SplitHostPort(d.MQTTAddress())
	p, _ := strconv.Atoi(port)
	if c.DPS == nil {
		c.DPS = &identity.DPSConfig{}
	}
	c.DPS.Host, c.DPS.Port, c.DPS.IDScope = "localhost", p, d.IDScope
	id, err := identity.Load(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRegisterHubsim(t *testing.T) {
	d, ca := startDPS(t, func(d *hubsim.DPS) { d.AssignDelay = 1100 * time.Millisecond })
	r := &Registrar{RootCAs: ca.Pool()}
	ctx := context.Background()

	// A group member, signing with its derived key, is assigned after it
	// polled through "assigning".
	a, err := r.Register(ctx, ident(t, d, identity.Config{ID: "gw-0001", DPS: &identity.DPSConfig{GroupKey: groupKey}}), false)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := d.HubFor(a.Hub); !ok || !h.HasDevice("gw-0001") || a.DeviceID != "gw-0001" || a.RegistrationID != "gw-0001" {
		t.Fatalf("assignment %+v", a)
	}
	if s := d.Stats(); s.Polls < 2 {
		t.Fatalf("%d polls, want the operation polled while assigning", s.Polls)
	}

	// Throttled: 429 with retry-after, then assigned.
	d.ThrottleNext(2)
	if _, err := r.Register(ctx, ident(t, d, identity.Config{ID: "gw-0002", DPS: &identity.DPSConfig{GroupKey: groupKey}}), false); err != nil {
		t.Fatalf("after 429s: %v", err)
	}
	if s := d.Stats(); s.Throttled != 2 {
		t.Fatalf("throttled %d, want 2", s.Throttled)
	}

	// A wrong group key is DPS's final word: 401.
	_, err = r.Register(ctx, ident(t, d, identity.Config{ID: "gw-0003", DPS: &identity.DPSConfig{GroupKey: "d3Jvbmcta2V5"}}), false)
	var de *Error
	if !errors.Is(err, ErrUnauthorized) || !Final(err) || !errors.As(err, &de) || de.RegistrationID != "gw-0003" {
		t.Fatalf("wrong key: %v", err)
	}
	if strings.Contains(err.Error(), groupKey) {
		t.Fatal("key in error")
	}

	// A disabled enrollment.
	if _, err := d.PutEnrollment(hubsim.Enrollment{RegistrationID: "off-1", ProvisioningStatus: "disabled",
		Attestation: hubsim.Attestation{Type: hubsim.AttestationSymmetricKey, SymmetricKey: &hubsim.SymmetricKeyAttestation{PrimaryKey: groupKey}}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, ident(t, d, identity.Config{ID: "off-1", Key: groupKey}), false); !errors.Is(err, ErrDisabled) {
		t.Fatalf("disabled: %v", err)
	}

	// An individual enrollment's secondary key, when asked for.
	sec := hubsim.NewKey()
	if _, err := d.PutEnrollment(hubsim.Enrollment{RegistrationID: "two-keys", Attestation: hubsim.Attestation{Type: hubsim.AttestationSymmetricKey,
		SymmetricKey: &hubsim.SymmetricKeyAttestation{PrimaryKey: hubsim.NewKey(), SecondaryKey: sec}}}, ""); err != nil {
		t.Fatal(err)
	}
	twoKeys := ident(t, d, identity.Config{ID: "two-keys", Key: groupKey, SecondaryKey: edgegw.Secret(sec)}) // a stale primary
	if _, err := r.Register(ctx, twoKeys, false); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("stale primary: %v", err)
	}
	if _, err := r.Register(ctx, twoKeys, true); err != nil {
		t.Fatalf("secondary: %v", err)
	}

	// The deadline bounds a registration that never ends.
	d.ThrottleNext(1000)
	short := &Registrar{RootCAs: ca.Pool(), Deadline: 2500 * time.Millisecond}
	if _, err := short.Register(ctx, ident(t, d, identity.Config{ID: "gw-0004", DPS: &identity.DPSConfig{GroupKey: groupKey}}), false); err == nil ||
		Final(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("throttled past the deadline: %v", err)
	}
	d.ThrottleNext(0)

	// TLS is verified: a registrar that does not trust the CA fails.
	if _, err := (&Registrar{}).Register(ctx, ident(t, d, identity.Config{ID: "gw-0005", DPS: &identity.DPSConfig{GroupKey: groupKey}}), false); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted DPS: %v", err)
	}
}

// TestRegisterX509Hubsim registers an individual X.509 enrollment: the
// certificate's CN is the registration id, and no password is sent.
func TestRegisterX509Hubsim(t *testing.T) {
	d, ca := startDPS(t, nil)
	certPEM, keyPEM, err := ca.IssueClientCert("cam-7")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cam-7.pem"), filepath.Join(dir, "cam-7.key")
	os.WriteFile(cf, certPEM, 0o600)
	os.WriteFile(kf, keyPEM, 0o600)
	if _, err := d.PutEnrollment(hubsim.Enrollment{RegistrationID: "cam-7", Attestation: hubsim.Attestation{Type: hubsim.AttestationX509,
		X509: &hubsim.X509Attestation{ClientCertificates: &hubsim.X509Certificates{Primary: &hubsim.X509Certificate{Certificate: string(certPEM)}}}}}, ""); err != nil {
		t.Fatal(err)
	}
	r := &Registrar{RootCAs: ca.Pool()}
	a, err := r.Register(context.Background(), ident(t, d, identity.Config{ID: "cam-7", CertFile: cf, CertKeyFile: kf}), false)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := d.HubFor(a.Hub); !ok || !h.HasDevice("cam-7") {
		t.Fatalf("assignment %+v", a)
	}
	// Another certificate with the same CN, not enrolled: 401.
	other, otherKey, _, err := hubsim.NewSelfSignedCert("cam-7")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cf, other, 0o600)
	os.WriteFile(kf, otherKey, 0o600)
	if _, err := r.Register(context.Background(), ident(t, d, identity.Config{ID: "cam-7", CertFile: cf, CertKeyFile: kf}), false); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("unenrolled certificate: %v", err)
	}
}
