package northbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edgegw/edgegw/identity"
)

// ErrRefused is wrapped when the hub refuses an identity's credentials
// (CONNACK 4 or 5: bad key, expired token, unknown or disabled device).
var ErrRefused = errors.New("hub refused the credentials")

// link is one identity: its supervisor, its state, and the commands it
// runs. One goroutine (run) owns connecting and draining; a second (the
// acker) exists while connected.
type link struct {
	p      *Pool
	id     *identity.Identity
	stream string
	log    *slog.Logger
	st     state
	ctx    context.Context // the Run context, for commands

	acked     atomic.Uint64 // highest sequence the hub acknowledged
	rid       atomic.Uint64 // request id counter
	secondary atomic.Bool   // sign with the secondary key
	connects  int           // successful connects, owned by run
	failures  int           // consecutive failures, owned by run

	cmds         chan struct{} // semaphore: commands running
	handlers     tracker       // command handlers in progress
	c2dInHandler atomic.Int32  // C2D messages running or waiting for a slot

	// Desired properties (desired.go).
	slotMu      sync.Mutex
	slot        *desiredDoc   // the newest document not yet applied
	desiredWake chan struct{} // cap 1: a document was offered
	desiredTurn chan struct{} // cap 1: held by the goroutine applying documents
	// Owned by the holder of desiredTurn:
	desiredVersion int64 // highest desired $version handled
	desiredRetries int   // consecutive transient outcomes
}

func newLink(p *Pool, id *identity.Identity) *link {
	l := &link{p: p, id: id, stream: string(id.ID), log: p.log.With("identity", string(id.ID)),
		cmds: make(chan struct{}, p.cfg.MaxCommands), desiredWake: make(chan struct{}, 1), desiredTurn: make(chan struct{}, 1)}
	l.st.s.Identity = id.ID
	return l
}

func (l *link) run(ctx context.Context) {
	l.ctx = ctx
	l.handlers.open()
	sv := &supervisor{
		lim:     l.p.limiter,
		bo:      backoff{min: l.p.cfg.BackoffMin, max: l.p.cfg.BackoffMax},
		connect: l.connect,
		report:  l.failed,
		refused: func(err error) bool { return errors.Is(err, ErrRefused) },
	}
	sv.run(ctx)
	l.handlers.close() // waits for commands still running
}

// failed records a failed attempt or a lost connection.
func (l *link) failed(err error, fails int) {
	l.failures = fails
	now := time.Now()
	l.st.update(func(s *Status) { s.LastError, s.LastErrorTime = err.Error(), now })
	if errors.Is(err, ErrRefused) && l.id.Keys() > 1 {
		l.secondary.Store(!l.secondary.Load()) // try the other key next time
	}
	if fails == 1 || errors.Is(err, ErrRefused) {
		l.p.warn.warn("hub connection failed; retrying with back-off", "identity", string(l.id.ID), "err", err)
	} else {
		l.log.Debug("hub connection failed", "err", err, "failures", fails)
	}
}

// session is one MQTT connection of a link.
type session struct {
	l       *link
	client  mqtt.Client
	ctx     context.Context // ends when the connection ends
	cancel  context.CancelCauseFunc
	renewAt time.Time // zero: no renewal (certificate, password)

	mu   sync.Mutex
	twin map[string]chan twinResponse // pending twin requests by $rid

	slots chan struct{} // in-flight window
	queue chan *flight  // sent, awaiting acknowledgement, in order
}

type twinResponse struct {
	status int
	body   []byte
}

