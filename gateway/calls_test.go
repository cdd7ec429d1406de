package gateway

import (
	"strings"
	"testing"
)

// opcuaCallsBase is a valid config with an OPC UA method and a call rule
// for it; tests replace parts of it.
const opcuaCallsBase = `
hub: {host: hub.example.net}
identities:
  - {id: boiler-1, key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}
southbound:
  - name: opc
    opcua:
      endpoint: opc.tcp://127.0.0.1:4840
      devices:
        - name: boiler
          points: [{name: t, node: "ns=1;s=T", type: double}]
          methods: [{name: start, object: "ns=1;s=B", method: "ns=1;s=B.Start", inputs: [double]}]
  - name: sim
    simulator: {devices: [{name: s, points: [{name: x, kind: constant}]}]}
mapping:
  methods:
    - identity: boiler-1
      name: start
      params: [{name: p, type: float}]
      actions: [{kind: call, adapter: opc, device: boiler, method: start, args: [p]}]
`

// TestCallRulesChecked: a call action must name a method its OPC UA device
// configures, with as many arguments as it has inputs, on an adapter that
// can call methods.
func TestCallRulesChecked(t *testing.T) {
	if _, err := Parse("calls.yaml", []byte(opcuaCallsBase)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, want string }{
		{"method: start, args", "method: strat, args",
			`calls.yaml: mapping.methods[0].actions[0].method: unknown method "strat" of opc/boiler (methods: start)`},
		{"args: [p]}]\n", "args: [p, p]}]\n",
			`calls.yaml: mapping.methods[0].actions[0].args: 2 arguments for method "start", which takes 1 inputs`},
		{"adapter: opc, device: boiler, method", "adapter: sim, device: s, method",
			`calls.yaml: mapping.methods[0].actions[0].adapter: "sim" cannot call methods`},
	} {
		src := strings.Replace(opcuaCallsBase, c.from, c.to, 1)
		if src == opcuaCallsBase {
			t.Fatalf("%q not in the base config", c.from)
		}
		_, err := Parse("calls.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}
