package lanmqtt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// testCert is a certificate with its key, as a device or a CA holds it.
type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// issue makes a certificate for cn valid until end, signed by parent (self-signed when nil).
func issue(t *testing.T, cn string, parent *testCert, isCA bool, end time.Time) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: end,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: cert, key: key}
}

func (c *testCert) tls() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
}

// LAN devices authenticate with client certificates as at IoT Hub: the
// IoT Hub username, client id = device id, no password, and a certificate
// with the user's thumbprint (self-signed) or from a client CA with the
// device as subject CN. Password users are unaffected.
func TestX509ClientCertificates(t *testing.T) {
	year := time.Now().Add(365 * 24 * time.Hour)
	ca := issue(t, "plant devices CA", nil, true, year)
	otherCA := issue(t, "someone else's CA", nil, true, year)
	dev3 := issue(t, "dev3", ca, false, year)
	dev4 := issue(t, "dev4", ca, false, year)
	forged := issue(t, "dev3", otherCA, false, year)
	dev5 := issue(t, "dev5", nil, false, year)
	dev6 := issue(t, "anything", nil, false, year)
	stranger := issue(t, "dev5", nil, false, year)
	expired := issue(t, "dev7", nil, false, time.Now().Add(-time.Hour))

	dir := t.TempDir()
	caFile := filepath.Join(dir, "clients-ca.pem")
	if err := os.WriteFile(caFile, pemCert(ca.cert.Raw), 0o600); err != nil {
		t.Fatal(err)
	}
	sha1Of := func(c *testCert) string { s := sha1.Sum(c.cert.Raw); return hex.EncodeToString(s[:]) }
	s256 := sha256.Sum256(dev6.cert.Raw)
	colons := strings.ToUpper(hex.EncodeToString(s256[:]))
	var b strings.Builder
	for i := 0; i < len(colons); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(colons[i : i+2])
	}

	cfg := baseConfig()
	cfg.TLS = &TLSConfig{Auto: true, Dir: filepath.Join(dir, "lan-ca"), ClientCAFile: caFile}
	cfg.Websocket = "127.0.0.1:0"
	cfg.Users = append(cfg.Users,
		User{Username: "dev3", Device: "dev3"}, // by CA only
		User{Username: "dev5", Device: "dev5", X509Thumbprint: sha1Of(dev5)},
		User{Username: "dev6", Device: "dev6", X509Thumbprint: b.String()},
		User{Username: "dev7", Device: "dev7", X509Thumbprint: sha1Of(expired)},
	)
	var logs testpeer.Buffer
	a, err := New("lan", cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	<-a.Ready()
	servers := trust(t, filepath.Join(dir, "lan-ca", "ca.pem"))

	hubUser := func(dev string) string { return "myhub.azure-devices.net/" + dev + "/?api-version=2021-04-12" }
	try := func(url, clientID, user, pass string, cert *testCert) error {
		tc := &tls.Config{RootCAs: servers, ServerName: "localhost", MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{cert.tls()}
		}
		return connectErr(t, pahoOpts(url, clientID, user, pass).SetTLSConfig(tc))
	}
	tcp, wss := "ssl://"+a.Addr().String(), "wss://"+a.WebsocketAddr().String()+"/"
	for _, tc := range []struct {
		name                string
		url                 string
		clientID, user, pwd string
		cert                *testCert
		ok                  bool
		reason              string // logged when refused
	}{
		{"thumbprint sha-1", tcp, "dev5", hubUser("dev5"), "", dev5, true, ""},
		{"thumbprint sha-1 over websocket", wss, "dev5", hubUser("dev5"), "", dev5, true, ""},
		{"thumbprint sha-256 with colons", tcp, "dev6", hubUser("dev6"), "", dev6, true, ""},
		{"configured username", tcp, "dev5", "dev5", "", dev5, true, ""},
		{"CA-signed", tcp, "dev3", hubUser("dev3"), "", dev3, true, ""},
		{"CA-signed over websocket", wss, "dev3", hubUser("dev3"), "", dev3, true, ""},
		{"wrong certificate", tcp, "dev5", hubUser("dev5"), "", stranger, false, "thumbprint does not match"},
		{"CA-signed for another device", tcp, "dev3", hubUser("dev3"), "", dev4, false, `subject CN \"dev4\" is not the device \"dev3\"`},
		{"other CA", tcp, "dev3", hubUser("dev3"), "", forged, false, "unknown authority"},
		{"expired", tcp, "dev7", hubUser("dev7"), "", expired, false, "valid only from"},
		{"no certificate", tcp, "dev5", hubUser("dev5"), "", nil, false, "bad username or password"},
		{"client id of another device", tcp, "dev1", hubUser("dev5"), "", dev5, false, "client id must equal"},
		{"certificate and a wrong password", tcp, "dev5", hubUser("dev5"), "x", dev5, false, "bad username or password"},
		{"certificate of a password user", tcp, "dev1", hubUser("dev1"), "", dev5, false, "unknown authority"},
		{"password user", tcp, "dev1", "dev1", "pw1", nil, true, ""},
		{"password user with a certificate", tcp, "dev1", "dev1", "pw1", dev5, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.authLog.mu.Lock()
			a.authLog.last = time.Time{} // log this refusal, however soon after the last
			a.authLog.mu.Unlock()
			before := len(logs.String())
			err := try(tc.url, tc.clientID, tc.user, tc.pwd, tc.cert)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok {
				if err == nil {
					t.Fatal("connected")
				}
				eventually(t, "refusal logged", func() bool { return strings.Contains(logs.String()[before:], tc.reason) })
			}
		})
	}

	// A device authenticated by certificate speaks for its identity.
	c := connect(t, pahoOpts(tcp, "dev5", hubUser("dev5"), "").SetTLSConfig(&tls.Config{
		RootCAs: servers, ServerName: "localhost", Certificates: []tls.Certificate{dev5.tls()}, MinVersion: tls.VersionTLS12,
	}))
	publish(t, c, "devices/dev5/messages/events/", 1, "by certificate")
	if r := up.Wait(t, 1)[0]; r.Message == nil || r.Message.Identity != "dev5" {
		t.Errorf("got %s", fmtReading(r))
	}
}

