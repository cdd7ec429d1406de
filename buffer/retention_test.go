package buffer

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// logCapture is a slog handler that keeps the records it gets.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logCapture) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logCapture) WithGroup(string) slog.Handler      { return h }

// lines returns the attributes of each record with message msg.
func (h *logCapture) lines(msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.recs {
		if r.Message != msg {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

func streamStats(t *testing.T, q *Queue, name string) StreamStats {
	t.Helper()
	for _, s := range q.Stats().Streams {
		if s.Stream == name {
			return s
		}
	}
	t.Fatalf("no stream %q", name)
	return StreamStats{}
}

func wantDrops(t *testing.T, got map[string]uint64, want map[string]uint64) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !maps.Equal(got, want) {
		t.Fatalf("drops %v, want %v", got, want)
	}
}

// sleepUntil sleeps (in the bubble's fake time) until start+d.
func sleepUntil(start time.Time, d time.Duration) { time.Sleep(time.Until(start.Add(d))) }

func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &logCapture{}
		q, err := Open(Config{
			Dir: t.TempDir(), MaxAge: 10 * time.Minute, AlarmMaxAge: 30 * time.Minute,
			SweepInterval: 70 * time.Second, DropLogInterval: 10 * time.Minute,
		}, slog.New(logs))
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		t0 := time.Now()
		ctx := context.Background()
		appendN(t, q, "a", 1, 3)
		if err := q.Append(ctx, Entry{Stream: "a", Data: []byte("a-4"), Alarm: true}); err != nil {
			t.Fatal(err)
		}
		sleepUntil(t0, 5*time.Minute)
		appendN(t, q, "a", 5, 2)
		appendN(t, q, "b", 1, 2)

		// 600s: a-1..a-3 reach max age (sweeps ran at 70s..560s, the next is at 630s).
		sleepUntil(t0, 10*time.Minute)
		recs, err := q.Read(ctx, "a", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		wantRecords(t, recs, "a", 4, 5, 6)
		if !recs[0].Time.Equal(t0) || !recs[1].Time.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("times %v %v", recs[0].Time, recs[1].Time)
		}
		a := streamStats(t, q, "a")
		wantDrops(t, a.Drops, map[string]uint64{DropExpired: 3})
		if a.Depth != 3 || a.OldestAge != 10*time.Minute || a.Bytes != 3*storedSize(3) {
			t.Fatalf("a: %+v", a)
		}
		if l := logs.lines("buffer dropped records"); len(l) != 1 || l[0][DropExpired] != "3" || l[0]["identity"] != "a" {
			t.Fatalf("drop log lines %v", l)
		}

		// 950s: b expired at 900s and the 910s sweep dropped it unread; so a-5, a-6.
		sleepUntil(t0, 950*time.Second)
		b := streamStats(t, q, "b")
		wantDrops(t, b.Drops, map[string]uint64{DropExpired: 2})
		if b.Depth != 0 || b.Bytes != 0 || b.OldestAge != 0 {
			t.Fatalf("b: %+v", b)
		}
		a = streamStats(t, q, "a")
		wantDrops(t, a.Drops, map[string]uint64{DropExpired: 5})
		if a.Depth != 1 || a.Alarms != 1 {
			t.Fatalf("a: %+v", a)
		}
		if l := logs.lines("buffer dropped records"); len(l) != 1 {
			t.Fatalf("second drop line within the interval: %v", l)
		}
		// The drops since 600s are logged at the first sweep an interval
		// after the first line (1260s), in one line.
		sleepUntil(t0, 1270*time.Second)
		if l := logs.lines("buffer dropped records"); len(l) != 2 || l[1][DropExpired] != "4" || l[1]["identities"] != "2" {
			t.Fatalf("drop log lines %v", l)
		}

		// 1800s: the alarm expires; the 1820s sweep drops it.
		sleepUntil(t0, 1850*time.Second)
		a = streamStats(t, q, "a")
		wantDrops(t, a.Drops, map[string]uint64{DropExpired: 5, DropAlarmExpired: 1})
		st := q.Stats()
		if a.Depth != 0 || st.Records != 0 || st.Bytes != 0 {
			t.Fatalf("a: %+v, total %d records %d bytes", a, st.Records, st.Bytes)
		}
		wantDrops(t, st.Drops, map[string]uint64{DropExpired: 7, DropAlarmExpired: 1, DropFull: 0, DropAlarmFull: 0})

		// Sequences go on after everything expired.
		appendN(t, q, "a", 7, 1)
		wantRecords(t, readAll(t, q, "a", 0), "a", 7)
	})
}

