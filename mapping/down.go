package mapping

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/edgegw/edgegw"
)

// Down validates cmd and plans the actions it asks for. The plan is never
// nil. When any part of the command is invalid, Rejected holds the status
// and the plan has no actions:
//
//   - a method no rule names: unknown_method_status (default 501);
//   - a payload that is not JSON, not an object, has a field of the wrong
//     type, a value outside the point's or parameter's min/max, a missing
//     required field or an unknown one: 400;
//   - a desired property naming a point that is not writable, or whose
//     value is of the wrong type or out of range: 400 (then no property of
//     that patch is written, and every one is acknowledged with ac 400);
//   - a C2D message whose topic template needs a missing property: 400.
//
// Desired properties that name no point of the identity are acknowledged
// with ac 404 and do not block the others; keys starting with '$' and null
// values (deletions) are ignored. A C2D message for an identity without a
// c2d rule, or with an ignore rule, gives an empty plan with a Note;
// Complete then answers 200.
func (m *Mapper) Down(cmd edgegw.Command) *Plan {
	p := &Plan{Command: cmd}
	switch cmd.Kind {
	case edgegw.Method:
		m.downMethod(p)
	case edgegw.Desired:
		m.downDesired(p)
	case edgegw.C2D:
		m.downC2D(p)
	default:
		p.reject(400, fmt.Sprintf("unknown command kind %s", cmd.Kind))
	}
	if p.Rejected != nil {
		p.Actions = nil
	}
	return p
}

func (p *Plan) reject(status int, msg string) {
	var o obj
	o.val("error", msg)
	p.Rejected = &edgegw.Result{Status: status, Payload: o.bytes()}
}

func (m *Mapper) downMethod(p *Plan) {
	cmd := &p.Command
	mt := m.rules().methods[cmd.Identity][cmd.Name]
	if mt == nil {
		var known []string
		for n := range m.rules().methods[cmd.Identity] {
			known = append(known, n)
		}
		sort.Strings(known)
		have := strings.Join(known, ", ")
		if have == "" {
			have = "none"
		}
		p.reject(m.rules().unknown, fmt.Sprintf("unknown method %q for %s (methods: %s)", cmd.Name, cmd.Identity, have))
		return
	}
	p.method = mt
	vals, err := parseParams(mt.params, cmd.Payload)
	if err != nil {
		p.reject(400, err.Error())
		return
	}
	e := &env{params: vals, identity: string(cmd.Identity), method: cmd.Name, payload: cmd.Payload}
	var errs []string
	for i, a := range mt.actions {
		act, skip, err := a.build(e)
		if err != nil {
			errs = append(errs, fmt.Sprintf("actions[%d]: %v", i, err))
			continue
		}
		if !skip {
			p.Actions = append(p.Actions, act)
		}
	}
	if len(errs) > 0 {
		p.reject(400, strings.Join(errs, "; "))
	}
}

// build makes the action for one method call. skip is true for a write
// from an optional parameter the payload left out.
func (a *action) build(e *env) (act edgegw.Action, skip bool, err error) {
	act = edgegw.Action{Adapter: a.adapter, Device: a.device, Kind: a.kind}
	switch a.kind {
	case edgegw.WritePoint:
		v := a.value
		if a.param != nil {
			var ok bool
			if v, ok = e.params[a.param.name]; !ok {
				return act, true, nil
			}
		}
		if v, err = a.point.lim.coerce(v); err != nil {
			return act, false, fmt.Errorf("point %s: %v", a.point.name, err)
		}
		act.Point, act.Value = a.point.name, v
	case edgegw.SendFrame:
		if act.Payload, err = a.frame.expand(e); err != nil {
			return act, false, err
		}
	case edgegw.CallMethod:
		act.Method = a.method
		for _, p := range a.args {
			v, ok := e.params[p.name]
			if !ok {
				return act, false, fmt.Errorf("argument %s: missing", p.name)
			}
			act.Args = append(act.Args, v)
		}
	case edgegw.PublishLAN:
		topic, err := a.topic.expand(e)
		if err != nil {
			return act, false, fmt.Errorf("topic: %v", err)
		}
		if err := checkTopic(topic); err != nil {
			return act, false, err
		}
		act.Topic = string(topic)
		if a.whole {
			act.Payload = append([]byte(nil), e.payload...)
		} else if act.Payload, err = a.frame.expand(e); err != nil {
			return act, false, fmt.Errorf("payload: %v", err)
		}
	}
	return act, false, nil
}

// checkTopic refuses topics a publish cannot use.
func checkTopic(t []byte) error {
	s := string(t)
	switch {
	case s == "":
		return errors.New("topic: empty")
	case strings.ContainsAny(s, "+#\x00"):
		return fmt.Errorf("topic %q: wildcards and NUL are not allowed", s)
	case strings.HasPrefix(s, "$"):
		return fmt.Errorf("topic %q: must not start with '$'", s)
	case hasControl(s):
		return fmt.Errorf("topic %q: control character", s)
	}
	return nil
}

func (m *Mapper) downC2D(p *Plan) {
	cmd := &p.Command
	r := m.rules().c2d[cmd.Identity]
	switch {
	case r == nil:
		p.Note = fmt.Sprintf("no c2d rule for identity %s: acknowledged only", cmd.Identity)
		return
	case r.kind == 0:
		p.Note = fmt.Sprintf("c2d rule for identity %s: ignored", cmd.Identity)
		return
	}
	act := edgegw.Action{Adapter: r.adapter, Device: r.device, Kind: r.kind,
		Payload: append([]byte(nil), cmd.Payload...)}
	if r.kind == edgegw.PublishLAN {
		e := &env{identity: string(cmd.Identity), props: cmd.Props}
		topic, err := r.topic.expand(e)
		if err == nil {
			err = checkTopic(topic)
		}
		if err != nil {
			p.reject(400, fmt.Sprintf("c2d topic: %v", err))
			return
		}
		act.Topic = string(topic)
	}
	if r.kind == edgegw.SendFrame {
		if err := checkFrame(cmd.Payload); err != nil {
			p.reject(400, fmt.Sprintf("c2d frame: %v", err))
			return
		}
	}
	p.Actions = []edgegw.Action{act}
}

// MaxC2DFrame is the longest C2D body a send rule passes to a serial device.
const MaxC2DFrame = 256

// checkFrame refuses a C2D body bound for a serial line that could carry
// more than one command: control characters (line terminators among them;
// the adapter adds its own terminator) or more than MaxC2DFrame bytes.
func checkFrame(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty body")
	}
	if len(b) > MaxC2DFrame {
		return fmt.Errorf("%d bytes, at most %d", len(b), MaxC2DFrame)
	}
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character 0x%02x at byte %d: one message is one command", c, i)
		}
	}
	return nil
}

// HasCommandRules reports whether any rule maps commands for identity: a
// method, a writable point or a C2D rule. An identity without any may be
// relayed whole to a device that speaks the hub's protocol itself.
func (m *Mapper) HasCommandRules(identity edgegw.DeviceID) bool {
	return len(m.rules().methods[identity]) > 0 || len(m.rules().desired[identity]) > 0 || m.rules().c2d[identity] != nil
}
