package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw"
)

// fuzzRules is the fixed rule set FuzzDown runs against.
const fuzzRules = `
devices:
  - adapter: plc
    device: plc-3
    identity: plc-3
    points:
      - {name: speed, type: float, writable: true, min: 0, max: 1500}
      - {name: setpoint, type: float, writable: true, property: true, min: 5, max: 30}
      - {name: mode, type: int, writable: true, min: 0, max: 3}
      - {name: count, type: uint, writable: true, max: 100000}
      - {name: run, type: bool, writable: true}
      - {name: recipe, type: string, writable: true}
      - {name: temperature, type: float}
methods:
  - identity: plc-3
    name: setSpeed
    actions:
      - {kind: write, adapter: plc, device: plc-3, point: speed, param: speed}
  - identity: plc-3
    name: configure
    params:
      - {name: mode, type: int}
      - {name: speed, type: float, min: 100}
      - {name: count, type: int, optional: true}
      - {name: label, type: string, optional: true, default: "none", pattern: "^[a-z0-9 ]*$"}
      - {name: text, type: string, optional: true, default: ""}
    actions:
      - {kind: write, adapter: plc, device: plc-3, point: mode, param: mode}
      - {kind: write, adapter: plc, device: plc-3, point: speed, param: speed}
      - {kind: write, adapter: plc, device: plc-3, point: count, param: count}
      - {kind: send, adapter: rs485, device: vfd, frame: "CFG ${mode} ${speed} ${label} ${text}\r\n"}
      - {kind: publish, adapter: lan, topic: "plant/${identity}/${label}", payload: '{"mode":${mode:json},"text":${text:json}}'}
  - identity: plc-3
    name: start
    actions:
      - {kind: write, adapter: plc, device: plc-3, point: run, value: true}
  - identity: plc-3
    name: forward
    params: [{name: to, type: string}]
    actions:
      - {kind: publish, adapter: lan, topic: "dev/${to}"}
c2d:
  - {identity: plc-3, kind: publish, adapter: lan, topic: "c2d/${prop:to}"}
`

var fuzzMethods = []string{"setSpeed", "configure", "start", "forward", "reboot", ""}

func fuzzConfig(t testing.TB) Config {
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(fuzzRules))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// FuzzDown feeds arbitrary payloads as method calls, desired patches and
// C2D messages. Down must not panic, must never both reject and act, and
// every action it produces must pass an independent re-validation.
func FuzzDown(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `{"speed":100}`, `{"speed":1500.0001}`, `{"speed":-0}`, `{"speed":"1"}`,
		`{"mode":2,"speed":250.5,"label":"ab c","count":7}`, `{"mode":2,"speed":250,"text":"a\r\nb"}`,
		`{"mode":3.0,"speed":1e3,"count":-1}`, `{"speed":1e400}`, `{"speed":100,"speed":5000}`,
		`{"setpoint":21.5,"$version":4}`, `{"run":true,"recipe":"x","mode":null}`, `{"to":"a/#"}`,
		`{"to":"pump"}`, `[1,2]`, `"x"`, `{"speed":{"a":1}}`, `{"speed":100} {}`, `{"count":100001}`,
		`{"count":18446744073709551615}`, `{"mode":-9223372036854775808}`, "{\"to\":\"a\\u0000b\"}",
	} {
		for sel := range uint8(3 * len(fuzzMethods)) {
			if sel%3 == 0 || sel < 3 {
				f.Add(sel, []byte(s))
			}
		}
	}
	cfg := fuzzConfig(f)
	m, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sel uint8, payload []byte) {
		cmd := edgegw.Command{Identity: "plc-3", Payload: payload, Version: int64(sel)}
		switch sel % 3 {
		case 0:
			cmd.Kind = edgegw.Method
			cmd.Name = fuzzMethods[int(sel/3)%len(fuzzMethods)]
		case 1:
			cmd.Kind = edgegw.Desired
		case 2:
			cmd.Kind = edgegw.C2D
			cmd.Props = []edgegw.Property{{Key: "to", Value: string(payload)}}
		}
		p := m.Down(cmd)
		if p == nil {
			t.Fatal("nil plan")
		}
		if p.Rejected != nil {
			if len(p.Actions) != 0 {
				t.Fatalf("rejected (%d) with %d actions", p.Rejected.Status, len(p.Actions))
			}
			if !json.Valid(p.Rejected.Payload) {
				t.Fatalf("rejection payload is not JSON: %q", p.Rejected.Payload)
			}
		}
		if len(p.Actions) > 0 {
			revalidate(t, &cfg, cmd, p.Actions)
		}
		// Complete must cope with any outcome.
		for _, errs := range [][]error{nil, make([]error, len(p.Actions)), {errors.New("boom")}} {
			res, ack := m.Complete(p, errs)
			if res.Status < 200 || res.Status > 599 {
				t.Fatalf("status %d", res.Status)
			}
			if len(res.Payload) > 0 && !json.Valid(res.Payload) {
				t.Fatalf("result payload is not JSON: %q", res.Payload)
			}
			if ack != nil && (!json.Valid(ack.Body) || ack.Kind != edgegw.Reported || ack.Identity != cmd.Identity) {
				t.Fatalf("bad ack %+v", ack)
			}
		}
	})
}

