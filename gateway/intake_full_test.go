package gateway

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// TestPipelinedIntakeDiskFull fills the state directory's filesystem (a
// real tmpfs) while a LAN device publishes with a window of 20
// unacknowledged. While the disk is full nothing more is acknowledged: the
// gateway closes the connection of a publish it could not store, and the
// device's reconnects get nowhere. Once space returns the device goes on,
// and every message ever acknowledged reaches the hub in order.
func TestPipelinedIntakeDiskFull(t *testing.T) {
	mnt := testpeer.Tmpfs(t, 64<<20)
	y := fmt.Sprintf(`
state_dir: %s
log: {level: warn}
buffer: {min_free_bytes: 16777216}
hubsim: {enabled: true, mqtt_listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
hub: {host: localhost}
identities:
  - id: sensor-1
southbound:
  - name: lan
    lanmqtt:
      listen: "127.0.0.1:0"
      users:
        - {username: sensor-1, password: pw, device: sensor-1}
`, mnt)
	cfg, err := Parse("intake-full.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	lan := gw.Adapter("lan").(*lanmqtt.Adapter)
	addr := lan.Addr().String()
	dev := newSeqDevice("sensor-1", "pw", 20)

	// run publishes, reconnecting after each refusal, until stop closes.
	run := func(stop <-chan struct{}) *sync.WaitGroup {
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 1000 {
				select {
				case <-stop:
					return
				default:
				}
				dev.publish(addr, stop)
				time.Sleep(50 * time.Millisecond)
			}
		})
		return &wg
	}

	stop := make(chan struct{})
	wg := run(stop)
	waitCond(t, 20*time.Second, "messages acknowledged before the disk fills", func() (bool, string) {
		n := dev.ackedCount()
		return n >= 200, fmt.Sprintf("%d acknowledged", n)
	})
	ballast := testpeer.FillTo(t, mnt, 8<<20) // below the 16 MiB reserve: appends refused
	waitCond(t, 60*time.Second, "a publish refused with the disk full", func() (bool, string) {
		s := lan.Stats()
		return s.Failed >= 1, fmt.Sprintf("%+v", s)
	})
	// The refused session records the acknowledgements it received before
	// the refusal as it winds down; count once it has.
	s0 := dev.sessionsDone()
	waitCond(t, 60*time.Second, "the refused session to end", func() (bool, string) {
		return dev.sessionsDone() > s0, fmt.Sprintf("%+v", lan.Stats())
	})
	full := dev.ackedCount()
	time.Sleep(time.Second)
	if n := dev.ackedCount(); n != full {
		t.Fatalf("%d messages acknowledged while the disk was full", n-full)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitCond(t, 90*time.Second, "publishing again once space returned", func() (bool, string) {
		n := dev.ackedCount()
		return n >= full+200, fmt.Sprintf("%d acknowledged, %d before the disk filled", n, full)
	})
	close(stop)
	wg.Wait()
	dev.waitAllAtHub(t, gw.Hub(), 60*time.Second)
	t.Logf("%d acknowledged, all at the hub; %+v", dev.ackedCount(), lan.Stats())
}
