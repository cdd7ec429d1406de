package edgegw_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks systemd/edgegw.service with systemd-analyze, and
// that it keeps the settings the README promises.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("systemd/edgegw.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify", "WatchdogSec=", "StateDirectory=edgegw", "ConfigurationDirectory=edgegw",
		"User=edgegw", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
		"CapabilityBoundingSet=\n", "DeviceAllow=char-ttyUSB rw", "SupplementaryGroups=dialout",
		"RestartPreventExitStatus=2", "ExecReload=/bin/kill -HUP $MAINPID",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	// Verify a copy whose binary exists, so only the unit itself is judged.
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "edgegw.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/edgegw", "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
