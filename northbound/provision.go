package northbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/northbound/dps"
)

// Identities provisioned by DPS. Each such identity finds its hub before
// it connects: the assignment kept in the provisioning directory, or, when
// there is none, a registration with DPS (one connection of its own,
// through the same connect rate limit as every connection, so a fleet of
// thousands registers at the pace it connects). The registration is kept
// (dps.Cache), so a restart while offline connects to the assigned hubs
// without DPS. The identity registers again when its hub refuses its
// credentials (CONNACK 4 or 5: the device was deleted, disabled or moved
// to another hub), and when its hub has failed for reprovisionAfter
// without a break (it may be gone), as the DPS guidance for devices says.

// reprovisionAfter is how long an assigned hub may fail (unreachable, not
// refusing) before the identity asks DPS again.
const reprovisionAfter = 15 * time.Minute

// hubTarget is where one identity connects: its hub's endpoint, the
// hub's name in usernames and token audiences, and the identity as the
// hub knows it (its device id there).
type hubTarget struct {
	ep   *endpoint
	host string
	hid  *identity.Identity
}

// hubID returns the identity as its hub knows it; any goroutine may call
// it.
func (l *link) hubID() *identity.Identity {
	if h := l.hid.Load(); h != nil {
		return h
	}
	return l.id
}

// target returns where the identity connects, registering with DPS first
// if it must. Called by the worker, after it took a connect rate token.
func (l *link) target(ctx context.Context) (*hubTarget, error) {
	if l.id.DPS == nil || l.hub != nil && !l.reprovision {
		return l.hub, nil
	}
	p := l.p
	prov := l.id.DPS
	if !l.reprovision && !l.cacheTried && p.cache != nil {
		l.cacheTried = true
		a, ok, err := p.cache.Load(prov.Host, prov.IDScope, prov.RegistrationID)
		if err != nil {
			p.warn.warn("cached DPS assignment unusable; registering again", "identity", l.stream, "err", err)
		}
		if ok {
			if t, err := l.assign(a); err == nil {
				l.log.Debug("hub from the cached DPS assignment", "hub", a.Hub, "device", a.DeviceID)
				return t, nil
			}
		}
	}
	a, err := p.reg.Register(ctx, l.id, l.secondary.Load()) // a refusal switches keys (link.failed)
	if err != nil {
		if dps.Final(err) {
			return nil, fmt.Errorf("%w: %w", ErrRefused, err) // back off as for a refused key
		}
		return nil, err
	}
	t, err := l.assign(a)
	if err != nil {
		return nil, fmt.Errorf("dps register %s: %w", prov.RegistrationID, err)
	}
	if p.cache != nil {
		if err := p.cache.Store(a); err != nil {
			p.warn.warn("could not keep the DPS assignment; the next start registers again", "identity", l.stream, "err", err)
		}
	}
	l.reprovision, l.hubFailSince = false, time.Time{}
	p.note.info("provisioned by DPS", "identity", l.stream, "hub", a.Hub, "device", a.DeviceID, "substatus", a.Substatus)
	// The hub connection that follows is a connection of its own.
	if err := p.limiter.Wait(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// assign makes a the identity's hub.
func (l *link) assign(a dps.Assignment) (*hubTarget, error) {
	ep, host, err := l.p.hubEndpoint(a.Hub)
	if err != nil {
		return nil, err
	}
	t := &hubTarget{ep: ep, host: host, hid: l.id.WithDevice(a.DeviceID)}
	l.hub = t
	l.hid.Store(t.hid)
	l.st.update(func(s *Status) { s.Hub, s.DeviceID = a.Hub, a.DeviceID })
	return t, nil
}

// hubFailed decides, after a failed connect to the assigned hub, whether
// the identity registers with DPS again: at once when the hub refused it,
// after reprovisionAfter of failures otherwise. Called by the worker.
func (l *link) hubFailed(err error) {
	if l.id.DPS == nil || l.hub == nil {
		return
	}
	var de *dps.Error
	if errors.As(err, &de) {
		return // DPS failed, not the hub
	}
	now := time.Now()
	if l.hubFailSince.IsZero() {
		l.hubFailSince = now
	}
	if errors.Is(err, ErrRefused) || now.Sub(l.hubFailSince) >= reprovisionAfter {
		if !l.reprovision {
			l.p.note.info("assigned hub refused or unreachable; registering with DPS again",
				"identity", l.stream, "hub", l.hub.host, "err", err)
		}
		l.reprovision = true
	}
}

// hubEndpoint returns the endpoint of an assigned hub, "host" or
// "host:port" (the port defaults to the hub section's), made once per hub
// and shared by the identities assigned to it, and the hub's name in
// usernames and token audiences: the name as DPS gave it (a real hub's is a
// host name; an emulator's may carry its port, as the Azure SDKs then send
// it too).
func (p *Pool) hubEndpoint(hub string) (*endpoint, string, error) {
	host, port := hub, strconv.Itoa(p.cfg.Port)
	if h, pt, err := net.SplitHostPort(hub); err == nil {
		host, port = h, pt
	} else if strings.Contains(hub, ":") {
		return nil, "", fmt.Errorf("assigned hub %q: %w", hub, err)
	}
	addr := net.JoinHostPort(host, port)
	p.hubsMu.Lock()
	defer p.hubsMu.Unlock()
	if ep := p.hubs[addr]; ep != nil {
		return ep, hub, nil
	}
	ep, err := makeEndpoint(&p.cfg, addr, p.roots)
	if err != nil {
		return nil, "", err
	}
	p.hubs[addr] = ep
	return ep, hub, nil
}