// TestRetentionBySize fills the queue and checks which records go: the
// oldest telemetry across streams, never alarms while telemetry is left,
// then the oldest alarms. A drop frees the overflow plus a slack of
// MaxBytes/64 so that it does not run on every append.
func TestRetentionBySize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := storedSize(6) // every payload is "%-3s%03d"
		maxBytes := 100 * rec
		slack := maxBytes / 64 // 1 record < slack < 2 records
		if slack <= rec || slack >= 2*rec {
			t.Fatalf("test assumes one record < slack < two: %d, %d", slack, rec)
		}
		q, err := Open(Config{Dir: t.TempDir(), MaxBytes: maxBytes, SweepInterval: time.Hour}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		ctx := context.Background()
		put := func(stream string, n int, alarm bool) {
			t.Helper()
			time.Sleep(time.Second) // every record a distinct time
			if err := q.Append(ctx, Entry{Stream: stream, Data: fmt.Appendf(nil, "%-3s%03d", stream, n), Alarm: alarm}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 1; i <= 10; i++ {
			put("al", i, true)
		}
		for i := 1; i <= 45; i++ {
			put("a", i, false)
			put("b", i, false)
		}
		if st := q.Stats(); st.Bytes != maxBytes || st.Drops[DropFull] != 0 {
			t.Fatalf("full queue: %+v", st)
		}
		// One more: overflow one record + slack = three records: a-01, b-01, a-02.
		put("c", 1, false)
		if st := q.Stats(); st.Bytes != maxBytes-2*rec || st.Drops[DropFull] != 3 {
			t.Fatalf("after the first drop: %+v", st)
		}
		wantDrops(t, streamStats(t, q, "a").Drops, map[string]uint64{DropFull: 2})
		wantDrops(t, streamStats(t, q, "b").Drops, map[string]uint64{DropFull: 1})
		if r, _ := q.Read(ctx, "a", 0, 1); r[0].Seq != 3 {
			t.Fatalf("a starts at %d", r[0].Seq)
		}
		if r, _ := q.Read(ctx, "al", 0, 100); len(r) != 10 {
			t.Fatalf("alarms dropped: %d left", len(r))
		}
		// Two more fit in what the slack freed; the third drops b-02, a-03, b-03.
		put("c", 2, false)
		put("c", 3, false)
		put("c", 4, false)
		wantDrops(t, streamStats(t, q, "a").Drops, map[string]uint64{DropFull: 3})
		wantDrops(t, streamStats(t, q, "b").Drops, map[string]uint64{DropFull: 3})

		// Only alarms left: ack the telemetry, fill up with alarms.
		for _, s := range []string{"a", "b", "c"} {
			if err := q.Ack(s, 100); err != nil {
				t.Fatal(err)
			}
		}
		for i := 11; i <= 100; i++ {
			put("al", i, true)
		}
		put("al2", 1, true) // drops al-01..al-03
		wantDrops(t, streamStats(t, q, "al").Drops, map[string]uint64{DropAlarmFull: 3})
		if r, _ := q.Read(ctx, "al", 0, 1); r[0].Seq != 4 {
			t.Fatalf("al starts at %d", r[0].Seq)
		}
		st := q.Stats()
		wantDrops(t, st.Drops, map[string]uint64{DropFull: 6, DropAlarmFull: 3, DropExpired: 0, DropAlarmExpired: 0})
		if st.Bytes != 98*rec || st.Records != 98 {
			t.Fatalf("end: %+v", st)
		}
	})
}

// TestRetentionKeepsOrderAcrossRestart checks that the byte count and heads
// survive a restart and drops go on from there.
func TestRetentionKeepsOrderAcrossRestart(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), MaxBytes: 100 * storedSize(5)}
	q := open(t, cfg)
	put := func(n int) {
		t.Helper()
		e := Entry{Stream: "a", Data: fmt.Appendf(nil, "a-%03d", n), Alarm: n == 2}
		if err := q.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 100; n++ {
		put(n)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = open(t, cfg)
	put(101) // drops a-001, a-003, a-004 (overflow + slack), keeps the alarm a-002
	recs := readAll(t, q, "a", 0)
	if len(recs) != 98 || recs[0].Seq != 2 || recs[1].Seq != 5 {
		t.Fatalf("after restart and drop: %d records from %d, %d", len(recs), recs[0].Seq, recs[1].Seq)
	}
	wantDrops(t, streamStats(t, q, "a").Drops, map[string]uint64{DropFull: 3})
}
