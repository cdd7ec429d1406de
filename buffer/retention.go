package buffer

import (
	"container/heap"
	"context"
	"log/slog"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Drop reasons, the keys of Stats.Drops and StreamStats.Drops.
const (
	DropExpired      = "expired"       // telemetry older than max_age
	DropAlarmExpired = "alarm_expired" // alarm older than alarm_max_age
	DropFull         = "full"          // telemetry dropped to stay within max_bytes
	DropAlarmFull    = "alarm_full"    // alarm dropped to stay within max_bytes (no telemetry left)
)

const (
	reasonExpired = iota
	reasonAlarmExpired
	reasonFull
	reasonAlarmFull
	numReasons
)

func reasonName(r int) string {
	return [numReasons]string{DropExpired, DropAlarmExpired, DropFull, DropAlarmFull}[r]
}

func expiredReason(cl class) int {
	if cl == alarm {
		return reasonAlarmExpired
	}
	return reasonExpired
}

func fullReason(cl class) int {
	if cl == alarm {
		return reasonAlarmFull
	}
	return reasonFull
}

// expired reports whether a record of class cl appended at t has reached
// its max age at now.
func (q *Queue) expired(t time.Time, cl class, now time.Time) bool {
	return !now.Before(t.Add(q.cfg.maxAge(cl)))
}

// dropExpired deletes the records r.seqs of r.stream that still exist;
// their finders saw them expired. Each is counted once, by whoever
// deletes it.
func (c *cycle) dropExpired(r *request) {
	c.cur = r
	defer func() { c.cur = nil }()
	s := c.target(r)
	if s == nil {
		return
	}
	for _, seq := range r.seqs {
		if _, gone := c.deleted[recKey{s.id, seq}]; gone {
			continue
		}
		item, err := c.reader().Get(dataKey(s.id, seq))
		if err == badger.ErrKeyNotFound {
			continue
		}
		if err != nil {
			c.abort(err)
			break
		}
		x := recInfo{seq: seq, cl: classOf(item.UserMeta()), stored: storedOf(item)}
		if !c.del(s, x, expiredReason(x.cl)) {
			break
		}
	}
	if c.err != nil {
		r.err = c.err
	}
}

// dropOldest deletes the oldest records until need bytes are freed:
// telemetry first, oldest append time first across all streams; alarms
// only when no telemetry is left.
func (c *cycle) dropOldest(need int64) {
	c.q.mu.RLock()
	all := make([]*stream, 0, len(c.q.streams))
	for _, s := range c.q.streams {
		if s.id != 0 {
			all = append(all, s)
		}
	}
	c.q.mu.RUnlock()
	for cl := range numClasses {
		var h candidates
		for _, s := range all {
			m := c.meta(s)
			if m.count[cl] == 0 {
				continue
			}
			r, ok, err := firstOf(c.reader(), s.id, cl, m.head[cl], c.deleted)
			if err != nil {
				c.abort(err)
				return
			}
			if ok {
				h = append(h, candidate{s: s, r: r})
			}
		}
		heap.Init(&h)
		for need > 0 && h.Len() > 0 {
			top := heap.Pop(&h).(candidate)
			run, err := scanClass(c.reader(), top.s.id, cl, top.r.seq, scanChunk, c.deleted)
			if err != nil {
				c.abort(err)
				return
			}
			i := 0
			for ; i < len(run) && need > 0; i++ {
				if h.Len() > 0 && h[0].before(run[i].t, top.s.id) {
					break // another stream holds an older record
				}
				if !c.del(top.s, run[i], fullReason(cl)) {
					return
				}
				need -= run[i].stored
			}
			switch {
			case i < len(run):
				heap.Push(&h, candidate{s: top.s, r: run[i]})
			case len(run) == scanChunk:
				r, ok, err := firstOf(c.reader(), top.s.id, cl, run[i-1].seq+1, c.deleted)
				if err != nil {
					c.abort(err)
					return
				}
				if ok {
					heap.Push(&h, candidate{s: top.s, r: r})
				}
			}
		}
	}
}

// candidate is a stream's oldest record of the class being dropped.
type candidate struct {
	s *stream
	r recInfo
}

// before reports whether c is older than a record at t of stream id.
func (c candidate) before(t time.Time, id uint32) bool {
	if !c.r.t.Equal(t) {
		return c.r.t.Before(t)
	}
	return c.s.id < id
}

type candidates []candidate

func (h candidates) Len() int           { return len(h) }
func (h candidates) Less(i, j int) bool { return h[i].before(h[j].r.t, h[j].s.id) }
func (h candidates) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *candidates) Push(x any)        { *h = append(*h, x.(candidate)) }
func (h *candidates) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// sweep drops the expired records of every stream, so that streams nobody
// reads do not keep them, and the byte counts stay true.
func (q *Queue) sweep() {
	q.mu.RLock()
	type todo struct {
		name string
		id   uint32
		from uint64
	}
	var work []todo
	for _, s := range q.streams {
		if s.id != 0 && s.m.records() > 0 {
			work = append(work, todo{s.name, s.id, s.m.first()})
		}
	}
	q.mu.RUnlock()
	for _, w := range work {
		for from := w.from; ; {
			seqs, err := q.findExpired(w.id, from, time.Now())
			if err != nil || len(seqs) == 0 {
				break
			}
			r := &request{op: opDrop, stream: w.name, seqs: seqs, done: make(chan error, 1)}
			if q.submit(context.Background(), r) != nil || len(seqs) < scanChunk {
				break
			}
			from = seqs[len(seqs)-1] + 1
		}
	}
}

// dropLog turns drops into at most one log line per interval (and a last
// one at Close). Guarded by Queue.mu.
type dropLog struct {
	interval time.Duration
	last     time.Time
	pending  [numReasons]uint64
	streams  map[string]struct{}
}

func (d *dropLog) add(reason int, n uint64, stream string) {
	d.pending[reason] += n
	if d.streams == nil {
		d.streams = make(map[string]struct{})
	}
	d.streams[stream] = struct{}{}
}

func (d *dropLog) flush(log *slog.Logger, final bool) {
	if len(d.streams) == 0 || (!final && !d.last.IsZero() && time.Since(d.last) < d.interval) {
		return
	}
	args := make([]any, 0, 2*numReasons+6)
	for r, n := range d.pending {
		if n > 0 {
			args = append(args, reasonName(r), n)
		}
	}
	var example string
	for s := range d.streams {
		if example == "" || s < example {
			example = s
		}
	}
	args = append(args, "identities", len(d.streams), "identity", example)
	if !d.last.IsZero() {
		args = append(args, "since", time.Since(d.last).Round(time.Second))
	}
	log.Warn("buffer dropped records", args...)
	d.last, d.pending, d.streams = time.Now(), [numReasons]uint64{}, nil
}
