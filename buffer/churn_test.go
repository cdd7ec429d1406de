package buffer

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The churn test pushes many 200-byte messages through a queue held at
// churnDepth and checks that the directory stays within three times the
// live payload plus 64 MiB: deleted records must be reclaimed.
//
// Two load shapes: concurrent producers and consumers, and one goroutine
// in lockstep (append a batch, then read and ack one), which leaves more
// tombstones to badger. Normal tests churn 300k messages concurrently
// (100k with -short); the long run does both shapes. The full run of 20M:
//
//	EDGEGW_BUFFER_CHURN_MESSAGES=20000000 go test -run TestChurn -v -timeout 3h ./buffer/
//	go test -run NONE -bench Churn -benchtime 20000000x -timeout 3h ./buffer/

const (
	churnDepth   = 100_000
	churnPayload = 200
	churnBatch   = 500
	churnStreams = 8
)

type churnResult struct {
	messages   int
	maxDisk    int64 // highest du seen
	maxRatio   float64
	compaction uint64
	elapsed    time.Duration
}

// churn runs two producers that append n messages in batches to the
// streams in turn, and one consumer per stream that reads and acks a
// batch at a time. Credits keep at most churnDepth messages in the queue.
// The disk bound is checked every 50k messages.
func churn(tb testing.TB, q *Queue, dir string, n int) churnResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	credits := make(chan struct{}, churnDepth/churnBatch)
	for range cap(credits) {
		credits <- struct{}{}
	}
	var sent, depth atomic.Int64
	var res churnResult
	var mu sync.Mutex
	var failed error
	fail := func(err error) {
		mu.Lock()
		if failed == nil {
			failed = err
		}
		mu.Unlock()
		cancel()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 { // producers
		wg.Go(func() {
			payload := make([]byte, churnPayload)
			batch := make([]Entry, churnBatch)
			for {
				select {
				case <-credits:
				case <-ctx.Done():
					return
				}
				i := sent.Add(churnBatch)
				if i > int64(n) {
					return
				}
				stream := "churn/" + strconv.Itoa(int(i/churnBatch)%churnStreams)
				for j := range batch {
					batch[j] = Entry{Stream: stream, Data: payload}
				}
				if err := q.Append(ctx, batch...); err != nil {
					fail(err)
					return
				}
				depth.Add(churnBatch)
				if i%50_000 == 0 || i == int64(n) {
					if err := churnCheck(dir, i, depth.Load(), &mu, &res); err != nil {
						fail(err)
						return
					}
				}
			}
		})
	}
	var received atomic.Int64
	for k := range churnStreams { // consumers
		wg.Go(func() {
			stream := "churn/" + strconv.Itoa(k)
			var cursor uint64
			owed := 0 // messages acked but not yet returned as credit
			for received.Load() < int64(n) {
				recs, err := q.Read(ctx, stream, cursor, churnBatch)
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				if recs[0].Seq != cursor+1 {
					fail(fmt.Errorf("%s: read after %d starts at %d", stream, cursor, recs[0].Seq))
					return
				}
				cursor = recs[len(recs)-1].Seq
				if err := q.Ack(stream, cursor); err != nil {
					fail(err)
					return
				}
				depth.Add(-int64(len(recs)))
				for owed += len(recs); owed >= churnBatch; owed -= churnBatch {
					credits <- struct{}{}
				}
				if received.Add(int64(len(recs))) >= int64(n) {
					cancel() // all through: wake the other consumers
				}
			}
		})
	}
	wg.Wait()
	if failed != nil {
		tb.Fatal(failed)
	}
	res.messages = n
	res.elapsed = time.Since(start)
	res.compaction = q.Stats().Compactions
	return res
}

