package buffer

import (
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// cycle is the writer's state while it applies one group of requests: the
// open write transaction, the pending meta of every stream it touched, and
// a read transaction that sees everything committed before it.
type cycle struct {
	q   *Queue
	now time.Time // stamped on every record of the cycle
	err error     // sticky: after a failed commit the rest of the cycle fails

	txn         *badger.Txn
	count, size int64 // transaction budget used by entries
	metaSize    int64 // budget the pending metas will use
	pend        map[*stream]*pending
	order       []*stream           // pend in first-touch order
	deleted     map[recKey]struct{} // records deleted in txn (rtxn still sees them)
	parts       []*request          // requests with writes in txn
	cur         *request            // the request being applied
	rtxn        *badger.Txn         // read view of what is committed; renewed per txn
	deletedSize int64               // stored bytes deleted in txn
}

type recKey struct {
	id  uint32
	seq uint64
}

// pending is a stream's meta as the open transaction will leave it.
type pending struct {
	m        meta
	id       uint32
	dirty    [numClasses]bool // head may name a deleted record: tighten before commit
	appended uint64
	drops    [numReasons]uint64
}

func (q *Queue) newCycle() *cycle {
	c := &cycle{q: q, now: time.Now()}
	c.begin()
	return c
}

func (c *cycle) begin() {
	c.txn = c.q.db.NewTransaction(true)
	c.count, c.size, c.metaSize, c.deletedSize = 0, 0, 0, 0
	c.pend = make(map[*stream]*pending)
	c.order = c.order[:0]
	c.deleted = make(map[recKey]struct{})
	c.parts = c.parts[:0]
}

// reader returns the read transaction, opening it if needed.
func (c *cycle) reader() *badger.Txn {
	if c.rtxn == nil {
		c.rtxn = c.q.db.NewTransaction(false)
	}
	return c.rtxn
}

func (c *cycle) dropReader() {
	if c.rtxn != nil {
		c.rtxn.Discard()
		c.rtxn = nil
	}
}

// state returns the pending meta of s, copying it from the committed one
// on first touch. A new stream gets its id here.
func (c *cycle) state(s *stream) *pending {
	if c.cur != nil && (len(c.parts) == 0 || c.parts[len(c.parts)-1] != c.cur) {
		c.parts = append(c.parts, c.cur)
	}
	if p := c.pend[s]; p != nil {
		return p
	}
	p := &pending{m: s.m, id: s.id}
	if p.id == 0 {
		p.id = c.q.nextID // nextID is the writer's alone
		c.q.nextID++
	}
	c.pend[s] = p
	c.order = append(c.order, s)
	c.metaSize += metaCost(len(s.name))
	return p
}

// meta returns the meta of s as the open transaction would leave it,
// without touching s.
func (c *cycle) meta(s *stream) meta {
	if p := c.pend[s]; p != nil {
		return p.m
	}
	return s.m
}

// fits reports whether n more entries of size bytes fit in the open
// transaction, keeping room for the metas and one more new stream.
func (c *cycle) fits(n, bytes int64) bool {
	return c.count+n+int64(len(c.pend))+1 < c.q.maxTxnCount &&
		c.size+bytes+c.metaSize+metaCost(MaxStreamName) < c.q.maxTxnSize
}

// del deletes one record; reason is a drop reason or -1 for an ack. It
// returns false when the cycle has failed.
func (c *cycle) del(s *stream, r recInfo, reason int) bool {
	if c.err != nil {
		return false
	}
	cost := entryCost(dataKeyLen, 0)
	if !c.fits(1, cost) {
		if c.roll(); c.err != nil {
			return false
		}
	}
	p := c.state(s)
	if err := c.txn.Delete(dataKey(p.id, r.seq)); err != nil {
		c.abort(err)
		return false
	}
	c.count++
	c.size += cost
	p.m.count[r.cl]--
	p.m.bytes[r.cl] -= r.stored
	p.dirty[r.cl] = true
	if reason >= 0 {
		p.drops[reason]++
	}
	c.deleted[recKey{p.id, r.seq}] = struct{}{}
	c.deletedSize += r.stored
	return true
}

// delta is how much the open transaction changes the stored bytes.
func (c *cycle) delta() int64 {
	var d int64
	for s, p := range c.pend {
		d += p.m.size() - s.m.size()
	}
	return d
}

// roll commits the open transaction and opens the next.
func (c *cycle) roll() {
	if c.commit(); c.err == nil {
		c.begin()
	}
}

// commit writes the pending metas and commits (one fsync). On success the
// new state becomes visible to readers; on failure every request with a
// write in the transaction fails.
func (c *cycle) commit() {
	if c.err != nil || c.txn == nil {
		return
	}
	if len(c.pend) == 0 {
		c.discard()
		return
	}
	for _, s := range c.order {
		p := c.pend[s]
		if err := c.tighten(s, p); err != nil {
			c.abort(err)
			return
		}
		if err := c.txn.Set(metaKey(p.id), p.m.encode(s.name)); err != nil {
			c.abort(err)
			return
		}
	}
	err := c.txn.Commit()
	c.txn = nil
	c.dropReader()
	if err != nil {
		c.abort(err)
		return
	}
	c.q.apply(c)
}

// tightenAll tightens the heads of every stream the deletions of this
// transaction touched. It must run before anything is appended in the
// transaction: the read view does not see those records.
func (c *cycle) tightenAll() {
	for _, s := range c.order {
		if c.err != nil {
			return
		}
		if err := c.tighten(s, c.pend[s]); err != nil {
			c.abort(err)
		}
	}
}

// tighten moves every dirty head of p to the first record of its class
// that still exists.
func (c *cycle) tighten(s *stream, p *pending) error {
	for cl := range numClasses {
		if !p.dirty[cl] {
			continue
		}
		p.dirty[cl] = false
		if p.m.count[cl] == 0 {
			p.m.head[cl] = 0
			continue
		}
		r, ok, err := firstOf(c.reader(), p.id, cl, max(p.m.head[cl], 1), c.deleted)
		if err != nil {
			return err
		}
		if !ok { // a bug: keep the old head, a lower bound, so that nothing is hidden
			c.q.log.Error("buffer: stream meta counts records that are not there",
				"identity", s.name, "class", cl, "records", p.m.count[cl], "head", p.m.head[cl])
			continue
		}
		p.m.head[cl] = r.seq
	}
	return nil
}

// abort fails the open transaction and the rest of the cycle.
func (c *cycle) abort(err error) {
	c.err = err
	for _, r := range c.parts {
		r.err = err
	}
	c.discard()
}

// discard drops the open transactions without committing.
func (c *cycle) discard() {
	if c.txn != nil {
		c.txn.Discard()
		c.txn = nil
	}
	c.dropReader()
}

// apply publishes a committed transaction's state, then calls the Notify
// callbacks of the streams that grew, after q.mu is released (deferred
// calls run last first).
func (q *Queue) apply(c *cycle) {
	var wake []func()
	defer func() {
		for _, fn := range wake {
			fn()
		}
	}()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.counters.commits++
	appended := false
	for _, s := range c.order {
		p := c.pend[s]
		q.total += p.m.size() - s.m.size()
		s.m, s.id = p.m, p.id
		for r, n := range p.drops {
			if n > 0 {
				s.drops[r] += n
				q.counters.drops[r] += n
				q.drops.add(r, n, s.name)
			}
		}
		if p.appended > 0 {
			q.counters.appended += p.appended
			appended = true
			close(s.notify)
			s.notify = make(chan struct{})
			if s.waiter != nil {
				wake = append(wake, s.waiter)
				s.waiter = nil
			}
		}
	}
	if appended {
		q.counters.appendCommits++
	}
	q.drops.flush(q.log, false)
	q.counters.deletedSinceCheck += c.deletedSize
	if q.counters.deletedSinceCheck >= max(q.total/2, reclaimCheckBytes) {
		q.counters.deletedSinceCheck = 0
		select {
		case q.reclaimCh <- struct{}{}:
		default:
		}
	}
}
