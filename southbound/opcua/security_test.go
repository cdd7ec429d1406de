package opcua

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

// serverThumbprint is the SHA-1 thumbprint of the server's certificate.
func serverThumbprint(t *testing.T, srv *testpeer.OPCUAServer) string {
	t.Helper()
	der, err := readCertFile(srv.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	return Thumbprint(der)
}

// userCert writes an RSA user certificate and key for X.509 user tokens.
func userCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("urn:edgegw:test-user")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "operator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "user.pem"), filepath.Join(dir, "user.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func firmwareDevice() []DeviceConfig {
	return []DeviceConfig{{Name: "boiler", Interval: 50 * time.Millisecond, Points: []PointConfig{
		{Name: "firmware", Node: "ns=1;s=Boiler.Firmware", Type: "string"},
		{Name: "setpoint", Node: "ns=1;s=Boiler.Setpoint", Type: "double", Writable: true},
	}}}
}

// TestUnknownServerCertificateRefused: with a secure policy and an empty
// trust list the server's certificate is refused, with a log line naming
// its thumbprint and the certificate kept in rejected/; an operator's move
// of that file to trusted/ lets the next attempt in, without a restart.
func TestUnknownServerCertificateRefused(t *testing.T) {
	srv := boilerServer(t)
	thumb := serverThumbprint(t, srv)
	pki := t.TempDir()
	var logs logBuffer
	a := newAdapter(t, "opc", Config{Endpoint: srv.Endpoint, PKIDir: pki, BackoffMax: 200 * time.Millisecond,
		Security: SecurityConfig{Policy: "Basic256Sha256", Mode: "SignAndEncrypt"}, Devices: firmwareDevice()}, logs.logger())
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 30*time.Second, "the refusal", func() (bool, string) {
		return a.Stats().Untrusted == thumb && strings.Contains(logs.String(), thumb), logs.String()
	})
	if !strings.Contains(logs.String(), "not trusted") {
		t.Errorf("log does not say the certificate is not trusted:\n%s", logs.String())
	}
	rejected := filepath.Join(pki, "rejected", thumb+".der")
	if _, err := os.Stat(rejected); err != nil {
		t.Fatalf("refused certificate not kept: %v", err)
	}
	if n := len(up.Readings()); n != 0 || a.Stats().Connects != 0 {
		t.Fatalf("%d readings, %d connects from an untrusted server", n, a.Stats().Connects)
	}
	// The application certificate was made on first start.
	if _, err := os.Stat(filepath.Join(pki, "own", "cert.der")); err != nil {
		t.Errorf("application certificate: %v", err)
	}
	// trusted/ is there for the move the log line asks for (`mv` into a
	// missing directory would rename the file instead).
	if fi, err := os.Stat(filepath.Join(pki, "trusted")); err != nil || !fi.IsDir() {
		t.Fatalf("trusted/ not made next to rejected/: %v", err)
	}
	if err := os.Rename(rejected, filepath.Join(pki, "trusted", thumb+".der")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "values once trusted", func() (bool, string) {
		return latest(up.Readings(), "boiler")["firmware"] == edgegw.String("V1.2"), a.Stats().LastError
	})
}

