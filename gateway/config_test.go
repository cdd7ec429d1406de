package gateway

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/configs"
)

// base is a small valid config; the broken cases below each change one thing.
const base = `
state_dir: /tmp/edgegw-config-test
hub:
  host: hub.example.net
identities:
  - id: sensor-1
    key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
southbound:
  - name: lan
    lanmqtt:
      listen: 127.0.0.1:1883
      users:
        - username: sensor-1
          password: pw
          device: sensor-1
`

func TestBaseConfigIsValid(t *testing.T) {
	cfg, err := Parse("base.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Buffer.Dir != "/tmp/edgegw-config-test/queue" {
		t.Errorf("buffer.dir default = %q", cfg.Buffer.Dir)
	}
	if cfg.Log.Level != "info" || cfg.Log.Format != "text" {
		t.Errorf("log defaults = %+v", cfg.Log)
	}
}

// TestMergeKeys: YAML anchors and merge keys share settings between
// entries; the merged keys are checked like any others.
func TestMergeKeys(t *testing.T) {
	y := base + `    simulator_defaults: &sim {interval: 2s}
`
	_, err := Parse("merge.yaml", []byte(y))
	if err == nil || !strings.Contains(err.Error(), "southbound[0].simulator_defaults: unknown key") {
		t.Fatalf("err = %v", err)
	}
	good := base + `  - name: sim
    simulator:
      devices:
        - &dev {name: a, interval: 2s, points: [{name: p, kind: sine, min: 0, max: 1}]}
        - {<<: *dev, name: b}
`
	cfg, err := Parse("merge.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Southbound[1].Simulator.Devices[1]; d.Name != "b" || d.Interval != 2*time.Second || len(d.Points) != 1 {
		t.Errorf("merged device = %+v", d)
	}
	bad := strings.Replace(good, "interval: 2s", "intervall: 2s", 1)
	if _, err := Parse("merge.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "southbound[1].simulator.devices[0].intervall: unknown key") {
		t.Fatalf("err = %v", err)
	}
}

func TestExampleConfigsLoad(t *testing.T) {
	files, err := fs.Glob(configs.Examples, "*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			data, _ := fs.ReadFile(configs.Examples, name)
			if _, err := Parse("configs/"+name, data); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
}

// edit returns base with old replaced by new (which must occur).
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(base, old) {
		t.Fatalf("base has no %q", old)
	}
	return strings.Replace(base, old, new, 1)
}

