package buffer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestAppendAsyncKeepsOrder hands a window of appends from one goroutine
// to the group commit without waiting, then checks that they are stored in
// the order handed over, across more than one commit.
func TestAppendAsyncKeepsOrder(t *testing.T) {
	q := open(t, testConfig(t))
	const n = 2000
	dones := make([]chan error, n)
	for i := range n {
		dones[i] = make(chan error, 1)
		data := fmt.Appendf(nil, "m%d", i)
		if err := q.AppendAsync(context.Background(), dones[i], Entry{Stream: "s", Data: data}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	for i, d := range dones {
		select {
		case err := <-d:
			if err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("append %d never answered", i)
		}
	}
	recs := readAll(t, q, "s", 0)
	if len(recs) != n {
		t.Fatalf("%d records stored, want %d", len(recs), n)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("m%d", i); string(r.Data) != want || r.Seq != uint64(i+1) {
			t.Fatalf("record %d: seq %d %q, want seq %d %q", i, r.Seq, r.Data, i+1, want)
		}
	}
	if st := q.Stats(); st.Commits >= n {
		t.Errorf("%d commits for %d appends in flight together: no group commit", st.Commits, n)
	}
}

// TestAppendAsyncAnsweredOnClose closes the queue while appends are in
// flight: every append that was handed over gets an answer, and those
// answered nil are on disk after a reopen.
func TestAppendAsyncAnsweredOnClose(t *testing.T) {
	cfg := testConfig(t)
	q, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var dones []chan error
	closed := make(chan error, 1)
	for i := range 20000 {
		if i == 200 {
			go func() { closed <- q.Close() }()
		}
		d := make(chan error, 1)
		err := q.AppendAsync(context.Background(), d, Entry{Stream: "s", Data: fmt.Appendf(nil, "m%d", i)})
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		dones = append(dones, d)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	stored := 0
	for i, d := range dones {
		select {
		case err := <-d:
			switch {
			case err == nil:
				if stored != i {
					t.Fatalf("append %d stored after append %d failed", i, stored)
				}
				stored++
			case !errors.Is(err, ErrClosed):
				t.Fatalf("append %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("append %d of %d never answered", i, len(dones))
		}
	}
	q = open(t, cfg)
	recs := readAll(t, q, "s", 0)
	if len(recs) != stored {
		t.Fatalf("%d records after reopen, %d were answered as stored", len(recs), stored)
	}
	t.Logf("%d handed over, %d stored before close", len(dones), stored)
}
