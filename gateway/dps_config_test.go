package gateway

import (
	"strings"
	"testing"

	"github.com/edgegw/edgegw/configs"
)

// dpsBase is a valid fleet config: 10,000 identities, no hub host, no
// per-device key.
const dpsBase = `
state_dir: /tmp/edgegw-dps-test
southbound:
  - name: lan
    lanmqtt: {listen: 127.0.0.1:1883, allow_anonymous: true}
identities:
  - id: sensor-{n:05}
    count: 10000
    dps: {id_scope: 0ne00ABCDEF, group_key: ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY=}
`

func TestDPSFleetConfig(t *testing.T) {
	cfg, err := Parse("fleet.yaml", []byte(dpsBase))
	if err != nil {
		t.Fatal(err)
	}
	ids := cfg.Mapping.Identities
	if len(ids) != 10000 || ids[0] != "sensor-00001" || ids[9999] != "sensor-10000" {
		t.Fatalf("%d identities owned, first %q", len(ids), ids[0])
	}
	if cfg.Hub.ProvisioningDir != "/tmp/edgegw-dps-test/dps" {
		t.Fatalf("provisioning dir %q", cfg.Hub.ProvisioningDir)
	}
	ex, err := configs.Examples.ReadFile("dps-fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err = Parse("dps-fleet.yaml", ex)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Mapping.Identities) != 10002 {
		t.Fatalf("example owns %d identities", len(cfg.Mapping.Identities))
	}
}

// TestDPSBrokenConfigs: each broken fleet config fails with
// "file: path: reason".
func TestDPSBrokenConfigs(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{"no pattern", strings.Replace(dpsBase, "sensor-{n:05}", "sensor", 1), "identities[0].id: must contain {n}"},
		{"no scope", strings.Replace(dpsBase, "id_scope: 0ne00ABCDEF, ", "", 1), "identities[0].dps.id_scope: must be set"},
		{"bad group key", strings.Replace(dpsBase, "group_key: ZWRn", "group_key: x!ZWRn", 1), "identities[0].dps.group_key: not valid base64"},
		{"mqtt profile", "hub: {profile: mqtt, host: b.example}\n" + dpsBase, "identities[0].dps: DPS assigns IoT Hubs"},
		{"insecure", "hub: {insecure: true, host: b.example}\n" + dpsBase, "identities[0].dps: DPS and the hubs it assigns speak TLS only"},
		{"duplicate", "hub: {host: h.example}\n" + dpsBase + "  - {id: sensor-00042, key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}\n",
			`identities[1].id: duplicate of identities[0] (got "sensor-00042")`},
		{"static without host", dpsBase + "  - {id: boiler-1, key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}\n",
			"hub.host: must be set (the hub's host name) unless DPS assigns every identity's hub"},
		{"count without dps", "identities:\n  - {id: 's{n}', count: 3, key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}\nhub: {host: h}\n",
			"identities[0].count: a fleet is provisioned by DPS"},
		{"unknown key", strings.Replace(dpsBase, "id_scope:", "idscope: x, id_scope:", 1), "identities[0].dps.idscope: unknown key"},
		{"address without port", strings.Replace(dpsBase, "id_scope:", "address: dps.local, id_scope:", 1), `identities[0].dps.address: must be host:port, the address to dial instead of host:port (got "dps.local")`},
		{"address port out of range", strings.Replace(dpsBase, "id_scope:", "address: '127.0.0.1:0', id_scope:", 1), `identities[0].dps.address: must be host:port`},
		{"negative count", strings.Replace(dpsBase, "count: 10000", "count: -3", 1), "identities[0].count: must be 1-1000000 (got -3)"},
		{"count too large", strings.Replace(dpsBase, "count: 10000", "count: 2000000000000", 1), "identities[0].count: must be 1-1000000 (got 2000000000000)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("broken.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), "broken.yaml: "+tt.want) {
				t.Fatalf("error %v\nwant broken.yaml: %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "ZWRnZWd3") {
				t.Fatal("error shows the group key")
			}
		})
	}
}

func TestDPSDuplicateRegistrationID(t *testing.T) {
	y := dpsBase + "  - {id: boiler-1, key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=, dps: {id_scope: s, registration_id: sensor-00007}}\n"
	_, err := Parse("dup.yaml", []byte(y))
	if err == nil || !strings.Contains(err.Error(), `dup.yaml: identities[1].dps: registration id "sensor-00007" is also the registration id of identities[0]`) {
		t.Fatalf("err %v", err)
	}
}
