package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// tls auto makes the LAN CA on the first start; a CA left from an earlier
// start must still be usable, or the broker cannot start: check and run
// stop on a CA certificate whose key is gone with exit 2 (run exited 1,
// which systemd restarts).
func TestCheckAutoTLSCA(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "lan-ca")
	cfg := filepath.Join(dir, "edgegw.yaml")
	y := `state_dir: ` + dir + `/state
hub: {host: 127.0.0.1, port: 1, insecure: true}
identities: [{id: d1, key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]
southbound:
  - name: lan
    lanmqtt:
      listen: 127.0.0.1:0
      tls: {auto: true, dir: ` + caDir + `}
      users: [{username: d1, password: "$7$1000$AAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", device: d1}]
`
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", cfg}, &out, &errb); code != 0 || errb.Len() != 0 {
		t.Fatalf("no CA yet (made at start): exit %d, stderr %q", code, errb.String())
	}

	ca, _, _ := testpeer.ServerCert(t, dir, "localhost")
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(caDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caDir, "ca.pem"), pem, 0o600); err != nil { // its key is not there
		t.Fatal(err)
	}
	for _, cmd := range []string{"check", "run"} {
		out.Reset()
		errb.Reset()
		code := run([]string{cmd, "-config", cfg}, &out, &errb)
		want := cfg + ": southbound[0].lanmqtt.tls.dir: CA key " + filepath.Join(caDir, "ca-key.pem")
		if code != 2 || !strings.Contains(errb.String(), want) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %q", cmd, code, errb.String(), want)
		}
	}
}
