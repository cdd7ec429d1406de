package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw"
)

const testKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// The expected token was computed with the algorithm of the Node SDK
// (azure-iot-common authorization.js / shared_access_signature.js); the
// signing itself is iothub's, tested there with more cases.
func TestSASTokenMatchesSDK(t *testing.T) {
	key, _ := decodeKey(testKey)
	id := &Identity{ID: "dev 1(x)/m!", Device: "dev 1(x)", Module: "m!", Policy: "device", keys: [][]byte{key}}
	want := "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev%201%28x%29%2Fmodules%2Fm%21&sig=F%2B6E2XFtuXbWYnKokO2iwh0tW%2FZoiiuHXs6Hr43gj3o%3D&skn=device&se=1795306869"
	if got, err := id.Token("myhub.azure-devices.net", time.Unix(1795306869, 999e6), false); err != nil || got != want {
		t.Errorf("Token\n got %s, %v\nwant %s", got, err, want)
	}
}

func TestIdentityToken(t *testing.T) {
	id, err := Load(Config{ID: "dev1/mod-a", Key: testKey, SecondaryKey: "c2Vjb25k"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id.Device != "dev1" || id.Module != "mod-a" || !id.IsModule() || id.Keys() != 2 {
		t.Fatalf("identity = %+v", id)
	}
	exp := time.Unix(1700000000, 0)
	p, _ := id.Token("hub.example", exp, false)
	s, _ := id.Token("hub.example", exp, true)
	if p == s {
		t.Fatal("primary and secondary tokens are equal")
	}
	if !strings.HasPrefix(p, "SharedAccessSignature sr=hub.example%2Fdevices%2Fdev1%2Fmodules%2Fmod-a&sig=") || strings.Contains(p, "skn=") {
		t.Fatalf("token %s", p)
	}
	if _, err := (&Identity{}).Token("h", exp, false); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no key: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string // substring of the error, "" = valid
	}{
		{Config{ID: "dev1", Key: testKey}, ""},
		{Config{ID: "dev1/mod", KeyFile: "/x"}, ""},
		{Config{ID: "dev1", CertFile: "c", CertKeyFile: "k"}, ""},
		{Config{ID: ""}, "id: must not be empty"},
		{Config{ID: "a/b/c"}, "id: character '/'"},
		{Config{ID: "dev#1"}, "id: character '#'"},
		{Config{ID: strings.Repeat("x", 129)}, "id: longer than 128"},
		{Config{ID: "/m"}, "id: device and module ids must not be empty"},
		{Config{ID: "d", Key: testKey, KeyFile: "f"}, "key_file: set either key or key_file"},
		{Config{ID: "d", Key: "not base64!"}, "key: not valid base64"},
		{Config{ID: "d", Key: testKey, SecondaryKey: "%%"}, "secondary_key: not valid base64"},
		{Config{ID: "d", Policy: "device"}, "policy: needs the policy's key"},
		{Config{ID: "d", CertFile: "c"}, "cert_key_file: cert_file and cert_key_file go together"},
		{Config{ID: "d", Password: "p"}, "username: must be set"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "not base64!") {
			t.Errorf("error shows the key: %v", err)
		}
	}
}

func TestKeyFilePermissionsWarn(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dev1.key")
	if err := os.WriteFile(path, []byte(testKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	id, err := Load(Config{ID: "dev1", KeyFile: path}, log)
	if err != nil {
		t.Fatal(err)
	}
	if id.Keys() != 1 {
		t.Fatalf("keys = %d", id.Keys())
	}
	if !strings.Contains(logs.String(), "readable by group or others") || !strings.Contains(logs.String(), "mode=0644") {
		t.Fatalf("no permission warning: %s", logs.String())
	}
	if strings.Contains(logs.String(), testKey) {
		t.Fatal("key in log")
	}
	logs.Reset()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Config{ID: "dev1", KeyFile: path}, log); err != nil || logs.Len() != 0 {
		t.Fatalf("err %v, logs %q", err, logs.String())
	}
	if _, err := Load(Config{ID: "dev1", KeyFile: filepath.Join(dir, "missing")}, log); err == nil || !strings.HasPrefix(err.Error(), "key_file: ") {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte("???"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Config{ID: "dev1", KeyFile: path}, log); err == nil || strings.Contains(err.Error(), "???") {
		t.Fatalf("bad key file: %v", err)
	}
}

func TestSecretsRedacted(t *testing.T) {
	c := Config{ID: "d", Key: testKey, Password: "hunter2"}
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", c, c, c)} {
		if strings.Contains(s, testKey) || strings.Contains(s, "hunter2") {
			t.Fatalf("secret printed: %s", s)
		}
	}
}

// WriteTestCert writes a self-signed ECDSA certificate and key for cn into
// dir and returns their paths.
func writeTestCert(t *testing.T, dir, cn string, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestX509(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writeTestCert(t, dir, "dev1", time.Now().Add(time.Hour))
	var logs bytes.Buffer
	id, err := Load(Config{ID: "dev1", CertFile: cf, CertKeyFile: kf}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if id.Certificate() == nil || id.Certificate().Leaf.Subject.CommonName != "dev1" {
		t.Fatal("no certificate")
	}
	if exp, err := id.CertExpiry(); err != nil || time.Until(exp) < 50*time.Minute {
		t.Fatalf("expiry %v %v", exp, err)
	}
	if logs.Len() != 0 {
		t.Fatalf("unexpected log %s", logs.String())
	}
	cf2, kf2 := writeTestCert(t, dir, "old", time.Now().Add(-time.Minute))
	os.Chmod(kf2, 0o640)
	if _, err := Load(Config{ID: "old", CertFile: cf2, CertKeyFile: kf2}, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "expired") || !strings.Contains(logs.String(), "readable by group") {
		t.Fatalf("logs: %s", logs.String())
	}
	if _, err := Load(Config{ID: "x", CertFile: cf, CertKeyFile: kf2}, nil); err == nil || !strings.HasPrefix(err.Error(), "cert_file: ") {
		t.Fatalf("mismatched key: %v", err)
	}
	if _, err := (&Identity{}).CertExpiry(); err == nil {
		t.Fatal("no error without cert")
	}
}

// TestScheduleSpread checks that 10,000 identities starting in the same
// second renew spread over the window, never more than 1% in one second,
// and always before expiry. Time is virtual (synctest).
func TestScheduleSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := Schedule{TTL: time.Hour}
		start := time.Now()
		perSecond := map[int64]int{}
		for range 10000 {
			exp, renew := s.Next(time.Now())
			if !renew.Before(exp) || renew.Sub(start) < 40*time.Minute {
				t.Fatalf("renew %v, expiry %v", renew.Sub(start), exp.Sub(start))
			}
			perSecond[renew.Unix()]++
		}
		worst := 0
		for _, n := range perSecond {
			worst = max(worst, n)
		}
		if worst > 100 || len(perSecond) < 300 {
			t.Fatalf("renewals bunch: worst %d per second over %d seconds", worst, len(perSecond))
		}
		// A 3 s token (tests) renews between 70% and 80% of its real life.
		exp, renew := Schedule{TTL: 3 * time.Second, Jitter: func() float64 { return 0.999 }}.Next(time.Now())
		time.Sleep(renew.Sub(time.Now()))
		if left := exp.Sub(time.Now()); left < 500*time.Millisecond || left > time.Second {
			t.Fatalf("left at renewal %v", left)
		}
		if e, _ := (Schedule{}).Next(time.Now()); e.Sub(time.Now()) < time.Second-time.Nanosecond {
			t.Fatalf("zero TTL expiry %v", e.Sub(time.Now()))
		}
	})
}

var _ = edgegw.Secret("")
