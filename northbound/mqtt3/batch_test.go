package mqtt3

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countConn counts the writes made on a connection.
type countConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// countingServer is a raw server whose client connections count writes.
func countingServer(t *testing.T) (*rawServer, func() int) {
	s := newRawServer(t)
	var cc *countConn
	s.wrap = func(nc net.Conn) net.Conn {
		cc = &countConn{Conn: nc}
		return cc
	}
	return s, func() int { return int(cc.writes.Load()) }
}

// pendingCount is how many Tokens wait for an acknowledgement.
func pendingCount(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// A batch goes out in one write, in order, QoS 0 and 1 mixed; each QoS 1
// Token completes only on the PUBACK of its own packet, in whatever order
// they come; QoS 0 publications get no Token; the write counts for the
// keep-alive.
func TestPublishBatchRaw(t *testing.T) {
	s, writes := countingServer(t)
	r := newRecorder()
	c, p := s.connect(r.options("batch"))
	w0, last0 := writes(), c.lastWrite.Load()
	pubs := make([]Publication, 20)
	for i := range pubs {
		pubs[i] = Publication{Topic: fmt.Appendf(nil, "b/%d", i), QoS: 1, Payload: fmt.Appendf(nil, "m-%d", i)}
		if i%4 == 3 {
			pubs[i].QoS = 0
		}
	}
	toks := make([]*Token, len(pubs)+1)
	extra := &Token{}
	toks[len(pubs)] = extra // beyond pubs: left alone
	if err := c.PublishBatch(pubs, toks); err != nil {
		t.Fatal(err)
	}
	if n := writes() - w0; n != 1 {
		t.Fatalf("%d writes for a batch of %d, want 1", n, len(pubs))
	}
	if c.lastWrite.Load() <= last0 {
		t.Fatal("the batch's write did not count for the keep-alive")
	}
	ids := map[uint16]int{}
	for i, pub := range pubs {
		pp := p.readPublish()
		if pp.TopicName != string(pub.Topic) || !bytes.Equal(pp.Payload, pub.Payload) || pp.Qos != pub.QoS {
			t.Fatalf("packet %d: %s %q QoS %d, want %s %q QoS %d", i, pp.TopicName, pp.Payload, pp.Qos, pub.Topic, pub.Payload, pub.QoS)
		}
		if pub.QoS == 0 {
			if toks[i] != nil {
				t.Fatalf("QoS 0 publication %d has a Token", i)
			}
			continue
		}
		if _, dup := ids[pp.MessageID]; dup || pp.MessageID == 0 {
			t.Fatalf("packet %d: identifier %d (seen: %v)", i, pp.MessageID, ids)
		}
		ids[pp.MessageID] = i
		if toks[i] == nil || isClosed(toks[i].Done()) {
			t.Fatalf("Token %d missing or completed before any PUBACK", i)
		}
	}
	if toks[len(pubs)] != extra || extra.c != nil {
		t.Fatal("a Token beyond the publications was touched")
	}
	idOf := make([]uint16, len(pubs))
	for id, i := range ids {
		idOf[i] = id
	}
	// Acknowledge all but the first, last first.
	var acks [][]byte
	for i := len(pubs) - 1; i > 0; i-- {
		if pubs[i].QoS == 1 {
			acks = append(acks, puback(idOf[i]))
		}
	}
	p.write(acks...)
	for i := len(pubs) - 1; i > 0; i-- {
		if pubs[i].QoS == 1 {
			if err := waitToken(t, toks[i]); err != nil {
				t.Fatalf("Token %d: %v", i, err)
			}
		}
	}
	if isClosed(toks[0].Done()) {
		t.Fatal("Token 0 completed without its PUBACK")
	}
	p.write(puback(idOf[0]))
	if err := waitToken(t, toks[0]); err != nil {
		t.Fatal(err)
	}
	if n := pendingCount(c); n != 0 {
		t.Fatalf("%d Tokens still pending", n)
	}
	if lost := r.lostErrs(); len(lost) != 0 {
		t.Fatalf("OnLost %v", lost)
	}
}

// A batch's Token that completes before anyone waits for it reads as done
// all the same, acknowledged or failed with the connection's end.
func TestPublishBatchTokensCompleteUnwatched(t *testing.T) {
	s := newRawServer(t)
	c, p := s.connect(Options{ClientID: "batch-unwatched"})
	pub := Publication{Topic: []byte("u"), QoS: 1}
	acked, failed := make([]*Token, 2), make([]*Token, 2)
	if err := c.PublishBatch([]Publication{pub, pub}, acked); err != nil {
		t.Fatal(err)
	}
	if err := c.PublishBatch([]Publication{pub, pub}, failed); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		p.readPublish()
	}
	p.write(puback(acked[0].id), puback(acked[1].id))
	eventually(t, wait, "two PUBACKs handled", func() bool { return pendingCount(c) == 2 })
	for i, tok := range acked {
		if !isClosed(tok.Done()) || tok.Err() != nil {
			t.Fatalf("acknowledged Token %d: done %v, err %v", i, isClosed(tok.Done()), tok.Err())
		}
	}
	c.Close()
	for i, tok := range failed {
		if !isClosed(tok.Done()) || !errors.Is(tok.Err(), ErrClosed) {
			t.Fatalf("Token %d pending at Close: done %v, err %v", i, isClosed(tok.Done()), tok.Err())
		}
	}
}

