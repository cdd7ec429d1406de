package testpeer

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A raw MQTT 3.1.1 QoS 1 load generator: each connection writes its own
// CONNECT, PUBLISH and DISCONNECT bytes and reads CONNACK and PUBACK, with
// no client library in between, so that what is measured is the broker.

// Errors a load run reports (wrapped, with the connection's client id).
var (
	// ErrPeerClosed: the broker closed the connection (or reset it) while
	// the load was running.
	ErrPeerClosed = errors.New("connection closed by the peer")
	// ErrPubackOrder: a PUBACK acknowledged a publish other than the
	// oldest unacknowledged one of its connection. MQTT 3.1.1 (4.6)
	// requires PUBACKs in the order the publishes were received.
	ErrPubackOrder = errors.New("PUBACK out of order")
	// ErrRefused: the CONNACK carried a return code other than 0.
	ErrRefused = errors.New("connection refused by the broker")
	// ErrProtocol: the broker sent something a QoS 1 publisher does not
	// expect (a PUBACK for no publish in flight, a malformed packet).
	ErrProtocol = errors.New("protocol error")
	// ErrStalled: PUBACKs still missing when the run's time was up.
	ErrStalled = errors.New("publishes not acknowledged in time")
)

// LoadConn is one publisher connection.
type LoadConn struct {
	Addr     string      // host:port
	TLS      *tls.Config // nil: plain TCP
	ClientID string
	Username string // "": no username
	Password string // "": no password (sent only with a username)
	Topic    string
}

// Load describes a run: every connection publishes QoS 1 messages of
// Payload bytes on its topic, with up to Window unacknowledged: it sends
// Window publishes, then one more per PUBACK. Sending stops after Duration
// or once each connection has sent Count, whichever comes first; at least
// one must be set. Then each connection waits up to DrainTimeout for its
// outstanding PUBACKs and disconnects.
type Load struct {
	Conns    []LoadConn
	Window   int           // 1..65535
	Payload  int           // bytes per message
	Duration time.Duration // 0: until Count (bounded by MaxCountDuration)
	Count    int           // publishes per connection; 0: until Duration

	ConnectTimeout time.Duration // dial, TLS and CONNACK of one connection; default 10s
	DrainTimeout   time.Duration // default 10s
}

// MaxCountDuration bounds the sending of a run that has a Count and no
// Duration; a connection that has not sent Count by then fails with
// ErrStalled.
const MaxCountDuration = time.Minute

// LoadResult is what a run measured, over all its connections.
type LoadResult struct {
	Conns int
	Sent  int64 // PUBLISH packets written
	Acked int64 // PUBACKs received
	// Elapsed runs from the moment every connection was connected and
	// sending began to the last PUBACK.
	Elapsed time.Duration
	// Rate is Acked per second of Elapsed.
	Rate float64
	// P50, P90 and P99 are percentiles of the time from writing a
	// PUBLISH to reading its PUBACK, rounded up to the next 1%.
	P50, P90, P99 time.Duration
	// OutOfOrder counts PUBACKs that acknowledged a publish other than
	// their connection's oldest unacknowledged one.
	OutOfOrder int64
	// Errs holds one error per connection that failed or saw PUBACKs out
	// of order; each wraps one of the Err* values above or a network error.
	Errs []error

	lat latencies
}

// Err joins Errs, or is nil.
func (r LoadResult) Err() error { return errors.Join(r.Errs...) }

// Add merges o into r, as if both had been one run whose Elapsed is the sum
// of theirs: for combining alternating rounds of the same load.
func (r *LoadResult) Add(o LoadResult) {
	r.Conns = max(r.Conns, o.Conns)
	r.Sent += o.Sent
	r.Acked += o.Acked
	r.Elapsed += o.Elapsed
	r.OutOfOrder += o.OutOfOrder
	r.Errs = append(r.Errs, o.Errs...)
	r.lat.merge(&o.lat)
	r.summarise()
}

func (r *LoadResult) summarise() {
	r.Rate = 0
	if r.Elapsed > 0 {
		r.Rate = float64(r.Acked) / r.Elapsed.Seconds()
	}
	r.P50, r.P90, r.P99 = r.lat.quantile(0.50), r.lat.quantile(0.90), r.lat.quantile(0.99)
}

func (r LoadResult) String() string {
	return fmt.Sprintf("%d conns: %d acked of %d sent in %v (%.0f msg/s), PUBACK p50 %v p90 %v p99 %v",
		r.Conns, r.Acked, r.Sent, r.Elapsed.Round(time.Millisecond), r.Rate,
		r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond))
}

