package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/edgegw/edgegw"
)

// downDesired plans a desired-properties patch (or the desired section of
// a full twin): one write per property that names a writable point.
func (m *Mapper) downDesired(p *Plan) {
	cmd := &p.Command
	fields, err := parseObject("desired", cmd.Payload)
	if err != nil {
		p.reject(400, err.Error())
		return
	}
	var bad []string
	for _, f := range fields {
		raw := bytes.TrimSpace(f.raw)
		if f.key == "$version" && cmd.Version == 0 {
			// The gateway normally sets Version; the patch has it too.
			_ = json.Unmarshal(raw, &cmd.Version)
		}
		if strings.HasPrefix(f.key, "$") || string(raw) == "null" {
			continue
		}
		pp := propPlan{field: f.key, value: compact(raw), action: -1}
		pt := m.rules().desired[cmd.Identity][f.key]
		switch {
		case pt == nil && m.rules().readonly[cmd.Identity][f.key] != nil:
			ro := m.rules().readonly[cmd.Identity][f.key]
			pp.status = 400
			pp.desc = fmt.Sprintf("point %s of %s/%s is not writable", ro.name, ro.adapter, ro.device)
			bad = append(bad, f.key+": "+pp.desc)
		case pt == nil:
			pp.status = 404
			pp.desc = "no writable point for this property"
		default:
			pp.point = pt
			v, err := scalar(raw, pt.lim)
			if err != nil {
				pp.status = 400
				pp.desc = err.Error()
				bad = append(bad, f.key+": "+pp.desc)
				break
			}
			pp.applied = v
			pp.action = len(p.Actions)
			p.Actions = append(p.Actions, edgegw.Action{
				Adapter: pt.adapter, Device: pt.device, Kind: edgegw.WritePoint,
				Point: pt.name, Value: v,
			})
		}
		p.props = append(p.props, pp)
	}
	if len(bad) == 0 {
		if len(p.Actions) == 0 {
			p.Note = "nothing to write"
		}
		return
	}
	// All or nothing: the valid properties are not written either.
	for i := range p.props {
		if pp := &p.props[i]; pp.action >= 0 {
			pp.action, pp.status = -1, 400
			pp.desc = "not applied: the patch has invalid properties"
		}
	}
	p.reject(400, "desired: "+strings.Join(bad, "; "))
}

func compact(raw []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return append([]byte(nil), raw...)
	}
	return b.Bytes()
}
