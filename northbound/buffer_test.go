package northbound

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
)

// TestRealBufferRestartResumes drains the real badger buffer to hubsim,
// stops the pool in the middle of the stream, appends more and starts a
// new pool on the same queue: the hub gets everything in order (re-sends
// only of what was in flight) and the buffer is acked to the end.
func TestRealBufferRestartResumes(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "rb1", "rb2/m")
	q, err := buffer.Open(buffer.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	appendN := func(from, to int) {
		var entries []buffer.Entry
		for i := from; i <= to; i++ {
			for _, ic := range ids {
				m := telemetry(ic.ID, i)
				b, _ := m.MarshalBinary()
				entries = append(entries, buffer.Entry{Stream: ic.ID, Data: b})
			}
		}
		if err := q.Append(ctx, entries...); err != nil {
			t.Fatal(err)
		}
	}
	appendN(1, 300)
	cfg := hubConfig(h)
	cfg.InFlight = 10
	p1, err := New(cfg, ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop1 := runPool(t, p1)
	eventually(t, 10*time.Second, "first pool sent 100", func() bool {
		b1, _ := hubTelemetry(h, "rb1")
		b2, _ := hubTelemetry(h, "rb2/m")
		return len(b1) >= 100 && len(b2) >= 100
	})
	stop1()
	appendN(301, 400)
	p2, err := New(cfg, ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := runPool(t, p2)
	eventually(t, 20*time.Second, "second pool acked everything", func() bool {
		for _, s := range p2.Status() {
			if s.Acked != 400 {
				return false
			}
		}
		return true
	})
	stop2()
	for _, ic := range ids {
		bodies, props := hubTelemetry(h, ic.ID)
		checkInOrder(t, ic.ID, bodies, props, 400)
		if dup := len(bodies) - 400; dup > cfg.InFlight {
			t.Errorf("%s: %d re-sends, more than the in-flight window %d", ic.ID, dup, cfg.InFlight)
		}
		// Nothing is left unacked.
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		recs, err := q.Read(rctx, ic.ID, 0, 10)
		cancel()
		if len(recs) != 0 || err == nil {
			t.Errorf("%s: %d records left after the drain (%v)", ic.ID, len(recs), err)
		}
	}
	// Reported patches go through the real buffer too.
	rep := edgegw.Message{Identity: "rb1", Kind: edgegw.Reported, Body: []byte(`{"fw":"` + strconv.Itoa(2) + `"}`)}
	b, _ := rep.MarshalBinary()
	if err := q.Append(ctx, buffer.Entry{Stream: "rb1", Data: b}); err != nil {
		t.Fatal(err)
	}
	p3, err := New(cfg, ids[:1], q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p3)
	eventually(t, 10*time.Second, "reported patch at the hub", func() bool {
		tw, err := h.Twin("rb1", "")
		return err == nil && tw.Properties.Reported["fw"] == "2"
	})
}

// TestRealBufferLiveAppend drains while a producer appends one record at a
// time, so acks and appends of the same stream meet in one write cycle of
// the buffer. Every record must reach the hub, and every Read must continue
// exactly after its cursor (nothing here expires or is dropped).
//
// At the time of writing this fails because of a buffer bug, not a
// northbound one: when a write cycle both acks a stream down to empty and
// appends to it, cycle.tighten looks for the new head through a reader
// that does not see the cycle's own appends, logs "stream meta counts
// records that are not there; resetting" and moves the head past the
// record just appended, so Read skips it.
func TestRealBufferLiveAppend(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "live1")
	log, logs := testLogger(t)
	bq, err := buffer.Open(buffer.Config{Dir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer bq.Close()
	q := &seqChecker{t: t, q: bq}
	p, err := New(hubConfig(h), ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	const n = 2000
	for i := 1; i <= n; i++ {
		m := telemetry("live1", i)
		b, _ := m.MarshalBinary()
		if err := bq.Append(context.Background(), buffer.Entry{Stream: "live1", Data: b}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "all acked", func() bool { return p.Status()[0].Acked == n })
	stop()
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("buffer logged errors:\n%s", logs.String())
	}
	bodies, _ := hubTelemetry(h, "live1")
	checkInOrder(t, "live1", bodies, nil, n)
}

// seqChecker wraps the buffer and fails the test when a Read does not
// continue exactly after its cursor.
type seqChecker struct {
	t *testing.T
	q *buffer.Queue
}

func (c *seqChecker) Read(ctx context.Context, s string, after uint64, max int) ([]buffer.Record, error) {
	recs, err := c.q.Read(ctx, s, after, max)
	if len(recs) > 0 && recs[0].Seq != after+1 {
		c.t.Errorf("buffer Read(%q, after %d) returned seq %d first: seq %d was skipped", s, after, recs[0].Seq, after+1)
	}
	return recs, err
}

func (c *seqChecker) Ack(s string, upto uint64) error { return c.q.Ack(s, upto) }

func (c *seqChecker) Notify(s string, after uint64, fn func()) bool { return c.q.Notify(s, after, fn) }
