package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// TestDiskFull fills a real (tmpfs) filesystem so that less than the
// reserve is free, and checks that Append fails with ENOSPC without
// writing, that reads and acks go on, and that appends work again once
// space returns.
func TestDiskFull(t *testing.T) {
	mnt := testpeer.Tmpfs(t, 64<<20)
	logs := &logCapture{}
	q, err := Open(Config{Dir: filepath.Join(mnt, "queue"), MinFreeBytes: 16 << 20}, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	appendN(t, q, "a", 1, 3)

	ballast := testpeer.FillTo(t, mnt, 8<<20)
	err = q.Append(ctx, Entry{Stream: "a", Data: []byte("a-x")}, Entry{Stream: "b", Data: []byte("b-x")})
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk = %v, want ENOSPC", err)
	}
	st := q.Stats()
	if !st.DiskFull || st.AppendErrors != 1 || st.Records != 3 {
		t.Fatalf("stats on a full disk: %+v", st)
	}
	wantRecords(t, readAll(t, q, "a", 0), "a", 1, 2, 3)
	if err := q.Ack("a", 1); err != nil {
		t.Fatalf("ack on a full disk: %v", err)
	}
	if l := logs.lines("buffer: disk almost full, refusing appends"); len(l) != 1 {
		t.Fatalf("disk-full log lines: %v", l)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	appendN(t, q, "a", 4, 2)
	wantRecords(t, readAll(t, q, "a", 0), "a", 2, 3, 4, 5)
	wantRecords(t, readAll(t, q, "b", 0), "b")
	if st := q.Stats(); st.DiskFull || st.Records != 4 {
		t.Fatalf("stats after space returned: %+v", st)
	}
	if l := logs.lines("buffer: disk space back, accepting appends"); len(l) != 1 {
		t.Fatalf("recovery log lines: %v", l)
	}
}

const noReserveChildEnv = "EDGEGW_BUFFER_NO_RESERVE_DIR"

// noReserveChild appends to a queue with (almost) no reserve until the
// disk is full.
func noReserveChild() {
	q, err := Open(Config{Dir: os.Getenv(noReserveChildEnv), MinFreeBytes: 1}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	data := make([]byte, 100<<10)
	for range 1000 {
		if err := q.Append(context.Background(), Entry{Stream: "a", Data: data}); err != nil {
			fmt.Fprintln(os.Stderr, "append failed cleanly:", err)
			os.Exit(4)
		}
	}
	os.Exit(5)
}

// TestNoReserveIsFatal documents why Config.MinFreeBytes exists: badger
// writes its log through mmap of a sparse file, and when the disk is full
// the page fault is a SIGBUS that kills the process; there is no error to
// return. If this test fails because the child got a clean error, badger
// has changed and the reserve can be reconsidered.
func TestNoReserveIsFatal(t *testing.T) {
	// The queue's free-space check between commits can still catch the
	// last bytes first (the child then ends with a clean error); a few
	// attempts make the crash certain without hiding a badger that no
	// longer crashes.
	var last string
	for range 5 {
		mnt := testpeer.Tmpfs(t, 24<<20)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), noReserveChildEnv+"="+filepath.Join(mnt, "queue"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		// The runtime's report starts "unexpected fault address" and names
		// SIGBUS a line later; the child may end between the two lines.
		if bytes.Contains(stderr.Bytes(), []byte("SIGBUS")) || bytes.Contains(stderr.Bytes(), []byte("unexpected fault address")) {
			return
		}
		last = fmt.Sprintf("%v; stderr:\n%.2000s", err, stderr.String())
	}
	t.Fatalf("child never crashed in 5 attempts, want a SIGBUS crash; last: %s", last)
}

// TestReclaimAfterBacklog builds a backlog (as during a hub outage),
// drains it, and checks that the tables shrink back under the
// reclamation threshold (4 MiB here) while traffic goes on. Without the
// queue's flatten badger keeps a drained backlog on disk: 300k records
// left the directory at 74 MiB with nothing live.
func TestReclaimAfterBacklog(t *testing.T) {
	const slack = 4 << 20
	dir := t.TempDir()
	q := open(t, Config{Dir: dir, SweepInterval: 100 * time.Millisecond, reclaimSlack: slack})
	ctx := context.Background()
	batch := make([]Entry, 1000)
	for i := range batch {
		batch[i] = Entry{Stream: "r", Data: make([]byte, 200)}
	}
	for range 100 {
		if err := q.Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	full := tableUsage(t, dir)
	if err := q.Ack("r", 100_000); err != nil {
		t.Fatal(err)
	}
	var tables int64
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		// A trickle of traffic, acked at once: live data stays near zero.
		if err := q.Append(ctx, batch[:100]...); err != nil {
			t.Fatal(err)
		}
		if err := q.Ack("r", q.Stats().Streams[0].LastSeq); err != nil {
			t.Fatal(err)
		}
		if tables = tableUsage(t, dir); tables <= slack && q.Stats().Compactions > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tables still %d KiB (%d KiB with the backlog) after %d rounds and %d compactions",
				tables>>10, full>>10, i, q.Stats().Compactions)
		}
		time.Sleep(10 * time.Millisecond) // pace the trickle; the loop polls a deadline
	}
	t.Logf("tables %d KiB with the backlog, %d KiB after %d compactions", full>>10, tables>>10, q.Stats().Compactions)
	if full <= 2*slack {
		t.Fatalf("the backlog took only %d KiB of tables: the test proves nothing", full>>10)
	}
}

// tableUsage returns the allocated bytes of badger's table files in dir.
func tableUsage(t *testing.T, dir string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		var st unix.Stat_t
		if unix.Stat(f, &st) == nil {
			n += st.Blocks * 512
		}
	}
	return n
}
