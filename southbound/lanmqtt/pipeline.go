package lanmqtt

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/southbound"
)

// The intake of one connection is a pipeline. mochi reads a client's
// packets on one goroutine and calls OnPublish for each; OnPublish hands
// the publish to the store without waiting (southbound.Pipeline.Start),
// queues it on the connection's pipe and returns packets.ErrRejectPacket,
// so mochi neither acknowledges nor forwards it and reads the next one.
// The pipe's acker goroutine takes the publishes in the order they
// arrived, waits for each one's commit, writes the PUBACKs of every
// publish already committed in one write, and then forwards them to LAN
// subscribers (and keeps retained ones) through a relay client. A device's
// whole window thus shares one commit instead of waiting one commit per
// message, and each PUBACK still means "on disk".
//
// Every publish of a connection that has a pipe goes through it, intake or
// not, so that PUBACKs and forwarding keep the order of arrival. QoS 2
// publishes are the exception in form only: OnPublish waits until the
// acker has reached them, then lets mochi run its QoS 2 flow.
//
// The pipe is bounded by count (intake_window) and bytes
// (intake_window_bytes); when it is full OnPublish waits, so mochi stops
// reading that connection and a slow disk slows the device down.

// pending is one publish in a pipe.
type pending struct {
	pk     packets.Packet
	intake bool       // an intake topic: stored before it is acknowledged
	device string     // intake: for logs
	done   chan error // intake: the store's answer
	err    error      // intake: the answer, or why it was refused at once
	sync   chan error // QoS 2: the acker's answer to the waiting OnPublish
	size   int64
	// after answers a relayed device's request (relay.go) once its
	// outcome (err) is known, in order; such a request is never forwarded.
	after func(err error)

	// Channels kept across uses of a pooled item; empty between uses.
	doneCh, syncCh chan error
}

// pendingPool recycles pipe items: one per publish otherwise.
var pendingPool = sync.Pool{New: func() any {
	return &pending{doneCh: make(chan error, 1), syncCh: make(chan error, 1)}
}}

// newPending returns an item for pk from the pool.
func newPending(pk packets.Packet) *pending {
	it := pendingPool.Get().(*pending)
	it.pk, it.size = pk, int64(len(pk.Payload))
	return it
}

// release returns an item to the pool once nothing refers to it.
func (it *pending) release() {
	*it = pending{doneCh: it.doneCh, syncCh: it.syncCh}
	pendingPool.Put(it)
}

// pipe is one connection's intake pipeline.
type pipe struct {
	h     *hook
	cl    *mqtt.Client
	relay *mqtt.Client // inline client with cl's id: forwards as if from cl

	items    chan *pending // OnPublish -> acker; closed by OnDisconnect
	bytes    atomic.Int64  // payload bytes in items and being handled
	freed    chan struct{} // acker -> OnPublish: bytes were released
	maxBytes int64

	closing atomic.Bool // the connection is being closed: take nothing more

	ackBuf []byte // acker's: PUBACKs of one batch
	fwd    []*pending
}

// ackWriteTimeout bounds one write of PUBACKs to a device.
const ackWriteTimeout = 30 * time.Second

// maxAckBatch bounds the publishes one acker round handles.
const maxAckBatch = 256

// pipeFor returns cl's pipe, starting it on the first publish.
func (h *hook) pipeFor(cl *mqtt.Client) *pipe {
	if p, ok := h.pipes.Load(cl); ok {
		return p.(*pipe)
	}
	relay := h.srv.NewClient(nil, cl.Net.Listener, cl.ID, true)
	relay.Properties.ProtocolVersion = cl.Properties.ProtocolVersion
	relay.Properties.Username = cl.Properties.Username
	p := &pipe{
		h:        h,
		cl:       cl,
		relay:    relay,
		items:    make(chan *pending, h.a.cfg.IntakeWindow),
		freed:    make(chan struct{}, 1),
		maxBytes: int64(h.a.cfg.IntakeWindowBytes),
	}
	h.pipes.Store(cl, p)
	h.pipes.wg.Add(1)
	go func() {
		defer h.pipes.wg.Done()
		p.run()
	}()
	return p
}

