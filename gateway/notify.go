package gateway

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

// notifier speaks systemd's sd_notify protocol (Type=notify): READY=1 once
// every room has started, WATCHDOG=1 at half the watchdog period while every
// room answers, STOPPING=1 when the drain begins. Without $NOTIFY_SOCKET it
// does nothing.
type notifier struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func sdNotify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' { // abstract socket
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// watchdogInterval returns half of systemd's watchdog period for this
// process, or 0 when the watchdog is off.
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// ready sends READY=1 and, when systemd's watchdog is on, WATCHDOG=1 every
// half period for as long as alive returns: alive takes a snapshot of every
// room's state, so a room stuck holding its lock stops the pings and
// systemd restarts the process.
func (n *notifier) ready(log *slog.Logger, alive func()) {
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("cannot notify systemd", "err", err)
	}
	every := watchdogInterval()
	if every == 0 {
		return
	}
	n.stop = make(chan struct{})
	n.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-n.stop:
				return
			case <-t.C:
				alive()
				_ = sdNotify("WATCHDOG=1")
			}
		}
	})
}

// stopping sends STOPPING=1 and stops the watchdog pings. A ping stuck in
// a hung room is not waited for: the process is on its way out.
func (n *notifier) stopping() {
	_ = sdNotify("STOPPING=1")
	if n.stop != nil {
		close(n.stop)
		done := make(chan struct{})
		go func() { n.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		n.stop = nil
	}
}

func portOf(addr string) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		if _, p, err := net.SplitHostPort(addr); err == nil {
			n, _ := strconv.Atoi(p)
			return n
		}
		return 0
	}
	return int(ap.Port())
}
