package northbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/northbound/mqtt3"
)

// ErrRefused is wrapped when the hub refuses an identity's credentials
// (CONNACK 4 or 5: bad key, expired token, unknown or disabled device).
var ErrRefused = errors.New("hub refused the credentials")

// errLost ends a session whose connection broke or was closed by the hub.
var errLost = errors.New("connection lost")

// link is one identity: its supervisor, its state, and the commands it
// runs. Its worker (worker.go) owns connecting and draining and runs only
// while there is work; see session for the other goroutines.
type link struct {
	p      *Pool
	id     *identity.Identity
	stream string
	log    *slog.Logger
	st     state
	ctx    context.Context // the Run context, for commands; ends when the identity is removed
	cancel context.CancelCauseFunc

	// Removing the identity (reload.go): connCtx ends at once, so a
	// connect in progress or a back-off gives up; a connected session
	// lets what is in flight land first, as for a token renewal.
	connCtx    context.Context
	cancelConn context.CancelFunc
	retiring   atomic.Bool
	stopped    chan struct{} // closed when the identity's part of a Run is over

	acked     atomic.Uint64 // highest sequence the hub acknowledged
	rid       atomic.Uint64 // request id counter
	secondary atomic.Bool   // sign with the secondary key
	connects  int           // successful connects, owned by the worker
	lastEnd   string        // why the last session ended (a Reconnect* reason), owned by the worker
	highSent  uint64        // highest sequence ever published, owned by the worker
	failures  int           // consecutive failures, owned by the worker

	// The hub (provision.go); owned by the worker, except hid.
	hub          *hubTarget                        // nil until a DPS identity has one
	hid          atomic.Pointer[identity.Identity] // hub.hid, for every goroutine
	reprovision  bool                              // register with DPS before the next connect
	cacheTried   bool                              // the kept assignment was looked at
	hubFailSince time.Time                         // first of the current run of failures at the hub

	// The worker (worker.go).
	sv       supervisor
	sess     *session        // the connected session, nil when none; owned by the worker
	wstate   atomic.Int32    // stopped, parked, running or kicked
	kickFn   func()          // l.kick, made once
	wg       *sync.WaitGroup // Pool.Run's: one count per started link and per worker
	stopKick func() bool     // unregisters the kick on the end of the Run context

	cmds         chan struct{} // semaphore: commands running
	handlers     tracker       // command handlers in progress
	c2dInHandler atomic.Int32  // C2D messages running or waiting for a slot
	c2dRetries   atomic.Int32  // consecutive redelivery reconnects (back-off)

	// Desired properties (desired.go).
	slotMu      sync.Mutex
	slot        *desiredDoc   // the newest document not yet applied
	desiredWake chan struct{} // cap 1: a document was offered
	desiredTurn chan struct{} // cap 1: held by the goroutine applying documents
	// Owned by the holder of desiredTurn:
	desiredVersion int64 // highest desired $version handled
	desiredRetries int   // consecutive transient outcomes

	// Subscriptions that follow a relayed device (methods.go), guarded by
	// subMu.
	subMu   sync.Mutex
	subOff  map[string]bool // filters SetListening turned off
	subSess *session        // the session that last subscribed
	subOn   map[string]bool // filters subSess is subscribed to
}

func newLink(p *Pool, id *identity.Identity) *link {
	l := &link{p: p, id: id, stream: string(id.ID), log: p.log.With("identity", string(id.ID)),
		cmds: make(chan struct{}, p.cfg.MaxCommands), desiredWake: make(chan struct{}, 1), desiredTurn: make(chan struct{}, 1)}
	l.st.s.Identity = id.ID
	if id.DPS == nil {
		l.hub = &hubTarget{ep: p.ep, host: p.cfg.Host, hid: id}
		l.st.s.Hub, l.st.s.DeviceID = p.cfg.Host, id.Device
	}
	l.kickFn = l.kick
	l.sv = supervisor{
		lim:     p.limiter,
		bo:      backoff{min: p.cfg.BackoffMin, max: p.cfg.BackoffMax},
		connect: l.connect,
		report:  l.failed,
		refused: func(err error) bool { return errors.Is(err, ErrRefused) },
	}
	return l
}

// failed records a failed attempt or a lost connection.
func (l *link) failed(err error, fails int) {
	l.failures = fails
	l.hubFailed(err)
	now := time.Now()
	l.st.update(func(s *Status) { s.LastError, s.LastErrorTime, s.LastErrorCleared = err.Error(), now, time.Time{} })
	if errors.Is(err, ErrRefused) && l.id.Keys() > 1 {
		l.secondary.Store(!l.secondary.Load()) // try the other key next time
	}
	if fails == 1 || errors.Is(err, ErrRefused) {
		l.p.warn.warn("hub connection failed; retrying with back-off", "identity", string(l.id.ID), "err", err)
	} else {
		l.log.Debug("hub connection failed", "err", err, "failures", fails)
	}
}

