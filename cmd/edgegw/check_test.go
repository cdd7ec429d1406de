package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// checkConfig is a config naming every kind of file: the hub's CA, an
// identity's key file, a LAN broker's TLS certificate, key and client CA,
// a required serial port and a required Modbus RTU port, and a serial
// port that is not required.
const checkConfig = `state_dir: {dir}/state
hub: {host: hub.example.net, ca_file: {ca}}
identities:
  - {id: d1, key_file: {dir}/d1.key}
southbound:
  - name: lan
    lanmqtt:
      listen: 127.0.0.1:0
      tls: {cert_file: {cert}, key_file: {key}, client_ca_file: {ca}}
      users: [{username: d1, password: {hash}, device: d1}]
  - name: air
    serial:
      device: {tty}
      required: true
      devices: [{name: a, pattern: 'T=(?P<t>\d+)', points: [{name: t}]}]
  - name: rs485
    modbus:
      rtu: {device: {tty}, required: true}
      devices: [{name: m, unit: 1, points: [{name: e, table: input, address: 0}]}]
  - name: later
    serial:
      device: {dir}/not-plugged-in-yet
      devices: [{name: b, pattern: 'T=(?P<t>\d+)', points: [{name: t}]}]
mapping:
  devices:
    - {adapter: air, device: a, identity: d1}
    - {adapter: rs485, device: m, identity: d1}
    - {adapter: later, device: b, identity: d1}
`

// checkRig writes a config from checkConfig with every file present and
// usable, edited by replacing old with new pairs.
func checkRig(t *testing.T, edits ...string) (cfgPath, dir string) {
	t.Helper()
	dir = t.TempDir()
	ca, cert, key := testpeer.ServerCert(t, dir, "localhost")
	if err := os.WriteFile(filepath.Join(dir, "d1.key"), []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	tty := filepath.Join(dir, "ttyA")
	testpeer.PtyPair(t, tty, filepath.Join(dir, "ttyB"))
	y := checkConfig
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(y, edits[i]) {
			t.Fatalf("config has no %q", edits[i])
		}
		y = strings.ReplaceAll(y, edits[i], edits[i+1])
	}
	y = strings.NewReplacer("{dir}", dir, "{ca}", ca, "{cert}", cert, "{key}", key, "{tty}", tty,
		"{hash}", `"$7$1000$AAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="`).Replace(y)
	cfgPath = filepath.Join(dir, "edgegw.yaml")
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dir
}

func TestCheckOpensEveryFile(t *testing.T) {
	cfg, _ := checkRig(t)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", cfg}, &out, &errb); code != 0 || !strings.Contains(out.String(), ": ok") {
		t.Fatalf("every file usable: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	if errb.Len() != 0 {
		t.Errorf("warnings for a config without fault:\n%s", errb.String())
	}
	for _, tc := range []struct {
		name      string
		edits     []string
		path, why string
	}{
		{"hub CA missing", []string{"ca_file: {ca}}", "ca_file: {dir}/gone.pem}"}, "hub.ca_file", "no such file"},
		{"hub CA not PEM", []string{"ca_file: {ca}}", "ca_file: {dir}/d1.key}"}, "hub.ca_file", "no PEM certificate"},
		{"identity key file missing", []string{"key_file: {dir}/d1.key", "key_file: {dir}/gone.key"}, "identities[0].key_file", "no such file"},
		{"LAN certificate missing", []string{"cert_file: {cert}", "cert_file: {dir}/gone.pem"}, "southbound[0].lanmqtt.tls.cert_file", "no such file"},
		{"LAN key missing", []string{"key_file: {key}", "key_file: {dir}/gone-key.pem"}, "southbound[0].lanmqtt.tls.key_file", "no such file"},
		{"LAN key not the certificate's", []string{"key_file: {key}", "key_file: {dir}/d1.key"}, "southbound[0].lanmqtt.tls", "cert_file"},
		{"LAN client CA missing", []string{"client_ca_file: {ca}", "client_ca_file: {dir}/gone-ca.pem"}, "southbound[0].lanmqtt.tls.client_ca_file", "no such file"},
		{"required serial port missing", []string{"device: {tty}\n      required", "device: {dir}/ttyUSB9\n      required"}, "southbound[1].serial.device", "no such file"},
		{"required serial port not a tty", []string{"device: {tty}\n      required", "device: {dir}/d1.key\n      required"}, "southbound[1].serial.device", "not a character device"},
		{"required RTU port missing", []string{"rtu: {device: {tty}", "rtu: {device: {dir}/ttyUSB8"}, "southbound[2].modbus.rtu.device", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := checkRig(t, tc.edits...)
			for _, cmd := range []string{"check", "run"} {
				var out, errb bytes.Buffer
				code := run([]string{cmd, "-config", cfg}, &out, &errb)
				want := cfg + ": " + tc.path + ": "
				if code != 2 || !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), tc.why) {
					t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %q ... %q", cmd, code, errb.String(), want, tc.why)
				}
			}
		})
	}
}

