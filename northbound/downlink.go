package northbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/northbound/mqtt3"
)

// maxC2DWaiting bounds the C2D messages of one identity that wait for a
// command slot, besides the MaxCommands running: IoT Hub queues at most 50
// per device, so with IoT Hub none is ever turned away. One beyond it is
// left unacknowledged, for the hub to redeliver after the next connect.
const maxC2DWaiting = 50

// onMessage takes everything the hub sends, on the connection's reader
// goroutine, so it never waits: twin responses and desired patches are
// handed over at once, methods and C2D messages get a goroutine each
// (link.spawn). Every message is acknowledged here (Ack is a no-op for
// QoS 0), except a C2D message, acknowledged only once carried out; one not
// carried out for a passing reason (see c2d) is left for the hub to
// redeliver.
func (s *session) onMessage(m *mqtt3.Message) {
	l := s.l
	in, err := l.p.prof.parse(l.hubID(), m.Topic, m.Payload)
	if err != nil {
		m.Ack() // a redelivery would read no better
		l.p.warn.warn("ignoring a message from the hub", "identity", l.stream, "err", err)
		return
	}
	if in.kind != inC2D {
		// Twin responses, method calls (answered, with 429 or 503 if need
		// be) and desired patches (kept in the identity's slot, read again
		// from the twin after a reconnect) gain nothing by redelivery.
		m.Ack()
	}
	switch in.kind {
	case inTwinResponse:
		s.resolve(in.rid, twinResponse{status: in.status, body: m.Payload})
	case inDesired:
		s.offer(&desiredDoc{doc: m.Payload, version: in.version})
	case inMethod:
		// shutting down when spawn refuses: the hub answers the caller
		l.spawn(func() { s.method(m, in) })
	case inC2D:
		s.enqueueC2D(m, in)
	}
}

// c2dItem is a C2D message waiting its turn.
type c2dItem struct {
	m  *mqtt3.Message
	in inbound
}

// enqueueC2D queues a C2D message for the session's runner, which carries
// them out one at a time in the order the hub sent them, and starts the
// runner if none runs. Once one is left for redelivery the session takes
// no more (they would overtake it); the hub sends them again, in order,
// after the reconnect.
func (s *session) enqueueC2D(m *mqtt3.Message, in inbound) {
	l := s.l
	if n := l.c2dInHandler.Add(1); n > int32(l.p.cfg.MaxCommands+maxC2DWaiting) {
		l.c2dInHandler.Add(-1)
		l.st.update(func(st *Status) { st.Throttled++ })
		l.p.warn.warn("cloud-to-device message left for redelivery: too many waiting", "identity", l.stream,
			"waiting", n-1)
		s.c2dMu.Lock()
		s.c2dHalted = true // the next ones must not overtake it
		s.c2dMu.Unlock()
		if l.ctx.Err() == nil && s.ctx.Err() == nil {
			s.scheduleRedelivery()
		}
		return
	}
	s.c2dMu.Lock()
	if s.c2dHalted {
		s.c2dMu.Unlock()
		l.c2dInHandler.Add(-1)
		return
	}
	s.c2dQ = append(s.c2dQ, c2dItem{m, in})
	start := !s.c2dRunning
	s.c2dRunning = true
	s.c2dMu.Unlock()
	if start && !l.spawn(s.runC2D) { // stopping: the messages stay with the hub
		s.c2dMu.Lock()
		n := len(s.c2dQ)
		s.c2dQ, s.c2dRunning = nil, false
		s.c2dMu.Unlock()
		l.c2dInHandler.Add(-int32(n))
	}
}

// runC2D carries out the queued C2D messages in order until none is left
// or one is left for redelivery.
func (s *session) runC2D() {
	for {
		s.c2dMu.Lock()
		if len(s.c2dQ) == 0 {
			s.c2dRunning = false
			s.c2dMu.Unlock()
			return
		}
		it := s.c2dQ[0]
		s.c2dQ[0] = c2dItem{}
		s.c2dQ = s.c2dQ[1:]
		s.c2dMu.Unlock()
		if !s.c2d(it.m, it.in) {
			s.c2dMu.Lock()
			n := len(s.c2dQ)
			s.c2dQ, s.c2dRunning, s.c2dHalted = nil, false, true
			s.c2dMu.Unlock()
			s.l.c2dInHandler.Add(-int32(n))
			return
		}
	}
}