// session is one MQTT connection of a link. Its goroutines: the
// connection's reader (mqtt3) takes what the hub sends, for as long as it
// is up; the link's worker (worker.go) drains the stream while there is
// something to send; an acker runs only while publishes are in flight, a
// desired-properties runner only while there is a document to apply, and
// one goroutine per command being carried out (see link.spawn).
type session struct {
	l       *link
	conn    *mqtt3.Conn
	ctx     context.Context // ends when the connection ends
	cancel  context.CancelCauseFunc
	renewAt time.Time // zero: no renewal (certificate, password)

	mu   sync.Mutex
	twin map[string]chan twinResponse // pending twin requests by $rid; nil when none

	start  time.Time
	cursor uint64      // last sequence sent; owned by the worker
	timer  *time.Timer // wakes the parked worker for keep-alive and renewal

	redeliver      sync.Once     // the redelivery reconnect is armed
	redeliverTimer *time.Timer   // guarded by mu
	redeliverIn    time.Duration // its delay; guarded by mu
	redeliverDue   atomic.Bool   // drain ends the session with errRedeliver

	slots chan struct{} // in-flight window
	queue chan *flight  // sent, awaiting acknowledgement, in order

	ackMu   sync.Mutex
	acking  bool           // an acker goroutine is running
	ackers  sync.WaitGroup // the acker
	desired bool           // a desired runner is running; guarded by l.slotMu
	twinDue bool           // the twin GET of this session is still to be made (by whichever runner starts first); guarded by l.slotMu

	// C2D messages are carried out one at a time, in the order the hub
	// sent them (downlink.go enqueueC2D).
	c2dMu      sync.Mutex
	c2dQ       []c2dItem
	c2dRunning bool // a runner goroutine is carrying out c2dQ
	c2dHalted  bool // one was left for redelivery: leave the rest too
}

type twinResponse struct {
	status int
	body   []byte
}

// connect makes one connection attempt. On success it sets l.sess.
func (l *link) connect(ctx context.Context) error {
	cfg, prof := &l.p.cfg, l.p.prof
	s := &session{l: l,
		slots: make(chan struct{}, cfg.InFlight), queue: make(chan *flight, cfg.InFlight), twinDue: l.p.hasTwin()}
	hub, err := l.target(ctx)
	if err != nil {
		return err
	}
	hid, ep := hub.hid, hub.ep
	s.ctx, s.cancel = context.WithCancelCause(l.ctx) // not ctx: a removal lets the session finish
	user, pass := prof.username(hid, hub.host), prof.password(hid)
	var expiry time.Time
	if prof.sas(hid) {
		var renew time.Time
		expiry, renew = l.p.schedule.Next(time.Now())
		tok, err := hid.Token(hub.host, expiry, l.secondary.Load())
		if err != nil {
			s.cancel(nil)
			return err
		}
		pass, s.renewAt = tok, renew
	}
	o := mqtt3.Options{
		ClientID:     prof.clientID(hid),
		Username:     user,
		Password:     pass,
		KeepAlive:    cfg.KeepAlive,
		PingTimeout:  min(cfg.AckTimeout, 10*time.Second),
		WriteTimeout: cfg.AckTimeout,
		OnMessage:    s.onMessage,
		OnLost:       func(err error) { s.end(fmt.Errorf("%w: %w", errLost, err)) },
	}
	// Dial, handshake and SUBSCRIBE run on a goroutine of their own that
	// ends with them: they grow a stack to tens of KiB, which the worker,
	// also the identity's sender once connected, should not keep.
	errc := make(chan error, 1)
	go func() {
		dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
		defer cancel()
		nc, err := ep.dial(dctx, hid)
		if err == nil {
			s.conn, err = mqtt3.Connect(dctx, nc, o)
		}
		if err == nil {
			if err = s.subscribe(); err != nil {
				s.conn.Close()
			}
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		s.cancel(nil)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("connect %s: no answer within %v", ep.url, cfg.ConnectTimeout)
		}
		var refused *mqtt3.RefusedError
		if errors.As(err, &refused) && (refused.Code == 4 || refused.Code == 5) {
			return fmt.Errorf("connect %s: %w (%v)", ep.url, ErrRefused, err)
		}
		return fmt.Errorf("connect %s: %w", ep.url, err)
	}
	l.connects++
	l.hubFailSince = time.Time{}
	now := time.Now()
	l.st.update(func(st *Status) {
		st.Connected, st.ConnectedSince, st.TokenExpiry = true, now, expiry
		if l.connects > 1 {
			st.Reconnects++
			if st.ReconnectsBy == nil {
				st.ReconnectsBy = map[string]uint64{}
			}
			st.ReconnectsBy[l.lastEnd]++
		}
		if st.LastError != "" && st.LastErrorCleared.IsZero() {
			st.LastErrorCleared = now
		}
	})
	if l.failures > 0 {
		l.p.note.info("hub connection restored", "identity", l.stream, "after_failures", l.failures)
		l.failures = 0
	}
	l.log.Debug("connected", "token_expiry", expiry)
	s.start, s.cursor = now, l.acked.Load()
	l.sess = s
	return nil
}

