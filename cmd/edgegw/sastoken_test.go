package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/northbound/dps"
)

// TestSASTokenForAProvisionedIdentity: a fleet member signs for the hub
// DPS assigned it, as kept in the state directory; before it has one, the
// command says so.
func TestSASTokenForAProvisionedIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fleet.yaml")
	os.WriteFile(cfg, []byte("state_dir: "+dir+`
identities:
  - id: s-{n}
    count: 3
    dps: {id_scope: 0ne1, group_key: ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY=}
`), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"sas-token", "-config", cfg, "-identity", "s-2"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no kept assignment") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	c := &dps.Cache{Dir: filepath.Join(dir, "dps")}
	if err := c.Store(dps.Assignment{DPSHost: "global.azure-devices-provisioning.net", IDScope: "0ne1", RegistrationID: "s-2",
		Hub: "hub-b.azure-devices.net", DeviceID: "s-2"}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"sas-token", "-config", cfg, "-identity", "s-2"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if tok := out.String(); !strings.HasPrefix(tok, "SharedAccessSignature sr=hub-b.azure-devices.net%2Fdevices%2Fs-2&sig=") {
		t.Fatalf("token %q", tok)
	}
}
