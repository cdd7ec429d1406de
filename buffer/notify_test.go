package buffer

import (
	"sync/atomic"
	"testing"
	"time"
)

// counter is a Notify callback that counts its calls.
type counter struct {
	n    atomic.Int32
	woke chan struct{}
}

func newCounter() *counter { return &counter{woke: make(chan struct{}, 10)} }

func (c *counter) fn() {
	c.n.Add(1)
	c.woke <- struct{}{}
}

func (c *counter) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-c.woke:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: callback not called within 10s", what)
	}
}

func TestNotify(t *testing.T) {
	q := open(t, testConfig(t))

	// A stream with nothing after the cursor: registered, called once on
	// the next append, and not again on the one after.
	c := newCounter()
	if !q.Notify("s", 0, c.fn) {
		t.Fatal("Notify on an empty stream returned false")
	}
	if c.n.Load() != 0 {
		t.Fatal("callback called before any append")
	}
	appendN(t, q, "other", 1, 1)
	appendN(t, q, "s", 1, 1)
	c.wait(t, "append to s")
	appendN(t, q, "s", 2, 1)
	if n := c.n.Load(); n != 1 {
		t.Fatalf("callback called %d times, want once", n)
	}

	// Records after the cursor exist: nothing registered.
	c2 := newCounter()
	if q.Notify("s", 1, c2.fn) {
		t.Fatal("Notify with records after the cursor returned true")
	}
	appendN(t, q, "s", 3, 1)
	if c2.n.Load() != 0 {
		t.Fatal("a refused registration was called")
	}

	// Caught up: registered. A later Notify replaces the earlier one.
	old, cur := newCounter(), newCounter()
	if !q.Notify("s", 3, old.fn) || !q.Notify("s", 3, cur.fn) {
		t.Fatal("Notify at the end of the stream returned false")
	}
	appendN(t, q, "s", 4, 1)
	cur.wait(t, "append after replacement")
	if old.n.Load() != 0 {
		t.Fatal("the replaced callback was called")
	}

	// Records already acked or dropped do not count: only one still stored
	// after the cursor does.
	if err := q.Ack("s", 4); err != nil {
		t.Fatal(err)
	}
	acked := newCounter()
	if !q.Notify("s", 0, acked.fn) {
		t.Fatal("Notify after 0 with every record acked returned false")
	}

	// Close calls what is pending; after Close, Notify registers nothing
	// (Read returns ErrClosed at once).
	closing := newCounter()
	if !q.Notify("s", 4, closing.fn) {
		t.Fatal("Notify at the end returned false")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	closing.wait(t, "Close")
	if q.Notify("s", 4, newCounter().fn) {
		t.Fatal("Notify after Close returned true")
	}
}
