package northbound

import (
	"context"
	"testing"
	"time"

	"github.com/edgegw/edgegw/identity"
)

// TestAddAndRemoveWhileRunning: an identity added to a running pool
// connects and drains its stream; a removed one disconnects from the hub
// and leaves what it did not send in the queue, which it sends in order
// when added again; the identity that was neither added nor removed keeps
// its one connection throughout; Run still returns after all of it.
func TestAddAndRemoveWhileRunning(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "keep", "gone", "new")
	q := newMemQueue()
	p, err := New(hubConfig(h), ids[:2], q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	load := func(i int) *identity.Identity {
		id, err := identity.Load(ids[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	stop := runPool(t, p)
	eventually(t, 10*time.Second, "both connected", func() bool { return connected(p) == 2 })
	before, _ := h.Status("keep", "")

	if err := p.Add(load(2)); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(load(2)); err == nil {
		t.Error("the same identity added twice")
	}
	const n = 200
	for i := 1; i <= n; i++ {
		q.append("new", telemetry("new", i))
		q.append("gone", telemetry("gone", i))
	}
	eventually(t, 10*time.Second, "new drained", func() bool { return q.pending("new") == 0 })

	if !p.Remove(context.Background(), "gone") {
		t.Fatal("Remove: not in the pool")
	}
	if p.Has("gone") || p.Remove(context.Background(), "gone") {
		t.Error("removed identity still in the pool")
	}
	for _, s := range p.Status() {
		if s.Identity == "gone" {
			t.Error("removed identity still in Status")
		}
	}
	eventually(t, 10*time.Second, "gone disconnected at the hub", func() bool {
		s, _ := h.Status("gone", "")
		return !s.Connected
	})
	sent, _ := hubTelemetry(h, "gone")
	left := q.pending("gone")
	if len(sent)+left < n {
		t.Fatalf("gone: the hub got %d and %d are queued, of %d", len(sent), left, n)
	}
	for i := 0; i < 2*n; i++ { // more for the removed identity: nobody sends them now
		q.append("gone", telemetry("gone", n+1+i))
	}
	if got, _ := hubTelemetry(h, "gone"); len(got) != len(sent) {
		t.Errorf("the hub got %d messages of the removed identity after it was removed", len(got)-len(sent))
	}

	if err := p.Add(load(1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "gone drained after it came back", func() bool { return q.pending("gone") == 0 })
	got, _ := hubTelemetry(h, "gone")
	checkInOrder(t, "gone", got, nil, 3*n)

	after, _ := h.Status("keep", "")
	if after.Connects != before.Connects || !after.Connected {
		t.Errorf("keep reconnected: before %+v, after %+v", before, after)
	}
	stop()
}