func TestX509ConfigValidate(t *testing.T) {
	const sha1Hex = "0123456789abcdef0123456789abcdef01234567"
	withTLS := func(c *Config) { c.TLS = &TLSConfig{Auto: true, Dir: "d"} }
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		path   string
		reason string
	}{
		{"bad thumbprint", func(c *Config) { withTLS(c); c.Users[0].X509Thumbprint = "abc" }, "users[0].x509_thumbprint", "SHA-1"},
		{"thumbprint without device", func(c *Config) { withTLS(c); c.Users[2].X509Thumbprint = sha1Hex }, "users[2].x509_thumbprint", "needs device"},
		{"thumbprint without tls", func(c *Config) { c.Users[0].X509Thumbprint = sha1Hex }, "users[0].x509_thumbprint", "needs tls"},
		{"no credential without client CA", func(c *Config) { withTLS(c); c.Users[0].Password = "" }, "users[0].password", "client_ca_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig()
			c.SetDefaults()
			tc.mutate(&c)
			checkFieldError(t, c.Validate(), tc.path, tc.reason)
		})
	}
	for name, mutate := range map[string]func(*Config){
		"thumbprint only": func(c *Config) { withTLS(c); c.Users[0].Password = ""; c.Users[0].X509Thumbprint = sha1Hex },
		"client CA only":  func(c *Config) { withTLS(c); c.TLS.ClientCAFile = "ca.pem"; c.Users[0].Password = "" },
	} {
		c := baseConfig()
		c.SetDefaults()
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
