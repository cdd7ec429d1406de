package hubsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeScript returns a runner for the scripts in sdktest, with env added to
// the environment; it skips (fails under CI) without node or the SDKs.
func nodeScript(t *testing.T, module string, env ...string) func(t *testing.T, script string, more ...string) string {
	t.Helper()
	dir, err := filepath.Abs("sdktest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", module)); err != nil {
		needTool(t, "hubsim/sdktest/node_modules/%s missing: run `npm ci --prefix hubsim/sdktest`", module)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		needTool(t, "node not found in PATH: install Node.js 20 to test with the Node SDKs")
	}
	base := append(os.Environ(), env...)
	return func(t *testing.T, script string, more ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, script)
		cmd.Dir = dir
		cmd.Env = append(append([]string(nil), base...), more...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("node %s: %v\n%s%s", script, err, out.String(), errOut.String())
		}
		t.Logf("node %s: %s", script, strings.TrimSpace(out.String()+errOut.String()))
		return out.String()
	}
}

// TestNodeSDKProvisioning registers devices through hubsim's DPS with the
// official provisioning SDKs (azure-iot-provisioning-device,
// -device-mqtt, azure-iot-security-symmetric-key, pinned in
// sdktest/package.json), individual and group enrollments, then connects
// each to its assigned hub with azure-iot-device and sends telemetry.
func TestNodeSDKProvisioning(t *testing.T) {
	d, _ := startFleet(t, 3)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, d.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	run := nodeScript(t, "azure-iot-provisioning-device-mqtt",
		"NODE_EXTRA_CA_CERTS="+caFile, "DPS_HOST="+d.GlobalEndpoint(), "ID_SCOPE="+d.IDScope)
	group, err := d.PutEnrollment(Enrollment{GroupID: "node-group", Attestation: Attestation{Type: AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ind, err := d.PutEnrollment(Enrollment{RegistrationID: "node-ind", DeviceID: "node-ind-device",
		Attestation: Attestation{Type: AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, out, reg, deviceID string) {
		t.Helper()
		var res struct{ AssignedHub, DeviceID, Substatus string }
		line, _, _ := strings.Cut(out, "\n")
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		st, ok := d.Registration(reg)
		if !ok || st.AssignedHub != res.AssignedHub || res.DeviceID != deviceID || res.Substatus != "initialAssignment" {
			t.Fatalf("sdk saw %+v, dps has %+v", res, st)
		}
		h, _ := d.HubFor(res.AssignedHub)
		got, err := h.WaitTelemetry(ctxT(t), deviceID, 1)
		if err != nil || string(got[0].Body) != `{"provisioned":"`+reg+`"}` {
			t.Errorf("telemetry at %s: %v, %v", res.AssignedHub, got, err)
		}
	}
	// The first two requests are throttled: the SDK retries after the
	// retry-after it is given.
	d.ThrottleNext(2)
	t.Run("sdk", func(t *testing.T) {
		t.Run("group", func(t *testing.T) {
			t.Parallel()
			for _, reg := range []string{"node-g1", "node-g2"} {
				out := run(t, "provision.js", "REGISTRATION_ID="+reg, "GROUP_KEY="+group.Attestation.SymmetricKey.PrimaryKey)
				check(t, out, reg, reg)
			}
		})
		t.Run("individual", func(t *testing.T) {
			t.Parallel()
			out := run(t, "provision.js", "REGISTRATION_ID=node-ind", "DEVICE_KEY="+ind.Attestation.SymmetricKey.SecondaryKey)
			check(t, out, "node-ind", "node-ind-device")
		})
		t.Run("bad key", func(t *testing.T) {
			t.Parallel()
			// Another id than the other subtests: DPS, like any MQTT broker, drops
			// the older of two connections with one client id.
			run(t, "provision-bad.js", "REGISTRATION_ID=node-bad", "DEVICE_KEY="+NewKey())
		})
	})
	if s := d.Stats(); s.Throttled != 2 || s.Assigned != 3 || s.Refused != 1 {
		t.Errorf("stats = %+v, want 2 throttled, 3 assigned, 1 refused", s)
	}
}

// TestNodeSDKProvisioningService manages enrollments and registration
// states in hubsim's DPS with the official provisioning service SDK
// (azure-iot-provisioning-service); a device of the group it created
// registers and starts with the group's initial twin.
func TestNodeSDKProvisioningService(t *testing.T) {
	d, _ := startFleet(t, 2)
	dir, _ := filepath.Abs("sdktest")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, d.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(d.HTTPAddress(), ":")
	run := nodeScript(t, "azure-iot-provisioning-service", "NODE_EXTRA_CA_CERTS="+caFile,
		"NODE_OPTIONS=--require "+filepath.Join(dir, "port-shim.js"), "HUBSIM_HOST="+d.HostName, "HUBSIM_HTTP_PORT="+port,
		"DPS_SERVICE_CS="+d.ServiceConnectionString())
	run(t, "enroll.js", "GROUP_KEY="+groupKey)
	if _, err := d.Enrollment("svc-ind"); err == nil {
		t.Error("individual enrollment not deleted")
	}
	st := dialDPS(t, d, "svc-dev-1", mustDerive(t, groupKey, "svc-dev-1"), nil).register(t).state(t)
	h, _ := d.HubFor(st.AssignedHub)
	if tw, err := h.Twin("svc-dev-1", ""); err != nil || tw.Tags["plant"] != "north" || fmt.Sprint(tw.Properties.Desired["interval"]) != "10" {
		t.Errorf("initial twin: %+v, %v", tw, err)
	}
	out := run(t, "regstate.js", "REGISTRATION_ID=svc-dev-1")
	if !strings.Contains(out, `"assignedHub":"`+st.AssignedHub+`"`) {
		t.Errorf("registration state %s, want hub %s", out, st.AssignedHub)
	}
	if _, ok := d.Registration("svc-dev-1"); ok {
		t.Error("registration state not deleted")
	}
}
