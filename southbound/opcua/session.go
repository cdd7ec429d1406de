package opcua

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
)

// ErrUntrusted is a server certificate that is not in the trust list.
var ErrUntrusted = errors.New("server certificate is not trusted")

// session is the goroutine that owns the connection to the server: it
// connects, subscribes, polls and checks the session, and starts again
// with back-off when any of it fails.
type session struct {
	a   *Adapter
	app *appCert
	out chan<- edgegw.Reading

	userCert []byte          // auth kind certificate
	userKey  *rsa.PrivateKey // its key

	connLog    southbound.LogLimit
	qualityLog southbound.LogLimit // Bad values and type mismatches: one line a minute
}

const minBackoff = 250 * time.Millisecond

func (s *session) loop(ctx context.Context) {
	a := s.a
	s.connLog = southbound.LogLimit{Every: time.Minute}
	s.qualityLog = southbound.LogLimit{Every: time.Minute}
	backoff := minBackoff
	for ctx.Err() == nil {
		c, err := s.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.failed(err)
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, a.cfg.BackoffMax)
			continue
		}
		a.st.update(func(st *Stats) {
			st.Connects++
			if st.LastError != "" {
				st.LastErrorCleared = time.Now()
			}
		})
		a.log.Info("opcua session open", "endpoint", a.cfg.Endpoint, "security", a.st.s.Security)
		start := time.Now()
		err = s.serve(ctx, c)
		a.setCurrent(nil)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Timeout)
		c.Close(closeCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		a.st.update(func(st *Stats) {
			st.Disconnects++
			st.LastError, st.LastErrorTime, st.LastErrorCleared = err.Error(), time.Now(), time.Time{}
		})
		a.log.Warn("opcua session lost; reconnecting", "endpoint", a.cfg.Endpoint, "err", err)
		if time.Since(start) > a.cfg.BackoffMax {
			backoff = minBackoff
		}
		if !sleep(ctx, jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, a.cfg.BackoffMax)
	}
}

