package lanmqtt

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

// startLogged runs an adapter for cfg until the test ends and returns it
// with its log.
func startLogged(t *testing.T, cfg Config) (*Adapter, *testpeer.Buffer) {
	t.Helper()
	var logs testpeer.Buffer
	a, err := New("lan", cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	testpeer.RunAdapter(t, a, new(testpeer.Uplink))
	select {
	case <-a.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	return a, &logs
}

// trust returns a pool holding only the CA certificate in file.
func trust(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("%s: no certificate", file)
	}
	return pool
}

// tlsConnect connects dev1 over TLS, verifying the server as name, and
// returns the connect error.
func tlsConnect(t *testing.T, a *Adapter, pool *x509.CertPool, name string) error {
	t.Helper()
	tc := &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}
	return connectErr(t, pahoOpts("ssl://"+a.Addr().String(), "dev1", "dev1", "pw1").SetTLSConfig(tc))
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With tls.auto the gateway creates its CA and server certificate on first
// start, reuses both later, and issues a new server certificate under the
// same CA when the hosts change. A client that trusts only the CA connects.
func TestAutoTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lan-ca") // created by the adapter
	caFile := filepath.Join(dir, "ca.pem")
	cfg := baseConfig()
	cfg.TLS = &TLSConfig{Auto: true, Dir: dir}
	var ca, server []byte

	t.Run("first start", func(t *testing.T) {
		a, logs := startLogged(t, cfg)
		if !strings.Contains(logs.String(), "LAN devices trust "+caFile) {
			t.Errorf("CA path not logged:\n%s", logs)
		}
		pool := trust(t, caFile)
		for _, name := range []string{"localhost", "127.0.0.1", ""} { // "": the dialled address
			if err := tlsConnect(t, a, pool, name); err != nil {
				t.Errorf("as %q: %v", name, err)
			}
		}
		if err := tlsConnect(t, a, pool, "gw.plant.local"); err == nil {
			t.Error("server certificate valid for a host it was not issued for")
		}
		if err := tlsConnect(t, a, x509.NewCertPool(), "localhost"); err == nil {
			t.Error("connected without trusting the CA")
		}
		for name, mode := range map[string]os.FileMode{"": 0o700, "ca-key.pem": 0o600, "server-key.pem": 0o600, "ca.pem": 0o644, "server.pem": 0o644} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != mode {
				t.Errorf("%s/%s: mode %v, want %v", dir, name, got, mode)
			}
		}
		ca, server = readFile(t, caFile), readFile(t, filepath.Join(dir, "server.pem"))
		leaf := parseFile(t, filepath.Join(dir, "server.pem"))
		if d := time.Until(leaf.NotAfter); d < 360*24*time.Hour || d > 366*24*time.Hour {
			t.Errorf("server certificate lasts %v, want about a year", d)
		}
		if d := time.Until(parseFile(t, caFile).NotAfter); d < 9*365*24*time.Hour {
			t.Errorf("CA lasts %v, want 10 years", d)
		}
	})

	t.Run("restart", func(t *testing.T) {
		a, _ := startLogged(t, cfg)
		if !bytes.Equal(readFile(t, caFile), ca) || !bytes.Equal(readFile(t, filepath.Join(dir, "server.pem")), server) {
			t.Fatal("CA or server certificate replaced on restart")
		}
		if err := tlsConnect(t, a, trust(t, caFile), "localhost"); err != nil {
			t.Error(err)
		}
	})

	t.Run("hosts changed", func(t *testing.T) {
		cfg := cfg
		cfg.TLS = &TLSConfig{Auto: true, Dir: dir, Hosts: []string{"GW.plant.local", "127.0.0.1"}}
		a, _ := startLogged(t, cfg)
		if !bytes.Equal(readFile(t, caFile), ca) {
			t.Fatal("CA replaced")
		}
		if bytes.Equal(readFile(t, filepath.Join(dir, "server.pem")), server) {
			t.Fatal("server certificate not issued again for the new hosts")
		}
		pool := trust(t, filepath.Join(dir, "ca.pem"))
		if err := tlsConnect(t, a, pool, "gw.plant.local"); err != nil {
			t.Error(err)
		}
		if err := tlsConnect(t, a, pool, "127.0.0.1"); err != nil {
			t.Error(err)
		}
		if err := tlsConnect(t, a, pool, "localhost"); err == nil {
			t.Error("server certificate still valid for localhost")
		}
	})
}