// method carries out a direct method and sends its response.
func (s *session) method(m *mqtt3.Message, in inbound) {
	l := s.l
	res := l.handle(edgegw.Command{Identity: l.id.ID, Kind: edgegw.Method, Name: in.name, Payload: m.Payload}, nil)
	topic, payload, qos := l.p.prof.methodResponse(l.hubID(), in.name, in.rid, res)
	t, err := s.conn.Publish(topic, qos, payload)
	if err == nil && t != nil {
		timer := time.NewTimer(l.p.cfg.AckTimeout)
		defer timer.Stop()
		select {
		case <-t.Done():
			err = t.Err()
		case <-timer.C:
			err = errAckTimeout
		case <-s.ctx.Done():
			err = context.Cause(s.ctx)
		}
	}
	if err != nil {
		l.log.Debug("method response not sent", "method", in.name, "err", err)
	}
}

// c2d carries out a cloud-to-device message and acknowledges it when the
// outcome is final: done (2xx), refused (4xx), or failed on the device
// (5xx other than 503 and 504). IoT Hub completes a message on its PUBACK
// and cannot be told it was rejected. A transient outcome (503: device
// unavailable, adapters or gateway stopping; 504: timed out) and a
// message turned away because too many wait (maxC2DWaiting) are not
// acknowledged: the hub redelivers them after the next connect, so a
// message that arrives while the gateway shuts down is not lost. A 504
// may have reached the device: C2D delivery is at least once.
//
// It reports false when the message was left for redelivery. The caller
// counted it in c2dInHandler.
func (s *session) c2d(m *mqtt3.Message, in inbound) bool {
	l := s.l
	res := l.handle(edgegw.Command{Identity: l.id.ID, Kind: edgegw.C2D, Payload: m.Payload, Props: in.props}, s.ctx.Done())
	l.c2dInHandler.Add(-1)
	if transient(res.Status) {
		if l.ctx.Err() == nil && s.ctx.Err() == nil {
			delay := s.scheduleRedelivery()
			l.p.warn.warn("cloud-to-device message not carried out for now; left for the hub to redeliver after a reconnect",
				"identity", l.stream, "status", res.Status, "reconnect_in", delay.Round(time.Millisecond),
				"result", truncate(res.Payload, 200))
		}
		return false
	}
	l.c2dRetries.Store(0)
	m.Ack()
	if res.Status >= 300 {
		l.p.warn.warn("cloud-to-device message not carried out (completed: MQTT cannot reject)",
			"identity", l.stream, "status", res.Status, "result", truncate(res.Payload, 200))
	}
	return true
}

var (
	resultStopping  = edgegw.Result{Status: 503, Payload: []byte(`{"error":"gateway stopping or connection ended"}`)}
	resultThrottled = edgegw.Result{Status: 429, Payload: []byte(`{"error":"too many requests in flight"}`)}
)

// handle runs one command in one of the identity's MaxCommands command
// slots. With wait nil it answers 429 at once when every slot is taken, as
// IoT Hub throttles, so that method calls (each on a goroutine of its own)
// cannot pile up behind a slow device. Otherwise it waits for a slot
// until wait is closed (then 503): desired documents (one at a time per
// identity) wait for the pool's context, C2D messages for their
// connection's, since one that cannot be acknowledged on it is redelivered
// anyway.
func (l *link) handle(cmd edgegw.Command, wait <-chan struct{}) edgegw.Result {
	if l.ctx.Err() != nil {
		return resultStopping
	}
	if wait != nil {
		select {
		case l.cmds <- struct{}{}:
		case <-wait:
			return resultStopping
		}
	} else {
		select {
		case l.cmds <- struct{}{}:
		default:
			l.st.update(func(st *Status) { st.Throttled++ })
			l.p.warn.warn("command turned away: too many in flight", "identity", l.stream,
				"command", cmd.Kind.String(), "name", cmd.Name, "max_commands", l.p.cfg.MaxCommands)
			return resultThrottled
		}
	}
	defer func() { <-l.cmds }()
	l.st.update(func(st *Status) { st.Commands++ })
	return l.p.down.Handle(l.ctx, cmd)
}

