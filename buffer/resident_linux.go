package buffer

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Resident table pages.
//
// badger maps every table file (.sst) into the process and writes and reads
// it through the mapping. Each page written (a memtable flush, a
// compaction's output) and each page read since stays in the process's
// resident set until its table is deleted or the kernel runs short of
// memory. Those pages are clean page cache, yet they count as the
// process's resident memory (VmRSS, its RssFile part), in the OOM killer's
// score and in what an operator's tools show: a backlog of N bytes kept
// about N bytes resident (400k messages of 200 bytes: 100 MB), however
// long the hub stayed away.
//
// trimResident bounds them. Every residentCheckInterval it reads the
// process's file-backed resident memory (RssFile) and, when that has grown
// past the budget over what the program's own files hold, asks the kernel
// to page out table mappings (madvise MADV_PAGEOUT, Linux 5.4 and later)
// until it is back to half the budget. MADV_PAGEOUT never changes what
// memory holds: a clean file page is dropped and read back from its file
// on the next access; a dirty one is left alone or written back first;
// anonymous memory is at most swapped. So a range that badger unmaps and
// the process reuses between the read of /proc/self/maps and the madvise
// call comes to no harm, and no guarantee of the queue depends on it:
// tables are synced before badger uses them (msync), and the memtable logs
// are not touched.
//
// A page out costs a read from disk for the pages used again, and kernel
// time for the reclaim: with 400k messages queued and then drained
// (BenchmarkBacklog in gateway) 98 page outs reclaimed 1.4 GB in 6.6 s of
// this goroutine's time, because badger rewrites its tables again and
// again (each record about 7 times at that size). The oldest tables go
// first: badger numbers tables in the order it writes them, and its
// compactions keep reading the newest (level 0 and the level below it,
// rewritten by every level-0 compaction). Paging out the most resident
// tables first slowed the drain of that backlog to 17-21k msg/s, all
// tables at once to 27-37k; oldest first it drained at 30-37k, without a
// bound at 36-37k. Draining readers fault in a window of pages (64 KiB,
// the kernel's fault-around) at the head of each stream, in old tables,
// and use it for several reads; each page out may make them read it
// again. So the budget is residentBase or, when more, residentPerStream
// (twice that window) for each stream holding records: the windows then
// fill at most half of it, also for thousands of identities draining at
// once.
const (
	residentBase          = 16 << 20
	residentPerStream     = 128 << 10
	residentCheckInterval = 200 * time.Millisecond
	residentMaxBackoff    = 300 // check intervals (one minute)
)

// trimResident runs until the queue closes, or stops early (with one log
// line) where the kernel cannot page out.
func (q *Queue) trimResident() {
	stop := func(err error) {
		q.log.Info("buffer: cannot bound the table pages kept in memory", "dir", q.cfg.Dir, "err", err)
	}
	prefix, err := mappedPrefix(q.cfg.Dir)
	if err != nil {
		stop(err)
		return
	}
	// own is what the program's own files hold resident (its code, mostly):
	// the least RssFile seen at the start and after each page out.
	own, err := residentFileBytes()
	if err != nil {
		stop(err)
		return
	}
	t := time.NewTicker(residentCheckInterval)
	defer t.Stop()
	skip, backoff := 0, 1
	for {
		select {
		case <-q.closing:
			return
		case <-t.C:
		}
		if skip > 0 {
			skip--
			continue
		}
		rss, err := residentFileBytes()
		if err != nil {
			stop(err)
			return
		}
		if rss <= own+residentBase {
			continue
		}
		budget := q.residentBudget()
		if rss <= own+budget {
			continue
		}
		maps, err := tableMappings(prefix)
		var after int64
		if err == nil {
			after, err = pageOut(maps, own+budget/2)
		}
		if err != nil {
			stop(err)
			return
		}
		own = min(own, after)
		if after > own+budget {
			// What stays is not reclaimable (a tmpfs without swap, pages
			// still dirty): check less often until a page out pays again.
			skip, backoff = backoff, min(2*backoff, residentMaxBackoff)
		} else {
			backoff = 1
		}
	}
}

// residentBudget is how many bytes of table pages may stay resident.
func (q *Queue) residentBudget() int64 {
	q.mu.RLock()
	defer q.mu.RUnlock()
	n := 0
	for _, s := range q.streams {
		if s.m.records() > 0 {
			n++
		}
	}
	return max(residentBase, int64(n)*residentPerStream)
}

// residentFileBytes returns the process's file-backed resident memory
// (RssFile in /proc/self/status, Linux 4.5 and later).
func residentFileBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("RssFile:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/self/status: %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("/proc/self/status: no RssFile")
}

// mapping is an address range of the process mapped from a table file.
type mapping struct {
	start, end uintptr
	id         uint64 // the table's number, from its file name: badger numbers tables in the order it writes them
}

// mappedPrefix returns how /proc/self/maps begins the paths of files in
// dir: absolute, with symbolic links resolved.
func mappedPrefix(dir string) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(real, "/") + "/"), nil
}

// tableMappings returns the mappings of the table files whose paths begin
// with prefix, read from /proc/self/maps. Files deleted while mapped end
// in " (deleted)" there and are left out.
func tableMappings(prefix []byte) ([]mapping, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	s := bufio.NewScanner(f)
	for s.Scan() {
		// start-end perms offset dev inode path
		line := s.Bytes()
		i := bytes.IndexByte(line, '/')
		if i < 0 || !bytes.HasPrefix(line[i:], prefix) || !bytes.HasSuffix(line, []byte(".sst")) {
			continue
		}
		rng, _, _ := bytes.Cut(line, []byte(" "))
		lo, hi, _ := bytes.Cut(rng, []byte("-"))
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err := errors.Join(err1, err2); err != nil || end <= start {
			return nil, errors.New("/proc/self/maps: bad line: " + string(line))
		}
		name := line[bytes.LastIndexByte(line, '/')+1:]
		id, _ := strconv.ParseUint(string(bytes.TrimSuffix(name, []byte(".sst"))), 10, 64)
		out = append(out, mapping{uintptr(start), uintptr(end), id})
	}
	return out, s.Err()
}

// pageOut asks the kernel to reclaim the pages of maps, the oldest tables
// first, until the process's file-backed resident memory is at most
// target, and returns what it is then. Ranges unmapped meanwhile are
// skipped; EINVAL means the kernel has no MADV_PAGEOUT.
func pageOut(maps []mapping, target int64) (int64, error) {
	slices.SortFunc(maps, func(a, b mapping) int { return cmp.Compare(a.id, b.id) })
	rss, err := residentFileBytes()
	for _, m := range maps {
		if err != nil || rss <= target {
			break
		}
		_, _, e := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT)
		switch e {
		case 0, unix.ENOMEM:
		case unix.EINVAL:
			return 0, errors.New("madvise MADV_PAGEOUT: not supported by this kernel (needs Linux 5.4)")
		default:
			return 0, fmt.Errorf("madvise MADV_PAGEOUT: %w", e)
		}
		rss, err = residentFileBytes()
	}
	return rss, err
}
