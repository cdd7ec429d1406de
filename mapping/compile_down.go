package mapping

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/edgegw/edgegw"
)

// compileMethod checks one method rule. It returns nil when the rule has no
// identity or name to file it under.
func compileMethod(t *tables, mr *MethodRule, path string, add adder) *method {
	m := &method{identity: mr.Identity, name: mr.Name, response: []byte(mr.Response)}
	if mr.Identity == "" {
		add(path+".identity", "is required")
	}
	if mr.Name == "" {
		add(path+".name", "is required")
	}
	if !validJSON(mr.Response) {
		add(path+".response", "must be JSON (got %q)", mr.Response)
	}
	byName := map[string]*param{}
	for i := range mr.Params {
		pr := &mr.Params[i]
		pp := fmt.Sprintf("%s.params[%d]", path, i)
		p := compileParam(pr, pp, add)
		if pr.Name == "" {
			continue
		}
		if _, dup := byName[pr.Name]; dup {
			add(pp+".name", "duplicate parameter %q", pr.Name)
			continue
		}
		byName[pr.Name] = p
		m.params = append(m.params, p)
	}
	for _, ar := range mr.Actions {
		// A write from an undeclared parameter declares it, with the
		// type and limits of the point (added by compileAction).
		if ar.Kind == "write" && ar.Param != "" && byName[ar.Param] == nil {
			p := &param{name: ar.Param}
			byName[ar.Param] = p
			m.params = append(m.params, p)
		}
	}
	refOK := func(ref string) error {
		if builtin[ref] {
			return nil
		}
		if _, ok := byName[ref]; !ok {
			return fmt.Errorf("unknown parameter (have: %s)", names(byName))
		}
		return nil
	}
	for i := range mr.Actions {
		ar := &mr.Actions[i]
		ap := fmt.Sprintf("%s.actions[%d]", path, i)
		a, ok := compileAction(t, ar, ap, add, byName, refOK)
		if !ok {
			continue
		}
		m.actions = append(m.actions, a)
		m.outputs = m.outputs || a.kind == edgegw.CallMethod && mr.Response == DefaultResponse
		for _, ref := range append(a.frame.refs(), a.topic.refs()...) {
			if p := byName[ref]; p != nil && p.optional && p.def == nil {
				add(ap, "${%s} refers to an optional parameter without a default", ref)
			}
		}
	}
	if mr.Identity == "" || mr.Name == "" {
		return nil
	}
	return m
}

