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

	"github.com/edgegw/edgegw/internal/testpeer"
)

// TestCheckOPCUAUserCertificate: check and run read an OPC UA certificate
// user token's certificate and key before anything starts; one that cannot
// be used is a config error (file: path: reason, exit 2), as the other
// files a config names are.
func TestCheckOPCUAUserCertificateFiles(t *testing.T) {
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
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	userCert := write("user.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	userKey := write("user.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	_, _, ecKey := testpeer.ServerCert(t, dir, "localhost") // an ECDSA key: not usable for a user token
	for _, tc := range []struct {
		name, cert, key string
		path, why       string
	}{
		{"usable", userCert, userKey, "", ""},
		{"certificate missing", filepath.Join(dir, "gone.pem"), userKey, "southbound[0].opcua.auth.cert_file", "no such file"},
		{"certificate not one", userKey, userKey, "southbound[0].opcua.auth.cert_file", "user.key"},
		{"key missing", userCert, filepath.Join(dir, "gone.key"), "southbound[0].opcua.auth.key_file", "no such file"},
		{"key not RSA", userCert, ecKey, "southbound[0].opcua.auth.key_file", "server.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := write("edgegw.yaml", []byte(`state_dir: `+dir+`/state
hub: {host: hub.example.net}
identities: [{id: d1, key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]
southbound:
  - name: plc
    opcua:
      endpoint: opc.tcp://127.0.0.1:4840
      auth: {kind: certificate, cert_file: `+tc.cert+`, key_file: `+tc.key+`}
      devices: [{name: boiler, points: [{name: t, node: "ns=1;s=Boiler.Sensor", type: double}]}]
`))
			if tc.path == "" {
				var out, errb bytes.Buffer
				if code := run([]string{"check", "-config", cfg}, &out, &errb); code != 0 {
					t.Fatalf("usable user certificate: exit %d, stderr %q", code, errb.String())
				}
				return
			}
			for _, cmd := range []string{"check", "run"} {
				var out, errb bytes.Buffer
				code := run([]string{cmd, "-config", cfg}, &out, &errb)
				want := cfg + ": " + tc.path + ": "
				if code != 2 || !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), tc.why) {
					t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %q ... %q", cmd, code, errb.String(), want, tc.why)
				}
			}
		})
	}
}
