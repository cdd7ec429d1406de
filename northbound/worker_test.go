package northbound

import (
	"testing"
	"time"
)

const (
	inWorker = "northbound.(*link).work("
	inReader = "mqtt3.(*Conn).readLoop("
)

// An idle connected identity holds one goroutine, its connection's reader:
// the worker parks. The parked worker still keeps the connection alive
// (the hub drops a client silent for 1.5 keep-alive periods) and wakes for
// every append.
func TestIdleIdentityParks(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1", "dev2")
	cfg := hubConfig(h)
	cfg.KeepAlive = 2 * time.Second // PINGREQ after 1.5 s idle; the hub cuts at 3 s
	q := newMemQueue()
	p, err := New(cfg, ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "both connected", func() bool { return connected(p) == 2 })
	eventually(t, 10*time.Second, "the workers parked", func() bool {
		return goroutinesIn(inWorker) == 0 && goroutinesIn(inReader) == 2
	})

	// Three keep-alive periods of silence: no reconnect.
	time.Sleep(3 * cfg.KeepAlive)
	for _, s := range p.Status() {
		if !s.Connected || s.Reconnects != 0 || s.LastError != "" {
			t.Fatalf("%s after 3 idle keep-alive periods: connected %v, %d reconnects, last error %q",
				s.Identity, s.Connected, s.Reconnects, s.LastError)
		}
	}

	// Appends wake the parked worker; everything is delivered in order.
	for i := range 20 {
		q.append("dev1", telemetry("dev1", i))
		if i%5 == 0 {
			time.Sleep(50 * time.Millisecond) // some appends find the worker parked again
		}
	}
	eventually(t, 10*time.Second, "20 messages acked", func() bool { return q.pending("dev1") == 0 })
	got := h.Telemetry("dev1")
	if len(got) != 20 {
		t.Fatalf("hub got %d messages, want 20", len(got))
	}
	for i, m := range got {
		if want := string(telemetry("dev1", i).Body); string(m.Body) != want {
			t.Fatalf("message %d is %q, want %q", i, m.Body, want)
		}
	}
	eventually(t, 10*time.Second, "the worker parked again", func() bool { return goroutinesIn(inWorker) == 0 })
}

// A pool can be run again after its Run returned: the second Run connects,
// sends what was appended in between, and parks, and no worker of the
// first Run is left.
func TestPoolRunsAgain(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	q := newMemQueue()
	p, err := New(hubConfig(h), ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	q.append("dev1", telemetry("dev1", 1))
	stop := runPool(t, p)
	eventually(t, 10*time.Second, "the first message", func() bool { return q.pending("dev1") == 0 })
	stop()
	if n := goroutinesIn(inWorker) + goroutinesIn(inReader); n != 0 {
		t.Fatalf("%d worker or reader goroutines left after Run returned", n)
	}
	if p.Status()[0].Connected {
		t.Fatal("connected after Run returned")
	}

	q.append("dev1", telemetry("dev1", 2)) // the first Run's Notify callback may still be registered
	stop = runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "the second message", func() bool { return q.pending("dev1") == 0 })
	eventually(t, 10*time.Second, "parked", func() bool { return goroutinesIn(inWorker) == 0 && goroutinesIn(inReader) == 1 })
	bodies, props := hubTelemetry(h, "dev1")
	checkInOrder(t, "dev1", bodies, props, 2)
}