// RunLoad connects every connection of l (all at once), then starts them
// sending together, and returns what they measured. The error is about l
// itself or a connection that could not connect (then nothing was sent), or
// else it is r.Err(). Cancelling ctx ends the run early.
func RunLoad(ctx context.Context, l Load) (LoadResult, error) {
	if err := l.check(); err != nil {
		return LoadResult{}, err
	}
	pubs := make([]*publisher, len(l.Conns))
	errs := make([]error, len(l.Conns))
	var wg sync.WaitGroup
	for i, c := range l.Conns {
		wg.Go(func() { pubs[i], errs[i] = connect(ctx, c, l) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range pubs {
			if p != nil {
				p.conn.Close()
			}
		}
		return LoadResult{}, err
	}

	start := time.Now()
	sendUntil := start.Add(l.Duration)
	if l.Duration == 0 {
		sendUntil = start.Add(MaxCountDuration)
	}
	for _, p := range pubs {
		wg.Go(func() { p.run(ctx, start, sendUntil, sendUntil.Add(l.DrainTimeout)) })
	}
	wg.Wait()

	r := LoadResult{Conns: len(pubs)}
	last := start
	for _, p := range pubs {
		r.Sent += p.sent
		r.Acked += p.acked
		r.OutOfOrder += p.outOfOrder
		if p.err != nil {
			r.Errs = append(r.Errs, p.err)
		}
		if p.lastAck.After(last) {
			last = p.lastAck
		}
		r.lat.merge(&p.lat)
	}
	r.Elapsed = last.Sub(start)
	r.summarise()
	return r, r.Err()
}

func (l *Load) check() error {
	switch {
	case len(l.Conns) == 0:
		return errors.New("load: no connections")
	case l.Window < 1 || l.Window > 65535:
		return fmt.Errorf("load: window must be in 1..65535 (got %d)", l.Window)
	case l.Payload < 0:
		return fmt.Errorf("load: payload must be >= 0 (got %d)", l.Payload)
	case l.Duration <= 0 && l.Count <= 0:
		return errors.New("load: set a duration, a count or both")
	case l.Duration < 0 || l.Count < 0:
		return errors.New("load: duration and count must not be negative")
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = 10 * time.Second
	}
	if l.DrainTimeout <= 0 {
		l.DrainTimeout = 10 * time.Second
	}
	for i, c := range l.Conns {
		if c.Addr == "" || c.ClientID == "" || c.Topic == "" {
			return fmt.Errorf("load: connection %d: address, client id and topic are required", i)
		}
		if c.Password != "" && c.Username == "" {
			return fmt.Errorf("load: connection %d: a password needs a username in MQTT 3.1.1", i)
		}
		// PUBLISH: fixed header, topic, packet id, payload; at most 256 MiB.
		if 2+len(c.Topic)+2+l.Payload > 268435455 {
			return fmt.Errorf("load: connection %d: publish too large", i)
		}
	}
	return nil
}

// Packet types (first byte of the fixed header, flags included).
const (
	pktConnect    = 0x10
	pktConnack    = 0x20
	pktPublishQ1  = 0x32
	pktPuback     = 0x40
	pktDisconnect = 0xe0

	maxPacket = 1 << 20 // the largest packet read from the broker
)

// publisher is one connection of a run. run's goroutine writes; its reader
// goroutine reads. Counters and lat belong to the goroutine named beside
// them and are read after both have ended.
type publisher struct {
	id     string
	conn   net.Conn
	br     *bufio.Reader
	window int
	count  int    // publishes to send; 0: no limit
	timed  bool   // the run has a Duration: reaching it is no failure
	pkt    []byte // a PUBLISH whose packet id is patched per message
	idAt   int    // offset of the packet id in pkt

	mu      sync.Mutex
	pending ring // publishes written and not acknowledged, in write order

	sent       int64     // writer
	acked      int64     // reader
	outOfOrder int64     // reader
	lastAck    time.Time // reader
	lat        latencies // reader
	err        error     // writer, after the reader ended

	closing atomic.Bool // set by the writer before it closes conn
}

// connect dials, says CONNECT (clean session) and waits for CONNACK 0.
func connect(ctx context.Context, c LoadConn, l Load) (*publisher, error) {
	ctx, cancel := context.WithTimeout(ctx, l.ConnectTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if c.TLS != nil {
		d := tls.Dialer{Config: c.TLS}
		conn, err = d.DialContext(ctx, "tcp", c.Addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", c.ClientID, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	p := &publisher{id: c.ClientID, conn: conn, br: bufio.NewReaderSize(conn, 4096), window: l.Window, count: l.Count, timed: l.Duration > 0}
	if _, err := conn.Write(connectPacket(c)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: CONNECT: %w", c.ClientID, err)
	}
	typ, body, err := readPacket(p.br)
	if err != nil {
		conn.Close()
		if isClosed(err) {
			err = fmt.Errorf("%w: %v", ErrPeerClosed, err)
		}
		return nil, fmt.Errorf("%s: waiting for CONNACK: %w", c.ClientID, err)
	}
	if typ != pktConnack || len(body) != 2 {
		conn.Close()
		return nil, fmt.Errorf("%s: %w: packet 0x%02x of %d bytes instead of CONNACK", c.ClientID, ErrProtocol, typ, len(body))
	}
	if body[1] != 0 {
		conn.Close()
		return nil, fmt.Errorf("%s: %w: CONNACK return code %d", c.ClientID, ErrRefused, body[1])
	}
	_ = conn.SetDeadline(time.Time{})
	p.pkt, p.idAt = publishPacket(c.Topic, l.Payload)
	p.pending = ring{buf: make([]inflight, l.Window)}
	return p, nil
}

// run sends until sendUntil (or the count), waits for the outstanding
// PUBACKs until drainUntil, disconnects and records the first error.
func (p *publisher) run(ctx context.Context, start, sendUntil, drainUntil time.Time) {
	_ = p.conn.SetDeadline(drainUntil) // no read or write outlives the run
	slots := make(chan struct{}, p.window)
	readerDone := make(chan struct{})
	var rerr error
	go func() {
		defer close(readerDone)
		rerr = p.read(slots)
	}()

	err := p.send(ctx, slots, readerDone, sendUntil)
	if err == nil {
		err = p.drain(ctx, slots, readerDone, drainUntil)
	}
	p.closing.Store(true)
	if err == nil {
		_, _ = p.conn.Write([]byte{pktDisconnect, 0})
	}
	p.conn.Close()
	<-readerDone
	// The reader's error explains a failed write, so it comes first; an
	// ordering error is kept only when nothing worse happened.
	switch {
	case rerr != nil && (err == nil || !errors.Is(rerr, ErrPubackOrder)):
		p.err = rerr
	case err != nil:
		p.err = err
	}
}

// send writes publishes while the window has room, until sendUntil or the
// count.
func (p *publisher) send(ctx context.Context, slots chan struct{}, readerDone <-chan struct{}, sendUntil time.Time) error {
	stop := time.NewTimer(time.Until(sendUntil))
	defer stop.Stop()
	limit := p.count
	if limit == 0 {
		limit = math.MaxInt
	}
	var id uint16
	for p.sent < int64(limit) {
		select {
		case slots <- struct{}{}:
		case <-stop.C:
			if !p.timed {
				return fmt.Errorf("%s: %w: sent %d of %d in %v", p.id, ErrStalled, p.sent, p.count, MaxCountDuration)
			}
			return nil
		case <-readerDone:
			return nil // the reader's error says why
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", p.id, ctx.Err())
		}
		if id++; id == 0 {
			id = 1
		}
		binary.BigEndian.PutUint16(p.pkt[p.idAt:], id)
		now := time.Now()
		p.mu.Lock()
		p.pending.push(inflight{id: id, at: now})
		p.mu.Unlock()
		if _, err := p.conn.Write(p.pkt); err != nil {
			if isClosed(err) {
				err = fmt.Errorf("%w: %v", ErrPeerClosed, err)
			}
			return fmt.Errorf("%s: write PUBLISH: %w", p.id, err)
		}
		p.sent++
	}
	return nil
}

// drain waits until every publish in flight is acknowledged: until the
// writer holds all window slots.
func (p *publisher) drain(ctx context.Context, slots chan struct{}, readerDone <-chan struct{}, drainUntil time.Time) error {
	stop := time.NewTimer(time.Until(drainUntil))
	defer stop.Stop()
	for range p.window {
		select {
		case slots <- struct{}{}:
		case <-stop.C:
			p.mu.Lock()
			n := p.pending.n
			p.mu.Unlock()
			return fmt.Errorf("%s: %w: %d PUBACKs missing when the run ended", p.id, ErrStalled, n)
		case <-readerDone:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", p.id, ctx.Err())
		}
	}
	return nil
}

// read takes PUBACKs until the connection ends, freeing a window slot for
// each. It returns nil when the writer closed the connection.
func (p *publisher) read(slots <-chan struct{}) error {
	var orderErr error
	for { // bounded by the connection's deadline, and by the count sent (below)
		typ, body, err := readPacket(p.br)
		if p.closing.Load() {
			return orderErr
		}
		if err != nil {
			p.mu.Lock()
			n := p.pending.n
			p.mu.Unlock()
			switch {
			case isClosed(err):
				return fmt.Errorf("%s: %w (publishes in flight: %d): %v", p.id, ErrPeerClosed, n, err)
			case errors.Is(err, os.ErrDeadlineExceeded):
				return fmt.Errorf("%s: %w: %d PUBACKs missing when the run ended", p.id, ErrStalled, n)
			}
			return fmt.Errorf("%s: read: %w", p.id, err)
		}
		// Every packet is a PUBACK of a publish in flight or ends the loop
		// (we send no PINGREQ): it reads no more packets than were sent.
		if typ != pktPuback || len(body) != 2 {
			return fmt.Errorf("%s: %w: packet 0x%02x of %d bytes where a PUBACK was expected", p.id, ErrProtocol, typ, len(body))
		}
		id := binary.BigEndian.Uint16(body)
		now := time.Now()
		p.mu.Lock()
		oldest, _ := p.pending.peek()
		sent, ok := p.pending.remove(id)
		p.mu.Unlock()
		if !ok {
			return fmt.Errorf("%s: %w: PUBACK for packet id %d, which is not in flight", p.id, ErrProtocol, id)
		}
		if oldest.id != id {
			p.outOfOrder++
			if orderErr == nil {
				orderErr = fmt.Errorf("%s: %w: PUBACK %d while %d was the oldest unacknowledged", p.id, ErrPubackOrder, id, oldest.id)
			}
		}
		p.acked++
		p.lastAck = now
		p.lat.add(now.Sub(sent.at))
		<-slots // never blocks: the writer took a slot before writing this publish
	}
}

// isClosed reports whether err means the peer closed or reset the
// connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readPacket reads one MQTT packet: its first byte and its body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, noEOF(err)
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, fmt.Errorf("%w: remaining length longer than 4 bytes", ErrProtocol)
		}
		mult *= 128
	}
	if n > maxPacket {
		return 0, nil, fmt.Errorf("%w: packet 0x%02x of %d bytes", ErrProtocol, typ, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, noEOF(err)
	}
	return typ, body, nil
}

// inflight is a publish written and not yet acknowledged.
type inflight struct {
	id uint16
	at time.Time
}

// ring holds the publishes in flight of one connection, oldest first; its
// capacity is the window.
type ring struct {
	buf     []inflight
	head, n int
}

func (r *ring) push(f inflight) {
	r.buf[(r.head+r.n)%len(r.buf)] = f
	r.n++
}

func (r *ring) peek() (inflight, bool) {
	if r.n == 0 {
		return inflight{}, false
	}
	return r.buf[r.head], true
}

// remove takes the publish with packet id out, wherever it is, keeping
// the others in order.
func (r *ring) remove(id uint16) (inflight, bool) {
	for i := range r.n {
		if r.buf[(r.head+i)%len(r.buf)].id != id {
			continue
		}
		f := r.buf[(r.head+i)%len(r.buf)]
		for j := i; j > 0; j-- { // close the gap from the old end
			r.buf[(r.head+j)%len(r.buf)] = r.buf[(r.head+j-1)%len(r.buf)]
		}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		return f, true
	}
	return inflight{}, false
}

// latencies is a histogram of durations in buckets 1% wide: bucket 0
// holds what is under latencyFloor, bucket i >= 1 what is under
// latencyFloor * 1.01^i. Memory stays fixed however long the run.
type latencies struct {
	counts []uint64
	n      uint64
}

const (
	latencyFloor   = time.Microsecond
	latencyBuckets = 1900 // up to 1.01^1899 µs, about 160 s
)

var logStep = math.Log(1.01)

func (l *latencies) add(d time.Duration) {
	if l.counts == nil {
		l.counts = make([]uint64, latencyBuckets)
	}
	i := 0
	if d >= latencyFloor {
		i = int(math.Log(float64(d)/float64(latencyFloor))/logStep) + 1
	}
	l.counts[min(i, latencyBuckets-1)]++
	l.n++
}

func (l *latencies) merge(o *latencies) {
	if o.n == 0 {
		return
	}
	if l.counts == nil {
		l.counts = make([]uint64, latencyBuckets)
	}
	for i, c := range o.counts {
		l.counts[i] += c
	}
	l.n += o.n
}

// quantile returns the upper edge of the bucket that holds quantile q.
func (l *latencies) quantile(q float64) time.Duration {
	if l.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(l.n)))
	var seen uint64
	for i, c := range l.counts {
		if seen += c; seen >= max(rank, 1) {
			return time.Duration(float64(latencyFloor) * math.Pow(1.01, float64(i)))
		}
	}
	return time.Duration(float64(latencyFloor) * math.Pow(1.01, latencyBuckets))
}
