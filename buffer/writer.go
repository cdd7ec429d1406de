package buffer

import (
	"runtime"

	badger "github.com/dgraph-io/badger/v4"
)

// The writer goroutine is the only one that writes to badger. It takes
// every request that is waiting (up to maxCycleRequests), applies them to
// one transaction and commits it with one fsync: group commit. A cycle
// runs in phases: acks, drops by age, the disk-space check, drops by size,
// appends. When a transaction reaches badger's size limit the writer
// commits it and continues in a new one ("rolls"); one Append's entries
// always share one transaction, so an Append is all-or-nothing.

type opKind uint8

const (
	opAppend opKind = iota
	opAck
	opDrop // drop expired records (seqs), found by Read or the sweeper
)

type request struct {
	op      opKind
	entries []Entry    // opAppend
	values  [][]byte   // opAppend: encoded values, time filled in by the writer
	size    int64      // opAppend: stored bytes
	est     int64      // opAppend: transaction budget it needs
	stream  string     // opAck, opDrop
	upto    uint64     // opAck
	seqs    []uint64   // opDrop, ascending
	done    chan error // buffered: the writer never blocks on it
	err     error
}

const maxCycleRequests = 1024

// entryCost is badger's estimate of an entry's share of a transaction
// (txn.checkSize: key + value + 2 meta bytes + 10 for the version).
func entryCost(keyLen, valueLen int) int64 { return int64(keyLen+valueLen) + 12 }

// metaCost is the budget of one stream's meta entry.
func metaCost(nameLen int) int64 { return entryCost(metaKeyLen, metaFixedLen+nameLen) }

func (q *Queue) writeLoop() {
	defer close(q.writerDone)
	var carry *request
	var reqs []*request
	for {
		reqs, carry = q.collect(carry, len(reqs))
		if reqs == nil {
			break
		}
		q.process(reqs)
		q.answer(reqs)
	}
	// Fail what is still queued. Holding pushMu, nothing can be pushed
	// behind this sweep, so every request handed over is answered.
	q.pushMu.Lock()
	defer q.pushMu.Unlock()
	q.pushClosed = true
	for {
		select {
		case r := <-q.reqs:
			r.done <- ErrClosed
		default:
			return
		}
	}
}

// answer sends each request its outcome, counting failed appends.
func (q *Queue) answer(reqs []*request) {
	failed := 0
	for _, r := range reqs {
		if r.op == opAppend && r.err != nil {
			failed++
		}
	}
	if failed > 0 {
		q.mu.Lock()
		q.counters.appendErrors += uint64(failed)
		q.mu.Unlock()
	}
	for _, r := range reqs {
		r.done <- r.err
	}
}

