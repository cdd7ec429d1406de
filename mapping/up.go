package mapping

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/edgegw/edgegw"
)

// Up maps one reading to the messages to store. For point values it gives
// at most one telemetry message (the points that are due, in reading
// order, Created = the reading's time) and at most one reported-property
// patch, for the identity of the device rule; none, and no error, when
// every point is held back by its deadband. A point reading needs a time.
//
// A ready-made message (from a LAN device) that names its identity passes
// unchanged if the gateway owns that identity (Created defaults to the
// reading's time); one without an identity takes the identity of the
// device rule, its content type and encoding where unset, and the rule's
// application properties it does not already carry.
//
// The error wraps ErrNoRoute when no rule routes the reading.
//
// Change-of-value state advances when Up returns a point; a caller that
// then fails to store the messages calls Forget, so the next reading of
// those points is sent whatever its value.
func (m *Mapper) Up(r edgegw.Reading) ([]edgegw.Message, error) {
	if r.Message != nil {
		return m.upMessage(r)
	}
	rule := m.rules().devices[devKey{r.Adapter, r.Device}]
	if rule == nil {
		return nil, fmt.Errorf("mapping: reading from %s/%s: %w: no device rule", r.Adapter, r.Device, ErrNoRoute)
	}
	if r.Time.IsZero() {
		return nil, fmt.Errorf("mapping: reading from %s/%s has no time", r.Adapter, r.Device)
	}
	var tel, rep []sel
	alarm := false
	seen := make(map[string]bool, len(r.Points))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pt := range r.Points {
		if seen[pt.Name] || !pt.Value.IsValid() {
			continue
		}
		seen[pt.Name] = true
		p := rule.points[pt.Name]
		field := pt.Name
		if p == nil {
			if p = rule.unlisted; p == nil {
				continue
			}
		} else {
			field = p.field
		}
		al := p.inAlarm(pt.Value)
		if p.telemetry && m.due(covKey{r.Adapter, r.Device, pt.Name, false}, p.deadband, p.maxSilence, pt.Value, r.Time, al) {
			tel = append(tel, sel{field: field, pt: pt})
			alarm = alarm || al
		}
		if p.property && m.due(covKey{r.Adapter, r.Device, pt.Name, true}, p.propDeadband(), 0, pt.Value, r.Time, al) {
			rep = append(rep, sel{field: field, pt: pt, p: p})
		}
	}
	var out []edgegw.Message
	if len(tel) > 0 {
		out = append(out, edgegw.Message{
			Identity:        rule.identity,
			Kind:            edgegw.Telemetry,
			Body:            telemetryBody(&rule.cfg.Body, r, tel),
			ContentType:     rule.cfg.Body.ContentType,
			ContentEncoding: rule.cfg.Body.ContentEncoding,
			Created:         r.Time,
			Alarm:           alarm,
			Properties:      append([]edgegw.Property(nil), rule.props...),
		})
	}
	if len(rep) > 0 {
		out = append(out, edgegw.Message{
			Identity:        rule.identity,
			Kind:            edgegw.Reported,
			Body:            m.reportedBody(rule.identity, rep),
			ContentType:     DefaultContentType,
			ContentEncoding: DefaultContentEncoding,
			Created:         r.Time,
		})
	}
	return out, nil
}

// Forget drops the change-of-value state of r's points, for a caller that
// could not store the messages Up made from r: the next reading of those
// points is due in full, so no value stays unsent (a stale twin property
// would otherwise wait for a change).
func (m *Mapper) Forget(r edgegw.Reading) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pt := range r.Points {
		delete(m.cov, covKey{r.Adapter, r.Device, pt.Name, false})
		delete(m.cov, covKey{r.Adapter, r.Device, pt.Name, true})
	}
}

// sel is one point value selected for a message.
type sel struct {
	field string
	pt    edgegw.Point
	p     *point
}

// due reports whether the value must be sent, and if so records it as sent.
// Without a deadband every reading is due. With one, a value is due when it
// is the first, moved more than the deadband from the last value sent,
// entered or left alarm, or maxSilence (if > 0) has passed since the last
// send. Called with m.mu held.
func (m *Mapper) due(k covKey, deadband *float64, maxSilence time.Duration, v edgegw.Value, at time.Time, alarm bool) bool {
	if deadband == nil {
		return true
	}
	prev, ok := m.cov[k]
	send := !ok || alarm != prev.alarm || at.Before(prev.at) ||
		(maxSilence > 0 && at.Sub(prev.at) >= maxSilence) ||
		changed(prev.value, v, *deadband)
	if send {
		m.cov[k] = covState{value: v, at: at, alarm: alarm}
	}
	return send
}

// propDeadband is the deadband for reported properties: the point's, or 0
// (any change). The twin keeps the last value, so an unchanged property is
// never resent.
func (p *point) propDeadband() *float64 {
	if p.deadband != nil {
		return p.deadband
	}
	zero := 0.0
	return &zero
}

// changed compares numbers by deadband and everything else by equality.
func changed(a, b edgegw.Value, deadband float64) bool {
	fa, okA := a.Float()
	fb, okB := b.Float()
	if !okA || !okB {
		return a != b
	}
	if math.IsNaN(fa) || math.IsNaN(fb) {
		return math.IsNaN(fa) != math.IsNaN(fb)
	}
	if deadband == 0 {
		return fa != fb
	}
	return math.Abs(fa-fb) > deadband
}

