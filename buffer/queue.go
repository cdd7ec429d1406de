package buffer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"

	badger "github.com/dgraph-io/badger/v4"
)

// Errors callers act on.
var (
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("buffer: queue closed")
	// ErrDiskFull is returned by Append while the filesystem has less
	// than Config.MinFreeBytes free. It matches syscall.ENOSPC too.
	// Nothing was written; retry when space returns.
	ErrDiskFull = fmt.Errorf("buffer: disk full: %w", syscall.ENOSPC)
	// ErrTooLarge is returned by Append for an entry or a batch that can
	// never be stored (see MaxRecordBytes and Config.MaxBytes). Retrying
	// does not help.
	ErrTooLarge = errors.New("buffer: too large")
)

// Limits on what one Append may carry.
const (
	MaxRecordBytes = 512 << 10 // payload of one entry
	MaxStreamName  = 1024      // bytes of a stream name
)

// Queue is the durable store. All methods are safe for concurrent use.
type Queue struct {
	cfg Config
	log *slog.Logger
	db  *badger.DB

	// dbMu is held for reading while Read and Stats use db outside the
	// writer; Close takes it for writing before closing db.
	dbMu     sync.RWMutex
	dbClosed bool

	reqs       chan *request // to the writer
	pushMu     sync.RWMutex  // read-held while pushing to reqs; see enqueue
	pushClosed bool          // under pushMu: the writer takes no more
	closing    chan struct{} // closed by Close
	writerDone chan struct{} // closed when the writer has exited
	reclaimCh  chan struct{} // writer -> maintenance: much was deleted
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error

	// txn budget of one badger transaction (count of entries, bytes).
	maxTxnCount, maxTxnSize int64

	// mu guards what follows. The writer is the only goroutine that
	// changes committed stream state; it reads it without the lock.
	mu       sync.RWMutex
	streams  map[string]*stream
	nextID   uint32
	total    int64 // stored bytes of all records
	counters counters
	drops    dropLog
}

// stream is one named stream. Its committed meta changes only in the
// writer, under Queue.mu.
type stream struct {
	name   string
	id     uint32 // 0 until the first append commits
	m      meta
	notify chan struct{} // closed and replaced when records are appended
	waiter func()        // Notify's callback, called once on the next append
	drops  [numReasons]uint64
}

// Open opens (creating if needed) the queue in cfg.Dir and starts its
// writer and maintenance goroutines. Defaults are applied to a copy of
// cfg, which must then be valid. A nil log discards.
func Open(cfg Config, log *slog.Logger) (*Queue, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("buffer: config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("buffer: %w", err)
	}
	db, err := badger.Open(badgerOptions(cfg.Dir, log))
	if err != nil {
		return nil, fmt.Errorf("buffer: open %s: %w", cfg.Dir, err)
	}
	q := &Queue{
		cfg:         cfg,
		log:         log,
		db:          db,
		reqs:        make(chan *request, 1024),
		closing:     make(chan struct{}),
		writerDone:  make(chan struct{}),
		reclaimCh:   make(chan struct{}, 1),
		maxTxnCount: db.MaxBatchCount(),
		maxTxnSize:  db.MaxBatchSize(),
		streams:     make(map[string]*stream),
		nextID:      1,
	}
	q.drops.interval = cfg.DropLogInterval
	if err := q.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("buffer: open %s: %w", cfg.Dir, err)
	}
	q.wg.Add(2)
	go func() { defer q.wg.Done(); q.writeLoop() }()
	go func() { defer q.wg.Done(); q.maintain() }()
	return q, nil
}

