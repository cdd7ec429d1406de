package mapping

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw"
)

func callConfig(t *testing.T, src string) (Config, error) {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	return c, c.Validate()
}

const callRules = `
methods:
  - identity: boiler-1
    name: start
    params:
      - {name: power, type: float, min: 0, max: 100}
      - {name: duration, type: uint, max: 3600, optional: true, default: 60}
    actions:
      - {kind: call, adapter: opc, device: boiler, method: start, args: [power, duration]}
  - identity: boiler-1
    name: startFixed
    params:
      - {name: power, type: float}
    actions:
      - {kind: call, adapter: opc, device: boiler, method: start, args: [power]}
    response: '{"ok":true}'
`

// TestCallAction: a call action carries its typed, range-checked
// arguments in order (defaults filled in); a payload out of range runs
// nothing; the call's output answers the method unless the rule sets a
// response.
func TestCallAction(t *testing.T) {
	cfg, err := callConfig(t, callRules)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Down(edgegw.Command{Identity: "boiler-1", Kind: edgegw.Method, Name: "start", Payload: []byte(`{"power": 40}`)})
	if p.Rejected != nil || len(p.Actions) != 1 {
		t.Fatalf("plan %+v", p)
	}
	a := p.Actions[0]
	if a.Kind != edgegw.CallMethod || a.Method != "start" || a.Device != "boiler" || len(a.Args) != 2 ||
		a.Args[0] != edgegw.Float(40) || a.Args[1] != edgegw.Uint(60) {
		t.Errorf("action %s %+v", a, a.Args)
	}
	if s := a.String(); s != "opc/boiler: call start[40 60]" {
		t.Errorf("String() = %q", s)
	}
	p.SetOutput(0, []byte(`{"accepted":true}`))
	res, _ := m.Complete(p, []error{nil})
	if res.Status != 200 || string(res.Payload) != `{"accepted":true}` {
		t.Errorf("result %d %s", res.Status, res.Payload)
	}

	p = m.Down(edgegw.Command{Identity: "boiler-1", Kind: edgegw.Method, Name: "start", Payload: []byte(`{"power": 140}`)})
	if p.Rejected == nil || p.Rejected.Status != 400 || len(p.Actions) != 0 {
		t.Errorf("out of range: plan %+v", p)
	}

	p = m.Down(edgegw.Command{Identity: "boiler-1", Kind: edgegw.Method, Name: "startFixed", Payload: []byte(`{"power": 1.5}`)})
	p.SetOutput(0, []byte(`{"accepted":true}`))
	if res, _ := m.Complete(p, []error{nil}); string(res.Payload) != `{"ok":true}` {
		t.Errorf("a rule's response is replaced by the output: %s", res.Payload)
	}
	p = m.Down(edgegw.Command{Identity: "boiler-1", Kind: edgegw.Method, Name: "start", Payload: []byte(`{"power": 1}`)})
	p.SetOutput(0, []byte(`not json`))
	if res, _ := m.Complete(p, []error{nil}); string(res.Payload) != DefaultResponse {
		t.Errorf("invalid output kept: %s", res.Payload)
	}
	p = m.Down(edgegw.Command{Identity: "boiler-1", Kind: edgegw.Method, Name: "start", Payload: []byte(`{"power": 1}`)})
	if res, _ := m.Complete(p, []error{WithStatus(errors.New("BadOutOfRange"), 400)}); res.Status != 400 {
		t.Errorf("failed call: %d %s", res.Status, res.Payload)
	}
}

// TestCallActionConfig: a call names a device and a method, and only
// declared, typed, always-present parameters as arguments.
func TestCallActionConfig(t *testing.T) {
	for _, c := range []struct{ actions, params, want string }{
		{`[{kind: call, adapter: opc, device: boiler, args: [p]}]`, `[{name: p, type: int}]`, "actions[0].method: is required"},
		{`[{kind: call, adapter: opc, method: m}]`, `[]`, "actions[0].device: is required"},
		{`[{kind: call, adapter: opc, device: b, method: m, args: [q]}]`, `[{name: p, type: int}]`, `unknown parameter "q"`},
		{`[{kind: call, adapter: opc, device: b, method: m, args: [p]}]`, `[{name: p, type: int, optional: true}]`, "optional without a default"},
		{`[{kind: call, adapter: opc, device: b, method: m, point: x}]`, `[]`, "actions[0].point: applies to write actions only"},
		{`[{kind: call, adapter: opc, device: b, method: m, frame: x}]`, `[]`, "actions[0].frame: applies to send and publish"},
		{`[{kind: send, adapter: s, device: b, frame: x, method: m}]`, `[]`, "actions[0].method: applies to call actions only"},
	} {
		_, err := callConfig(t, "methods:\n  - {identity: i, name: n, params: "+c.params+", actions: "+c.actions+"}\n")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.actions, err, c.want)
		}
	}
	cfg, err := callConfig(t, callRules)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Check([]edgegw.PointInfo{{Adapter: "opc", Device: "pump"}})
	if err == nil || !strings.Contains(err.Error(), `unknown device "boiler" of adapter "opc"`) {
		t.Errorf("Check = %v", err)
	}
	if err := cfg.Check([]edgegw.PointInfo{{Adapter: "opc", Device: "boiler"}}); err != nil {
		t.Errorf("Check = %v", err)
	}
}