// OnDisconnect ends the connection's pipe: mochi calls it on the client's
// read goroutine after its last OnPublish. The acker still answers what
// was queued (the store always answers), then exits.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if p, ok := h.pipes.LoadAndDelete(cl); ok {
		close(p.(*pipe).items)
	}
	h.methodsChanged(cl, true)
}

// push queues it, waiting while the pipe is full. Called by OnPublish on
// the client's read goroutine, which is then not reading: back-pressure.
func (p *pipe) push(it *pending) {
	for p.bytes.Load() > 0 && p.bytes.Load()+it.size > p.maxBytes {
		<-p.freed // the acker releases bytes after every batch
	}
	p.bytes.Add(it.size)
	p.items <- it
}

// run is the acker.
func (p *pipe) run() {
	var head *pending
	batch := make([]*pending, 0, 16)
	for {
		if head == nil {
			it, ok := <-p.items
			if !ok {
				return
			}
			head = it
		}
		if head.done != nil {
			head.err = <-head.done // the store always answers
		}
		batch = append(batch[:0], head)
		head = nil
		open := true
	more:
		for len(batch) < maxAckBatch {
			select {
			case it, ok := <-p.items:
				if !ok {
					open = false
					break more
				}
				if it.done != nil {
					select {
					case it.err = <-it.done:
					default:
						head = it // not committed yet: it starts the next round
						break more
					}
				}
				batch = append(batch, it)
			default:
				break more
			}
		}
		p.handle(batch)
		clear(batch)
		if !open {
			return
		}
	}
}