func TestBrokenConfigs(t *testing.T) {
	cases := []struct {
		name string
		yaml func(t *testing.T) string
		want string // a line of the error, after "broken.yaml: "
	}{
		{"unknown top-level key", func(t *testing.T) string { return base + "hubb: {}\n" },
			`hubb: unknown key (did you mean "hub"?)`},
		{"unknown nested key", func(t *testing.T) string { return edit(t, "listen: 127.0.0.1:1883", "lisen: 127.0.0.1:1883") },
			`southbound[0].lanmqtt.lisen: unknown key (did you mean "listen"?)`},
		{"duration without unit", func(t *testing.T) string { return base + "buffer:\n  max_age: 5\n" },
			`buffer.max_age: must be a duration with a unit, like 5s or 1m30s (got "5")`},
		{"bad duration", func(t *testing.T) string { return base + "buffer:\n  max_age: 5 parsecs\n" },
			`buffer.max_age: must be a duration with a unit`},
		{"log level", func(t *testing.T) string { return base + "log: {level: loud}\n" },
			`log.level: must be debug, info, warn or error (got "loud")`},
		{"log format", func(t *testing.T) string { return base + "log: {format: xml}\n" },
			`log.format: must be text or json (got "xml")`},
		{"no identities", func(t *testing.T) string {
			return edit(t, "identities:\n  - id: sensor-1\n    key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", "")
		}, `identities: must list at least one identity`},
		{"duplicate identity", func(t *testing.T) string {
			return edit(t, "southbound:", "  - id: sensor-1\n    key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\nsouthbound:")
		}, `identities[1].id: duplicate of identities[0] (got "sensor-1")`},
		{"identity id with bad characters", func(t *testing.T) string { return edit(t, "id: sensor-1", "id: 'sensor 1'") },
			`identities[0].id:`},
		{"identity key not base64", func(t *testing.T) string {
			return edit(t, "key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "key: not-base64!")
		}, `identities[0].key:`},
		{"two adapter kinds", func(t *testing.T) string { return base + "    simulator: {}\n" },
			`southbound[0]: must set exactly one of lanmqtt, modbus, opcua, serial, simulator (got 2)`},
		{"no adapter kind", func(t *testing.T) string { return base + "  - name: empty\n" },
			`southbound[1]: must set exactly one of lanmqtt, modbus, opcua, serial, simulator (got 0)`},
		{"duplicate adapter name", func(t *testing.T) string { return base + "  - name: lan\n    lanmqtt: {listen: '127.0.0.1:1884'}\n" },
			`southbound[1].name: "lan" is already used by southbound[0]`},
		{"missing adapter name", func(t *testing.T) string { return edit(t, "- name: lan\n", "- lanmqtt_name: x\n") },
			`southbound[0].lanmqtt_name: unknown key`},
		{"wrong scalar type", func(t *testing.T) string {
			return edit(t, "host: hub.example.net", "host: hub.example.net\n  port: abc")
		},
			`hub.port: cannot read !!str`},
		{"syntax error", func(t *testing.T) string { return base + "  - name: [unclosed\n" },
			`line `},
		{"list expected", func(t *testing.T) string { return edit(t, "southbound:\n", "southbound: lan\nx:\n") },
			`southbound: must be a list (got "lan")`},
		{"mapping expected", func(t *testing.T) string { return base + "hubsim: yes\n" },
			`hubsim: must be a mapping of keys to values (got "yes")`},
		{"duplicate key", func(t *testing.T) string {
			return edit(t, "host: hub.example.net", "host: a.example.net\n  host: b.example.net")
		},
			`hub.host:`},
		{"lanmqtt listen", func(t *testing.T) string { return edit(t, "listen: 127.0.0.1:1883", "listen: nowhere") },
			`southbound[0].lanmqtt.listen: must be host:port (got "nowhere")`},
		{"hub profile", func(t *testing.T) string {
			return edit(t, "host: hub.example.net", "host: hub.example.net\n  profile: amqp")
		},
			`hub.profile:`},
		{"hub host missing", func(t *testing.T) string { return edit(t, "  host: hub.example.net\n", "  port: 8883\n") },
			`hub.host:`},
		{"negative buffer bytes", func(t *testing.T) string { return base + "buffer:\n  max_bytes: -1\n" },
			`buffer.max_bytes:`},
		{"LAN user for an identity not owned", func(t *testing.T) string { return edit(t, "device: sensor-1", "device: sensor-2") },
			`southbound[0].lanmqtt.users[0].device: "sensor-2" is not one of the identities`},
		{"LAN topic rule nobody routes", func(t *testing.T) string {
			return edit(t, "          device: sensor-1\n", "          device: sensor-1\n      topics:\n        - {filter: 'plant/+/t', device: line-3}\n")
		}, `southbound[0].lanmqtt.topics[0].device: no mapping.devices rule routes lan/line-3 to an identity`},
		{"status listen", func(t *testing.T) string { return base + "status: {listen: nowhere}\n" },
			`status.listen: must be host:port (got "nowhere")`},
		{"gc percent too low", func(t *testing.T) string { return base + "memory: {gc_percent: 5}\n" },
			`memory.gc_percent: must be 10-1000, or 0 for the default (got 5)`},
		{"memory limit too small", func(t *testing.T) string { return base + "memory: {limit_bytes: 1000000}\n" },
			`memory.limit_bytes: must be at least 33554432 (32 MiB), or 0 for none (got 1000000)`},
		{"mapping to unknown adapter", func(t *testing.T) string {
			return base + "mapping:\n  devices:\n    - {adapter: plc9, device: boiler, identity: sensor-1}\n"
		}, `mapping.devices[0].adapter:`},
		{"mapping to unknown identity", func(t *testing.T) string {
			return base + "mapping:\n  devices:\n    - {adapter: lan, device: boiler, identity: nobody}\n"
		}, `mapping.devices[0].identity:`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("broken.yaml", []byte(c.yaml(t)))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			msg := err.Error()
			for _, line := range strings.Split(msg, "\n") {
				if strings.HasPrefix(line, "broken.yaml: "+c.want) {
					return
				}
			}
			t.Errorf("error does not start a line with %q:\n%s", "broken.yaml: "+c.want, msg)
		})
	}
}
