package northbound

import (
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hubsim"
)

// The hub stops acknowledging (it drops telemetry without a PUBACK), then
// stalls altogether (the connection stays open but goes silent, CONNECTs
// included), with messages to send and then while idle. Each time the
// session ends on its own timeout (acknowledgement, then keep-alive), the
// pool reconnects with back-off, and once the hub recovers every message
// arrives in order: nothing acked in the buffer was left undelivered.
func TestIoTHubSilentHubNothingLost(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	cfg := hubConfig(h)
	cfg.AckTimeout = time.Second
	cfg.KeepAlive = time.Second
	cfg.ConnectTimeout = 2 * time.Second
	q := newMemQueue()
	p, err := New(cfg, ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "connected", func() bool { return connected(p) == 1 })

	// Phase 1: PUBACKs withheld.
	h.SetFaults(hubsim.Faults{WithholdPuback: true})
	for i := 1; i <= 20; i++ {
		q.append("dev1", telemetry("dev1", i))
	}
	eventually(t, 10*time.Second, "the session to end on the acknowledgement timeout", func() bool {
		return strings.Contains(p.Status()[0].LastError, errAckTimeout.Error())
	})
	if n := q.pending("dev1"); n != 20 {
		t.Fatalf("%d of 20 still in the buffer while the hub acknowledged nothing", n)
	}
	h.SetFaults(hubsim.Faults{})
	eventually(t, 15*time.Second, "the first 20 delivered", func() bool { return q.pending("dev1") == 0 })

	// Phase 2: the hub goes silent.
	h.SetFaults(hubsim.Faults{Stall: true})
	for i := 21; i <= 30; i++ {
		q.append("dev1", telemetry("dev1", i))
	}
	before := p.Status()[0].Reconnects
	eventually(t, 15*time.Second, "the silent connection given up", func() bool { return !p.Status()[0].Connected })
	time.Sleep(cfg.ConnectTimeout) // a reconnect attempt meets the stall too
	if n := q.pending("dev1"); n != 10 {
		t.Fatalf("%d of 10 in the buffer while the hub was silent", n)
	}
	h.SetFaults(hubsim.Faults{})
	eventually(t, 20*time.Second, "all 30 delivered", func() bool { return q.pending("dev1") == 0 })
	if p.Status()[0].Reconnects <= before {
		t.Fatalf("no reconnect after the stall (reconnects %d)", p.Status()[0].Reconnects)
	}

	bodies, props := hubTelemetry(h, "dev1")
	checkInOrder(t, "dev1", bodies, props, 30)

	// Phase 3: silent while idle. Only the keep-alive can tell: its PINGREQ
	// goes unanswered and the connection is given up.
	eventually(t, 10*time.Second, "connected again", func() bool { return p.Status()[0].Connected })
	h.SetFaults(hubsim.Faults{Stall: true})
	eventually(t, 15*time.Second, "the idle silent connection given up", func() bool {
		return strings.Contains(p.Status()[0].LastError, "PINGRESP")
	})
	h.SetFaults(hubsim.Faults{})
	eventually(t, 15*time.Second, "connected after the stall", func() bool { return p.Status()[0].Connected })
	t.Logf("30 messages, %d received by the hub, %d reconnects, last error %q",
		len(bodies), p.Status()[0].Reconnects, p.Status()[0].LastError)
}