// churnLockstep is churn with one goroutine that appends a batch and,
// once churnDepth messages are stored, reads and acks a batch of the same
// stream. This pattern leaves more tombstones to badger than the
// concurrent one, and needs the queue's flatten.
func churnLockstep(tb testing.TB, q *Queue, dir string, n int) churnResult {
	ctx := context.Background()
	batch := make([]Entry, churnBatch)
	payload := make([]byte, churnPayload)
	cursor := make([]uint64, churnStreams)
	var res churnResult
	var mu sync.Mutex
	depth := 0
	start := time.Now()
	for sent := churnBatch; sent <= n; sent += churnBatch {
		k := (sent / churnBatch) % churnStreams
		stream := "churn/" + strconv.Itoa(k)
		for i := range batch {
			batch[i] = Entry{Stream: stream, Data: payload}
		}
		if err := q.Append(ctx, batch...); err != nil {
			tb.Fatal(err)
		}
		if depth += churnBatch; depth > churnDepth {
			recs, err := q.Read(ctx, stream, cursor[k], churnBatch)
			if err != nil {
				tb.Fatal(err)
			}
			if recs[0].Seq != cursor[k]+1 {
				tb.Fatalf("%s: read after %d starts at %d", stream, cursor[k], recs[0].Seq)
			}
			cursor[k] = recs[len(recs)-1].Seq
			if err := q.Ack(stream, cursor[k]); err != nil {
				tb.Fatal(err)
			}
			depth -= len(recs)
		}
		if sent%50_000 == 0 {
			if err := churnCheck(dir, int64(sent), int64(depth), &mu, &res); err != nil {
				tb.Fatal(err)
			}
		}
	}
	res.messages = n
	res.elapsed = time.Since(start)
	res.compaction = q.Stats().Compactions
	return res
}

// churnCheck measures the directory against the bound.
func churnCheck(dir string, sent, depth int64, mu *sync.Mutex, res *churnResult) error {
	du, err := diskUsage(dir)
	if err != nil {
		return err
	}
	live := depth * churnPayload
	bound := 3*live + 64<<20
	mu.Lock()
	res.maxDisk = max(res.maxDisk, du)
	res.maxRatio = max(res.maxRatio, float64(du)/float64(bound))
	mu.Unlock()
	if du > bound {
		return fmt.Errorf("after %d messages: disk %d MiB > 3 x live %d MiB + 64 MiB", sent, du>>20, live>>20)
	}
	return nil
}

func TestChurn(t *testing.T) {
	n := 300_000
	if testing.Short() {
		n = 100_000
	}
	type mode struct {
		name string
		run  func(testing.TB, *Queue, string, int) churnResult
	}
	modes := []mode{{"concurrent", churn}}
	if s := os.Getenv("EDGEGW_BUFFER_CHURN_MESSAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
		modes = append(modes, mode{"lockstep", churnLockstep})
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			q := open(t, Config{Dir: dir})
			r := mode.run(t, q, dir, n/churnBatch*churnBatch)
			t.Logf("%d messages in %v (%.0f msg/s): max disk %d MiB, %.0f%% of the bound, %d compactions",
				r.messages, r.elapsed.Round(time.Millisecond), float64(r.messages)/r.elapsed.Seconds(),
				r.maxDisk>>20, 100*r.maxRatio, r.compaction)
		})
	}
}

func BenchmarkChurn(b *testing.B) {
	for _, mode := range []struct {
		name string
		run  func(testing.TB, *Queue, string, int) churnResult
	}{{"concurrent", churn}, {"lockstep", churnLockstep}} {
		b.Run(mode.name, func(b *testing.B) {
			dir := b.TempDir()
			q := open(b, Config{Dir: dir})
			b.ResetTimer()
			r := mode.run(b, q, dir, max(benchN(b, 20_000_000), churnBatch)/churnBatch*churnBatch)
			b.ReportMetric(float64(r.messages)/r.elapsed.Seconds(), "msg/s")
			b.ReportMetric(float64(r.maxDisk)/(1<<20), "max-disk-MiB")
			b.ReportMetric(100*r.maxRatio, "%-of-bound")
			b.ReportMetric(float64(r.compaction), "compactions")
		})
	}
}