// connect makes one connection attempt.
func (l *link) connect(ctx context.Context) (func() error, error) {
	cfg, prof := &l.p.cfg, l.p.prof
	s := &session{l: l, twin: map[string]chan twinResponse{},
		slots: make(chan struct{}, cfg.InFlight), queue: make(chan *flight, cfg.InFlight)}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	user, pass := prof.username(l.id), prof.password(l.id)
	var expiry time.Time
	if prof.sas(l.id) {
		var renew time.Time
		expiry, renew = l.p.schedule.Next(time.Now())
		tok, err := l.id.Token(l.p.cfg.Host, expiry, l.secondary.Load())
		if err != nil {
			return nil, err
		}
		pass, s.renewAt = tok, renew
	}
	o := mqtt.NewClientOptions()
	o.AddBroker(l.p.ep.url)
	o.SetClientID(prof.clientID(l.id))
	o.SetCredentialsProvider(func() (string, string) { return user, pass })
	o.SetProtocolVersion(4)
	o.SetCleanSession(true)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetOrderMatters(false)
	o.SetAutoAckDisabled(true) // onMessage acks; C2D only once carried out
	o.SetKeepAlive(cfg.KeepAlive)
	o.SetPingTimeout(min(cfg.AckTimeout, 10*time.Second))
	o.SetConnectTimeout(cfg.ConnectTimeout)
	o.SetWriteTimeout(cfg.AckTimeout)
	o.SetDialer(&net.Dialer{Timeout: cfg.ConnectTimeout})
	o.SetMaxResumePubInFlight(cfg.InFlight)
	o.SetTLSConfig(l.p.ep.tlsConfig(l.id))
	o.SetDefaultPublishHandler(s.onMessage)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		s.cancel(fmt.Errorf("connection lost: %w", err))
	})
	s.client = mqtt.NewClient(o)
	t := s.client.Connect()
	if !waitToken(ctx, t, cfg.ConnectTimeout+5*time.Second) {
		// ctx ended or paho hung: make sure nothing stays connected.
		waitToken(context.Background(), t, cfg.ConnectTimeout)
		s.client.Disconnect(0)
		s.cancel(nil)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("connect %s: no answer within %v", l.p.ep.url, cfg.ConnectTimeout)
	}
	if err := t.Error(); err != nil {
		s.cancel(nil)
		rc := t.(*mqtt.ConnectToken).ReturnCode()
		if rc == packets.ErrRefusedNotAuthorised || rc == packets.ErrRefusedBadUsernameOrPassword {
			return nil, fmt.Errorf("connect %s: %w (CONNACK %d: %v)", l.p.ep.url, ErrRefused, rc, err)
		}
		return nil, fmt.Errorf("connect %s: %w", l.p.ep.url, err)
	}
	l.connects++
	now := time.Now()
	l.st.update(func(st *Status) {
		st.Connected, st.ConnectedSince, st.TokenExpiry = true, now, expiry
		if l.connects > 1 {
			st.Reconnects++
		}
	})
	if l.failures > 0 {
		l.p.note.info("hub connection restored", "identity", l.stream, "after_failures", l.failures)
		l.failures = 0
	}
	l.log.Debug("connected", "token_expiry", expiry)
	return s.serve, nil
}

// waitToken waits for t up to d or until ctx ends; it reports whether t
// completed.
func waitToken(ctx context.Context, t mqtt.Token, d time.Duration) bool {
	select {
	case <-t.Done():
		return true
	default:
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.Done():
		return true
	case <-ctx.Done():
	case <-timer.C:
	}
	return false
}

// serve runs a connected session: subscribe, start applying desired
// properties (beginning with the twin's), drain the stream. It returns errRenew when the token is due, or why it ended.
func (s *session) serve() error {
	l := s.l
	reason := s.subscribe()
	if reason == nil {
		if l.handlers.enter() {
			go func() {
				defer l.handlers.exit()
				s.runDesired()
			}()
		}
		ackDone := make(chan struct{})
		go func() {
			defer close(ackDone)
			s.ackLoop()
		}()
		reason = s.drain()
		close(s.queue) // the acker finishes what is in flight
		<-ackDone
	}
	if errors.Is(reason, errRenew) {
		l.st.update(func(st *Status) { st.Renewals++ })
		l.log.Debug("renewing token: planned reconnect")
	}
	s.client.Disconnect(250)
	s.cancel(reason)
	l.st.update(func(st *Status) { st.Connected, st.ConnectedSince, st.InFlight = false, time.Time{}, 0 })
	if reason == nil {
		reason = context.Cause(s.ctx)
	}
	return reason
}

// subscribe subscribes to the profile's downlink topics in one SUBSCRIBE.
func (s *session) subscribe() error {
	subs := s.l.p.prof.subscriptions(s.l.id)
	t := s.client.SubscribeMultiple(subs, nil)
	if !waitToken(s.ctx, t, s.l.p.cfg.AckTimeout) {
		if s.ctx.Err() != nil {
			return context.Cause(s.ctx)
		}
		return fmt.Errorf("subscribe: no SUBACK within %v", s.l.p.cfg.AckTimeout)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for topic, code := range t.(*mqtt.SubscribeToken).Result() {
		if code == 0x80 {
			return fmt.Errorf("subscribe %s: refused by the hub", topic)
		}
	}
	return nil
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
