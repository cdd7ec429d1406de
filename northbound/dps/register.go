package dps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/iothub"
	"github.com/edgegw/edgegw/northbound/mqtt3"
)

// APIVersion is the DPS api-version the registrar speaks (the Node, Python
// and embedded C SDKs' version).
const APIVersion = "2019-03-31"

// Defaults of a Registrar.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	DefaultDeadline       = 5 * time.Minute
	DefaultTokenTTL       = time.Hour
	defaultPoll           = 2 * time.Second // the SDKs' interval when DPS gives no retry-after
)

// Registrar registers identities with DPS over MQTT, as the Azure device
// SDKs do. It is safe for concurrent use: each Register is one connection
// of its own. It paces nothing itself: callers take a connect-rate token
// before each Register, as for any connection.
type Registrar struct {
	// RootCAs verify DPS's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// ConnectTimeout bounds dial, TLS and CONNACK; RequestTimeout each
	// answer; Deadline the whole registration, polls and waits included.
	ConnectTimeout, RequestTimeout, Deadline time.Duration
	// TokenTTL is the lifetime of the SAS token (symmetric keys).
	TokenTTL time.Duration

	once     sync.Once
	sessions tls.ClientSessionCache
}

// Error is a registration that failed, with what DPS said. It wraps one of
// ErrUnauthorized, ErrDisabled, ErrFailed, ErrRejected, or the transport's
// error.
type Error struct {
	RegistrationID string
	Err            error
}

func (e *Error) Error() string { return "dps register " + e.RegistrationID + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Final reports whether err is DPS's final answer on this attestation
// (unauthorized, disabled, failed, rejected), as opposed to a network or
// service failure worth retrying soon.
func Final(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrDisabled) || errors.Is(err, ErrFailed) || errors.Is(err, ErrRejected)
}

func (r *Registrar) defaults() (connect, request, deadline, ttl time.Duration) {
	pick := func(v, d time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return d
	}
	return pick(r.ConnectTimeout, DefaultConnectTimeout), pick(r.RequestTimeout, DefaultRequestTimeout),
		pick(r.Deadline, DefaultDeadline), pick(r.TokenTTL, DefaultTokenTTL)
}

// Register registers id (which must have DPS set) and returns the hub and
// device id DPS assigned. It signs with the identity's primary key, or its
// secondary key when secondary is true and it has one (an individual
// enrollment's two keys). It honours DPS's retry-after on every answer,
// including 429 and 5xx, and gives up at the Deadline or when ctx ends.
func (r *Registrar) Register(ctx context.Context, id *identity.Identity, secondary bool) (Assignment, error) {
	if id.DPS == nil {
		return Assignment{}, errors.New("dps: identity " + string(id.ID) + " is not provisioned by DPS")
	}
	a, err := r.register(ctx, id, secondary)
	if err != nil {
		return a, &Error{RegistrationID: id.DPS.RegistrationID, Err: err}
	}
	return a, nil
}

