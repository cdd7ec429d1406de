package northbound

import (
	"context"
	"errors"
	"slices"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/northbound/mqtt3"
)

// methodsFilter is the IoT Hub topic filter of direct methods.
const methodsFilter = "$iothub/methods/POST/#"

// An identity whose device is relayed (it speaks the IoT Hub protocol
// through the gateway) should look to the hub like that device: IoT Hub
// answers a method call 404 DeviceNotOnline (404103) when the device is
// not subscribed to methods, so the identity subscribes to methods only
// while its device does. SetMethods says which; the session's subscription
// follows it (SUBSCRIBE or UNSUBSCRIBE on the live connection, and the
// filter is left out of the SUBSCRIBE of every later connect while off).

// SetMethods tells whether identity's connection should be subscribed to
// direct methods (default true). It never waits for the network; an
// identity not in the pool is ignored.
func (p *Pool) SetMethods(identity edgegw.DeviceID, on bool) {
	i := slices.IndexFunc(p.links, func(l *link) bool { return l.id.ID == identity })
	if i < 0 {
		return
	}
	l := p.links[i]
	l.subMu.Lock()
	l.methodsOff = !on
	s, cur := l.subSess, l.methodsOn
	l.subMu.Unlock()
	if s != nil && s.ctx.Err() == nil && cur != on {
		l.spawn(l.syncMethods)
	}
}

// methodsWanted filters the methods subscription out of subs when the
// identity should not have it, and records what the session subscribes.
// Called by session.subscribe with l.subMu held.
func (l *link) methodsWanted(s *session, subs map[string]byte) {
	_, has := subs[methodsFilter]
	if has && l.methodsOff {
		delete(subs, methodsFilter)
	}
	l.subSess, l.methodsOn = s, has && !l.methodsOff
}

// syncMethods brings the live session's methods subscription in line with
// SetMethods. A failure is logged; the next connect applies the setting.
func (l *link) syncMethods() {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	s := l.subSess
	if s == nil || s.ctx.Err() != nil {
		return
	}
	if _, ok := l.p.prof.subscriptions(l.id)[methodsFilter]; !ok {
		return // the profile has no direct methods
	}
	want := !l.methodsOff
	if want == l.methodsOn {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, l.p.cfg.AckTimeout)
	defer cancel()
	var err error
	if want {
		var codes []byte
		codes, err = s.conn.Subscribe(ctx, []mqtt3.Subscription{{Filter: methodsFilter, QoS: 0}})
		if err == nil && len(codes) == 1 && codes[0] == 0x80 {
			err = errRefusedSub
		}
	} else {
		err = s.conn.Unsubscribe(ctx, []string{methodsFilter})
	}
	if err != nil {
		if s.ctx.Err() == nil {
			l.p.warn.warn("could not change the direct-methods subscription; the next connect will", "identity", l.stream,
				"subscribe", want, "err", err)
		}
		return
	}
	l.methodsOn = want
}

var errRefusedSub = errors.New("refused by the hub")