// failed counts and logs (rate-limited) a failed connection attempt.
func (s *session) failed(err error) {
	a := s.a
	a.st.update(func(st *Stats) {
		st.ConnectErrs++
		st.LastError, st.LastErrorTime, st.LastErrorCleared = err.Error(), time.Now(), time.Time{}
	})
	if errors.Is(err, ErrUntrusted) || s.connLog.Allow(time.Now()) {
		a.log.Warn("opcua connect failed", "endpoint", a.cfg.Endpoint, "err", err)
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connect picks the endpoint of the configured policy and mode, checks
// the server's certificate against the trust list, and opens a secure
// channel and an activated session.
func (s *session) connect(ctx context.Context) (*opcua.Client, error) {
	a := s.a
	cfg := &a.cfg
	tctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	eps, err := opcua.GetEndpoints(tctx, cfg.Endpoint, opcua.DialTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("get endpoints: %w", err)
	}
	policy, mode := policies[cfg.Security.Policy], modes[cfg.Security.Mode]
	var ep *ua.EndpointDescription
	var offered []string
	for _, e := range eps {
		offered = append(offered, strings.TrimPrefix(e.SecurityPolicyURI, ua.SecurityPolicyURIPrefix)+"/"+
			strings.TrimPrefix(e.SecurityMode.String(), "MessageSecurityMode"))
		if e.SecurityPolicyURI == policy && e.SecurityMode == mode && ep == nil {
			ep = e
		}
	}
	if ep == nil {
		slices.Sort(offered)
		return nil, fmt.Errorf("the server offers no endpoint with security %s/%s (offers: %s)",
			cfg.Security.Policy, cfg.Security.Mode, strings.Join(slices.Compact(offered), ", "))
	}
	tokenType := map[string]ua.UserTokenType{"anonymous": ua.UserTokenTypeAnonymous,
		"username": ua.UserTokenTypeUserName, "certificate": ua.UserTokenTypeCertificate}[cfg.Auth.Kind]
	if !slices.ContainsFunc(ep.UserIdentityTokens, func(t *ua.UserTokenPolicy) bool { return t.TokenType == tokenType }) {
		return nil, fmt.Errorf("the endpoint does not accept %s user tokens", cfg.Auth.Kind)
	}
	// The certificate matters whenever secrets or signatures depend on
	// it: a secure channel, or credentials encrypted for the server.
	if policy != ua.SecurityPolicyURINone || cfg.Auth.Kind != "anonymous" {
		if len(ep.ServerCertificate) == 0 {
			return nil, errors.New("the endpoint has no server certificate")
		}
		if !a.trust.trusted(ep.ServerCertificate) {
			thumb := Thumbprint(ep.ServerCertificate)
			path := a.trust.reject(ep.ServerCertificate)
			a.st.update(func(st *Stats) { st.Untrusted = thumb })
			return nil, fmt.Errorf("%w: SHA-1 thumbprint %s (saved as %s; move it to %s/trusted or list the thumbprint under trusted to accept it)",
				ErrUntrusted, thumb, path, cfg.PKIDir)
		}
	}
	opts := []opcua.Option{
		opcua.AutoReconnect(false),
		opcua.DialTimeout(cfg.Timeout),
		opcua.RequestTimeout(cfg.Timeout),
		opcua.Certificate(s.app.der),
		opcua.PrivateKey(s.app.key),
		opcua.ApplicationURI(s.app.uri),
		opcua.ApplicationName("edgegw"),
		opcua.SessionName("edgegw " + a.name),
		opcua.SessionTimeout(time.Minute),
	}
	switch cfg.Auth.Kind {
	case "anonymous":
		opts = append(opts, opcua.AuthAnonymous())
	case "username":
		opts = append(opts, opcua.AuthUsername(cfg.Auth.Username, string(cfg.Auth.Password)))
	case "certificate":
		opts = append(opts, opcua.AuthCertificate(s.userCert), opcua.AuthPrivateKey(s.userKey))
	}
	opts = append(opts, opcua.SecurityFromEndpoint(ep, tokenType))
	c, err := opcua.NewClient(cfg.Endpoint, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(tctx); err != nil {
		c.Close(context.WithoutCancel(tctx))
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

// loadUser reads the X.509 user token's certificate and key, once.
func (s *session) loadUser() error {
	auth := s.a.cfg.Auth
	if auth.Kind != "certificate" {
		return nil
	}
	der, err := readCertFile(auth.CertFile)
	if err != nil {
		return fmt.Errorf("auth.cert_file: %w", err)
	}
	keyPEM, err := readFile(auth.KeyFile)
	if err != nil {
		return fmt.Errorf("auth.key_file: %w", err)
	}
	key, err := parseRSAKey(keyPEM)
	if err != nil {
		return fmt.Errorf("auth.key_file %s: %w", auth.KeyFile, err)
	}
	s.userCert, s.userKey = der, key
	return nil
}

// serve runs one session: it creates the subscriptions, then handles
// their notifications, polls, and checks the session when it is quiet.
// It returns why the session ended; nil never (ctx's end returns its
// error).
func (s *session) serve(ctx context.Context, c *opcua.Client) error {
	a := s.a
	notes := make(chan *opcua.PublishNotificationData, 16)
	subs := map[uint32]*device{}
	for _, d := range a.devs {
		if d.cfg.Mode != "subscribe" || len(d.items) == 0 {
			continue
		}
		sub, err := s.subscribe(ctx, c, d, notes)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.name, err)
		}
		subs[sub.SubscriptionID] = d
	}
	// Writes and calls may use the session from now on.
	a.setCurrent(c)

	var polled []*device
	var next []time.Time
	now := time.Now()
	for _, d := range a.devs {
		if d.cfg.Mode == "poll" && len(d.items) > 0 {
			polled = append(polled, d)
			next = append(next, now)
		}
	}
	pollTimer := time.NewTimer(0)
	defer pollTimer.Stop()
	if len(polled) == 0 {
		pollTimer.Stop()
	}
	alive := time.NewTicker(a.cfg.Keepalive)
	defer alive.Stop()
	heard := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case n := <-notes:
			if n.Error != nil {
				return fmt.Errorf("subscription: %w", n.Error)
			}
			heard = time.Now()
			if sc, ok := n.Value.(*ua.StatusChangeNotification); ok && isBad(sc.Status) {
				return fmt.Errorf("subscription ended by the server: %s", statusName(sc.Status))
			}
			if d := subs[n.SubscriptionID]; d != nil {
				if !s.notification(ctx, d, n.Value) {
					return ctx.Err()
				}
			}
		case <-pollTimer.C:
			now := time.Now()
			wait := time.Duration(-1)
			for i, d := range polled {
				if !now.Before(next[i]) {
					if err := s.poll(ctx, c, d); err != nil {
						return err
					}
					heard = time.Now()
					next[i] = next[i].Add(d.cfg.Interval)
					if next[i].Before(now) { // fell behind: skip, never burst
						next[i] = now.Add(d.cfg.Interval)
					}
				}
				if w := time.Until(next[i]); wait < 0 || w < wait {
					wait = w
				}
			}
			pollTimer.Reset(max(wait, 0))
		case <-alive.C:
			if st := c.State(); st != opcua.Connected {
				return fmt.Errorf("session state %s", st)
			}
			if time.Since(heard) < a.cfg.Keepalive {
				continue
			}
			if err := s.ping(ctx, c); err != nil {
				return err
			}
			heard = time.Now()
		}
	}
}

// ping reads the server's clock (Server_ServerStatus_CurrentTime).
func (s *session) ping(ctx context.Context, c *opcua.Client) error {
	tctx, cancel := context.WithTimeout(ctx, s.a.cfg.Timeout)
	defer cancel()
	res, err := c.Read(tctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{
		{NodeID: ua.NewNumericNodeID(0, 2258), AttributeID: ua.AttributeIDValue}}})
	if err != nil {
		return fmt.Errorf("keepalive read: %w", err)
	}
	if len(res.Results) != 1 || isBad(res.Results[0].Status) {
		return errors.New("keepalive read: no server time")
	}
	return nil
}