func (r *Registrar) register(ctx context.Context, id *identity.Identity, secondary bool) (Assignment, error) {
	connectTO, requestTO, deadline, ttl := r.defaults()
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	p := id.DPS
	pass := ""
	if id.Keys() > 0 {
		var err error
		if pass, err = id.ProvisioningToken(time.Now().Add(ttl), secondary); err != nil {
			return Assignment{}, err
		}
	}
	resps := make(chan *mqtt3.Message, 4)
	var lost atomic.Pointer[error]
	o := mqtt3.Options{
		ClientID: p.RegistrationID,
		Username: p.IDScope + "/registrations/" + p.RegistrationID + "/api-version=" + APIVersion +
			"&ClientVersion=" + iothub.EscapeComponent("edgegw/1"),
		Password:     pass,
		KeepAlive:    4 * time.Minute, // above maxRetryAfter: every wait ends in a publish
		WriteTimeout: requestTO,
		OnMessage: func(m *mqtt3.Message) {
			select {
			case resps <- m:
			default: // one request is outstanding at a time: more is not an answer of ours
			}
		},
		OnLost: func(err error) { lost.Store(&err); cancel() },
	}
	conn, err := r.connect(ctx, connectTO, id, o)
	if err != nil {
		return Assignment{}, err
	}
	defer conn.Close()
	sctx, scancel := context.WithTimeout(ctx, requestTO)
	codes, err := conn.Subscribe(sctx, []mqtt3.Subscription{{Filter: responseFilter, QoS: 1}})
	scancel()
	if err == nil && len(codes) == 1 && codes[0] == 0x80 {
		err = errors.New("subscribe " + responseFilter + ": refused")
	}
	if err != nil {
		return Assignment{}, r.cause(ctx, &lost, fmt.Errorf("subscribe: %w", err))
	}

	next, op := stepRegister, ""
	for rid, attempt := 1, 0; ; rid++ {
		ridS := strconv.Itoa(rid)
		topic, body := registerTopic+ridS, []byte(`{"registrationId":"`+p.RegistrationID+`"}`)
		if next == stepPoll {
			topic, body = pollTopic+ridS+"&operationId="+op, nil
		}
		if _, err := conn.Publish(topic, 1, body); err != nil { // the answer, not the PUBACK, is waited for
			return Assignment{}, r.cause(ctx, &lost, err)
		}
		resp, err := r.await(ctx, resps, ridS, requestTO)
		if err != nil {
			return Assignment{}, r.cause(ctx, &lost, err)
		}
		s, err := resp.outcome()
		if err != nil && s != stepRetry {
			return Assignment{}, err
		}
		last := err // why the request is repeated, if it is
		wait := resp.retryAfter
		switch s {
		case stepDone:
			rs := resp.body.RegistrationState
			return Assignment{DPSHost: p.Host, IDScope: p.IDScope, RegistrationID: p.RegistrationID,
				Hub: rs.AssignedHub, DeviceID: rs.DeviceID, Substatus: rs.Substatus, Time: time.Now().UTC()}, nil
		case stepPoll:
			next, op, attempt = stepPoll, resp.body.OperationID, 0
		case stepRegister:
			next, attempt = stepRegister, 0
		case stepRetry:
			attempt++
			if wait == 0 { // throttled with no hint: jittered exponential
				wait = min(defaultPoll<<min(attempt-1, 5), maxRetryAfter)
				wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
			}
		}
		if wait == 0 {
			wait = defaultPoll
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if last == nil {
				last = errors.New("still assigning")
			}
			return Assignment{}, r.cause(ctx, &lost, fmt.Errorf("%w: no assignment within %v", last, deadline))
		case <-t.C:
		}
	}
}

// cause explains a failure: the lost connection if that is why ctx ended.
func (r *Registrar) cause(ctx context.Context, lost *atomic.Pointer[error], err error) error {
	if l := lost.Load(); l != nil {
		return fmt.Errorf("connection lost: %w", *l)
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w: %w", err, ctx.Err())
	}
	return err
}

// await waits for the response with request id rid, acknowledging every
// response (QoS 1) and skipping those of other requests.
func (r *Registrar) await(ctx context.Context, resps <-chan *mqtt3.Message, rid string, timeout time.Duration) (*response, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, fmt.Errorf("no answer within %v", timeout)
		case m := <-resps:
			m.Ack()
			resp, err := parseResponse(m.Topic, m.Payload)
			if err != nil {
				if resp.rid == rid {
					return nil, fmt.Errorf("%w: %v", ErrRejected, err)
				}
				continue // not ours, or unreadable without a request id
			}
			if resp.rid == rid {
				return &resp, nil
			}
		}
	}
}

// connect dials DPS over TLS (verified against RootCAs, SNI Host) with the
// identity's client certificate, if any, and sends CONNECT.
func (r *Registrar) connect(ctx context.Context, timeout time.Duration, id *identity.Identity, o mqtt3.Options) (*mqtt3.Conn, error) {
	r.once.Do(func() { r.sessions = tls.NewLRUClientSessionCache(64) })
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: r.RootCAs, ServerName: id.DPS.Host}
	if c := id.Certificate(); c != nil {
		cfg.Certificates = []tls.Certificate{*c} // never a shared session: it carries the certificate
	} else {
		cfg.ClientSessionCache = r.sessions
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := id.DPS.Dial()
	nc, err := (&tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}).DialContext(dctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("connect %s: no answer within %v", addr, timeout)
		}
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	conn, err := mqtt3.Connect(dctx, nc, o) // closes nc on error
	if err != nil {
		var refused *mqtt3.RefusedError
		if errors.As(err, &refused) && (refused.Code == 4 || refused.Code == 5) {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	return conn, nil
}
