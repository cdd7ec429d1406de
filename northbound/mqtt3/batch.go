package mqtt3

import "fmt"

// Publication is one PUBLISH of a PublishBatch. Topic is bytes so that a
// caller building many topics can build them into one buffer it reuses;
// PublishBatch copies it.
type Publication struct {
	Topic   []byte
	QoS     byte
	Payload []byte
}

// batchWrite is how many bytes of packets PublishBatch encodes before it
// writes them: a long run goes out in writes of about this size (TLS cuts
// each into records of at most 16 KiB), so the buffer stays small enough
// to pool.
const batchWrite = 64 << 10

// PublishBatch publishes pubs in order with as few writes as it can: their
// packets are encoded one after the other into one buffer, which is
// written once it holds batchWrite bytes and at the end. toks must be at
// least as long as pubs; toks[i] is set to the Token of pubs[i], nil at
// QoS 0. Each Token is that of Publish: it completes with nil only on the
// PUBACK of its packet received on this connection.
//
// An error fails the whole batch and leaves no Token of it pending (toks
// are set to nil): either nothing was written (a QoS or topic Publish
// would refuse, no packet identifiers left, the connection had ended), or
// a write failed, which ends the connection. Then the packets written
// before the failure may have reached the server, so the caller must treat
// every publish of the batch as not acknowledged.
func (c *Conn) PublishBatch(pubs []Publication, toks []*Token) error {
	if len(toks) < len(pubs) {
		return fmt.Errorf("publish batch: %d tokens for %d publications", len(toks), len(pubs))
	}
	toks = toks[:len(pubs)]
	clear(toks)
	acked := 0
	for _, p := range pubs {
		if p.QoS > 1 {
			return fmt.Errorf("publish %s: QoS %d not supported", p.Topic, p.QoS)
		}
		if len(p.Topic) > 65535 {
			return fmt.Errorf("mqtt: topic of %d bytes; at most 65535", len(p.Topic))
		}
		acked += int(p.QoS)
	}
	if err := c.registerBatch(pubs, toks, acked); err != nil {
		return err
	}
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	c.wmu.Lock()
	err := c.Err()
	for i := 0; i < len(pubs) && err == nil; i++ {
		p := &pubs[i]
		var id uint16
		if t := toks[i]; t != nil {
			id = t.id
		}
		b = publishPacket(b, p.Topic, p.QoS, id, p.Payload)
		if len(b) >= batchWrite || i == len(pubs)-1 {
			err = c.writeLocked(b)
			b = b[:0]
		}
	}
	c.wmu.Unlock()
	if cap(b) <= batchWrite*2 {
		*bp = b
		bufPool.Put(bp)
	}
	if err != nil {
		c.mu.Lock()
		for i, t := range toks {
			if t != nil && c.pending[t.id] == t {
				c.drop(t.id)
			}
			toks[i] = nil
		}
		c.mu.Unlock()
		return err
	}
	return nil
}

// registerBatch makes a Token pending for each QoS 1 publication (acked of
// them), all in one allocation, and puts them in toks.
func (c *Conn) registerBatch(pubs []Publication, toks []*Token, acked int) error {
	if acked == 0 {
		return c.Err()
	}
	block := make([]Token, acked)
	for i := range block {
		block[i].c = c // done is made by the first Done that waits
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reserve(acked); err != nil {
		return err
	}
	j := 0
	for i, p := range pubs {
		if p.QoS == 1 {
			t := &block[j]
			j++
			c.add(t)
			toks[i] = t
		}
	}
	return nil
}
