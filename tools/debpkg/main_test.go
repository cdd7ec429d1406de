package main

import (
	"os/exec"
	"testing"
)

// Versions from git describe, checked by dpkg itself: each is a valid
// Debian version, and they sort as the builds were made. A bare commit
// that starts with a digit (7f3dc86) is a build before any release, not
// version 7.
func TestDebVersionSortsWithDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg not installed")
	}
	order := []string{"7f3dc86", "0ecca04-dirty", "v0.0.1", "v0.1.0", "v0.1.0-4-gabcdef0", "v1.2.3", "v1.2.3-1-g7f3dc86", "v1.10.0"}
	for _, v := range append(order, "f3dc863", "1234567", "devel") {
		if out, err := exec.Command(dpkg, "--validate-version", debVersion(v)).CombinedOutput(); err != nil {
			t.Errorf("debVersion(%q) = %q: dpkg: %s", v, debVersion(v), out)
		}
	}
	for _, low := range []string{"7f3dc86", "f3dc863", "1234567", "0ecca04-dirty", "devel"} {
		if err := exec.Command(dpkg, "--compare-versions", debVersion(low), "lt", debVersion("v0.0.1")).Run(); err != nil {
			t.Errorf("debVersion(%q) = %q sorts after the release 0.0.1", low, debVersion(low))
		}
	}
	for i := 2; i < len(order); i++ {
		a, b := debVersion(order[i-1]), debVersion(order[i])
		if err := exec.Command(dpkg, "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("%s (%s) does not sort before %s (%s)", a, order[i-1], b, order[i])
		}
	}
}