// revalidate checks actions against the config without the compiled rules:
// the command must be well-formed JSON where JSON is expected, each write
// must target a writable point with a value of its type within min/max, and
// frames and topics must carry no injected control characters or wildcards.
func revalidate(t *testing.T, cfg *Config, cmd edgegw.Command, actions []edgegw.Action) {
	t.Helper()
	var obj map[string]any
	if cmd.Kind != edgegw.C2D {
		b := bytes.TrimSpace(cmd.Payload)
		if len(b) > 0 && string(b) != "null" {
			if err := json.Unmarshal(b, &obj); err != nil {
				t.Fatalf("actions from a payload that is not a JSON object: %q: %v", cmd.Payload, err)
			}
		}
	}
	if cmd.Kind == edgegw.Desired {
		// A patch that touches a read-only point is invalid as a whole.
		if v, ok := obj["temperature"]; ok && v != nil {
			t.Fatalf("actions from a patch that sets read-only temperature: %q", cmd.Payload)
		}
		for _, a := range actions {
			if v, ok := obj[a.Point]; !ok || v == nil {
				t.Fatalf("%s: property %q not set in the patch %q", a, a.Point, cmd.Payload)
			}
		}
	}
	for _, a := range actions {
		switch a.Kind {
		case edgegw.WritePoint:
			pr := findPoint(cfg, a.Adapter, a.Device, a.Point)
			if pr == nil || !pr.Writable {
				t.Fatalf("write to a point that is not writable: %s", a)
			}
			if a.Value.Kind() != pr.Type.Kind() {
				t.Fatalf("%s: value kind %s, point type %s", a, a.Value.Kind(), pr.Type)
			}
			if f, ok := a.Value.Float(); ok {
				if math.IsNaN(f) || math.IsInf(f, 0) ||
					(pr.Min != nil && f < *pr.Min) || (pr.Max != nil && f > *pr.Max) {
					t.Fatalf("%s: value outside [%v, %v]", a, pr.Min, pr.Max)
				}
			}
			if a.Point == "speed" && cmd.Name == "configure" {
				if f, _ := a.Value.Float(); f < 100 {
					t.Fatalf("%s: below the parameter's min 100", a)
				}
			}
		case edgegw.SendFrame:
			body, ok := bytes.CutSuffix(a.Payload, []byte("\r\n"))
			if !ok || bytes.ContainsFunc(body, unicode.IsControl) {
				t.Fatalf("frame with injected control characters: %q", a.Payload)
			}
		case edgegw.PublishLAN:
			if a.Topic == "" || strings.ContainsAny(a.Topic, "+#") || strings.ContainsFunc(a.Topic, unicode.IsControl) {
				t.Fatalf("bad topic %q", a.Topic)
			}
			if cmd.Kind == edgegw.Method && !json.Valid(a.Payload) {
				t.Fatalf("publish payload is not JSON: %q", a.Payload)
			}
		default:
			t.Fatalf("unknown action kind %s", a.Kind)
		}
	}
}

func findPoint(cfg *Config, adapter, device, name string) *PointRule {
	for i := range cfg.Devices {
		d := &cfg.Devices[i]
		if d.Adapter != adapter || d.Device != device {
			continue
		}
		for j := range d.Points {
			if d.Points[j].Name == name {
				return &d.Points[j]
			}
		}
	}
	return nil
}

// FuzzTemplate parses arbitrary templates and expands them: no panic, and
// a template without references is its own text.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"", "abc", "${a}", "${a:json}", "$${a}", "${", "${}", "x${identity}y${payload:json}", "${prop:k}"} {
		f.Add(s, "val\r\n")
	}
	f.Fuzz(func(t *testing.T, s, val string) {
		tp, err := parseTemplate(s, func(string) error { return nil })
		if err != nil {
			return
		}
		e := &env{params: map[string]edgegw.Value{}, identity: "id", method: "m", payload: []byte(val),
			props: []edgegw.Property{{Key: "k", Value: val}}}
		for _, r := range tp.refs() {
			e.params[r] = edgegw.String(val)
		}
		out, err := tp.expand(e)
		if !strings.Contains(s, "${") && (err != nil || string(out) != s) {
			t.Fatalf("literal template %q expanded to %q, %v", s, out, err)
		}
	})
}
