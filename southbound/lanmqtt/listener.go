package lanmqtt

import (
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// trackedListener is a mochi listener over a net.Listener we opened. Unlike
// mochi's own, it gives every new connection a deadline for its CONNECT
// packet (mochi sets none until CONNECT arrives, so a silent peer would hold
// a goroutine forever and stall shutdown), and on Close it closes every
// connection it accepted and waits for every goroutine it started.
type trackedListener struct {
	id             string
	ln             net.Listener
	connectTimeout time.Duration
	srv            *mqtt.Server
	onError        func(error) // connection ended with an error; may be nil

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

var _ listeners.Listener = (*trackedListener)(nil)

func newTrackedListener(id string, ln net.Listener, connectTimeout time.Duration, srv *mqtt.Server, onError func(error)) *trackedListener {
	return &trackedListener{id: id, ln: ln, connectTimeout: connectTimeout, srv: srv, onError: onError, conns: map[net.Conn]struct{}{}}
}

func (l *trackedListener) ID() string                { return l.id }
func (l *trackedListener) Address() string           { return l.ln.Addr().String() }
func (l *trackedListener) Protocol() string          { return l.ln.Addr().Network() }
func (l *trackedListener) Init(_ *slog.Logger) error { return nil }

// Serve accepts connections until Close.
func (l *trackedListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()

	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() {
				return
			}
			// Temporary (EMFILE and the like): back off, bounded.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !l.track(c) {
			_ = c.Close()
			return
		}
		_ = c.SetDeadline(time.Now().Add(l.connectTimeout)) // mochi replaces it after CONNECT
		go func() {
			defer l.wg.Done()
			defer l.untrack(c)
			if err := establish(l.id, c); err != nil && l.onError != nil {
				l.onError(err)
			}
		}()
	}
}

func (l *trackedListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// track registers c and its goroutine; false once closed.
func (l *trackedListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	return true
}

func (l *trackedListener) untrack(c net.Conn) {
	_ = c.Close()
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Close stops accepting, disconnects the listener's clients as a server
// shutting down, closes what is left (connections still before CONNECT)
// and waits for all goroutines.
//
// It does not call closeClients, mochi's own closeListenerClients: in
// mochi v2.7.9 that takes the client map's read lock twice (GetByListener
// calls Len under its own RLock), and a client ending at that moment
// queues for the write lock in between (Clients.Delete), so the second
// read lock waits for the writer, which waits for the first: Close hung
// for good now and then in tests on a loaded machine (mochi-mqtt/server
// issue 488, open at v2.7.9).
func (l *trackedListener) Close(_ listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	_ = l.ln.Close()
	l.disconnectClients()
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// disconnectClients does what mochi's closeListenerClients does (a
// DISCONNECT with reason 0x8B, server shutting down, to MQTT 5 clients,
// then the client stopped) for the clients of this listener, reading the
// client map under one read lock (Clients.GetAll copies it).
func (l *trackedListener) disconnectClients() {
	if l.srv == nil {
		return
	}
	for _, cl := range l.srv.Clients.GetAll() {
		if cl.Net.Listener == l.id && !cl.Closed() {
			_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}
