package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A fleet (an identity entry with count, provisioned by DPS with a group
// key file) passes check when its group key file is there, and stops check
// and run with exit 2 naming dps.group_key_file when it is not; a group key
// file others may read is warned about.
func TestCheckFleetGroupKeyFile(t *testing.T) {
	dir := t.TempDir()
	groupKey := filepath.Join(dir, "group.key")
	if err := os.WriteFile(groupKey, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(keyFile string) string {
		p := filepath.Join(dir, "edgegw.yaml")
		y := `state_dir: ` + dir + `/state
hub: {host: hub.example.net}
identities:
  - id: sensor-{n:03}
    count: 3
    dps: {id_scope: 0ne00ABCDEF, group_key_file: ` + keyFile + `, host: 127.0.0.1, port: 1}
`
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	cfg := config(groupKey)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", cfg}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok (3 identities") || errb.Len() != 0 {
		t.Fatalf("a fleet with its group key: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}

	cfg = config(filepath.Join(dir, "gone.key"))
	for _, cmd := range []string{"check", "run"} {
		out.Reset()
		errb.Reset()
		code := run([]string{cmd, "-config", cfg}, &out, &errb)
		want := cfg + ": identities[0].dps.group_key_file: "
		if code != 2 || !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), "no such file") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %q", cmd, code, errb.String(), want)
		}
	}

	os.Chmod(groupKey, 0o640)
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "-config", config(groupKey)}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := cfg + ": identities[0].dps.group_key_file: warning: " + groupKey + " is readable by group or others (mode 0640)"
	if !strings.Contains(errb.String(), want) {
		t.Errorf("stderr:\n%s\nwant %q", errb.String(), want)
	}
}