// inAlarm applies the point's alarm conditions to v.
func (p *point) inAlarm(v edgegw.Value) bool {
	if p.alarm {
		switch v.Kind() {
		case edgegw.KindBool:
			if b, _ := v.Bool(); b {
				return true
			}
		case edgegw.KindString:
			if s, _ := v.Str(); s != "" {
				return true
			}
		default:
			if f, _ := v.Float(); f != 0 {
				return true
			}
		}
	}
	f, ok := v.Float()
	if !ok || math.IsNaN(f) {
		return false
	}
	return (p.above != nil && f > *p.above) || (p.below != nil && f < *p.below)
}

// upMessage routes a ready-made message from a LAN device.
func (m *Mapper) upMessage(r edgegw.Reading) ([]edgegw.Message, error) {
	msg := *r.Message
	msg.Properties = append([]edgegw.Property(nil), msg.Properties...)
	if msg.Kind == 0 {
		msg.Kind = edgegw.Telemetry
	}
	if msg.Kind != edgegw.Telemetry && msg.Kind != edgegw.Reported {
		return nil, fmt.Errorf("mapping: message from %s/%s: bad kind %s", r.Adapter, r.Device, msg.Kind)
	}
	if msg.Created.IsZero() {
		msg.Created = r.Time
	}
	if msg.Identity != "" {
		if !m.rules().owned[msg.Identity] {
			return nil, fmt.Errorf("mapping: message from %s/%s: %w: identity %s is not owned by this gateway",
				r.Adapter, r.Device, ErrNoRoute, msg.Identity)
		}
		return []edgegw.Message{msg}, nil
	}
	rule := m.rules().devices[devKey{r.Adapter, r.Device}]
	if rule == nil {
		return nil, fmt.Errorf("mapping: message from %s/%s: %w: no identity and no device rule", r.Adapter, r.Device, ErrNoRoute)
	}
	msg.Identity = rule.identity
	if msg.Kind == edgegw.Reported {
		return []edgegw.Message{msg}, nil
	}
	// The rule's body labels describe the JSON documents mapping builds;
	// a ready message takes them only when its body fits the label (a
	// payload that is not JSON is not labelled application/json).
	if msg.ContentType == "" && (rule.cfg.Body.ContentType != DefaultContentType || json.Valid(msg.Body)) {
		msg.ContentType = rule.cfg.Body.ContentType
	}
	if msg.ContentEncoding == "" && msg.ContentType != "" {
		msg.ContentEncoding = rule.cfg.Body.ContentEncoding
	}
	for _, p := range rule.props {
		if !hasProp(msg.Properties, p.Key) {
			msg.Properties = append(msg.Properties, p)
		}
	}
	return []edgegw.Message{msg}, nil
}

func hasProp(ps []edgegw.Property, key string) bool {
	for _, p := range ps {
		if p.Key == key {
			return true
		}
	}
	return false
}

func telemetryBody(shape *Body, r edgegw.Reading, sels []sel) []byte {
	var top, pts obj
	if shape.Timestamp != "" {
		top.val(shape.Timestamp, r.Time.UTC().Format(time.RFC3339Nano))
	}
	if shape.Device != "" {
		top.val(shape.Device, r.Device)
	}
	dst := &top
	if shape.Wrap != "" {
		dst = &pts
	}
	for _, s := range sels {
		if shape.Units {
			var u obj
			u.val("value", s.pt.Value)
			if s.pt.Unit != "" {
				u.val("unit", s.pt.Unit)
			}
			dst.raw(s.field, u.bytes())
			continue
		}
		dst.val(s.field, s.pt.Value)
	}
	if shape.Wrap != "" {
		top.raw(shape.Wrap, pts.bytes())
	}
	return top.bytes()
}

// reportedBody is the patch {"<field>": value, ...}. A writable point is
// reported in the acknowledgement form of IoT Plug and Play: ac 200 with
// the desired version when the device holds the value last applied, else
// ac 203 (the value was set on the device) with the last version seen.
// Called with m.mu held.
func (m *Mapper) reportedBody(id edgegw.DeviceID, sels []sel) []byte {
	var o obj
	for _, s := range sels {
		if !s.p.writable {
			o.val(s.field, s.pt.Value)
			continue
		}
		rec := m.applied[ackKey{id, s.field}]
		status, desc := 203, "set on the device"
		if rec.status == 200 && rec.version >= rec.seen && same(rec.value, s.pt.Value, s.p) {
			status, desc = 200, "applied"
		}
		o.raw(s.field, ackBody(s.pt.Value, status, max(rec.version, rec.seen), desc))
	}
	return o.bytes()
}

// same reports whether the device's value v equals the applied value a,
// within the point's deadband and float32 rounding.
func same(a, v edgegw.Value, p *point) bool {
	fa, okA := a.Float()
	fv, okV := v.Float()
	if !okA || !okV {
		return a == v
	}
	tol := math.Abs(fa) * 1e-6
	if p.deadband != nil && *p.deadband > tol {
		tol = *p.deadband
	}
	return math.Abs(fa-fv) <= tol
}
