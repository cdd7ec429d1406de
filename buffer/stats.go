package buffer

import (
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// counters are the queue's totals since Open. Guarded by Queue.mu.
type counters struct {
	appended          uint64 // records
	appendErrors      uint64 // failed Append calls
	commits           uint64 // transactions committed (each one fsync)
	appendCommits     uint64 // of them, those that appended records
	drops             [numReasons]uint64
	flattens          uint64
	diskFull          bool
	deletedSinceCheck int64
}

// Stats is a snapshot for operations. Counters count since Open.
type Stats struct {
	Streams       []StreamStats     // by name; streams that never held a record are left out
	Records       int64             // stored records
	Bytes         int64             // stored bytes, as counted against MaxBytes
	MaxBytes      int64             // the limit
	DiskBytes     int64             // allocated size of the directory (du); -1 if unknown
	DiskFree      int64             // free bytes on its filesystem; -1 if unknown
	DiskFull      bool              // appends are refused for lack of space
	Appended      uint64            // records appended
	Commits       uint64            // transactions committed, each one fsync (appends, acks, drops)
	AppendCommits uint64            // of Commits, those that appended; Appended/AppendCommits is the group-commit factor
	AppendErrors  uint64            // Append calls that failed (disk full, I/O, ctx, too large)
	Drops         map[string]uint64 // records dropped, by reason (DropExpired, ...)
	Compactions   uint64            // flattens run to reclaim space
}

// StreamStats describes one stream.
type StreamStats struct {
	Stream    string
	Depth     int64             // stored records (not yet acked, not dropped)
	Alarms    int64             // of which alarms
	Bytes     int64             // stored bytes
	LastSeq   uint64            // highest sequence assigned
	Oldest    time.Time         // append time of the oldest record; zero if empty
	OldestAge time.Duration     // time since Oldest; 0 if empty
	Drops     map[string]uint64 // by reason, since Open; nil if none
}

// Stats returns a snapshot. It reads each non-empty stream's first record
// and measures the directory, so call it at the pace of a metrics scrape,
// not per message.
func (q *Queue) Stats() Stats {
	st := Stats{MaxBytes: q.cfg.MaxBytes, Drops: make(map[string]uint64), DiskBytes: -1, DiskFree: -1}
	type head struct {
		i    int
		id   uint32
		from uint64
	}
	var heads []head
	q.mu.RLock()
	for _, s := range q.streams {
		if s.id == 0 {
			continue
		}
		ss := StreamStats{Stream: s.name, Depth: s.m.records(), Alarms: s.m.count[alarm], Bytes: s.m.size(), LastSeq: s.m.last}
		for r, n := range s.drops {
			if n > 0 {
				if ss.Drops == nil {
					ss.Drops = make(map[string]uint64)
				}
				ss.Drops[reasonName(r)] = n
			}
		}
		if ss.Depth > 0 {
			heads = append(heads, head{len(st.Streams), s.id, s.m.first()})
		}
		st.Records += ss.Depth
		st.Streams = append(st.Streams, ss)
	}
	st.Bytes = q.total
	st.DiskFull = q.counters.diskFull
	st.Appended = q.counters.appended
	st.Commits = q.counters.commits
	st.AppendCommits = q.counters.appendCommits
	st.AppendErrors = q.counters.appendErrors
	st.Compactions = q.counters.flattens
	for r, n := range q.counters.drops {
		st.Drops[reasonName(r)] = n
	}
	q.mu.RUnlock()

	now := time.Now()
	_ = q.view(func(txn *badger.Txn) error {
		for _, h := range heads {
			if r, ok, err := firstOf(txn, h.id, numClasses, h.from, nil); err == nil && ok {
				st.Streams[h.i].Oldest = r.t
				st.Streams[h.i].OldestAge = now.Sub(r.t)
			}
		}
		return nil
	})
	slices.SortFunc(st.Streams, func(a, b StreamStats) int { return strings.Compare(a.Stream, b.Stream) })
	if du, err := diskUsage(q.cfg.Dir); err == nil {
		st.DiskBytes = du
	}
	if free, err := freeSpace(q.cfg.Dir); err == nil {
		st.DiskFree = free
	}
	return st
}