func parseFile(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	c, err := parseCertPEM(readFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The server certificate is issued again when it nears its end, at start
// and while serving, under the same CA; a CA near its own end, or without
// its key, is the operator's to resolve.
func TestAutoCertRenewal(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	t0 := time.Now()
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	hosts := []string{"gw.plant.local", "192.168.1.10"}
	const day = 24 * time.Hour

	ac, err := openAutoCert(dir, hosts, log, at(0))
	if err != nil {
		t.Fatal(err)
	}
	first := ac.cert.Leaf
	if got := certHosts(first); strings.Join(got, ",") != "192.168.1.10,gw.plant.local" {
		t.Errorf("hosts %v", got)
	}
	verify := func(leaf *x509.Certificate, when time.Time) {
		t.Helper()
		roots := x509.NewCertPool()
		roots.AddCert(ac.ca)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "gw.plant.local", CurrentTime: when}); err != nil {
			t.Error(err)
		}
	}
	verify(first, t0)

	ac2, err := openAutoCert(dir, hosts, log, at(300*day))
	if err != nil {
		t.Fatal(err)
	}
	if !ac2.cert.Leaf.Equal(first) || !ac2.ca.Equal(ac.ca) {
		t.Fatal("a certificate with two months left was replaced")
	}

	ac3, err := openAutoCert(dir, hosts, log, at(340*day))
	if err != nil {
		t.Fatal(err)
	}
	if ac3.cert.Leaf.Equal(first) || !ac3.ca.Equal(ac.ca) {
		t.Fatal("want a new server certificate under the same CA 25 days before the end")
	}
	verify(ac3.cert.Leaf, t0.Add(700*day))

	// While serving: the handshake after the renewal point gets a new one,
	// which is also stored.
	prev := ac3.cert.Leaf
	ac3.now = at(700 * day)
	c, err := ac3.getCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.Equal(prev) || !c.Leaf.NotAfter.After(t0.Add(1000*day)) {
		t.Fatalf("not renewed while serving: ends %s", c.Leaf.NotAfter)
	}
	if stored := parseFile(t, filepath.Join(dir, "server.pem")); !stored.Equal(c.Leaf) {
		t.Error("renewed certificate not stored")
	}
	if again, _ := ac3.getCertificate(nil); again != c {
		t.Error("renewed twice")
	}

	// A damaged key is replaced with a new pair.
	if err := os.WriteFile(filepath.Join(dir, "server-key.pem"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ac4, err := openAutoCert(dir, hosts, log, at(700*day)); err != nil || ac4.cert.Leaf.Equal(c.Leaf) {
		t.Errorf("damaged server key: err %v, replaced %v", err, err == nil && !ac4.cert.Leaf.Equal(c.Leaf))
	}

	if _, err := openAutoCert(dir, hosts, log, at(10*365*day-10*day)); err == nil || !strings.Contains(err.Error(), "create a new CA") {
		t.Errorf("CA near its end: err %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	ca := readFile(t, filepath.Join(dir, "ca.pem"))
	if _, err := openAutoCert(dir, hosts, log, at(0)); err == nil || !strings.Contains(err.Error(), "ca-key.pem") {
		t.Errorf("CA key missing: err %v", err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, "ca.pem")), ca) {
		t.Error("CA replaced")
	}
}

func TestTLSConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tls    TLSConfig
		path   string
		reason string
	}{
		{"auto and files", TLSConfig{Auto: true, Dir: "d", CertFile: "c", KeyFile: "k"}, "tls.auto", "cannot be used with cert_file"},
		{"auto without dir", TLSConfig{Auto: true}, "tls.dir", "must be set"},
		{"bad host", TLSConfig{Auto: true, Dir: "d", Hosts: []string{"gw.local", "a b"}}, "tls.hosts[1]", `got "a b"`},
		{"hosts without auto", TLSConfig{CertFile: "c", KeyFile: "k", Hosts: []string{"x"}}, "tls.hosts", "needs auto"},
		{"no cert", TLSConfig{KeyFile: "k"}, "tls.cert_file", "must be set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig()
			c.SetDefaults()
			c.TLS = &tc.tls
			checkFieldError(t, c.Validate(), tc.path, tc.reason)
		})
	}
	c := baseConfig()
	c.SetDefaults()
	c.TLS = &TLSConfig{Auto: true, Dir: "d", Hosts: []string{"gw.plant.local", "192.168.1.10", "fe80::1"}}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// checkFieldError fails unless err holds a FieldError at path whose reason
// contains reason.
func checkFieldError(t *testing.T, err error, path, reason string) {
	t.Helper()
	var all []string
	for _, e := range flattenErrors(err) {
		if fe, ok := e.(*edgegw.FieldError); ok && fe.Path == path && strings.Contains(fe.Reason, reason) {
			return
		}
		all = append(all, e.Error())
	}
	t.Errorf("want %s: ...%s..., got %q", path, reason, all)
}

func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
