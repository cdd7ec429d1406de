// # Design record
//
// Why the queue looks the way it does. The engine is badger v4.9.6 with
// SyncWrites on; reference/libraries.md §3 and §7 hold the measurements
// that decided most of what follows.
//
// ## Keys
//
//	0x00 'v'                 format version ("edgegw-buffer/1"); Open refuses others
//	0x01 id(4)               stream meta: last seq, head per class, count and
//	                         bytes per class, then the stream's name
//	0x02 id(4) seq(8)        record: append time (unix ns, 8 bytes) + payload;
//	                         badger's UserMeta bit 0 marks an alarm
//
// Stream names are arbitrary (device ids contain '/'), so they never go
// into record keys: each stream gets a fixed-width numeric id, kept in its
// meta record (a persisted name table). Ids and sequences are big-endian,
// so byte order is numeric order: one stream's records form one sorted,
// contiguous key range, and no stream's prefix is a prefix of another's.
// Records are small (payload <= MaxRecordBytes, and the value threshold
// is set above that), so they live in the LSM tree and the value log
// stays empty: value-log GC has nothing to do here.
//
// The meta record is written in the same transaction as every change to
// the stream's records, so after a crash it is exactly right: last (the
// high-water mark, so sequences are never reused, even when everything
// was acked or dropped), the counts and stored bytes (so MaxBytes and the
// stats need no scan at start-up), and the head of each class (the first
// existing telemetry record and the first existing alarm).
//
// ## Reads never walk tombstones twice
//
// A deleted key stays as a tombstone until compaction removes it, and
// iterating from the start of a stream walks them all again: the
// reference measured 3.4k msg/s draining with Rewind against 100k msg/s
// with Seek. Every walk here Seeks: Read to max(after+1, head), acks from
// the head, the size retention from the head of the class it drops, each
// head kept exact by the writer (it is re-found after deletions, starting
// from the old head, so each tombstone is walked about once).
//
// ## Group commit
//
// Concurrent db.Update calls barely coalesce in badger (20,953 msyncs for
// 20,000 commits, §3.4), so one writer goroutine owns every write. It takes
// all waiting requests (appends, acks, drops), applies them to one
// transaction and commits it: one fsync for all of them. When the previous
// commit answered several callers, the writer yields the processor a few
// times before it commits again, so that those callers can come back and
// join; otherwise concurrent appenders split into two halves that take
// turns. A transaction that reaches badger's batch limit is committed and
// the next opened ("rolling"); one Append is never split, so it is
// all-or-nothing, and Append refuses batches that could not fit one
// transaction (ErrTooLarge). Stream state lives in memory and changes only
// when a commit succeeds; a failed commit fails every request in it.
//
// Within a cycle the order is: acks, drops of expired records, drops to
// stay within MaxBytes, then appends. Deletions are found through a read
// view of what is committed, which cannot see the open transaction: that
// is why heads are tightened before the appends go in.
//
// ## Retention
//
// Age: each record carries its append time; telemetry lives MaxAge,
// alarms AlarmMaxAge (at least MaxAge). Read drops expired records it
// meets (through the writer, which counts each drop once, whoever found
// it) and returns what follows; a sweep every SweepInterval drops them in
// streams nobody reads. Append times rise with sequence and alarms live
// longer, so the sweep stops at the first live telemetry record.
//
// Size: every record counts its payload plus RecordOverhead (32 bytes), so
// empty payloads are bounded too. An append that would go over MaxBytes
// first drops the oldest telemetry across all streams by append time
// (ties by stream id), and alarms only when no telemetry is left. It frees
// the overflow plus MaxBytes/64 (at most 8 MiB) so that the heap over all
// streams is not rebuilt for every append once the queue is full. Intake
// never blocks on a full queue; Append only waits for its commit and
// honours ctx.
//
// Every drop is counted per stream and reason (expired, alarm_expired,
// full, alarm_full) in Stats, and logged as one Warn line per
// DropLogInterval at most, summing what happened since the last one.
//
// ## Disk full
//
// badger writes its log and tables through mmap of sparse files. When the
// filesystem is full, the page fault of such a write is a SIGBUS, and the
// Go runtime turns that into a fatal error: there is no error to return
// (TestNoReserveIsFatal shows it on a tmpfs). So the writer checks the
// free space (statfs) before every commit and refuses appends while it is
// below MinFreeBytes (default 64 MiB: two memtable logs of 8 MiB, a
// level-0 table and a compaction's output fit), returning an error that matches
// ErrDiskFull and syscall.ENOSPC; the LAN side turns it into "no PUBACK"
// and the device retries. Acks and drops, which free space, are refused
// only below a quarter of the reserve. The check runs on every commit, so
// the queue recovers by itself as soon as space returns (TestDiskFull, on
// a real tmpfs). The reserve protects against other writers only as far
// as they leave it intact between two commits; a reserve below ~32 MiB is
// unsafe. Other I/O errors from a commit are returned to every request in
// it; the next commit tries again.
//
// ## Reclaiming disk space
//
// badger reclaims deleted records only by compaction, and for a FIFO of
// append-only keys it often leaves tombstones and the records they hide in
// the bottom level (badger issue 2329). The maintenance goroutine measures
// the directory as du does (allocated blocks; badger's Size is refreshed
// only now and then and the apparent sizes count sparse preallocation) every
// SweepInterval and whenever the writer has deleted max(live/2, 8 MiB)
// since the last check. When the directory holds more than twice the live
// bytes plus 32 MiB, it runs db.Flatten, if the filesystem has room to
// rewrite the tree. Flatten stops badger's compactors while it runs; on a
// big store intake may then stall on level 0 (Append waits, bounded by its
// ctx) until it ends. TestChurn checks the bound: 3x the live payload +
// 64 MiB while a queue held at 100k messages churns through 300k messages
// (20M with EDGEGW_BUFFER_CHURN_MESSAGES=20000000).
//
// ## Memory
//
// The small-device profile of the reference (8 MiB block cache, 4 MiB
// index cache, 64 MiB value-log files, no compression, two compactors,
// metrics off) with the memtables halved to 4 MiB (two of them). With
// 8 MiB memtables the steady 5k msg/s benchmark peaked at 78–98 MB RSS:
// the live heap is mostly the memtable arenas plus, while one is flushed,
// the level-0 table builder (14 MiB for an 8 MiB memtable), and the
// garbage collector lets the heap grow to twice that. With 4 MiB it peaks
// near 50 MB, at the same append and drain rates. The value threshold is
// raised to just above MaxRecordBytes so that every record stays in the
// LSM tree (badger caps it at 15% of the memtable, which bounds
// MaxRecordBytes too).
// Per stream the queue keeps a name, an id, a meta record and a channel.
// A Read of a name that never had a record registers it, so the names
// readers ask for are kept too.
//
// ## Figures
//
// Measured on the development VM (2 vCPU shared with other work, ext4 on
// virtio, Go 1.26), 200-byte messages, SyncWrites on; commands in
// bench_test.go and churn_test.go. Ranges are over repeated runs.
//
//	raw 200-byte write+fsync          8–11k/s
//	one appender, one entry per call  5.8–6.7k msg/s (0.5–0.7x raw: badger msyncs its
//	                                  value log and its memtable log per commit)
//	100 appenders, one entry each     90–112k msg/s, 75–82 messages per commit,
//	                                  8.9–11x the raw fsync rate of the same run
//	badger alone, one txn of 80 sets  ~129k msg/s (the ceiling: ~6 µs per entry)
//	drain of 1M (Read 1000 + Ack)     140–190k msg/s
//	steady 5k msg/s, 100 devices      peak RSS 50–59 MB (8 MiB memtables: 78–98 MB)
//	churn 20M through 100k deep       disk at most 12 MiB (concurrent shape) and
//	                                  88 MiB (lockstep, 18 flattens); bound 124 MiB
//	drained backlog of 300k           74 MiB kept by badger without the flatten
package buffer
