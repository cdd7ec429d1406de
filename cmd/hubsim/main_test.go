package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testpeer"
)

func TestUsageErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "reg.yaml")
	os.WriteFile(bad, []byte("devices:\n  - id: a\n  - id: a\n    auth: magic\n  - colour: red\n"), 0o644)
	enr := filepath.Join(dir, "enr.yaml")
	os.WriteFile(enr, []byte("enrollments:\n  - group: g\n  - registration_id: r\n    hubs: [3]\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"extra argument", []string{"serve"}, "unexpected argument"},
		{"bad log level", []string{"-log-level", "loud"}, "-log-level"},
		{"missing registry", []string{"-registry", filepath.Join(dir, "none.yaml")}, "no such file"},
		{"bad registry", []string{"-registry", bad}, "line 5: colour: unknown key"},
		{"no hubs", []string{"-hubs", "0"}, "-hubs: must be 1-100"},
		{"enrollments without dps", []string{"-registry", enr}, "enrollments: need -dps"},
		{"bad enrollment", []string{"-dps", "-hubs", "2", "-registry", enr}, "enrollments[1].hubs[0]: must be a hub number 1-2 (got 3)"},
		{"bad mqtt address", []string{"-mqtt", "nowhere"}, "-mqtt:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), tc.args, &out, &errOut); code != 2 {
				t.Errorf("exit %d, want 2 (%s)", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("stderr = %q, want %q", errOut.String(), tc.want)
			}
		})
	}
}

func TestRegistryValidate(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "reg.yaml")
	os.WriteFile(f, []byte("devices:\n  - id: a\n  - id: a\n    auth: magic\n  - id: c\n    auth: selfSigned\n    modules: ['']\n"), 0o644)
	_, err := loadRegistry(f, 1, false)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		f + `: devices[1].id: duplicate device "a"`,
		f + `: devices[1].auth: must be sas, selfSigned or certificateAuthority (got "magic")`,
		f + `: devices[2].primary_thumbprint: must be set for auth selfSigned`,
		f + `: devices[2].modules[0]: must not be empty`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestRunPersists starts hubsim twice on one data dir: the CA, the
// registry from the file and generated keys survive; it prints the
// connection strings and exits 0 when its context ends.
func TestRunPersists(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg.yaml")
	os.WriteFile(reg, []byte("devices:\n  - id: boiler-1\n    modules: [opc]\n  - id: fixed\n    primary_key: c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\n"), 0o644)
	data := filepath.Join(dir, "data")
	start := func() string {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut testpeer.Buffer
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"-data", data, "-mqtt", "127.0.0.1:0", "-https", "127.0.0.1:0", "-registry", reg}, &out, &errOut)
		}()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), "telemetry as JSON lines") {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("no banner: %s %s", out.String(), errOut.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		return out.String()
	}
	first := start()
	for _, want := range []string{"DeviceId=boiler-1;SharedAccessKey=", "DeviceId=fixed;SharedAccessKey=c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=", "SharedAccessKeyName=iothubowner"} {
		if !strings.Contains(first, want) {
			t.Errorf("output lacks %q:\n%s", want, first)
		}
	}
	ca1, err := os.ReadFile(filepath.Join(data, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	second := start()
	ca2, _ := os.ReadFile(filepath.Join(data, "ca.pem"))
	if !bytes.Equal(ca1, ca2) {
		t.Error("CA regenerated")
	}
	key := func(out string) string {
		i := strings.Index(out, "DeviceId=boiler-1;SharedAccessKey=")
		return out[i : i+80]
	}
	if key(first) != key(second) {
		t.Error("generated key changed across restarts")
	}
}

func TestRegistryEnrollmentsValidate(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "reg.yaml")
	os.WriteFile(f, []byte("enrollments:\n  - group: g\n    device_id: x\n  - group: g\n  - registration_id: r\n    group: h\n"+
		"  - registration_id: s\n    certificate: missing.pem\n    primary_key: a2V5\n  - registration_id: t\n    allocation: static\n    hubs: [1, 2]\n"+
		"  - registration_id: u\n    allocation: nearest\n"), 0o644)
	_, err := loadRegistry(f, 2, true)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		f + `: enrollments[0].device_id: only for an individual enrollment`,
		f + `: enrollments[1]: duplicate enrollment group g`,
		f + `: enrollments[2]: set exactly one of group and registration_id`,
		f + `: enrollments[3].certificate: an enrollment has keys or a certificate, not both`,
		f + `: enrollments[3].certificate: open ` + filepath.Join(dir, "missing.pem"),
		f + `: enrollments[4].hubs: allocation static needs exactly one hub (got 2)`,
		f + `: enrollments[5].allocation: must be hashed, geoLatency or static (got "nearest")`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestHelpShowsRegistryFormat(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"devices:", "primary_thumbprint:", "enrollments:", "registration_id:", "-dps-mqtt"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("-h lacks %q", want)
		}
	}
}

// TestRunFleet runs three hubs and a DPS with an enrollment group from
// the registry file; it prints the provisioning endpoint and the
// enrollment, keeps each hub's data apart, and logs when it stops.
func TestRunFleet(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg.yaml")
	os.WriteFile(reg, []byte("devices:\n  - id: boiler-1\nenrollments:\n  - group: plant-a\n    primary_key: ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY=\n"+
		"  - registration_id: dev-9\n    allocation: static\n    hubs: [2]\n"), 0o644)
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut testpeer.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-data", data, "-hubs", "3", "-mqtt", "127.0.0.1:0", "-https", "127.0.0.1:0", "-dps",
			"-dps-mqtt", "127.0.0.1:0", "-dps-https", "127.0.0.1:0", "-registry", reg}, &out, &errOut)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "individual dev-9") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner: %s %s", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"hub 1 localhost", "hub 3 localhost", "DeviceId=boiler-1;SharedAccessKey=", "ID scope 0ne00000001",
		"provisioning host localhost:", "SharedAccessKeyName=provisioningserviceowner",
		"enrollments (a group member's key", "group plant-a: symmetricKey primary key ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY="} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, f := range []string{"ca.pem", "hub1/state.json", "hub3/server.pem", "dps/dps.json"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("data: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "hub2", "ca.pem")); err == nil {
		t.Error("hub 2 made its own CA")
	}
	if n := strings.Count(errOut.String(), "msg=\"hubsim stopped\""); n != 3 || !strings.Contains(errOut.String(), "hubsim dps stopped") {
		t.Errorf("stop lines: %d in\n%s", n, errOut.String())
	}
}

// TestRegistryDecodeErrors: an unknown key or a wrong type names the file
// and the line, in the file's words rather than the decoder's Go types.
func TestRegistryDecodeErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "reg.yaml")
	os.WriteFile(f, []byte("devices:\n  - id: a\n    primry_key: x\n    modules: foo\nenrollments:\n  - group: g\n    alocation: static\n"), 0o644)
	_, err := loadRegistry(f, 1, true)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		f + ": line 3: primry_key: unknown key",
		f + ": line 4: cannot unmarshal !!str `foo` into a list",
		f + ": line 7: alocation: unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "main.") {
		t.Errorf("error shows Go type names:\n%v", err)
	}
}
