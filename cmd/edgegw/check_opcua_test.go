package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An OPC UA adapter's user certificate and key are files the config names:
// check and run stop on them with exit 2 (run used to exit 1 from the
// adapter, which systemd restarts), and check warns about a key others may
// read.
func TestCheckOPCUAUserCertificate(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "operator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile := write("user.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	keyFile := write("user.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	notPEM := write("junk.pem", []byte("not a certificate"), 0o600)
	config := func(cert, key string) string {
		return write("edgegw.yaml", []byte(`state_dir: `+dir+`/state
hub: {host: 127.0.0.1, port: 1, insecure: true}
identities: [{id: d1, key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]
southbound:
  - name: ua
    opcua:
      endpoint: opc.tcp://127.0.0.1:1
      auth: {kind: certificate, cert_file: `+cert+`, key_file: `+key+`}
      devices: [{name: d, points: [{name: y, node: "ns=2;s=Y", type: double}]}]
mapping:
  devices: [{adapter: ua, device: d, identity: d1}]
`), 0o600)
	}

	cfg := config(certFile, keyFile)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", cfg}, &out, &errb); code != 0 || errb.Len() != 0 {
		t.Fatalf("usable files: exit %d, stderr %q", code, errb.String())
	}
	for _, tc := range []struct{ name, cert, key, path, why string }{
		{"certificate missing", filepath.Join(dir, "gone.pem"), keyFile, "auth.cert_file", "no such file"},
		{"certificate not one", notPEM, keyFile, "auth.cert_file", "junk.pem"},
		{"key missing", certFile, filepath.Join(dir, "gone.key"), "auth.key_file", "no such file"},
		{"key not one", certFile, notPEM, "auth.key_file", "junk.pem"},
	} {
		cfg := config(tc.cert, tc.key)
		for _, cmd := range []string{"check", "run"} {
			out.Reset()
			errb.Reset()
			code := run([]string{cmd, "-config", cfg}, &out, &errb)
			want := cfg + ": southbound[0].opcua." + tc.path + ": "
			if code != 2 || !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), tc.why) {
				t.Errorf("%s, %s: exit %d, stderr:\n%s\nwant exit 2 and %q ... %q", tc.name, cmd, code, errb.String(), want, tc.why)
			}
		}
	}

	os.Chmod(keyFile, 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "-config", config(certFile, keyFile)}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := cfg + ": southbound[0].opcua.auth.key_file: warning: " + keyFile + " is readable by group or others (mode 0644)"
	if !strings.Contains(errb.String(), want) {
		t.Errorf("stderr:\n%s\nwant %q", errb.String(), want)
	}
}
