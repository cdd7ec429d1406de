package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	switch { // child processes of some tests; they never return
	case os.Getenv(crashChildEnv) != "":
		crashChild()
	case os.Getenv(noReserveChildEnv) != "":
		noReserveChild()
	}
	goleak.VerifyTestMain(m)
}

// testConfig returns a default config in a fresh directory.
func testConfig(t testing.TB) Config {
	return Config{Dir: t.TempDir()}
}

// open opens a queue that fails the test on any error-level log line
// (the queue logs an internal inconsistency at that level).
func open(t testing.TB, cfg Config) *Queue {
	t.Helper()
	q, err := Open(cfg, slog.New(failOnError{t}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

type failOnError struct{ t testing.TB }

func (h failOnError) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h failOnError) Handle(_ context.Context, r slog.Record) error {
	h.t.Errorf("error logged: %s", r.Message)
	return nil
}
func (h failOnError) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h failOnError) WithGroup(string) slog.Handler      { return h }

func appendN(t testing.TB, q *Queue, stream string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := q.Append(context.Background(), Entry{Stream: stream, Data: fmt.Appendf(nil, "%s-%d", stream, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads every record of stream after `after` without blocking.
func readAll(t testing.TB, q *Queue, stream string, after uint64) []Record {
	t.Helper()
	var out []Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		recs, err := q.Read(ctx, stream, after, 1000)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}

func wantRecords(t testing.TB, got []Record, stream string, seqs ...int) {
	t.Helper()
	if len(got) != len(seqs) {
		t.Fatalf("%s: got %d records, want %d", stream, len(got), len(seqs))
	}
	for i, r := range got {
		if r.Seq != uint64(seqs[i]) || string(r.Data) != fmt.Sprintf("%s-%d", stream, seqs[i]) {
			t.Fatalf("%s: record %d = seq %d %q, want seq %d", stream, i, r.Seq, r.Data, seqs[i])
		}
	}
}

func seqRange(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestAppendReadAck(t *testing.T) {
	q := open(t, testConfig(t))
	appendN(t, q, "dev-1", 1, 10)
	appendN(t, q, "dev-2", 1, 3)
	wantRecords(t, readAll(t, q, "dev-1", 0), "dev-1", seqRange(1, 10)...)
	wantRecords(t, readAll(t, q, "dev-1", 7), "dev-1", 8, 9, 10)

	recs, err := q.Read(context.Background(), "dev-1", 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	wantRecords(t, recs, "dev-1", 1, 2, 3, 4)
	if err := q.Ack("dev-1", 4); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, readAll(t, q, "dev-1", 0), "dev-1", seqRange(5, 10)...)
	wantRecords(t, readAll(t, q, "dev-2", 0), "dev-2", 1, 2, 3)
	if err := q.Ack("dev-1", 4); err != nil { // again: a no-op
		t.Fatal(err)
	}
	if err := q.Ack("nobody", 4); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack("dev-1", 1000); err != nil { // beyond the end: everything
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Records != 3 || len(st.Streams) != 2 || st.Streams[0].Depth != 0 || st.Streams[0].LastSeq != 10 || st.Streams[1].Depth != 3 {
		t.Fatalf("stats %+v", st)
	}
	if st.Bytes != 3*storedSize(len("dev-2-1")) {
		t.Fatalf("bytes %d", st.Bytes)
	}
}

func TestRestartKeepsRecordsAndSequences(t *testing.T) {
	cfg := testConfig(t)
	q := open(t, cfg)
	appendN(t, q, "a", 1, 5)
	appendN(t, q, "b", 1, 2)
	if err := q.Ack("a", 2); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack("b", 2); err != nil { // b is now empty
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = open(t, cfg)
	wantRecords(t, readAll(t, q, "a", 0), "a", 3, 4, 5)
	wantRecords(t, readAll(t, q, "b", 0), "b")
	appendN(t, q, "a", 6, 1)
	appendN(t, q, "b", 3, 1) // sequences go on after a restart, even when empty
	wantRecords(t, readAll(t, q, "a", 0), "a", 3, 4, 5, 6)
	wantRecords(t, readAll(t, q, "b", 0), "b", 3)
	st := q.Stats()
	if st.Records != 5 || st.Bytes != 4*storedSize(3)+storedSize(3) {
		t.Fatalf("stats after restart %+v", st)
	}
}

func TestStreamNamesDoNotCollide(t *testing.T) {
	q := open(t, testConfig(t))
	names := []string{"a", "a/b", "ab", "a\x00", "\x00", "a/b/c", "\xff\xff", string(make([]byte, MaxStreamName))}
	for i, n := range names {
		appendN(t, q, n, 1, i+1)
	}
	for i, n := range names {
		wantRecords(t, readAll(t, q, n, 0), n, seqRange(1, i+1)...)
	}
	if err := q.Ack("a", 100); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, readAll(t, q, "a/b", 0), "a/b", 1, 2)
	if err := q.Append(context.Background(), Entry{Stream: ""}); err == nil {
		t.Fatal("empty stream name accepted")
	}
}

func TestReadWaits(t *testing.T) {
	q := open(t, testConfig(t))
	got := make(chan []Record, 1)
	go func() {
		recs, err := q.Read(context.Background(), "later", 0, 10)
		if err != nil {
			t.Error(err)
		}
		got <- recs
	}()
	appendN(t, q, "other", 1, 1)
	appendN(t, q, "later", 1, 2)
	select {
	case recs := <-got:
		if len(recs) == 0 || recs[0].Seq != 1 {
			t.Fatalf("read %v", recs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not wake on append")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := q.Read(ctx, "later", 2, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read past the end = %v, want deadline", err)
	}
	if _, err := q.Read(context.Background(), "later", 0, 0); err == nil {
		t.Fatal("max 0 accepted")
	}

	done := make(chan error, 1)
	go func() { _, err := q.Read(context.Background(), "later", 2, 10); done <- err }()
	time.Sleep(10 * time.Millisecond) // let it block; the result is the same if it has not yet
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Read on Close = %v", err)
	}
}

func TestClosed(t *testing.T) {
	q := open(t, testConfig(t))
	appendN(t, q, "a", 1, 1)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := q.Append(context.Background(), Entry{Stream: "a"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if _, err := q.Read(context.Background(), "a", 0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close = %v", err)
	}
	if err := q.Ack("a", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close = %v", err)
	}
	_ = q.Stats()
}

func TestAppendIsAllOrNothing(t *testing.T) {
	q := open(t, testConfig(t))
	err := q.Append(context.Background(), Entry{Stream: "a", Data: []byte("a-1")}, Entry{Stream: "b", Data: make([]byte, MaxRecordBytes+1)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized entry: %v", err)
	}
	wantRecords(t, readAll(t, q, "a", 0), "a")
	big := make([]Entry, 20000)
	for i := range big {
		big[i] = Entry{Stream: "a"}
	}
	if err := q.Append(context.Background(), big...); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("batch beyond one transaction: %v", err)
	}
	wantRecords(t, readAll(t, q, "a", 0), "a")
	data := []byte("a-1")
	if err := q.Append(context.Background(), Entry{Stream: "a", Data: data}); err != nil {
		t.Fatal(err)
	}
	copy(data, "xxx") // the caller may reuse its buffer
	wantRecords(t, readAll(t, q, "a", 0), "a", 1)

	// The largest record fits, and stays in the LSM tree.
	max := bytes.Repeat([]byte{7}, MaxRecordBytes)
	if err := q.Append(context.Background(), Entry{Stream: "big", Data: max}); err != nil {
		t.Fatal(err)
	}
	if recs := readAll(t, q, "big", 0); len(recs) != 1 || !bytes.Equal(recs[0].Data, max) {
		t.Fatal("largest record not read back")
	}
}

// TestConcurrentAppends checks order per appender, no loss, no
// duplicates, and that concurrent appends share commits.
func TestConcurrentAppends(t *testing.T) {
	q := open(t, testConfig(t))
	const writers, each = 40, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("s%d", w%4)
			for i := range each {
				e := Entry{Stream: stream, Data: fmt.Appendf(nil, "%d/%d", w, i), Alarm: i%10 == 0}
				if err := q.Append(context.Background(), e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for s := range 4 {
		next := map[int]int{}
		recs := readAll(t, q, fmt.Sprintf("s%d", s), 0)
		if len(recs) != writers/4*each {
			t.Fatalf("s%d: %d records", s, len(recs))
		}
		for i, r := range recs {
			var w, n int
			if _, err := fmt.Sscanf(string(r.Data), "%d/%d", &w, &n); err != nil || r.Seq != uint64(i+1) {
				t.Fatalf("record %d: seq %d %q", i, r.Seq, r.Data)
			}
			if n != next[w] {
				t.Fatalf("writer %d: got %d, want %d", w, n, next[w])
			}
			next[w]++
		}
	}
	st := q.Stats()
	if st.Appended != writers*each || st.Commits >= st.Appended {
		t.Fatalf("appended %d in %d commits: no group commit", st.Appended, st.Commits)
	}
	t.Logf("%d appends in %d commits", st.Appended, st.Commits)
}

// TestLargeAck acks more records than one transaction can delete.
func TestLargeAck(t *testing.T) {
	q := open(t, testConfig(t))
	const n = 15000
	batch := make([]Entry, 1000)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			batch[j] = Entry{Stream: "x", Data: []byte("0123456789"), Alarm: (i+j)%5 == 0} // one in every five
		}
		if err := q.Append(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Ack("x", n-5); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, q, "x", 0)
	if len(recs) != 5 || recs[0].Seq != n-4 {
		t.Fatalf("after ack: %d records from %d", len(recs), recs[0].Seq)
	}
	st := q.Stats()
	if st.Records != 5 || st.Bytes != 5*storedSize(10) || st.Streams[0].Alarms != 1 {
		t.Fatalf("stats %+v", st)
	}
}