// A run longer than one write's worth goes out in a few writes, not one
// per packet, still in order.
func TestPublishBatchLongRun(t *testing.T) {
	s, writes := countingServer(t)
	c, p := s.connect(Options{ClientID: "batch-long"})
	w0 := writes()
	pubs := make([]Publication, 5)
	for i := range pubs {
		pubs[i] = Publication{Topic: []byte("long"), QoS: 1, Payload: bytes.Repeat([]byte{byte('a' + i)}, 40<<10)}
	}
	toks := make([]*Token, len(pubs))
	res := make(chan error, 1)
	go func() { res <- c.PublishBatch(pubs, toks) }()
	for i := range pubs {
		if pp := p.readPublish(); !bytes.Equal(pp.Payload, pubs[i].Payload) {
			t.Fatalf("packet %d: payload of %d bytes starting %q", i, len(pp.Payload), pp.Payload[:1])
		}
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if n := writes() - w0; n != 3 { // 80 KiB, 80 KiB, 40 KiB
		t.Fatalf("%d writes for 5 packets of 40 KiB, want 3", n)
	}
	for i, tok := range toks {
		p.write(puback(tok.id))
		if err := waitToken(t, tok); err != nil {
			t.Fatalf("Token %d: %v", i, err)
		}
	}
}

// What Publish refuses, PublishBatch refuses for the whole batch, before
// writing anything or leaving a Token pending.
func TestPublishBatchRefused(t *testing.T) {
	s, writes := countingServer(t)
	c, p := s.connect(Options{ClientID: "batch-refused"})
	w0 := writes()
	ok := Publication{Topic: []byte("ok"), QoS: 1}
	for name, pubs := range map[string][]Publication{
		"QoS 2":      {ok, {Topic: []byte("two"), QoS: 2}},
		"long topic": {ok, {Topic: bytes.Repeat([]byte("t"), 65536), QoS: 0}},
	} {
		toks := make([]*Token, len(pubs))
		if err := c.PublishBatch(pubs, toks); err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if toks[0] != nil || pendingCount(c) != 0 {
			t.Fatalf("%s: Token %v, %d pending", name, toks[0], pendingCount(c))
		}
	}
	if err := c.PublishBatch([]Publication{ok, ok}, make([]*Token, 1)); err == nil {
		t.Fatal("fewer Tokens than publications accepted")
	}
	if n := writes() - w0; n != 0 {
		t.Fatalf("%d writes for refused batches", n)
	}
	// An empty batch writes nothing either.
	if err := c.PublishBatch(nil, nil); err != nil || writes() != w0 {
		t.Fatalf("empty batch: %v, %d writes", err, writes()-w0)
	}
	publish1Raw(t, c, p) // the connection is fine
	c.Close()
	toks := make([]*Token, 2)
	if err := c.PublishBatch([]Publication{ok, {Topic: []byte("q0")}}, toks); !errors.Is(err, ErrClosed) || toks[0] != nil {
		t.Fatalf("after Close: %v, Token %v", err, toks[0])
	}
}

// A batch whose write cannot finish within WriteTimeout fails as a whole
// and ends the connection; none of its Tokens is left.
func TestPublishBatchWriteTimeout(t *testing.T) {
	s := newRawServer(t)
	r := newRecorder()
	o := r.options("batch-stuck")
	o.WriteTimeout = 300 * time.Millisecond
	c, p := s.connect(o)
	pubs := []Publication{{Topic: []byte("small"), QoS: 1, Payload: []byte("s")},
		{Topic: []byte("big"), QoS: 1, Payload: make([]byte, 64<<20)}}
	toks := make([]*Token, len(pubs))
	res := make(chan error, 1)
	go func() { res <- c.PublishBatch(pubs, toks) }()
	p.nc.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(p.nc, make([]byte, 1)); err != nil { // the write is under way
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("PublishBatch succeeded")
		}
	case <-time.After(wait):
		t.Fatal("PublishBatch still blocked")
	}
	if toks[0] != nil || toks[1] != nil || pendingCount(c) != 0 {
		t.Fatalf("Tokens %v left, %d pending", toks, pendingCount(c))
	}
	closed(t, c.Done(), "Done")
	lostOnce(t, r, c.Err())
}

