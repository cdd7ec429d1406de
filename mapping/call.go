package mapping

import (
	"encoding/json"

	"github.com/edgegw/edgegw"
)

// compileCall checks a call action: the device and procedure it names,
// and its arguments, each a declared parameter that is always present
// (required, or optional with a default), whose type and limits the
// payload is checked against before anything runs.
func compileCall(a *action, ar *ActionRule, path string, add adder, params map[string]*param) {
	for field, set := range map[string]bool{"point": ar.Point != "", "param": ar.Param != "", "value": ar.Value != nil} {
		if set {
			add(path+"."+field, "applies to write actions only (kind is call)")
		}
	}
	for field, set := range map[string]bool{"frame": ar.Frame != "", "topic": ar.Topic != "", "payload": ar.Payload != ""} {
		if set {
			add(path+"."+field, "applies to send and publish actions only (kind is call)")
		}
	}
	if ar.Device == "" {
		add(path+".device", "is required")
	}
	if ar.Method == "" {
		add(path+".method", "is required")
	}
	a.method = ar.Method
	for i, name := range ar.Args {
		p := params[name]
		switch {
		case p == nil:
			add(path+".args", "args[%d]: unknown parameter %q (have: %s)", i, name, names(params))
			continue
		case len(p.lims) == 0:
			add(path+".args", "args[%d]: parameter %q needs a type", i, name)
		case p.optional && p.def == nil:
			add(path+".args", "args[%d]: parameter %q is optional without a default", i, name)
		}
		a.args = append(a.args, p)
	}
}

// SetOutput records what action i of the plan (a call) returned: a JSON
// value that becomes the method response when the rule sets none. The
// last call's output answers.
func (p *Plan) SetOutput(i int, out []byte) {
	if i < 0 || i >= len(p.Actions) || p.Actions[i].Kind != edgegw.CallMethod || !json.Valid(out) {
		return
	}
	if p.outputs == nil {
		p.outputs = make([][]byte, len(p.Actions))
	}
	p.outputs[i] = append([]byte(nil), out...)
}

// output is the last recorded call output, or nil.
func (p *Plan) output() []byte {
	for i := len(p.outputs) - 1; i >= 0; i-- {
		if p.outputs[i] != nil {
			return p.outputs[i]
		}
	}
	return nil
}