// TestSecurityModes: every supported policy in Sign and SignAndEncrypt,
// with anonymous, user name and X.509 user tokens, reads and writes the
// server; the application certificate made by the first start is reused.
func TestSecurityModes(t *testing.T) {
	srv := boilerServer(t)
	certFile, keyFile := userCert(t)
	pki := t.TempDir()
	trustServer(t, pki, srv)
	for _, c := range []struct {
		policy, mode string
		auth         AuthConfig
	}{
		{"Basic256Sha256", "Sign", AuthConfig{Kind: "username", Username: "operator", Password: "s3cret"}},
		{"Basic256Sha256", "SignAndEncrypt", AuthConfig{Kind: "certificate", CertFile: certFile, KeyFile: keyFile}},
		{"Aes128Sha256RsaOaep", "Sign", AuthConfig{}},
		{"Aes128Sha256RsaOaep", "SignAndEncrypt", AuthConfig{Kind: "username", Username: "operator", Password: "s3cret"}},
		{"None", "None", AuthConfig{Kind: "username", Username: "operator", Password: "s3cret"}},
	} {
		t.Run(c.policy+"/"+c.mode+"/"+c.auth.Kind, func(t *testing.T) {
			a := newAdapter(t, "opc", Config{Endpoint: srv.Endpoint, PKIDir: pki,
				Security: SecurityConfig{Policy: c.policy, Mode: c.mode}, Auth: c.auth, Devices: firmwareDevice()}, nil)
			up := &testpeer.Uplink{}
			testpeer.RunAdapter(t, a, up)
			waitFor(t, 30*time.Second, "firmware", func() (bool, string) {
				return latest(up.Readings(), "boiler")["firmware"] == edgegw.String("V1.2"), a.Stats().LastError
			})
			mark := srv.Mark()
			if err := a.Execute(t.Context(), edgegw.Action{Device: "boiler", Kind: edgegw.WritePoint, Point: "setpoint", Value: edgegw.Float(61)}); err != nil {
				t.Fatal(err)
			}
			if _, ok := srv.WaitLine(mark, 10*time.Second, func(l string) bool { return l == "WRITE Boiler.Setpoint 61" }); !ok {
				t.Errorf("write not seen by the server")
			}
		})
	}
	entries, _ := os.ReadDir(pki)
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".own-") {
			t.Errorf("leftover %s", e.Name())
		}
		if e.Name() == "own" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("pki dir holds %d own/ folders", n)
	}
}

// TestWrongPasswordRefused: a refused user token is a failed connect,
// retried with back-off, and no values flow.
func TestWrongPasswordRefused(t *testing.T) {
	srv := boilerServer(t)
	pki := t.TempDir()
	trustServer(t, pki, srv)
	var logs logBuffer
	a := newAdapter(t, "opc", Config{Endpoint: srv.Endpoint, PKIDir: pki, BackoffMax: 200 * time.Millisecond,
		Security: SecurityConfig{Policy: "Basic256Sha256", Mode: "SignAndEncrypt"},
		Auth:     AuthConfig{Kind: "username", Username: "operator", Password: "wrong-one"},
		Devices:  firmwareDevice()}, logs.logger())
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 30*time.Second, "two refused attempts", func() (bool, string) {
		st := a.Stats()
		return st.ConnectErrs >= 2, st.LastError
	})
	if st := a.Stats(); st.Connects != 0 || len(up.Readings()) != 0 {
		t.Errorf("connects %d, readings %d with a wrong password", st.Connects, len(up.Readings()))
	}
	if strings.Contains(logs.String(), "wrong-one") {
		t.Errorf("the password is in the log:\n%s", logs.String())
	}
}

// TestUnusableUserCertificateStopsRun: a user certificate that cannot be
// read stops Run at once with the config key in the error: retrying
// cannot help.
func TestUnusableUserCertificateStopsRun(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		auth AuthConfig
		want string
	}{
		{AuthConfig{Kind: "certificate", CertFile: filepath.Join(dir, "missing.pem"), KeyFile: bad}, "auth.cert_file"},
		{AuthConfig{Kind: "certificate", CertFile: bad, KeyFile: bad}, "auth.cert_file"},
	} {
		a := newAdapter(t, "opc", Config{Endpoint: "opc.tcp://127.0.0.1:1", Auth: c.auth, Devices: firmwareDevice()}, nil)
		if err := a.Run(t.Context(), &testpeer.Uplink{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run = %v, want an error naming %s", err, c.want)
		}
	}
	certFile, _ := userCert(t)
	a := newAdapter(t, "opc", Config{Endpoint: "opc.tcp://127.0.0.1:1", Auth: AuthConfig{Kind: "certificate", CertFile: certFile, KeyFile: bad},
		Devices: firmwareDevice()}, nil)
	if err := a.Run(t.Context(), &testpeer.Uplink{}); err == nil || !strings.Contains(err.Error(), "auth.key_file") {
		t.Errorf("Run = %v, want an error naming auth.key_file", err)
	}
}