// Against real brokers: a batch arrives whole and in order at a
// subscriber, with an empty payload and one larger than a write, and
// every Token completes.
func TestBrokerPublishBatch(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		sub := subscribePaho(t, b, "mqtt3/batch/#")
		c := dial(t, b.addr, Options{ClientID: "mqtt3-batch"})
		big := make([]byte, 100<<10)
		rnd := rand.New(rand.NewPCG(3, 4))
		for i := range big {
			big[i] = byte(rnd.Uint32())
		}
		// All QoS 1: a broker may pass a QoS 0 message to a subscriber
		// ahead of QoS 1 ones it queued (the raw test checks the order on
		// the wire).
		var pubs []Publication
		for i := range 200 {
			pubs = append(pubs, Publication{Topic: fmt.Appendf(nil, "mqtt3/batch/%d", i%3), QoS: 1, Payload: fmt.Appendf(nil, "m-%03d", i)})
		}
		pubs = append(pubs, Publication{Topic: []byte("mqtt3/batch/empty"), QoS: 1},
			Publication{Topic: []byte("mqtt3/batch/big"), QoS: 1, Payload: big},
			Publication{Topic: []byte("mqtt3/batch/after"), QoS: 1, Payload: []byte("after")})
		toks := make([]*Token, len(pubs))
		if err := c.PublishBatch(pubs, toks); err != nil {
			t.Fatal(err)
		}
		for i, tok := range toks {
			if err := waitToken(t, tok); err != nil {
				t.Fatalf("Token %d: %v", i, err)
			}
		}
		g := sub.wait(t, len(pubs))
		if len(g) != len(pubs) {
			t.Fatalf("subscriber got %d messages, want %d", len(g), len(pubs))
		}
		for i, pub := range pubs {
			if g[i].topic != string(pub.Topic) || g[i].payload != string(pub.Payload) || g[i].qos != pub.QoS {
				t.Fatalf("message %d: got %s %.20q QoS %d, want %s %.20q QoS %d", i,
					g[i].topic, g[i].payload, g[i].qos, pub.Topic, pub.Payload, pub.QoS)
			}
		}
		if err := c.Err(); err != nil {
			t.Fatalf("connection ended: %v", err)
		}
	})
}
