package gateway

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestSystemdNotify runs the gateway as systemd would with Type=notify and
// a watchdog: it must say READY=1 once started, WATCHDOG=1 while running,
// RELOADING=1 and READY=1 around a reload, and STOPPING=1 when it drains.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000") // pings every 100 ms
	t.Setenv("WATCHDOG_PID", "")

	cfg := skeletonConfig(t)
	gw, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()

	read := func(want string) {
		t.Helper()
		buf := make([]byte, 256)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			if string(buf[:n]) == want {
				return
			}
		}
		t.Fatalf("no %s", want)
	}
	read("READY=1")
	read("WATCHDOG=1")
	read("WATCHDOG=1")
	if err := gw.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	read("RELOADING=1")
	read("READY=1")
	cancel()
	read("STOPPING=1")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
