// Package testpeer holds helpers that start real test peers (a socat pty
// pair, an adapter's Run loop) and record what an adapter submits, and
// applies the house rule for missing Debian tools: skip the test, or fail
// it when the environment variable CI is set, so CI never silently skips.
//
// It is imported only by _test.go files.
package testpeer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/southbound"
)

// packages names the Debian package of tools whose package is named
// otherwise, for the skip message.
var packages = map[string]string{
	"mosquitto_pub": "mosquitto-clients", "mosquitto_sub": "mosquitto-clients",
	"mosquitto_passwd": "mosquitto", "node": "nodejs",
	"qemu-arm-static": "qemu-user-static", "qemu-aarch64-static": "qemu-user-static",
}

// RequireTool returns the path of the program name, looked up in PATH and
// then in /usr/sbin and /usr/local/sbin (where mosquitto lives). When it is
// missing the test is skipped, or fails if CI is set.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	pkg := packages[name]
	if pkg == "" {
		pkg = name
	}
	Missing(t, "%s not installed (apt-get install %s)", name, pkg)
	return ""
}

// Missing reports that something the test needs is not installed: it skips
// the test with the message, or fails it when CI is set.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; required when CI is set", msg)
	}
	t.Skipf("%s; skipping", msg)
}

// RunAdapter runs a.Run(ctx, up) in a goroutine until the test ends, then
// cancels it and fails the test if Run returns an error or does not return
// within 30s (the failure lists every goroutine's stack).
func RunAdapter(t testing.TB, a southbound.Adapter, up southbound.Uplink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, up) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			// Generous: a loaded CI machine runs several packages' race
			// tests at once.
			// The stacks say which goroutine holds it up.
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Errorf("Run did not return within 30s of cancel; goroutines:\n%s", stacks.String())
		}
	})
}

// FillDescriptors opens n descriptors (on /dev/null) that stay open until
// the test ends, so the next ones opened get numbers above n: with n 1100, a
// serial port lands above 1023, where select(2)-based libraries panic.
func FillDescriptors(t testing.TB, n int) {
	t.Helper()
	files := make([]*os.File, 0, n)
	t.Cleanup(func() {
		for _, f := range files {
			f.Close()
		}
	})
	for range n {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatalf("open descriptor %d: %v", len(files), err)
		}
		files = append(files, f)
	}
}
