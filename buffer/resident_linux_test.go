package buffer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPageOut maps files as badger maps its tables (shared, written through
// the mapping, synced) and checks that only the tables in the queue's
// directory are found, that paging them out leaves them out of memory, and
// that what they hold is unchanged when read again.
func TestPageOut(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 20
	table := mapFile(t, filepath.Join(dir, "000001.sst"), size)
	mapFile(t, filepath.Join(dir, "00001.mem"), 1<<20)          // a memtable log: not a table
	mapFile(t, filepath.Join(t.TempDir(), "000002.sst"), 1<<20) // another directory
	mapFile(t, filepath.Join(dir, "sub", "000003.sst"), 1<<20)  // below it: badger has no such files, but they are its own
	want := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	copy(table, want)
	if err := unix.Msync(table, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}

	prefix, err := mappedPrefix(dir)
	if err != nil {
		t.Fatal(err)
	}
	maps, err := tableMappings(prefix)
	if err != nil {
		t.Fatal(err)
	}
	start := uintptr(unsafe.Pointer(&table[0]))
	if len(maps) != 2 || (maps[0].start != start && maps[1].start != start) {
		t.Fatalf("table mappings %x, want the two under %s, one at %x", maps, dir, start)
	}
	if got, _ := tablesResident(t, prefix); got < size {
		t.Fatalf("%d bytes resident after writing %d", got, size)
	}
	if _, err := pageOut(maps, 0); err != nil {
		t.Skipf("this kernel cannot page out: %v", err)
	}
	if got, _ := tablesResident(t, prefix); got > size/8 {
		t.Fatalf("%d bytes still resident after paging out %d", got, size)
	}
	if !bytes.Equal(table, want) {
		t.Fatal("the table changed when paged out and read again")
	}
}

// tablesResident returns the resident bytes and the number of the table
// mappings under prefix.
func tablesResident(t *testing.T, prefix []byte) (resident int64, tables int) {
	t.Helper()
	for _, r := range mappingsResident(t, prefix) {
		resident += r
		tables++
	}
	return resident, tables
}

// mappingsResident returns the resident bytes of each table mapping under
// prefix, by start address, from /proc/self/smaps.
func mappingsResident(t *testing.T, prefix []byte) map[uintptr]int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	out := map[uintptr]int64{}
	var cur uintptr
	table := false
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		switch {
		case len(f) >= 5 && bytes.IndexByte(f[0], '-') > 0 && !bytes.HasSuffix(f[0], []byte(":")):
			table = len(f) == 6 && bytes.HasPrefix(f[5], prefix) && bytes.HasSuffix(f[5], []byte(".sst"))
			if table {
				lo, _, _ := bytes.Cut(f[0], []byte("-"))
				start, err := strconv.ParseUint(string(lo), 16, 64)
				if err != nil {
					t.Fatalf("smaps: %q: %v", line, err)
				}
				cur = uintptr(start)
				out[cur] = 0
			}
		case table && len(f) == 3 && string(f[0]) == "Rss:":
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			out[cur] += kb << 10
		}
	}
	return out
}

// TestPageOutOldestFirst checks that a page out of less than everything
// takes the oldest tables first and leaves the newest in memory.
func TestPageOutOldestFirst(t *testing.T) {
	dir := t.TempDir()
	const size = 4 << 20
	newer := mapFile(t, filepath.Join(dir, "000010.sst"), size)
	older := mapFile(t, filepath.Join(dir, "000009.sst"), size)
	for _, b := range [][]byte{newer, older} {
		copy(b, bytes.Repeat([]byte{'x'}, size))
		if err := unix.Msync(b, unix.MS_SYNC); err != nil {
			t.Fatal(err)
		}
	}
	prefix, err := mappedPrefix(dir)
	if err != nil {
		t.Fatal(err)
	}
	maps, err := tableMappings(prefix)
	if err != nil {
		t.Fatal(err)
	}
	rss, err := residentFileBytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pageOut(maps, rss-size/2); err != nil {
		t.Skipf("this kernel cannot page out: %v", err)
	}
	got := mappingsResident(t, prefix)
	if r := got[uintptr(unsafe.Pointer(&older[0]))]; r > size/8 {
		t.Errorf("older table: %d bytes still resident", r)
	}
	if r := got[uintptr(unsafe.Pointer(&newer[0]))]; r < size {
		t.Errorf("newer table: %d bytes resident, want all %d", r, size)
	}
}

// mapFile creates a file of size bytes at path and maps it shared, read and
// write, until the test ends.
func mapFile(t *testing.T, path string, size int) []byte {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// TestResidentTablesBounded fills a queue with several times the budget of
// resident table pages and checks that the queue keeps them near the
// budget, and that every record reads back intact afterwards.
func TestResidentTablesBounded(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const streams, perStream, batch = 4, 50000, 100 // 200 000 records, about 48 MB of tables
	data := func(s, i int) []byte {
		return fmt.Appendf(bytes.Repeat([]byte{'x'}, 200), "%d/%d", s, i)
	}
	ctx := context.Background()
	for i := 0; i < perStream; i += batch {
		var es []Entry
		for s := range streams {
			for j := i; j < i+batch; j++ {
				es = append(es, Entry{Stream: fmt.Sprint("s", s), Data: data(s, j)})
			}
		}
		if err := q.Append(ctx, es...); err != nil {
			t.Fatal(err)
		}
	}

	prefix, err := mappedPrefix(dir)
	if err != nil {
		t.Fatal(err)
	}
	budget := q.residentBudget() + 4<<20 // and what may come in between two checks
	var resident int64
	var tables int
	for deadline := time.Now().Add(10 * time.Second); ; {
		resident, tables = tablesResident(t, prefix)
		if resident <= budget || time.Now().After(deadline) {
			break
		}
		time.Sleep(residentCheckInterval)
	}
	if tables == 0 {
		t.Fatalf("no table of %s is mapped: the queue would not find them either", dir)
	}
	if resident > budget {
		t.Fatalf("%d MiB of %d tables resident, want at most %d MiB", resident>>20, tables, budget>>20)
	}

	for s := range streams {
		var after uint64
		for after < perStream {
			recs, err := q.Read(ctx, fmt.Sprint("s", s), after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Seq != after+1 || !bytes.Equal(r.Data, data(s, int(after))) {
					t.Fatalf("stream s%d: record %d = %q, want seq %d %q", s, r.Seq, r.Data, after+1, data(s, int(after)))
				}
				after = r.Seq
			}
		}
	}
}