func names(m map[string]*param) string {
	if len(m) == 0 {
		return "none"
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func compileParam(pr *Param, path string, add adder) *param {
	l := limits{kind: pr.Type.Kind(), min: pr.Min, max: pr.Max}
	p := &param{name: pr.Name, lims: []limits{l}, optional: pr.Optional, pattern: pr.Pattern}
	if pr.Name == "" {
		add(path+".name", "is required")
	} else if strings.ContainsAny(pr.Name, "{}:$") || builtin[pr.Name] {
		add(path+".name", "must not contain '{', '}', ':' or '$' nor be identity, method or payload (got %q)", pr.Name)
	}
	if l.kind == edgegw.KindInvalid {
		add(path+".type", "must be bool, int, uint, float or string (got %q)", pr.Type)
		return p
	}
	checkRange(path, l, add)
	if pr.Pattern != "" {
		if l.kind != edgegw.KindString {
			add(path+".pattern", "applies to type string only (type is %s)", pr.Type)
		}
		re, err := regexp.Compile(pr.Pattern)
		if err != nil {
			add(path+".pattern", "%v", err)
		}
		p.re = re
	}
	if pr.Default != nil {
		if !pr.Optional {
			add(path+".default", "needs optional: true")
		}
		v, err := l.coerce(pr.Default.V)
		if err != nil {
			add(path+".default", "%v", err)
		} else if p.re != nil && !p.re.MatchString(mustStr(v)) {
			add(path+".default", "does not match pattern %q", pr.Pattern)
		}
		p.def = &v
	}
	return p
}

func mustStr(v edgegw.Value) string { s, _ := v.Str(); return s }

// builtin are the references every method template may make.
var builtin = map[string]bool{"identity": true, "method": true, "payload": true}

var actionKinds = map[string]edgegw.ActionKind{
	"write": edgegw.WritePoint, "send": edgegw.SendFrame, "publish": edgegw.PublishLAN,
	"call": edgegw.CallMethod,
}

func compileAction(t *tables, ar *ActionRule, path string, add adder,
	params map[string]*param, refOK func(string) error) (action, bool) {
	a := action{kind: actionKinds[ar.Kind], adapter: ar.Adapter, device: ar.Device}
	if ar.Adapter == "" {
		add(path+".adapter", "is required")
	}
	only := func(field string, set bool, kinds string) {
		if set {
			add(path+"."+field, "applies to %s actions only (kind is %s)", kinds, ar.Kind)
		}
	}
	tmpl := func(field, s string) template {
		tp, err := parseTemplate(s, refOK)
		if err != nil {
			add(path+"."+field, "%v", err)
		}
		return tp
	}
	if a.kind != edgegw.CallMethod {
		only("method", ar.Method != "", "call")
		only("args", len(ar.Args) > 0, "call")
	}
	switch a.kind {
	case edgegw.CallMethod:
		compileCall(&a, ar, path, add, params)
	case edgegw.WritePoint:
		only("frame", ar.Frame != "", "send")
		only("topic", ar.Topic != "", "publish")
		only("payload", ar.Payload != "", "publish")
		if ar.Device == "" {
			add(path+".device", "is required")
		}
		if ar.Point == "" {
			add(path+".point", "is required")
		}
		if ar.Adapter == "" || ar.Device == "" || ar.Point == "" {
			return a, false
		}
		p, err := t.writable(ar.Adapter, ar.Device, ar.Point)
		if err != nil {
			add(path+".point", "%v", err)
			return a, false
		}
		a.point = p
		switch {
		case ar.Param != "" && ar.Value != nil:
			add(path, "set either param or value, not both")
		case ar.Param != "":
			prm := params[ar.Param]
			if len(prm.lims) > 0 && !compatible(prm.lims[0].kind, p.lim.kind) {
				add(path+".param", "parameter %q is %s but point %s is %s", ar.Param, prm.lims[0].kind, ar.Point, p.lim.kind)
			}
			prm.lims = append(prm.lims, p.lim)
			a.param = prm
		case ar.Value != nil:
			v, err := p.lim.coerce(ar.Value.V)
			if err != nil {
				add(path+".value", "%v", err)
			}
			a.value = v
		default:
			add(path, "needs param (a payload field) or value (a constant)")
		}
	case edgegw.SendFrame:
		only("point", ar.Point != "", "write")
		only("param", ar.Param != "", "write")
		only("value", ar.Value != nil, "write")
		only("topic", ar.Topic != "", "publish")
		only("payload", ar.Payload != "", "publish")
		if ar.Device == "" {
			add(path+".device", "is required")
		}
		if ar.Frame == "" {
			add(path+".frame", "is required")
		}
		a.frame = tmpl("frame", ar.Frame)
	case edgegw.PublishLAN:
		only("point", ar.Point != "", "write")
		only("param", ar.Param != "", "write")
		only("value", ar.Value != nil, "write")
		only("frame", ar.Frame != "", "send")
		only("device", ar.Device != "", "write and send")
		if ar.Topic == "" {
			add(path+".topic", "is required")
		}
		a.topic = tmpl("topic", ar.Topic)
		a.frame = tmpl("payload", ar.Payload)
		a.whole = ar.Payload == ""
	default:
		add(path+".kind", "must be write, send, publish or call (got %q)", ar.Kind)
		return a, false
	}
	return a, true
}

// compatible reports whether a parameter of kind p may feed a point of kind q.
func compatible(p, q edgegw.Kind) bool {
	if numeric(p) && numeric(q) {
		return true
	}
	return p == q
}

// writable finds the writable point a write action targets.
func (t *tables) writable(adapter, device, name string) (*point, error) {
	r := t.devices[devKey{adapter, device}]
	if r == nil {
		return nil, fmt.Errorf("no device rule for %s/%s (a write needs the point listed there as writable)", adapter, device)
	}
	p := r.points[name]
	if p == nil || !p.writable {
		var w []string
		for _, q := range sortedPoints(r.points) {
			if q.writable {
				w = append(w, q.name)
			}
		}
		have := strings.Join(w, ", ")
		if have == "" {
			have = "none"
		}
		if p == nil {
			return nil, fmt.Errorf("unknown point %q of %s/%s (writable points: %s)", name, adapter, device, have)
		}
		return nil, fmt.Errorf("point %q of %s/%s is not writable (writable points: %s)", name, adapter, device, have)
	}
	return p, nil
}

func compileC2D(cr *C2DRule, path string, add adder) *c2dRule {
	r := &c2dRule{adapter: cr.Adapter, device: cr.Device}
	if cr.Identity == "" {
		add(path+".identity", "is required")
	}
	refOK := func(ref string) error {
		if ref == "identity" || strings.HasPrefix(ref, "prop:") && len(ref) > 5 {
			return nil
		}
		return fmt.Errorf("unknown reference (want identity or prop:<key>)")
	}
	switch cr.Kind {
	case "ignore":
		if cr.Adapter != "" || cr.Device != "" || cr.Topic != "" {
			add(path, "an ignore rule takes no adapter, device or topic")
		}
	case "publish":
		r.kind = edgegw.PublishLAN
		if cr.Adapter == "" {
			add(path+".adapter", "is required")
		}
		if cr.Device != "" {
			add(path+".device", "applies to send rules only (kind is publish)")
		}
		if cr.Topic == "" {
			add(path+".topic", "is required")
		}
		tp, err := parseTemplate(cr.Topic, refOK)
		if err != nil {
			add(path+".topic", "%v", err)
		}
		r.topic = tp
	case "send":
		r.kind = edgegw.SendFrame
		if cr.Adapter == "" {
			add(path+".adapter", "is required")
		}
		if cr.Device == "" {
			add(path+".device", "is required")
		}
		if cr.Topic != "" {
			add(path+".topic", "applies to publish rules only (kind is send)")
		}
	default:
		add(path+".kind", "must be publish, send or ignore (got %q)", cr.Kind)
	}
	return r
}
