package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes the test binary as a child that appends
// under concurrent load and reports every append that returned nil on its
// stdout, kills it with SIGKILL at a random moment, reopens the store and
// checks that every reported append is there, once, in order.

const (
	crashChildEnv = "EDGEGW_BUFFER_CRASH_DIR"
	crashRunEnv   = "EDGEGW_BUFFER_CRASH_RUN"
	crashWriters  = 12
	crashStreams  = 4
	crashAckName  = "crash/acked"
)

func crashStream(w int) string { return fmt.Sprintf("crash/s%d", w%crashStreams) }

// crashChild appends until killed. Lines on stdout: "ready", "ok <id>"
// once Append returned nil for id (a batch reports each of its ids), and
// "ack <seq>" once Ack of crashAckName up to seq returned nil.
func crashChild() {
	dir, run := os.Getenv(crashChildEnv), os.Getenv(crashRunEnv)
	q, err := Open(Config{Dir: dir, MinFreeBytes: 1}, slog.New(exitOnError{}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var outMu sync.Mutex
	say := func(line string) {
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := os.Stdout.WriteString(line + "\n"); err != nil {
			os.Exit(4)
		}
	}
	say("ready")
	for w := range crashWriters {
		go func() {
			for n := 0; ; n++ {
				id := fmt.Sprintf("r%s/w%d/%d", run, w, n)
				entries := []Entry{{Stream: crashStream(w), Data: []byte(id), Alarm: n%5 == 0}}
				if n%7 == 0 { // a batch: both entries or neither
					n++
					id2 := fmt.Sprintf("r%s/w%d/%d", run, w, n)
					entries = append(entries, Entry{Stream: crashStream(w), Data: []byte(id2)})
					id += " " + id2
				}
				if w == 0 {
					entries = append(entries, Entry{Stream: crashAckName, Data: []byte("x")})
				}
				if err := q.Append(context.Background(), entries...); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(5)
				}
				say("ok " + id)
			}
		}()
	}
	var after uint64
	for {
		recs, err := q.Read(context.Background(), crashAckName, after, 50)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(6)
		}
		if after != 0 && recs[0].Seq != after+1 {
			fmt.Fprintf(os.Stderr, "%s: read after %d starts at %d\n", crashAckName, after, recs[0].Seq)
			os.Exit(8)
		}
		after = recs[len(recs)-1].Seq
		if err := q.Ack(crashAckName, after); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(7)
		}
		say("ack " + strconv.FormatUint(after, 10))
	}
}

// exitOnError ends the child on an error-level log line.
type exitOnError struct{}

func (exitOnError) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (exitOnError) Handle(_ context.Context, r slog.Record) error {
	fmt.Fprintln(os.Stderr, "error logged:", r.Message)
	os.Exit(9)
	return nil
}
func (h exitOnError) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h exitOnError) WithGroup(string) slog.Handler      { return h }

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	runs := 20
	if testing.Short() {
		runs = 5
	}
	seen := map[string]uint64{} // id -> seq, over all runs
	var maxAcked uint64
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for run := range runs {
		delay := time.Duration(rng.IntN(400)) * time.Millisecond
		oks, acked, stderr := crashOnce(t, dir, run, delay)
		maxAcked = max(maxAcked, acked)
		n := crashCheck(t, dir, oks, seen, maxAcked)
		t.Logf("run %d: killed %v after ready: %d appends acknowledged, %d records stored, acked up to %d %s",
			run, delay, len(oks), n, maxAcked, stderr)
	}
}

// crashOnce runs the child, kills it delay after it is ready, and returns
// the ids it reported stored and the highest ack it reported.
func crashOnce(t *testing.T, dir string, run int, delay time.Duration) (oks []string, acked uint64, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashRunEnv+"="+strconv.Itoa(run))
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	lines := make(chan []string, 1)
	go func() {
		var got []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
				continue
			}
			got = append(got, sc.Text())
		}
		lines <- got
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("child not ready: %s", errBuf.String())
	}
	time.Sleep(delay) // the random moment of the crash, not synchronisation
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got := <-lines
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child ended by itself (%v): %s", err, errBuf.String())
	}
	for _, l := range got {
		switch {
		case strings.HasPrefix(l, "ok "):
			oks = append(oks, strings.Fields(l[3:])...)
		case strings.HasPrefix(l, "ack "):
			n, err := strconv.ParseUint(l[4:], 10, 64)
			if err != nil {
				t.Fatalf("bad line %q", l)
			}
			acked = max(acked, n)
		default:
			t.Fatalf("bad line %q", l)
		}
	}
	return oks, acked, strings.TrimSpace(errBuf.String())
}

// crashCheck reopens the store and checks it against what the children
// reported. It returns the number of records stored.
func crashCheck(t *testing.T, dir string, oks []string, seen map[string]uint64, maxAcked uint64) int {
	t.Helper()
	q, err := Open(Config{Dir: dir, MinFreeBytes: 1}, slog.New(failOnError{t}))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	where := map[string]uint64{}
	total := 0
	for s := range crashStreams {
		name := crashStream(s)
		last := map[string]int{} // writer -> last n
		var prev uint64
		for _, r := range readAll(t, q, name, 0) {
			id := string(r.Data)
			if _, dup := where[id]; dup {
				t.Fatalf("%s stored twice", id)
			}
			where[id] = r.Seq
			if old, ok := seen[id]; ok && old != r.Seq {
				t.Fatalf("%s moved from seq %d to %d", id, old, r.Seq)
			}
			seen[id] = r.Seq
			if r.Seq <= prev {
				t.Fatalf("%s: seq %d after %d", name, r.Seq, prev)
			}
			prev = r.Seq
			i := strings.LastIndexByte(id, '/')
			n, _ := strconv.Atoi(id[i+1:])
			if l, ok := last[id[:i]]; ok && n <= l {
				t.Fatalf("%s: %s after n=%d", name, id, l)
			}
			last[id[:i]] = n
			total++
		}
	}
	for _, id := range oks {
		if _, ok := where[id]; !ok {
			t.Fatalf("acknowledged append %s lost", id)
		}
	}
	for _, id := range seenIDs(seen) {
		if _, ok := where[id]; !ok {
			t.Fatalf("%s was stored in an earlier run and is gone", id)
		}
	}
	if recs := readAll(t, q, crashAckName, 0); len(recs) > 0 && recs[0].Seq <= maxAcked {
		t.Fatalf("%s: seq %d still there after ack up to %d", crashAckName, recs[0].Seq, maxAcked)
	}
	return total
}

func seenIDs(m map[string]uint64) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	return out
}
