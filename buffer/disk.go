package buffer

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/sys/unix"
)

// memTableSize is badger's memtable size.
const memTableSize = 4 << 20

// tableSize is the size of every table badger writes by compaction.
const tableSize = 512 << 10

// badgerOptions is the small-device profile measured in the reference
// (libraries.md §3.3) with 4 MiB memtables (see doc.go, Memory): small
// caches, no compression, and SyncWrites so that a committed transaction
// is on disk.
//
// Tables are small and the same size on every level. Most of the heap is
// badger's table builders: each holds its whole table in memory until the
// table is on disk, starting from a buffer of twice the table size, and a
// compaction writes up to 8 plus its splits (at most 5) of them at once.
// With badger's default multiplier the tables, and so the builders, of the
// deeper levels double (2 MiB tables at 400k queued messages). With 400k
// messages of 200 bytes queued behind an unreachable hub (the gateway
// binary fed by a raw MQTT publisher, three runs each), 1 MiB tables
// doubling per level peaked at 135-147 MB of anonymous memory and held
// 66-81 MB once intake stopped; 512 KiB tables on every level peaked at
// 87-110 MB and held 29-38 MB, for about 5% more CPU per message. What
// remains is mostly badger's own: a pool of 8 builders whose buffers grow
// to fit a flushed memtable (6-7 MiB) and a 3 MiB index buffer per table
// written. More tables cost file descriptors and maps: about two per MiB
// of queue.
func badgerOptions(dir string, log *slog.Logger) badger.Options {
	opt := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{log}).
		WithMemTableSize(memTableSize).
		WithValueThreshold(MaxRecordBytes + valueHdrLen + 1). // every record stays in the LSM tree
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).
		WithValueLogMaxEntries(100000).
		WithBaseTableSize(tableSize).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithCompression(options.None).
		WithMetricsEnabled(false).
		WithDetectConflicts(false) // one writer: nothing to conflict with
	opt.TableSizeMultiplier = 1 // no option method: the same table size on every level
	return opt
}

// badgerLogger passes badger's warnings and errors to slog and drops its
// chatty info and debug lines.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any) {
	l.log.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "engine", "badger")
}

func (l badgerLogger) Warningf(f string, a ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "engine", "badger")
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

// diskUsage returns the bytes allocated to the files in dir (what du
// reports). badger's own Size is refreshed only now and then, and the
// apparent file sizes count sparse, preallocated space.
func diskUsage(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range entries {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.Name()), &st); err != nil {
			continue // removed by a compaction meanwhile
		}
		total += st.Blocks * 512
	}
	return total, nil
}

// freeSpace returns the bytes an unprivileged process may still write on
// the filesystem holding dir.
func freeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// checkDisk returns an error matching ErrDiskFull for appends while the
// free space is below the reserve, and for deletes (acks, drops: they
// write tombstones) while it is below a quarter of it; deletes are how
// the queue's own data makes room again. It logs when the refusal of
// appends begins and ends.
func (q *Queue) checkDisk() (appendErr, deleteErr error) {
	free, err := freeSpace(q.cfg.Dir)
	if err != nil {
		err = fmt.Errorf("buffer: %w", &os.PathError{Op: "statfs", Path: q.cfg.Dir, Err: err})
		return err, err
	}
	full := free < q.cfg.MinFreeBytes
	q.mu.Lock()
	changed := full != q.counters.diskFull
	q.counters.diskFull = full
	q.mu.Unlock()
	switch {
	case changed && full:
		q.log.Warn("buffer: disk almost full, refusing appends", "dir", q.cfg.Dir, "free", free, "reserve", q.cfg.MinFreeBytes)
	case changed:
		q.log.Info("buffer: disk space back, accepting appends", "dir", q.cfg.Dir, "free", free)
	}
	if full {
		appendErr = fmt.Errorf("buffer %s: %d bytes free, %d kept in reserve: %w", q.cfg.Dir, free, q.cfg.MinFreeBytes, ErrDiskFull)
	}
	if free < q.cfg.MinFreeBytes/4 {
		deleteErr = appendErr
	}
	return appendErr, deleteErr
}

// Reclamation. Deleted records are tombstones; badger drops them (and the
// records they hide) only when a compaction reaches the bottom level with
// nothing below, which for a FIFO it rarely does (badger issue 2329). So
// the queue flattens the tree itself when the directory holds much more
// than the live data.
const (
	reclaimSlack      = 32 << 20 // disk use allowed over 2x the live bytes before a flatten
	reclaimCheckBytes = 8 << 20  // deleted bytes between two checks triggered by the writer
)

// maintain runs the sweeps, the reclamation checks and the drop log until
// the queue closes, and meanwhile, on a goroutine of its own because a
// flatten may take a while, the bound on resident table pages.
func (q *Queue) maintain() {
	var trim sync.WaitGroup
	trim.Go(q.trimResident)
	defer trim.Wait()
	t := time.NewTicker(q.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-q.closing:
			return
		case <-t.C:
			q.sweep()
			q.reclaim()
			q.mu.Lock()
			q.drops.flush(q.log, false)
			q.mu.Unlock()
		case <-q.reclaimCh:
			q.reclaim()
		}
	}
}

// reclaim flattens the tree when the directory uses more than twice the
// live bytes plus reclaimSlack, and the filesystem has room to rewrite it.
func (q *Queue) reclaim() {
	du, err := diskUsage(q.cfg.Dir)
	if err != nil {
		q.log.Warn("buffer: cannot measure disk use", "err", err)
		return
	}
	q.mu.RLock()
	live := q.total
	q.mu.RUnlock()
	if du <= 2*live+q.cfg.reclaimSlack {
		return
	}
	if free, err := freeSpace(q.cfg.Dir); err != nil || free < du+q.cfg.MinFreeBytes {
		q.log.Debug("buffer: too little free space to compact", "dir", q.cfg.Dir, "used", du, "free", free)
		return
	}
	start := time.Now()
	err = q.db.Flatten(2)
	after, _ := diskUsage(q.cfg.Dir)
	q.mu.Lock()
	q.counters.flattens++
	q.mu.Unlock()
	if err != nil {
		q.log.Warn("buffer: compaction failed", "err", err)
		return
	}
	q.log.Debug("buffer: compacted", "before", du, "after", after, "live", live, "took", time.Since(start))
}
