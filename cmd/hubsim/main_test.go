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
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"extra argument", []string{"serve"}, "unexpected argument"},
		{"bad log level", []string{"-log-level", "loud"}, "-log-level"},
		{"missing registry", []string{"-registry", filepath.Join(dir, "none.yaml")}, "no such file"},
		{"bad registry", []string{"-registry", bad}, "field colour not found"},
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
	_, err := loadRegistry(f)
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