// end ends the session for err (the first reason wins) and wakes the
// worker to reconnect.
func (s *session) end(err error) {
	s.cancel(err)
	s.l.kick()
}

// finish closes a session that ended for reason and returns the reason it
// ended for in the end. The acker finishes what is in flight: after a loss
// it gives up at once; a renewal waits for those PUBACKs, one AckTimeout in
// all, and if they do not come the session ends for that instead.
func (s *session) finish(reason error) error {
	l := s.l
	if planned(reason) {
		t := time.AfterFunc(l.p.cfg.AckTimeout, func() {
			s.cancel(fmt.Errorf("%w: in-flight messages: %w", reason, errAckTimeout))
		})
		s.ackers.Wait()
		t.Stop()
		switch {
		case context.Cause(s.ctx) != nil:
			reason = context.Cause(s.ctx) // lost or timed out while waiting: not a clean reconnect
		case errors.Is(reason, errRemoved):
			l.log.Debug("identity removed: in-flight messages landed")
		case errors.Is(reason, errRenew):
			l.st.update(func(st *Status) { st.Renewals++ })
			l.log.Debug("renewing token: planned reconnect")
		default:
			l.log.Debug("reconnecting for a cloud-to-device redelivery")
		}
	}
	s.mu.Lock()
	if s.redeliverTimer != nil {
		s.redeliverTimer.Stop()
	}
	s.mu.Unlock()
	s.ackers.Wait()
	s.cancel(reason)
	if s.timer != nil {
		s.timer.Stop()
	}
	s.conn.Close()
	l.st.update(func(st *Status) { st.Connected, st.ConnectedSince, st.InFlight = false, time.Time{}, 0 })
	return reason
}

// subscribe subscribes to the profile's downlink topics in one SUBSCRIBE.
func (s *session) subscribe() error {
	s.l.subMu.Lock()
	defer s.l.subMu.Unlock()
	subs := s.l.p.prof.subscriptions(s.l.hubID())
	s.l.subscriptionsWanted(s, subs)
	list := make([]mqtt3.Subscription, 0, len(subs))
	for f, q := range subs {
		list = append(list, mqtt3.Subscription{Filter: f, QoS: q})
	}
	slices.SortFunc(list, func(a, b mqtt3.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	ctx, cancel := context.WithTimeout(s.ctx, s.l.p.cfg.AckTimeout)
	defer cancel()
	codes, err := s.conn.Subscribe(ctx, list)
	switch {
	case s.ctx.Err() != nil:
		return context.Cause(s.ctx)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("subscribe: no SUBACK within %v", s.l.p.cfg.AckTimeout)
	case err != nil:
		return fmt.Errorf("subscribe: %w", err)
	}
	for i, code := range codes {
		if code == 0x80 {
			return fmt.Errorf("subscribe %s: refused by the hub", list[i].Filter)
		}
	}
	return nil
}

// spawn runs f on a goroutine the link waits for before its Run returns,
// unless the link is shutting down. Commands and desired properties run
// this way, never on the connection's reader.
func (l *link) spawn(f func()) bool {
	if !l.handlers.enter() {
		return false
	}
	go func() {
		defer l.handlers.exit()
		f()
	}()
	return true
}

func (l *link) nextRID() string { return fmt.Sprintf("%x", l.rid.Add(1)) }

// tracker counts goroutines in progress and lets close wait for them;
// after close, enter refuses.
type tracker struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{}
}

func (t *tracker) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.n++
	return true
}

func (t *tracker) exit() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// open lets enter succeed again (a pool may be run again).
func (t *tracker) open() {
	t.mu.Lock()
	t.closed = false
	t.mu.Unlock()
}

func (t *tracker) close() {
	t.mu.Lock()
	t.closed = true
	if t.n == 0 {
		t.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	t.idle = idle
	t.mu.Unlock()
	<-idle
}
