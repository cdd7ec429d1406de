package buffer

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestAckToEmptyAndAppendInOneCommit covers an ack that empties a stream
// committed in the same group commit as an append to that stream: the new
// record must stay readable (its head must not be "tightened" past it by a
// read view that cannot see the open transaction).
func TestAckToEmptyAndAppendInOneCommit(t *testing.T) {
	q := open(t, Config{Dir: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last uint64
	for i := range 300 {
		if err := q.Append(ctx, Entry{Stream: "s", Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
		recs, err := q.Read(ctx, "s", last, 1)
		if err != nil {
			t.Fatal(err)
		}
		last = recs[0].Seq
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := q.Ack("s", last); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if err := q.Append(ctx, Entry{Stream: "s", Data: []byte{byte(i), 1}}); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		recs, err = q.Read(rctx, "s", last, 10)
		rcancel()
		if err != nil {
			t.Fatalf("round %d: Read(after %d): %v: the record appended beside the ack was lost", i, last, err)
		}
		if recs[0].Seq != last+1 {
			t.Fatalf("round %d: Read(after %d) returned seq %d first: seq %d was skipped", i, last, recs[0].Seq, last+1)
		}
		if err := q.Ack("s", recs[0].Seq); err != nil {
			t.Fatal(err)
		}
		last = recs[0].Seq
	}
}
