package northbound

import (
	"context"
	"errors"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/northbound/mqtt3"
)

// An identity whose device is relayed (it speaks the IoT Hub protocol
// through the gateway) should look to the hub like that device. IoT Hub
// answers a method call 404 DeviceNotOnline (404103) when the device is
// not subscribed to methods, and keeps C2D messages queued until the
// device subscribes to them; so the identity subscribes to methods and to
// C2D only while its device does. SetListening says which; the session's
// subscriptions follow (SUBSCRIBE or UNSUBSCRIBE on the live connection;
// a filter that is off is left out of the SUBSCRIBE of later connects).

// SetListening tells whether identity's connection should be subscribed
// to the hub's commands of kind (edgegw.Method or edgegw.C2D; default
// true). It never waits for the network; an identity not in the pool, or
// a kind the profile has no subscription for, is ignored.
func (p *Pool) SetListening(identity edgegw.DeviceID, kind edgegw.CommandKind, on bool) {
	p.mu.Lock()
	l := p.byID[identity]
	p.mu.Unlock()
	if l == nil {
		return
	}
	f := l.commandFilter(kind)
	if f == "" {
		return
	}
	l.subMu.Lock()
	if l.subOff == nil {
		l.subOff = map[string]bool{}
	}
	l.subOff[f] = !on
	s, cur := l.subSess, l.subOn[f]
	l.subMu.Unlock()
	if s != nil && s.ctx.Err() == nil && cur != on {
		l.spawn(l.syncSubscriptions)
	}
}

// commandFilter is the profile's subscription for commands of kind, or "".
func (l *link) commandFilter(kind edgegw.CommandKind) string {
	var f string
	switch kind {
	case edgegw.Method:
		f = "$iothub/methods/POST/#"
	case edgegw.C2D:
		f = "devices/" + l.hubID().Device + "/messages/devicebound/#"
	}
	if _, ok := l.p.prof.subscriptions(l.hubID())[f]; !ok {
		return ""
	}
	return f
}

// subscriptionsWanted leaves the filters that are off out of subs and
// records what the session subscribes. Called by session.subscribe with
// l.subMu held.
func (l *link) subscriptionsWanted(s *session, subs map[string]byte) {
	for f, off := range l.subOff {
		if off {
			delete(subs, f)
		}
	}
	l.subSess, l.subOn = s, make(map[string]bool, len(subs))
	for f := range subs {
		l.subOn[f] = true
	}
}

// syncSubscriptions brings the live session's subscriptions in line with
// SetListening. A failure is logged; the next connect applies the setting.
func (l *link) syncSubscriptions() {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	s := l.subSess
	if s == nil || s.ctx.Err() != nil {
		return
	}
	all := l.p.prof.subscriptions(l.hubID())
	for f, off := range l.subOff {
		qos, ok := all[f]
		if !ok || l.subOn[f] == !off {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, l.p.cfg.AckTimeout)
		var err error
		if !off {
			var codes []byte
			codes, err = s.conn.Subscribe(ctx, []mqtt3.Subscription{{Filter: f, QoS: qos}})
			if err == nil && len(codes) == 1 && codes[0] == 0x80 {
				err = errRefusedSub
			}
		} else {
			err = s.conn.Unsubscribe(ctx, []string{f})
		}
		cancel()
		if err != nil {
			if s.ctx.Err() == nil {
				l.p.warn.warn("could not change a subscription; the next connect will", "identity", l.stream,
					"filter", f, "subscribe", !off, "err", err)
			}
			return
		}
		l.subOn[f] = !off
	}
}

var errRefusedSub = errors.New("refused by the hub")