// handle answers a batch of publishes whose outcome is known, in order.
func (p *pipe) handle(batch []*pending) {
	var released int64
	for i, it := range batch {
		released += it.size
		if it.sync != nil {
			p.flush()
			err := it.err
			if p.closing.Load() {
				err = errClosing
			}
			batch[i] = nil // from here on the item is its OnPublish's
			it.sync <- err
			continue
		}
		p.settle(it)
	}
	p.flush()
	for _, it := range batch {
		if it != nil {
			it.release()
		}
	}
	p.bytes.Add(-released)
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

// settle decides one publish (not QoS 2): acknowledge and forward, answer
// with a reason code, or close the connection.
func (p *pipe) settle(it *pending) {
	a, qos := p.h.a, it.pk.FixedHeader.Qos
	if p.closing.Load() {
		// A publish behind one that closed the connection: not
		// acknowledged, so the device sends it again (at-least-once).
		return
	}
	if it.after != nil {
		p.answer(it)
		return
	}
	if !it.intake || it.err == nil {
		if it.intake {
			a.stats.stored.Add(1)
		}
		if qos == 1 {
			p.ackBuf = append(p.ackBuf, packets.Puback<<4, 2, byte(it.pk.PacketID>>8), byte(it.pk.PacketID))
		}
		p.fwd = append(p.fwd, it)
		return
	}
	if refused(it.err) {
		a.countRejected(it.err)
		a.rejectLog.log(a.log, "lanmqtt: message rejected", "client", p.cl.ID, "device", it.device, "topic", it.pk.TopicName, "err", it.err)
		switch {
		case qos == 0:
		case p.cl.Properties.ProtocolVersion == 5:
			p.flush()
			if err := p.cl.WritePacket(refusalAck(packets.Puback, it.pk.PacketID, it.err)); err != nil {
				p.stop(packets.ErrUnspecifiedError)
			}
		default:
			// MQTT 3.1.1 has no negative acknowledgement; a PUBACK would
			// claim the message is stored. Close, as IoT Hub does.
			p.flush()
			a.stats.refusedClosed.Add(1)
			p.stop(packets.ErrImplementationSpecificError)
		}
		return
	}
	a.stats.failed.Add(1)
	a.failLog.log(a.log, "lanmqtt: message not stored, not acknowledged", "client", p.cl.ID, "device", it.device, "topic", it.pk.TopicName, "err", it.err)
	if qos > 0 {
		p.flush()
		p.stop(packets.ErrServerBusy) // the device resends after reconnecting
	}
}

// answer settles a relayed device's request: its PUBACK (the request was
// received; the answer carries its status) and its answer.
func (p *pipe) answer(it *pending) {
	a := p.h.a
	if it.intake {
		switch {
		case it.err == nil:
			a.stats.stored.Add(1)
		case refused(it.err):
			a.countRejected(it.err)
		default:
			a.stats.failed.Add(1)
			a.failLog.log(a.log, "lanmqtt: reported properties not stored", "client", p.cl.ID, "device", it.device, "err", it.err)
		}
	}
	if it.pk.FixedHeader.Qos == 1 {
		p.ackBuf = append(p.ackBuf, packets.Puback<<4, 2, byte(it.pk.PacketID>>8), byte(it.pk.PacketID))
	}
	it.after(it.err)
}

// flush writes the PUBACKs gathered so far in one write, then forwards the
// acknowledged publishes to LAN subscribers, in order.
func (p *pipe) flush() {
	if len(p.ackBuf) > 0 {
		if err := p.writeAcks(p.ackBuf); err != nil {
			p.stop(packets.ErrUnspecifiedError) // the connection is broken
		}
		p.ackBuf = p.ackBuf[:0]
	}
	for i, it := range p.fwd {
		// The inline relay skips mochi's inflight bookkeeping, so the
		// device's packet id is only there to pass validation; each
		// subscriber gets an id of its own.
		_ = p.h.srv.InjectPacket(p.relay, it.pk)
		p.fwd[i] = nil
	}
	p.fwd = p.fwd[:0]
}

// writeAcks writes b on the client's connection under the client's lock,
// which mochi's own writes hold, so packets never interleave. mochi keeps
// only whole packets in its output buffer, so writing beside it is safe;
// PUBACKs need no order with outgoing PUBLISHes.
func (p *pipe) writeAcks(b []byte) error {
	cl := p.cl
	if cl.Closed() || cl.Net.Conn == nil {
		return mqtt.ErrConnectionClosed
	}
	cl.Lock()
	defer cl.Unlock()
	_ = cl.Net.Conn.SetWriteDeadline(time.Now().Add(ackWriteTimeout))
	_, err := cl.Net.Conn.Write(b)
	_ = cl.Net.Conn.SetWriteDeadline(time.Time{})
	return err
}

// stop closes the connection and takes nothing more from it.
func (p *pipe) stop(reason packets.Code) {
	if p.closing.Swap(true) {
		return
	}
	if p.cl.Properties.ProtocolVersion == 5 {
		_ = p.h.srv.DisconnectClient(p.cl, reason)
		return
	}
	p.cl.Stop(reason) // v3 has no server DISCONNECT: just close
}

// errClosing answers a QoS 2 publish that arrived behind one that closed
// the connection.
var errClosing = errors.New("connection closing")

// refused reports whether err refuses a message for good.
func refused(err error) bool {
	return errors.Is(err, southbound.ErrRejected) || errors.Is(err, errTooLarge) || errors.Is(err, errBadBag)
}

// refusalAck is a v5 PUBACK or PUBREC with the reason code for err.
func refusalAck(kind byte, id uint16, err error) packets.Packet {
	code := codeRejected
	switch {
	case errors.Is(err, errTooLarge):
		code = codeTooLarge
	case errors.Is(err, errBadBag):
		code = codeBadTopic
	}
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: kind},
		PacketID:    id,
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: code.Reason},
	}
}

// countRejected counts a refusal by reason.
func (a *Adapter) countRejected(err error) {
	a.stats.rejected.Add(1)
	switch {
	case errors.Is(err, errTooLarge):
		a.stats.rejectedTooLarge.Add(1)
	case errors.Is(err, errBadBag):
		a.stats.rejectedBadBag.Add(1)
	default:
		a.stats.rejectedUnroutable.Add(1)
	}
}

// pipes is the hook's set of connection pipes and their ackers' owner.
type pipes struct {
	sync.Map // *mqtt.Client -> *pipe
	wg       sync.WaitGroup
}