// Warnings: key files readable by others (an identity's and the LAN
// broker's), an anonymous and plaintext LAN listener beyond loopback, and
// a password in plain text. check prints them and still exits 0; run logs
// them (the identity's key file is logged by the identity room itself).
func TestCheckWarnings(t *testing.T) {
	cfg, dir := checkRig(t,
		"listen: 127.0.0.1:0\n      tls: {cert_file: {cert}, key_file: {key}, client_ca_file: {ca}}",
		"listen: 0.0.0.0:0\n      allow_anonymous: true\n      websocket: 127.0.0.1:0",
		"password: {hash}", "password: plain-pw")
	os.Chmod(filepath.Join(dir, "d1.key"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		cfg + ": identities[0].key_file: warning: " + dir + "/d1.key is readable by group or others (mode 0644)",
		cfg + ": southbound[0].lanmqtt.listen: warning: plaintext MQTT on 0.0.0.0:0, beyond loopback",
		cfg + ": southbound[0].lanmqtt.allow_anonymous: warning: anyone who reaches 0.0.0.0:0 may connect without a password",
		cfg + ": southbound[0].lanmqtt.users[0].password: warning: stored in plain text",
	} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("check's stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if strings.Count(errb.String(), "warning:") != 4 {
		t.Errorf("want 4 warnings (none for the loopback websocket):\n%s", errb.String())
	}
	if strings.Contains(errb.String(), "plain-pw") {
		t.Error("a warning shows the password")
	}

	// A LAN key readable by others, with TLS on a LAN address: only that.
	cfg, dir = checkRig(t, "listen: 127.0.0.1:0", "listen: 192.0.2.1:8883")
	key := filepath.Join(dir, "server.key") // testpeer.ServerCert's
	os.Chmod(key, 0o640)
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "-config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := cfg + ": southbound[0].lanmqtt.tls.key_file: warning: " + key + " is readable by group or others (mode 0640)"
	if !strings.Contains(errb.String(), want) || strings.Count(errb.String(), "warning:") != 1 {
		t.Errorf("stderr:\n%s\nwant only %q", errb.String(), want)
	}

	// run logs the same warnings before it starts; here it then stops on
	// a missing hub CA.
	cfg, dir = checkRig(t, "listen: 127.0.0.1:0\n      tls: {cert_file: {cert}, key_file: {key}, client_ca_file: {ca}}",
		"listen: 0.0.0.0:0\n      allow_anonymous: true", "ca_file: {ca}}", "ca_file: {dir}/gone.pem}")
	os.Chmod(filepath.Join(dir, "d1.key"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"run", "-config", cfg}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, errb.String())
	}
	for _, want := range []string{"level=WARN msg=\"config: plaintext MQTT on 0.0.0.0:0", "path=southbound[0].lanmqtt.allow_anonymous",
		cfg + ": hub.ca_file: open " + dir + "/gone.pem"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("run's stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "identities[0].key_file") {
		t.Errorf("run logs the identity room's warning itself:\n%s", errb.String())
	}
}

// A fleet entry (count) is checked whole: its group key file is opened
// (and warned about when others may read it), not refused as a single
// identity; run stops on the same faults.
func TestCheckFleet(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "group.key")
	if err := os.WriteFile(key, []byte("ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(keyFile string) string {
		cfg := filepath.Join(dir, "fleet.yaml")
		y := "state_dir: " + dir + "/state\nidentities:\n  - id: sensor-{n:03}\n    count: 200\n" +
			"    dps: {host: localhost, id_scope: 0ne00000001, group_key_file: " + keyFile + "}\n"
		if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := write(key)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", cfg}, &out, &errb); code != 0 || !strings.Contains(out.String(), "200 identities") || errb.Len() != 0 {
		t.Fatalf("fleet: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	os.Chmod(key, 0o644)
	out.Reset()
	errb.Reset()
	want := cfg + ": identities[0].dps.group_key_file: warning: " + key + " is readable by group or others (mode 0644)"
	if code := run([]string{"check", "-config", cfg}, &out, &errb); code != 0 || !strings.Contains(errb.String(), want) {
		t.Errorf("exposed group key: exit %d, stderr %q, want %q", code, errb.String(), want)
	}
	cfg = write(filepath.Join(dir, "gone.key"))
	for _, cmd := range []string{"check", "run"} {
		out.Reset()
		errb.Reset()
		want := cfg + ": identities[0].dps.group_key_file: "
		if code := run([]string{cmd, "-config", cfg}, &out, &errb); code != 2 || !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), "no such file") {
			t.Errorf("%s, group key missing: exit %d, stderr %q, want exit 2 and %q", cmd, code, errb.String(), want)
		}
	}
}
