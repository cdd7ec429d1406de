package edgegw_test

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// TestDebianPackage builds the amd64 package with tools/debpkg (nfpm),
// installs it on this machine with dpkg -i (no running systemd needed),
// checks the files, their owners and modes, the edgegw system user, runs
// `edgegw check` as that user on the installed config, keeps an edited
// conffile across a reinstall, and purges it: state, user, group and config
// directory gone. It needs root; it leaves the machine as it found it and
// does not touch an edgegw package or user that was there before.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("installs a package")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the test installs the amd64 package")
	}
	if os.Geteuid() != 0 {
		testpeer.Missing(t, "dpkg -i needs root")
		return
	}
	dpkg := testpeer.RequireTool(t, "dpkg")
	testpeer.RequireTool(t, "dpkg-deb")
	runuser := testpeer.RequireTool(t, "runuser")
	if exec.Command(dpkg, "-s", "edgegw").Run() == nil {
		t.Skip("an edgegw package is installed on this machine; not touching it")
	}
	if _, err := user.Lookup("edgegw"); err == nil {
		t.Skip("a user edgegw exists on this machine; not touching it")
	}

	deb := buildDeb(t)
	t.Cleanup(func() {
		if exec.Command(dpkg, "-s", "edgegw").Run() == nil {
			if out, err := dpkgLocked(dpkg, "--purge", "edgegw"); err != nil {
				t.Errorf("cleanup: dpkg --purge: %v\n%s", err, out)
			}
		}
	})
	if out, err := exec.Command("dpkg-deb", "-I", deb, "conffiles").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "/etc/edgegw/edgegw.yaml" {
		t.Errorf("conffiles: %q, %v; want /etc/edgegw/edgegw.yaml", out, err)
	}
	if out, err := dpkgLocked(dpkg, "-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}

	u, err := user.Lookup("edgegw")
	if err != nil {
		t.Fatalf("no edgegw user after install: %v", err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid >= 1000 || uid == 0 {
		t.Errorf("edgegw uid %d: want a system user (1..999)", uid)
	}
	if pw := passwdLine(t, "edgegw"); !strings.HasSuffix(pw, ":/var/lib/edgegw:/usr/sbin/nologin") {
		t.Errorf("passwd entry %q: want home /var/lib/edgegw, shell nologin", pw)
	}
	if _, err := user.LookupGroup("dialout"); err == nil {
		if gids, _ := u.GroupIds(); !containsGroup(gids, "dialout") {
			t.Error("edgegw is not in dialout (serial ports)")
		}
	}
	for _, f := range []struct {
		path, owner, group string
		mode               os.FileMode
		dir                bool
	}{
		{"/usr/bin/edgegw", "root", "root", 0o755, false},
		{"/lib/systemd/system/edgegw.service", "root", "root", 0o644, false},
		{"/etc/edgegw", "root", "edgegw", 0o750, true},
		{"/etc/edgegw/edgegw.yaml", "root", "edgegw", 0o640, false},
		{"/var/lib/edgegw", "edgegw", "edgegw", 0o750, true},
	} {
		owner, group, mode, dir := stat(t, f.path)
		if owner != f.owner || group != f.group || mode != f.mode || dir != f.dir {
			t.Errorf("%s: %s:%s %04o dir=%t, want %s:%s %04o dir=%t", f.path, owner, group, mode, dir, f.owner, f.group, f.mode, f.dir)
		}
	}
	unit, _ := os.ReadFile("/lib/systemd/system/edgegw.service")
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/edgegw run -config ${CONFIGURATION_DIRECTORY}/edgegw.yaml") ||
		strings.Contains(string(unit), "/usr/local/bin") {
		t.Errorf("the packaged unit does not run /usr/bin/edgegw:\n%s", unit)
	}

	// The service's user can read and check the installed config.
	out, err := exec.Command(runuser, "-u", "edgegw", "--", "/usr/bin/edgegw", "check", "-config", "/etc/edgegw/edgegw.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "/etc/edgegw/edgegw.yaml: ok") {
		t.Errorf("edgegw check as edgegw: %v\n%s", err, out)
	}
	// Others cannot read it (it may hold keys).
	if out, err := exec.Command(runuser, "-u", "nobody", "--", "/usr/bin/edgegw", "check", "-config", "/etc/edgegw/edgegw.yaml").CombinedOutput(); err == nil {
		t.Errorf("nobody could read the config:\n%s", out)
	}

	// An edited conffile survives a reinstall.
	f, err := os.OpenFile("/etc/edgegw/edgegw.yaml", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const edit = "\n# edited on site\n"
	f.WriteString(edit)
	f.Close()
	if out, err := dpkgLocked(dpkg, "--force-confold", "-i", deb); err != nil {
		t.Fatalf("dpkg -i again: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile("/etc/edgegw/edgegw.yaml"); !strings.HasSuffix(string(b), edit) {
		t.Error("the edited config was replaced by a reinstall")
	}
	// Something in the state directory, as a running gateway leaves.
	os.MkdirAll("/var/lib/edgegw/queue", 0o750)
	os.WriteFile("/var/lib/edgegw/queue/MANIFEST", []byte("x"), 0o600)

	if out, err := dpkgLocked(dpkg, "--purge", "edgegw"); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	for _, p := range []string{"/usr/bin/edgegw", "/lib/systemd/system/edgegw.service", "/etc/edgegw", "/var/lib/edgegw"} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after purge (%v)", p, err)
		}
	}
	if _, err := user.Lookup("edgegw"); err == nil {
		t.Error("user edgegw still there after purge")
	}
	if _, err := user.LookupGroup("edgegw"); err == nil {
		t.Error("group edgegw still there after purge")
	}
}

// buildDeb builds the amd64 package: the binary from EDGEGW_CROSS_DIR (make
// unit) or built here, packaged by tools/debpkg (its own module, so go run
// there).
func buildDeb(t *testing.T) string {
	t.Helper()
	dist := t.TempDir()
	bin := filepath.Join(dist, "edgegw-linux-amd64")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if dir := os.Getenv("EDGEGW_CROSS_DIR"); dir != "" {
		if err := os.Symlink(filepath.Join(dir, "edgegw-linux-amd64"), bin); err != nil {
			t.Fatal(err)
		}
	} else {
		cmd := exec.Command(goBin, "build", "-trimpath", "-o", bin, "./cmd/edgegw")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	root, _ := filepath.Abs(".")
	cmd := exec.Command(goBin, "run", ".", "-version", "v0.0.1-test", "-root", root, "-dist", dist, "-arch", "amd64")
	cmd.Dir = filepath.Join(root, "tools", "debpkg")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tools/debpkg: %v\n%s", err, out)
	}
	deb := filepath.Join(dist, "edgegw_0.0.1.test_amd64.deb")
	if _, err := os.Stat(deb); err != nil {
		t.Fatalf("%v; debpkg said:\n%s", err, out)
	}
	return deb
}

// dpkgLocked runs dpkg, waiting (up to 2 minutes) while another package
// manager holds dpkg's lock.
func dpkgLocked(dpkg string, args ...string) ([]byte, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := exec.Command(dpkg, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(time.Second) // another apt/dpkg is running; bounded by the deadline
	}
}

func stat(t *testing.T, path string) (owner, group string, mode os.FileMode, dir bool) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	owner, group = strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	if g, err := user.LookupGroupId(group); err == nil {
		group = g.Name
	}
	return owner, group, fi.Mode().Perm(), fi.IsDir()
}

func passwdLine(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+":") {
			return l
		}
	}
	return fmt.Sprintf("(no %s in /etc/passwd)", name)
}

func containsGroup(gids []string, name string) bool {
	for _, id := range gids {
		if g, err := user.LookupGroupId(id); err == nil && g.Name == name {
			return true
		}
	}
	return false
}
