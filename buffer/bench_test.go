package buffer

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks: 200-byte messages, SyncWrites on, the store in the default
// temporary directory (TMPDIR), which should be the disk the gateway uses.
// Each reports its own rates (msg/s); read those, not ns/op.
//
//	go test -run NONE -bench 'RawFsync|Append' -benchtime 20000x ./buffer/
//	go test -run NONE -bench Drain -benchtime 1000000x ./buffer/
//	go test -run NONE -bench SteadyRSS -benchtime 150000x ./buffer/   (30 s at 5k msg/s; run alone)
//	go test -run NONE -bench Churn -benchtime 20000000x -timeout 3h ./buffer/
//
// make bench runs every benchmark once (-benchtime=1x) with
// EDGEGW_BENCH_LONG=1; each then uses the size above instead of b.N = 1.

const benchPayload = 200

// benchN is b.N, or def when make bench asks for one long run.
func benchN(b *testing.B, def int) int {
	if b.N == 1 && os.Getenv("EDGEGW_BENCH_LONG") != "" {
		return def
	}
	return b.N
}

// rawFsync appends 200 bytes to a file in dir and fsyncs, n times, and
// returns the rate: the disk's floor for one durable write.
func rawFsync(tb testing.TB, dir string, n int) float64 {
	f, err := os.Create(filepath.Join(dir, "fsync"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, benchPayload)
	start := time.Now()
	for range n {
		if _, err := f.Write(buf); err != nil {
			tb.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			tb.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func BenchmarkRawFsync(b *testing.B) {
	dir := b.TempDir()
	b.ResetTimer()
	rate := rawFsync(b, dir, benchN(b, 20000))
	b.ReportMetric(rate, "fsync/s")
}

func benchQueue(b *testing.B) *Queue {
	b.Helper()
	return open(b, Config{Dir: b.TempDir()})
}

func BenchmarkAppendSingle(b *testing.B) {
	q := benchQueue(b)
	raw := rawFsync(b, b.TempDir(), 2000)
	e := Entry{Stream: "bench", Data: make([]byte, benchPayload)}
	ctx := context.Background()
	n := benchN(b, 20000)
	b.ResetTimer()
	start := time.Now()
	for range n {
		if err := q.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	rate := float64(n) / time.Since(start).Seconds()
	b.ReportMetric(rate, "msg/s")
	b.ReportMetric(raw, "raw-fsync/s")
	b.ReportMetric(rate/raw, "x-raw-fsync")
}

// BenchmarkAppendConcurrent100 runs 100 appenders, one 200-byte entry per
// Append, over 10 streams: group commit shares each fsync.
func BenchmarkAppendConcurrent100(b *testing.B) {
	q := benchQueue(b)
	raw := rawFsync(b, b.TempDir(), 2000)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	n := benchN(b, 50000)
	b.ResetTimer()
	start := time.Now()
	for g := range 100 {
		wg.Go(func() {
			e := Entry{Stream: "bench/" + strconv.Itoa(g%10), Data: make([]byte, benchPayload)}
			for next.Add(1) <= int64(n) {
				if err := q.Append(ctx, e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	b.StopTimer()
	st := q.Stats()
	b.ReportMetric(rate, "msg/s")
	b.ReportMetric(raw, "raw-fsync/s")
	b.ReportMetric(rate/raw, "x-raw-fsync")
	b.ReportMetric(float64(st.Appended)/float64(st.Commits), "msg/commit")
}

// BenchmarkDrain reads and acks b.N stored messages from one stream, a
// batch of 1000 at a time, as northbound does.
func BenchmarkDrain(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	batch := make([]Entry, 1000)
	for i := range batch {
		batch[i] = Entry{Stream: "drain", Data: make([]byte, benchPayload)}
	}
	n := benchN(b, 1_000_000)
	for i := 0; i < n; i += len(batch) {
		if err := q.Append(ctx, batch[:min(len(batch), n-i)]...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var cursor uint64
	for got := 0; got < n; {
		recs, err := q.Read(ctx, "drain", cursor, 1000)
		if err != nil {
			b.Fatal(err)
		}
		cursor = recs[len(recs)-1].Seq
		if err := q.Ack("drain", cursor); err != nil {
			b.Fatal(err)
		}
		got += len(recs)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkSteadyRSS appends b.N messages at 5,000 msg/s from 100 devices
// (single-entry Appends) while 100 consumers read and ack, and reports the
// process's resident memory: peak sampled VmRSS and VmHWM (reset at the
// start, so run this benchmark alone).
func BenchmarkSteadyRSS(b *testing.B) {
	const devices, rate = 100, 5000
	q := benchQueue(b)
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var peak, peakAnon, peakFile, peakHeap atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			peak.Store(max(peak.Load(), procStatus("VmRSS")))
			peakAnon.Store(max(peakAnon.Load(), procStatus("RssAnon")))
			peakFile.Store(max(peakFile.Load(), procStatus("RssFile")))
			runtime.ReadMemStats(&ms)
			peakHeap.Store(max(peakHeap.Load(), int64(ms.HeapInuse)))
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	})
	b.ResetTimer()
	start := time.Now()
	var appenders sync.WaitGroup
	per := (benchN(b, 150_000) + devices - 1) / devices
	for d := range devices {
		stream := "rss/" + strconv.Itoa(d)
		appenders.Go(func() {
			e := Entry{Stream: stream, Data: make([]byte, benchPayload)}
			t := time.NewTicker(time.Second * devices / rate)
			defer t.Stop()
			for range per {
				<-t.C
				if err := q.Append(ctx, e); err != nil {
					b.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			var cursor uint64
			for {
				recs, err := q.Read(ctx, stream, cursor, 100)
				if err != nil {
					return
				}
				cursor = recs[len(recs)-1].Seq
				if err := q.Ack(stream, cursor); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	appenders.Wait()
	achieved := float64(per*devices) / time.Since(start).Seconds()
	cancel()
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(achieved, "msg/s")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-VmRSS-MB")
	b.ReportMetric(float64(procStatus("VmHWM"))/(1<<20), "VmHWM-MB")
	b.ReportMetric(float64(peakAnon.Load())/(1<<20), "peak-RssAnon-MB")
	b.ReportMetric(float64(peakFile.Load())/(1<<20), "peak-RssFile-MB")
	b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak-HeapInuse-MB")
	st := q.Stats()
	b.ReportMetric(float64(st.DiskBytes)/(1<<20), "disk-MiB")
}

// procStatus returns a size field of /proc/self/status in bytes, or 0 if
// it cannot be read.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