// collect waits for a request (or takes carry) and adds whatever else is
// waiting, as long as the appends fit under MaxBytes and about two
// transactions. A request that does not fit is returned as the next
// carry. It returns nil when the queue is closing.
//
// released is how many requests the previous cycle answered. When that
// was more than one, their callers are likely to come back at once: the
// writer yields the processor a few times to let them, so that all
// concurrent appenders share the next commit instead of alternating in
// two halves (each waiting out the other's fsync). A single appender
// never waits.
func (q *Queue) collect(carry *request, released int) (reqs []*request, next *request) {
	if carry == nil {
		select {
		case carry = <-q.reqs:
		case <-q.closing:
			return nil, nil
		}
	}
	reqs = append(reqs, carry)
	var size, est int64
	if carry.op == opAppend {
		size, est = carry.size, carry.est
	}
	target := len(q.reqs) + 1 + released
	for yields := 0; len(reqs) < maxCycleRequests; {
		var r *request
		select {
		case r = <-q.reqs:
		default:
			if released < 2 || len(reqs) >= target || yields == maxYields {
				return reqs, nil
			}
			yields++
			runtime.Gosched()
			continue
		}
		if r.op == opAppend {
			if size+r.size > q.cfg.MaxBytes || est+r.est > 2*q.maxTxnSize {
				return reqs, r
			}
			size, est = size+r.size, est+r.est
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// maxYields bounds the writer's wait for released appenders.
const maxYields = 8

// process applies one cycle of requests.
func (q *Queue) process(reqs []*request) {
	appendErr, deleteErr := q.checkDisk()
	c := q.newCycle()
	defer c.discard()
	var appends []*request
	var appendSize int64
	for _, r := range reqs {
		switch {
		case r.op == opAppend && appendErr != nil:
			r.err = appendErr
		case r.op == opAppend:
			appends = append(appends, r)
			appendSize += r.size
		case deleteErr != nil:
			r.err = deleteErr
		case r.op == opAck:
			c.ack(r)
		}
	}
	for _, r := range reqs {
		if r.op == opDrop && deleteErr == nil {
			c.dropExpired(r)
		}
	}
	if len(appends) > 0 {
		if over := q.total + c.delta() + appendSize - q.cfg.MaxBytes; over > 0 {
			c.dropOldest(over + min(q.cfg.MaxBytes/64, 8<<20))
		}
		c.tightenAll() // heads are found in the read view, which will not see the appends
		for _, r := range appends {
			c.append(r)
		}
	}
	c.commit()
}

// append adds all entries of r to the current transaction.
func (c *cycle) append(r *request) {
	if c.err != nil {
		r.err = c.err
		return
	}
	est := r.est
	if !c.fits(int64(2*len(r.entries)), est) {
		c.roll()
		if c.err != nil {
			r.err = c.err
			return
		}
	}
	c.cur = r
	defer func() { c.cur = nil }()
	for i, e := range r.entries {
		s := c.stream(e.Stream)
		p := c.state(s)
		p.m.last++
		seq := p.m.last
		cl := telemetry
		if e.Alarm {
			cl = alarm
		}
		if p.m.count[cl] == 0 {
			// The class is empty, so this record is its exact head, even
			// if an ack earlier in this transaction left the head dirty:
			// tighten must not look for it through the read view, which
			// cannot see this transaction's records.
			p.m.head[cl], p.dirty[cl] = seq, false
		}
		p.m.count[cl]++
		p.m.bytes[cl] += storedSize(len(e.Data))
		p.appended++
		putValueTime(r.values[i], c.now)
		ent := badger.NewEntry(dataKey(p.id, seq), r.values[i]).WithMeta(cl.userMeta())
		if err := c.txn.SetEntry(ent); err != nil {
			c.abort(err) // the budget estimate was wrong: fail the whole transaction
			r.err = c.err
			return
		}
		c.count++
		c.size += entryCost(dataKeyLen, len(r.values[i]))
	}
}

// target returns the stream r works on, or nil when there is nothing to
// do: the stream holds no records yet, or the cycle has failed (then r
// fails with it).
func (c *cycle) target(r *request) *stream {
	if c.err != nil {
		r.err = c.err
		return nil
	}
	c.q.mu.RLock()
	s := c.q.streams[r.stream]
	c.q.mu.RUnlock()
	if s == nil || s.id == 0 {
		return nil
	}
	return s
}

// ack deletes the records of r.stream up to r.upto, in chunks.
func (c *cycle) ack(r *request) {
	c.cur = r
	defer func() { c.cur = nil }()
	s := c.target(r)
	if s == nil {
		return
	}
	var next uint64
	for c.err == nil {
		p := c.state(s)
		upto := min(r.upto, p.m.last)
		from := max(p.m.first(), next)
		if from > upto {
			break
		}
		recs, err := scanRange(c.reader(), p.id, from, upto, scanChunk, c.deleted)
		if err != nil {
			c.abort(err)
			break
		}
		for _, x := range recs {
			if !c.del(s, x, -1) {
				break
			}
		}
		end := upto
		if len(recs) == scanChunk {
			end = recs[len(recs)-1].seq
		}
		p = c.state(s) // del may have rolled
		for cl := range numClasses {
			if h := p.m.head[cl]; h != 0 && h <= end {
				p.m.head[cl], p.dirty[cl] = end+1, true
			}
		}
		next = end + 1
		if len(recs) < scanChunk {
			break
		}
	}
	if c.err != nil {
		r.err = c.err
	}
}

// stream returns the stream called name, creating it if needed.
func (c *cycle) stream(name string) *stream {
	c.q.mu.RLock()
	s := c.q.streams[name]
	c.q.mu.RUnlock()
	if s != nil {
		return s
	}
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.q.streamLocked(name)
}
