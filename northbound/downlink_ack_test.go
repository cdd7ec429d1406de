package northbound

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
)

// A C2D message whose handling failed for a passing reason (503) is not
// acknowledged, so the hub keeps it and redelivers it after a reconnect.
// The messages behind it wait for the redelivery too, so that they do not
// overtake it: after the reconnect both are carried out, in order.
func TestC2DTransientFailureRedelivered(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	d := &funcDownlink{fn: func(_ context.Context, n int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.C2D && n == 1 {
			return edgegw.Result{Status: 503, Payload: []byte(`{"error":"device unavailable"}`)}
		}
		return edgegw.Result{Status: 200}
	}}
	p, err := New(hubConfig(h), ids, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "connected", func() bool { return connected(p) == 1 })
	if _, err := h.SendC2D("dev1", hubsim.C2DMessage{Body: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the first C2D handled", func() bool { return len(d.of(edgegw.C2D)) == 1 })
	if _, err := h.SendC2D("dev1", hubsim.C2DMessage{Body: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the hub to drop the connection", func() bool { return h.Disconnect("dev1", "") })
	eventually(t, 10*time.Second, "both completed after the redelivery", func() bool { return len(h.PendingC2D("dev1")) == 0 })
	var order []string
	for _, c := range d.of(edgegw.C2D) {
		order = append(order, string(c.Payload))
	}
	if fmt.Sprint(order) != "[one one two]" {
		t.Fatalf("C2D carried out %v; want [one one two]: the failed one, then both redelivered in order", order)
	}
}

// C2D messages beyond what may wait for a command slot are left
// unacknowledged (the hub redelivers them after a reconnect) instead of
// each holding a goroutine.
func TestC2DWaitingBounded(t *testing.T) {
	h := startHub(t, &hubsim.Hub{C2DQueueLimit: 200})
	ids := register(t, h, "dev1")
	release := make(chan struct{})
	d := &funcDownlink{fn: func(ctx context.Context, _ int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.C2D {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return edgegw.Result{Status: 200}
	}}
	cfg := hubConfig(h)
	cfg.MaxCommands = 1
	p, err := New(cfg, ids, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "connected", func() bool { return connected(p) == 1 })
	const n = maxC2DWaiting + 30
	for i := range n {
		if _, err := h.SendC2D("dev1", hubsim.C2DMessage{Body: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	limit := cfg.MaxCommands + maxC2DWaiting
	eventually(t, 10*time.Second, "the excess messages turned away", func() bool {
		return p.Status()[0].Throttled == n-uint64(limit)
	})
	if g := goroutinesIn(inC2DHandler); g > limit {
		t.Fatalf("%d goroutines in onMessage, want at most %d", g, limit)
	}
	close(release)
	eventually(t, 10*time.Second, "the admitted messages completed", func() bool { return len(h.PendingC2D("dev1")) == n-limit })
	eventually(t, 10*time.Second, "the hub to drop the connection", func() bool { return h.Disconnect("dev1", "") })
	eventually(t, 10*time.Second, "the rest redelivered and completed", func() bool { return len(h.PendingC2D("dev1")) == 0 })
}

// A C2D message waiting for a command slot when its connection ends is
// not carried out then: its acknowledgement could not reach the hub, which
// redelivers it, so it would run twice. It runs once, after redelivery.
func TestC2DWaitingGivesUpWithConnection(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	release := make(chan struct{})
	d := &funcDownlink{fn: func(ctx context.Context, n int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.C2D && n == 1 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return edgegw.Result{Status: 200}
	}}
	cfg := hubConfig(h)
	cfg.MaxCommands = 1
	p, err := New(cfg, ids, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "connected", func() bool { return connected(p) == 1 })
	for _, b := range []string{"one", "two"} {
		if _, err := h.SendC2D("dev1", hubsim.C2DMessage{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "one running, two waiting", func() bool {
		return len(d.of(edgegw.C2D)) == 1 && len(h.PendingC2D("dev1")) == 2
	})
	eventually(t, 10*time.Second, "the hub to drop the connection", func() bool { return h.Disconnect("dev1", "") })
	eventually(t, 10*time.Second, "the pool to reconnect", func() bool { return p.Status()[0].Reconnects >= 1 })
	close(release)
	eventually(t, 10*time.Second, "both redelivered and completed", func() bool { return len(h.PendingC2D("dev1")) == 0 })
	runs := map[string]int{}
	all := d.of(edgegw.C2D)
	for _, c := range all {
		runs[string(c.Payload)]++
	}
	waited := "two" // in order: "one" runs first
	if string(all[0].Payload) != "one" || runs[waited] != 1 {
		t.Fatalf("C2D runs %v; want %q (the one waiting) run once, after its redelivery", runs, waited)
	}
}
