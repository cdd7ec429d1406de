package northbound

import (
	"context"
	"fmt"
	"sync"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/northbound/mqtt3"
)

// reserve waits for a slot of the in-flight window, then takes as many more
// as are free, up to n in all, and returns how many it holds: what the hub
// acknowledged while the worker was busy goes out in one write.
func (s *session) reserve(n int) (int, error) {
	select {
	case s.slots <- struct{}{}:
	case <-s.ctx.Done():
		return 0, context.Cause(s.ctx)
	}
	if s.ctx.Err() != nil { // both were ready: send nothing more
		<-s.slots
		return 0, context.Cause(s.ctx)
	}
	got := 1
	for got < n && s.tryReserve() {
		got++
	}
	return got, nil
}

func (s *session) tryReserve() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// sendBuf is what one send builds, pooled: an idle identity holds none.
type sendBuf struct {
	topics []byte // every topic of the batch, one after the other
	ends   []int  // where each publication's topic ends in topics
	pubs   []mqtt3.Publication
	toks   []*mqtt3.Token
	of     []int // the item of each publication
}

var sendBufs = sync.Pool{New: func() any { return new(sendBuf) }}

// send publishes items, for each of which a window slot is held, with one
// PublishBatch, and hands their flights to the acker in order.
func (s *session) send(items []item) {
	l := s.l
	b := sendBufs.Get().(*sendBuf)
	fs := make([]flight, len(items))
	for i := range items {
		it, f := &items[i], &fs[i]
		f.last = it.last
		if it.bad != nil {
			f.poison = it.bad
			continue
		}
		start := len(b.topics)
		qos := byte(1)
		switch it.msg.Kind {
		case edgegw.Reported:
			rid := l.nextRID()
			topic, twin := l.p.prof.reportedTopic(l.hubID(), rid)
			if twin {
				f.twin, f.rid, qos = s.expect(rid), rid, 0
			}
			b.topics = append(b.topics, topic...)
		default:
			b.topics = l.p.prof.appendTelemetryTopic(b.topics, l.hubID(), &it.msg)
		}
		if n := len(b.topics) - start; n > 65535 { // MQTT cannot carry it: never sendable
			b.topics = b.topics[:start]
			if f.twin != nil {
				s.forget(f.rid)
				f.twin = nil
			}
			f.poison = fmt.Errorf("topic of %d bytes with its properties; MQTT allows 65535", n)
			continue
		}
		f.sent = true
		b.ends = append(b.ends, len(b.topics))
		b.pubs = append(b.pubs, mqtt3.Publication{QoS: qos, Payload: it.msg.Body})
		b.of = append(b.of, i)
	}
	start := 0
	for j, end := range b.ends { // topics is complete: it no longer moves
		b.pubs[j].Topic = b.topics[start:end:end]
		start = end
	}
	var err error
	if len(b.pubs) > 0 {
		b.toks = append(b.toks[:0], make([]*mqtt3.Token, len(b.pubs))...)
		err = s.conn.PublishBatch(b.pubs, b.toks)
	}
	for j, i := range b.of {
		if err != nil {
			fs[i].err = err
		} else {
			fs[i].tok = b.toks[j]
		}
	}
	sent, resent := len(b.pubs), 0
	for _, i := range b.of {
		if fs[i].last <= l.highSent {
			resent++
		} else {
			l.highSent = fs[i].last
		}
	}
	b.reset()
	sendBufs.Put(b)
	l.st.update(func(st *Status) { st.Sent += uint64(sent); st.Resent += uint64(resent); st.InFlight += sent })
	for i := range fs {
		s.queue <- &fs[i] // never blocks: a slot is held
	}
	s.ackMu.Lock()
	if !s.acking {
		s.acking = true
		s.ackers.Add(1)
		go s.ackLoop()
	}
	s.ackMu.Unlock()
}

// reset empties b for the pool, dropping its references to messages and
// Tokens; a buffer grown by a large batch is let go.
func (b *sendBuf) reset() {
	clear(b.pubs)
	clear(b.toks)
	b.topics, b.ends, b.pubs, b.toks, b.of = b.topics[:0], b.ends[:0], b.pubs[:0], b.toks[:0], b.of[:0]
	if cap(b.topics) > 64<<10 {
		b.topics = nil
	}
}