// getTwin requests the twin and returns its desired section and version.
func (s *session) getTwin(rid string) ([]byte, int64, error) {
	ch := s.expect(rid)
	if _, err := s.conn.Publish(s.l.p.prof.twinGetTopic(rid), 0, []byte(" ")); err != nil {
		s.forget(rid)
		return nil, 0, fmt.Errorf("twin GET: %w", err)
	}
	timer := time.NewTimer(s.l.p.cfg.AckTimeout)
	defer timer.Stop()
	var r twinResponse
	select {
	case r = <-ch:
	case <-timer.C:
		s.forget(rid)
		return nil, 0, fmt.Errorf("twin GET: %w", errAckTimeout)
	case <-s.ctx.Done():
		return nil, 0, context.Cause(s.ctx)
	}
	if r.status != 200 {
		return nil, 0, fmt.Errorf("twin GET answered %d: %s", r.status, truncate(r.body, 200))
	}
	var twin struct {
		Desired json.RawMessage `json:"desired"`
	}
	if err := json.Unmarshal(r.body, &twin); err != nil {
		return nil, 0, fmt.Errorf("twin GET: %w", err)
	}
	var v struct {
		Version int64 `json:"$version"`
	}
	if len(twin.Desired) == 0 || json.Unmarshal(twin.Desired, &v) != nil {
		return nil, 0, errors.New("twin GET: no desired object in the twin")
	}
	if o, ok := s.l.p.down.(TwinObserver); ok {
		o.ObserveTwin(s.l.id.ID, r.body)
	}
	return twin.Desired, v.Version, nil
}

// expect registers a pending twin request.
func (s *session) expect(rid string) chan twinResponse {
	ch := make(chan twinResponse, 1)
	s.mu.Lock()
	if s.twin == nil {
		s.twin = map[string]chan twinResponse{}
	}
	s.twin[rid] = ch
	s.mu.Unlock()
	return ch
}

func (s *session) forget(rid string) {
	s.mu.Lock()
	s.dropTwin(rid)
	s.mu.Unlock()
}

// dropTwin removes rid's request; an empty map is freed, since an idle
// identity should hold none.
func (s *session) dropTwin(rid string) {
	delete(s.twin, rid)
	if len(s.twin) == 0 {
		s.twin = nil
	}
}

// resolve delivers a twin response to its request; unknown rids (a
// request that timed out, another client's) are ignored.
func (s *session) resolve(rid string, r twinResponse) {
	s.mu.Lock()
	ch, ok := s.twin[rid]
	s.dropTwin(rid)
	s.mu.Unlock()
	if ok {
		ch <- r
	}
}

// scheduleRedelivery arms, once per session, a planned reconnect after a
// back-off (Config.DesiredRetryMin doubling to DesiredRetryMax per
// consecutive redelivery): IoT Hub redelivers an unacknowledged C2D message
// only after a reconnect, and an identity whose token is never renewed
// (X.509, a password) might otherwise not reconnect for days. It returns
// the delay.
func (s *session) scheduleRedelivery() time.Duration {
	l := s.l
	s.redeliver.Do(func() {
		n := int(l.c2dRetries.Add(1))
		d := backoff{min: l.p.cfg.DesiredRetryMin, max: l.p.cfg.DesiredRetryMax}.delay(n, false)
		s.mu.Lock()
		s.redeliverIn = d
		s.redeliverTimer = time.AfterFunc(d, s.redeliverNow)
		s.mu.Unlock()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.redeliverIn
}

// redeliverNow makes the worker end the session for a reconnect, once no
// C2D message is being carried out (its acknowledgement would be lost and
// it would run twice).
func (s *session) redeliverNow() {
	if s.ctx.Err() != nil {
		return
	}
	if s.l.c2dInHandler.Load() > 0 {
		s.mu.Lock()
		s.redeliverTimer.Reset(time.Second)
		s.mu.Unlock()
		return
	}
	s.redeliverDue.Store(true)
	s.l.kick()
}
