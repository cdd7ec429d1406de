package northbound

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
)

// These run the pool on the real buffer and check that an idle identity's
// worker parks whenever nothing is left to send, also when the stream's
// sequence numbers say otherwise.

// After a restart (a new Pool starts from cursor 0) a stream whose records
// were all acked has nothing after the cursor: the worker parks.
func TestParksAfterRestartOnAckedStream(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "rs1")
	q, err := buffer.Open(buffer.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m := telemetry("rs1", 1)
	b, _ := m.MarshalBinary()
	if err := q.Append(context.Background(), buffer.Entry{Stream: "rs1", Data: b}); err != nil {
		t.Fatal(err)
	}
	cfg := hubConfig(h)
	cfg.KeepAlive = 2 * time.Second
	p1, err := New(cfg, ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop1 := runPool(t, p1)
	eventually(t, 10*time.Second, "acked", func() bool { return p1.Status()[0].Acked == 1 })
	eventually(t, 10*time.Second, "first pool parked", func() bool { return goroutinesIn(inWorker) == 0 })
	stop1()

	p2, err := New(cfg, ids, q, newRecorder(), nil) // a restart: acked cursor starts at 0
	if err != nil {
		t.Fatal(err)
	}
	stop2 := runPool(t, p2)
	defer stop2()
	eventually(t, 10*time.Second, "connected", func() bool { return connected(p2) == 1 })
	end := time.Now().Add(4 * time.Second)
	for time.Now().Before(end) {
		if goroutinesIn(inWorker) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("after a restart the worker of a fully acked stream did not park within 4s (2 keep-alive periods)")
}

// A stream whose unsent records expired (max_age) has nothing to send:
// the worker parks.
func TestParksOnExpiredTail(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "exp1")
	q, err := buffer.Open(buffer.Config{Dir: t.TempDir(), MaxAge: 200 * time.Millisecond, AlarmMaxAge: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m := telemetry("exp1", 1)
	b, _ := m.MarshalBinary()
	if err := q.Append(context.Background(), buffer.Entry{Stream: "exp1", Data: b}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // let it expire before the pool reads it
	cfg := hubConfig(h)
	cfg.KeepAlive = 2 * time.Second
	p, err := New(cfg, ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "connected", func() bool { return connected(p) == 1 })
	end := time.Now().Add(4 * time.Second)
	for time.Now().Before(end) {
		if goroutinesIn(inWorker) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("worker still running 4s (2 keep-alive periods) after connect with only expired records")
}

type countingQueue struct {
	q      *buffer.Queue
	notify atomic.Int64
	reads  atomic.Int64
}

func (c *countingQueue) Read(ctx context.Context, s string, after uint64, max int) ([]buffer.Record, error) {
	c.reads.Add(1)
	return c.q.Read(ctx, s, after, max)
}
func (c *countingQueue) Ack(s string, upto uint64) error { return c.q.Ack(s, upto) }
func (c *countingQueue) Notify(s string, after uint64, fn func()) bool {
	c.notify.Add(1)
	return c.q.Notify(s, after, fn)
}

// A queue closed under a running pool makes Read fail (ErrClosed); the
// worker retries once a second instead of spinning.
func TestClosedQueueDoesNotSpin(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "spin1")
	bq, err := buffer.Open(buffer.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cq := &countingQueue{q: bq}
	p, err := New(hubConfig(h), ids, cq, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "connected", func() bool { return connected(p) == 1 })
	eventually(t, 10*time.Second, "parked", func() bool { return goroutinesIn(inWorker) == 0 })
	n0 := cq.notify.Load()
	bq.Close()
	time.Sleep(300 * time.Millisecond)
	n := cq.notify.Load() - n0
	t.Logf("Notify calls in 300ms after Close: %d (reads %d)", n, cq.reads.Load())
	if n > 10 {
		t.Errorf("worker spins on a closed queue: %d Notify calls in 300ms", n)
	}
}