// Append stores entries durably: on nil return every entry is on disk,
// each at the end of its stream, in argument order. It is all-or-nothing:
// on error none was stored (but see ctx below). Many concurrent Appends
// share one transaction and one fsync.
//
// Errors: ErrDiskFull (retry later), ErrTooLarge (never retry),
// ErrClosed, an I/O error from the store, or ctx.Err() when ctx ends
// first; in that last case the entries may still be committed, so a
// caller that retries may store them twice (at-least-once).
func (q *Queue) Append(ctx context.Context, entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	done := make(chan error, 1)
	if err := q.AppendAsync(ctx, done, entries...); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AppendAsync is Append without the wait: it hands entries to the group
// commit and returns; the outcome, with Append's meaning, is then sent on
// done exactly once, from the queue's writer, so done must have room for
// it (a buffer of one per call in flight). An error returned by
// AppendAsync itself (invalid or too large entries, ErrClosed, ctx.Err())
// means nothing was handed over and nothing is sent on done.
//
// Appends handed over one after another by one goroutine are stored in
// that order, so a caller may keep several in flight and still know that
// each stream grows in the order it called. AppendAsync blocks only while
// the writer's intake is full (back-pressure from the disk) or until ctx
// ends. Every call that returned nil is answered, also when the queue is
// closed meanwhile (ErrClosed).
func (q *Queue) AppendAsync(ctx context.Context, done chan error, entries ...Entry) error {
	if len(entries) == 0 {
		done <- nil
		return nil
	}
	r := &request{op: opAppend, entries: entries, values: make([][]byte, len(entries)), done: done}
	for i, e := range entries {
		switch {
		case e.Stream == "" || len(e.Stream) > MaxStreamName:
			return fmt.Errorf("buffer: append: stream name of %d bytes, want 1 to %d", len(e.Stream), MaxStreamName)
		case len(e.Data) > MaxRecordBytes:
			return fmt.Errorf("buffer: append to %q: %d bytes, limit %d: %w", e.Stream, len(e.Data), MaxRecordBytes, ErrTooLarge)
		}
		r.values[i] = encodeValue(e.Data) // a copy: the caller may reuse Data once we return
		r.size += storedSize(len(e.Data))
		r.est += entryCost(dataKeyLen, len(r.values[i])) + metaCost(len(e.Stream))
	}
	if r.size > q.cfg.MaxBytes || r.est+metaCost(MaxStreamName) >= q.maxTxnSize || int64(2*len(entries))+1 >= q.maxTxnCount {
		return fmt.Errorf("buffer: append of %d entries, %d bytes: more than one batch may hold: %w", len(entries), r.size, ErrTooLarge)
	}
	return q.enqueue(ctx, r)
}

// Read returns up to max records of stream with Seq > after, in order.
// It blocks until there is at least one, or ctx ends (ctx.Err()), or the
// queue closes (ErrClosed). Records past their max age are not returned:
// Read drops them (counted) before returning what follows them. The
// caller keeps the cursor (the last Seq it has seen) and passes it as
// after; 0 starts at the oldest record.
func (q *Queue) Read(ctx context.Context, name string, after uint64, max int) ([]Record, error) {
	if max <= 0 {
		return nil, fmt.Errorf("buffer: read %q: max must be > 0 (got %d)", name, max)
	}
	for {
		id, from, last, notify := q.cursor(name, after)
		if notify == nil {
			return nil, ErrClosed
		}
		if id != 0 && from <= last {
			recs, expired, err := q.scan(id, from, max)
			if err != nil {
				return nil, err
			}
			if len(expired) > 0 {
				r := &request{op: opDrop, stream: name, seqs: expired, done: make(chan error, 1)}
				if err := q.submit(ctx, r); err != nil {
					return nil, err
				}
			}
			if len(recs) > 0 {
				return recs, nil
			}
			if len(expired) > 0 {
				continue // there may be more behind them
			}
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.closing:
			return nil, ErrClosed
		}
	}
}

// cursor returns where a Read after `after` starts and the channel that
// is closed on the next append to the stream (nil once closed). A Read of
// a stream that does not exist yet registers its name so it can wait.
func (q *Queue) cursor(name string, after uint64) (id uint32, from, last uint64, notify chan struct{}) {
	q.mu.RLock()
	s := q.streams[name]
	if s != nil {
		id, from, last, notify = s.id, max(after+1, s.m.first()), s.m.last, s.notify
	}
	q.mu.RUnlock()
	select {
	case <-q.closing:
		return 0, 0, 0, nil
	default:
	}
	if s != nil {
		return id, from, last, notify
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	s = q.streamLocked(name)
	return s.id, max(after+1, s.m.first()), s.m.last, s.notify
}

// Notify arranges for fn to be called once, on a goroutine of the queue's,
// when a record with Seq > after is appended to stream, and returns true.
// It returns false, registering nothing, when a record after `after` is
// still stored (Read then returns at once) or the queue is closed (Read
// returns ErrClosed). A stream has one callback: a later Notify replaces
// the earlier one. Close calls the pending callbacks. fn must not block.
// This lets a reader wait without holding a goroutine.
func (q *Queue) Notify(name string, after uint64, fn func()) bool {
	q.mu.Lock()
	s := q.streamLocked(name)
	select {
	case <-q.closing: // Read returns ErrClosed at once
		q.mu.Unlock()
		return false
	default:
	}
	if max(after+1, s.m.first()) <= s.m.last { // a record after `after` still exists
		q.mu.Unlock()
		return false
	}
	s.waiter = fn
	q.mu.Unlock()
	return true
}

// wakeAll calls and clears every pending Notify callback.
func (q *Queue) wakeAll() {
	q.mu.Lock()
	var fns []func()
	for _, s := range q.streams {
		if s.waiter != nil {
			fns = append(fns, s.waiter)
			s.waiter = nil
		}
	}
	q.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// streamLocked returns the stream called name, registering it (without
// an id) if it is new. Call with q.mu held for writing.
func (q *Queue) streamLocked(name string) *stream {
	s := q.streams[name]
	if s == nil {
		s = &stream{name: name, notify: make(chan struct{})}
		q.streams[name] = s
	}
	return s
}

// Ack deletes the records of stream with Seq <= upto, durably: on nil
// return they are gone for good, also after a restart. Acking what is
// already gone, or a stream that does not exist, is a no-op.
func (q *Queue) Ack(name string, upto uint64) error {
	q.mu.RLock()
	s := q.streams[name]
	nothing := s == nil || s.id == 0 || s.m.first() > upto
	q.mu.RUnlock()
	select {
	case <-q.closing:
		return ErrClosed
	default:
	}
	if nothing {
		return nil
	}
	return q.submit(context.Background(), &request{op: opAck, stream: name, upto: upto, done: make(chan error, 1)})
}

// enqueue hands r to the writer, which will answer on r.done. Once the
// writer has stopped taking requests nothing more is handed over
// (ErrClosed): pushMu makes "not closing, then pushed" one step against
// the writer's last sweep of q.reqs, so no request is left unanswered.
func (q *Queue) enqueue(ctx context.Context, r *request) error {
	q.pushMu.RLock()
	defer q.pushMu.RUnlock()
	if q.pushClosed {
		return ErrClosed
	}
	select {
	case <-q.closing:
		return ErrClosed
	default:
	}
	select {
	case q.reqs <- r:
		return nil
	case <-q.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// submit hands r to the writer and waits for its answer.
func (q *Queue) submit(ctx context.Context, r *request) error {
	if err := q.enqueue(ctx, r); err != nil {
		return err
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the background goroutines, lets the writer finish the batch
// it is committing, fails what is still queued with ErrClosed, and closes
// the store. Further calls return the first call's result.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		close(q.closing)
		q.wakeAll()
		q.wg.Wait()
		q.dbMu.Lock()
		q.dbClosed = true
		q.dbMu.Unlock()
		q.closeErr = q.db.Close()
		q.mu.Lock()
		q.drops.flush(q.log, true)
		q.mu.Unlock()
	})
	return q.closeErr
}
