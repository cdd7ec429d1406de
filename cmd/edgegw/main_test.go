package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "plant.yaml")
	os.WriteFile(broken, []byte("hub: {host: h, port: -1}\nidentities: []\nbogus: 1\n"), 0o600)
	cases := []struct {
		args     []string
		code     int
		stdout   string
		stderrRE string
	}{
		{[]string{"version"}, 0, "edgegw ", ""},
		{[]string{"help"}, 0, "usage: edgegw", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"run", "-nope"}, 2, "", "flag provided but not defined"},
		{[]string{"check"}, 2, "", "-config is required"},
		{[]string{"check", "-config", filepath.Join(dir, "missing.yaml")}, 2, "", "missing.yaml: cannot read"},
		{[]string{"check", "-config", broken}, 2, "", broken + ": bogus: unknown key"},
		{[]string{"check", "-config", "../../configs/quickstart.yaml"}, 0, "ok", ""},
		{[]string{"check", "-config", "../../configs/quickstart.yaml", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"sas-token", "-config", "../../configs/plant-iothub.yaml"}, 2, "", "-identity or -policy is required"},
		{[]string{"sas-token", "-config", "../../configs/plant-iothub.yaml", "-identity", "nobody"}, 2, "", `"nobody" is not in identities`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			if code != c.code {
				t.Errorf("exit code %d, want %d (stderr: %s)", code, c.code, errb.String())
			}
			if !strings.Contains(out.String(), c.stdout) {
				t.Errorf("stdout %q does not contain %q", out.String(), c.stdout)
			}
			if c.stderrRE != "" && !strings.Contains(errb.String(), c.stderrRE) {
				t.Errorf("stderr %q does not contain %q", errb.String(), c.stderrRE)
			}
		})
	}
}

// TestUnreadableFilesExit2: a CA or key file the config names but that
// cannot be read is a config error (exit 2, file and path named), so
// systemd does not restart the gateway in a loop.
func TestUnreadableFilesExit2(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ hub, want string }{
		"ca file":  {"{host: hub.example.net, ca_file: " + dir + "/missing-ca.pem}", ": hub.ca_file: open "},
		"key file": {"{host: hub.example.net}", ": identities[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := filepath.Join(dir, "plant.yaml")
			os.WriteFile(cfg, []byte("state_dir: "+dir+"\nhub: "+c.hub+"\nidentities:\n  - {id: d1, key_file: "+dir+"/missing.key}\n"), 0o600)
			var out, errb bytes.Buffer
			if code := run([]string{"run", "-config", cfg}, &out, &errb); code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, errb.String())
			}
			if !strings.Contains(errb.String(), cfg+c.want) {
				t.Errorf("stderr lacks %q:\n%s", cfg+c.want, errb.String())
			}
		})
	}
}

func TestSASTokenForAnIdentity(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"sas-token", "-config", "../../configs/plant-iothub.yaml", "-identity", "boiler-1", "-ttl", "10m"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	if !strings.HasPrefix(tok, "SharedAccessSignature sr=") || !strings.Contains(tok, "&sig=") || !strings.Contains(tok, "&se=") {
		t.Errorf("not a SAS token: %q", tok)
	}
}
