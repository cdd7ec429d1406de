package hubsim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// groupKey is the worked example of the DPS reference: its derived key for
// gw-0001 is known.
const groupKey = "ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY="

func TestDeriveDeviceKey(t *testing.T) {
	for _, tc := range []struct{ group, reg, want string }{
		{groupKey, "gw-0001", "kXF5MO9AkoQnSuFaXbh9W5sf4leFxgZlKiruWgH24kM="},
		{"8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
			"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="},
	} {
		if got, err := DeriveDeviceKey(tc.group, tc.reg); err != nil || got != tc.want {
			t.Errorf("DeriveDeviceKey(%s) = %q, %v; want %q", tc.reg, got, err, tc.want)
		}
	}
	if _, err := DeriveDeviceKey("not base64!", "x"); err == nil {
		t.Error("bad group key accepted")
	}
}

// TestDPSGroupAcrossHubs registers a group's devices with derived keys:
// each is assigned, spread over all three hubs, created in its hub's
// registry with the derived key, and connects there and sends telemetry.
func TestDPSGroupAcrossHubs(t *testing.T) {
	d, hubs := startFleet(t, 3)
	if _, err := d.PutEnrollment(Enrollment{GroupID: "plant-a", Attestation: Attestation{Type: AttestationSymmetricKey,
		SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: groupKey}},
		InitialTwin: &InitialTwin{Tags: map[string]any{"site": "a"}}}, ""); err != nil {
		t.Fatal(err)
	}
	perHub := map[string]int{}
	const n = 45
	for i := range n {
		reg := fmt.Sprintf("gw-%04d", i)
		key, _ := DeriveDeviceKey(groupKey, reg)
		c := dialDPS(t, d, reg, key, nil)
		r := c.register(t)
		st := r.state(t)
		if r.status != 200 || st.Status != "assigned" || st.DeviceID != reg || st.Substatus != "initialAssignment" {
			t.Fatalf("%s: %d %s", reg, r.status, r.raw)
		}
		c.Disconnect(0)
		perHub[st.AssignedHub]++
		h, _ := d.HubFor(st.AssignedHub)
		dev, err := h.Device(reg, "")
		if err != nil || dev.PrimaryKey != key {
			t.Fatalf("%s in %s: %+v, %v", reg, st.AssignedHub, dev, err)
		}
		if i%9 == 0 {
			dc, err := dialAssigned(t, d, st, key, nil)
			if err != nil {
				t.Fatalf("%s: connect to assigned hub: %v", reg, err)
			}
			if err := dc.pub(t, "devices/"+reg+"/messages/events/", 1, "hello"); err != nil {
				t.Fatal(err)
			}
			if tw, _ := h.Twin(reg, ""); tw.Tags["site"] != "a" {
				t.Errorf("initial twin tags = %v", tw.Tags)
			}
			dc.Disconnect(0)
		}
	}
	if len(perHub) != 3 {
		t.Fatalf("devices per hub = %v, want all three hubs used", perHub)
	}
	total := 0
	for _, h := range hubs {
		total += len(h.Devices())
	}
	if total != n {
		t.Errorf("devices across hubs = %d, want %d", total, n)
	}
	t.Logf("devices per hub: %v", perHub)
	// Registering again (reprovision default: re-evaluate) keeps the hub.
	key, _ := DeriveDeviceKey(groupKey, "gw-0003")
	first, _ := d.Registration("gw-0003")
	again := dialDPS(t, d, "gw-0003", key, nil).register(t).state(t)
	if again.AssignedHub != first.AssignedHub || again.Status != "assigned" {
		t.Errorf("second registration %+v, first %+v", again, first)
	}
}

func TestDPSRefusals(t *testing.T) {
	d, _ := startFleet(t, 1)
	ind, err := d.PutEnrollment(Enrollment{RegistrationID: "dev-1", Attestation: Attestation{Type: AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.PutEnrollment(Enrollment{RegistrationID: "off-1", ProvisioningStatus: "disabled",
		Attestation: Attestation{Type: AttestationSymmetricKey}}, ""); err != nil {
		t.Fatal(err)
	}
	off, _ := d.Enrollment("off-1")
	if _, err := d.PutEnrollment(Enrollment{GroupID: "grp", Attestation: Attestation{Type: AttestationSymmetricKey,
		SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: groupKey}}}, ""); err != nil {
		t.Fatal(err)
	}
	// The group key itself is never accepted, only the derived key.
	for _, tc := range []struct{ name, reg, key string }{
		{"wrong key", "dev-1", NewKey()},
		{"group key instead of derived", "gw-0001", groupKey},
		{"individual enrollment wins over group", "dev-1", mustDerive(t, groupKey, "dev-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialDPS(t, d, tc.reg, tc.key, nil).register(t)
			if r.status != 401 || r.body["errorCode"] != float64(401002) || r.body["trackingId"] == "" {
				t.Errorf("got %d %s, want 401", r.status, r.raw)
			}
		})
	}
	if r := dialDPS(t, d, "dev-1", ind.Attestation.SymmetricKey.SecondaryKey, nil).register(t); r.status != 200 {
		t.Errorf("secondary key: %d %s", r.status, r.raw)
	}
	r := dialDPS(t, d, "off-1", off.Attestation.SymmetricKey.PrimaryKey, nil).register(t)
	if st := r.state(t); r.status != 200 || st.Status != "disabled" {
		t.Errorf("disabled enrollment: %d %s", r.status, r.raw)
	}
	// Unknown operation ids are 404.
	c := dialDPS(t, d, "dev-1", ind.Attestation.SymmetricKey.PrimaryKey, nil)
	if r := c.request(t, dpsPollPfx+"?$rid={rid}&operationId=5.nope", " "); r.status != 404 {
		t.Errorf("unknown operation: %d %s", r.status, r.raw)
	}
	// Throttled requests get 429 with retry-after, then work again.
	d.ThrottleNext(2)
	for range 2 {
		if r := c.request(t, dpsRegisterPfx+"?$rid={rid}", `{"registrationId":"dev-1"}`); r.status != 429 || r.retryAfter != "1" {
			t.Errorf("throttled: %d retry-after %q %s", r.status, r.retryAfter, r.raw)
		}
	}
	if r := c.register(t); r.status != 200 {
		t.Errorf("after throttling: %d %s", r.status, r.raw)
	}
	if s := d.Stats(); s.Throttled != 2 || s.Refused < 3 || s.Assigned < 2 {
		t.Errorf("stats = %+v", s)
	}
	// A body naming another registration id is a bad request.
	if r := c.request(t, dpsRegisterPfx+"?$rid={rid}", `{"registrationId":"dev-2"}`); r.status != 400 {
		t.Errorf("other registration id: %d", r.status)
	}
	// Connects with a malformed username or another ID scope are refused.
	if _, err := tryDialDPS(t, d, "0ne0OTHER", "dev-1", ind.Attestation.SymmetricKey.PrimaryKey, nil); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("other id scope: %v", err)
	}
	if _, err := tryDialDPS(t, d, d.IDScope, "bad/id", ind.Attestation.SymmetricKey.PrimaryKey, nil); err == nil {
		t.Error("bad registration id accepted")
	}
	// Publishing to any other topic closes the connection.
	bad := dialDPS(t, d, "dev-1", ind.Attestation.SymmetricKey.PrimaryKey, nil)
	bad.Publish("$dps/registrations/PUT/iotdps-other/?$rid=1", 1, false, "{}").WaitTimeout(5e9)
	waitFor(t, "connection closed", func() bool { return !bad.IsConnectionOpen() })
}

func mustDerive(t testing.TB, group, reg string) string {
	t.Helper()
	k, err := DeriveDeviceKey(group, reg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestDPSMoveAndReprovision moves a device to another hub: the old hub
// refuses it, registering again gives the new hub, which has its twin.
func TestDPSMoveAndReprovision(t *testing.T) {
	d, _ := startFleet(t, 3)
	if _, err := d.PutEnrollment(Enrollment{GroupID: "g", Attestation: Attestation{Type: AttestationSymmetricKey,
		SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: groupKey}}}, ""); err != nil {
		t.Fatal(err)
	}
	key := mustDerive(t, groupKey, "mover")
	st := dialDPS(t, d, "mover", key, nil).register(t).state(t)
	old, _ := d.HubFor(st.AssignedHub)
	if _, err := old.PatchDesired("mover", "", map[string]any{"rate": 5}); err != nil {
		t.Fatal(err)
	}
	conn, err := dialAssigned(t, d, st, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	var target string
	for _, n := range d.HubNames() {
		if n != st.AssignedHub {
			target = n
			break
		}
	}
	if err := d.Move("mover", target); err != nil {
		t.Fatal(err)
	}
	conn.waitLost(t)
	if old.HasDevice("mover") {
		t.Error("device still in its old hub")
	}
	if _, err := dialAssigned(t, d, st, key, nil); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("old hub after the move: %v, want CONNACK 5", err)
	}
	again := dialDPS(t, d, "mover", key, nil).register(t).state(t)
	if again.AssignedHub != target || again.Substatus != "deviceDataMigrated" {
		t.Fatalf("after move: %+v", again)
	}
	nh, _ := d.HubFor(target)
	if tw, _ := nh.Twin("mover", ""); fmt.Sprint(tw.Properties.Desired["rate"]) != "5" {
		t.Errorf("twin not migrated: %+v", tw.Properties.Desired)
	}
	if _, err := dialAssigned(t, d, again, key, nil); err != nil {
		t.Errorf("new hub: %v", err)
	}
	// Deleted from its hub: registering again creates it there again.
	if err := nh.DeleteDevice("mover", "", ""); err != nil {
		t.Fatal(err)
	}
	third := dialDPS(t, d, "mover", key, nil).register(t).state(t)
	if third.AssignedHub != target || !nh.HasDevice("mover") {
		t.Errorf("after delete: %+v", third)
	}
	if err := d.Move("nobody", target); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("move unknown: %v", err)
	}
	if err := d.Move("mover", "no-such-hub"); err == nil {
		t.Error("move to unknown hub accepted")
	}
}

func TestDPSAllocationPolicies(t *testing.T) {
	d, hubs := startFleet(t, 3, func(d *DPS) {})
	names := d.HubNames()
	// static: the one listed hub.
	if _, err := d.PutEnrollment(Enrollment{GroupID: "static", AllocationPolicy: AllocationStatic, IoTHubs: []string{names[2]},
		Attestation: Attestation{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: groupKey}}}, ""); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		reg := fmt.Sprintf("s-%d", i)
		st := dialDPS(t, d, reg, mustDerive(t, groupKey, reg), nil).register(t).state(t)
		if st.AssignedHub != names[2] || !hubs[2].HasDevice(reg) {
			t.Errorf("static: %s went to %s", reg, st.AssignedHub)
		}
	}
	for _, bad := range []Enrollment{
		{GroupID: "x", AllocationPolicy: AllocationStatic, Attestation: Attestation{Type: AttestationSymmetricKey}},
		{GroupID: "x", AllocationPolicy: "custom", Attestation: Attestation{Type: AttestationSymmetricKey}},
		{GroupID: "x", IoTHubs: []string{"elsewhere:8883"}, Attestation: Attestation{Type: AttestationSymmetricKey}},
		{GroupID: "x", Attestation: Attestation{Type: "tpm"}},
		{GroupID: "x", Attestation: Attestation{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: "c2hvcnQ="}}},
		{GroupID: "x", RegistrationID: "y", Attestation: Attestation{Type: AttestationSymmetricKey}},
		{GroupID: "bad id!", Attestation: Attestation{Type: AttestationSymmetricKey}},
	} {
		if _, err := d.PutEnrollment(bad, ""); !errors.Is(err, ErrBadEnrollment) {
			t.Errorf("%+v: err = %v, want ErrBadEnrollment", bad, err)
		}
	}
	if len(d.Enrollments(true)) != 1 {
		t.Errorf("a refused enrollment was stored: %v", d.Enrollments(true))
	}
}

// TestPickHubWeights checks hashed allocation follows the hub weights and
// is stable for a registration id.
func TestPickHubWeights(t *testing.T) {
	hubs := []*LinkedHub{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}, {Name: "c", Weight: 2}}
	count := map[string]int{}
	const n = 4000
	for i := range n {
		reg := fmt.Sprintf("dev-%d", i)
		h := pickHub(hubs, reg, AllocationHashed)
		if pickHub(hubs, strings.ToUpper(reg), AllocationHashed) != h {
			t.Fatalf("%s: not stable", reg)
		}
		count[h.Name]++
	}
	// Expected 1000, 1000, 2000; binomial sd is about 27-32.
	if count["a"] < 850 || count["a"] > 1150 || count["b"] < 850 || count["b"] > 1150 || count["c"] < 1800 || count["c"] > 2200 {
		t.Errorf("distribution = %v, want about 1:1:2", count)
	}
	// Removing a hub moves only that hub's devices.
	moved := 0
	for i := range n {
		reg := fmt.Sprintf("dev-%d", i)
		before := pickHub(hubs, reg, AllocationHashed)
		after := pickHub(hubs[:2], reg, AllocationHashed)
		if before != hubs[2] && before != after {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d devices moved between remaining hubs", moved)
	}
}

func TestDPSPersistence(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t)
	d1 := &DPS{DataDir: dir, Hubs: []LinkedHub{{Hub: h}}}
	if err := d1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e, err := d1.PutEnrollment(Enrollment{RegistrationID: "p1", Attestation: Attestation{Type: AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	st := dialDPS(t, d1, "p1", e.Attestation.SymmetricKey.PrimaryKey, nil).register(t).state(t)
	owner := d1.Policy()
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := &DPS{DataDir: dir, Hubs: []LinkedHub{{Hub: h}}}
	if err := d2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if got, err := d2.Enrollment("p1"); err != nil || got.Attestation.SymmetricKey.PrimaryKey != e.Attestation.SymmetricKey.PrimaryKey {
		t.Errorf("enrollment after restart: %+v, %v", got, err)
	}
	if got, ok := d2.Registration("p1"); !ok || got.AssignedHub != st.AssignedHub {
		t.Errorf("registration after restart: %+v", got)
	}
	if d2.Policy().PrimaryKey != owner.PrimaryKey {
		t.Error("service key changed across restart")
	}
}

// TestDPSTokenForms accepts the SAS tokens each official SDK makes (the
// reference's worked tokens for gw-0001, signed with its derived key):
// Node signs the raw resource with skn, Python %2F without skn, C %2f.
func TestDPSTokenForms(t *testing.T) {
	// The tokens expired on 2026-01-01: accept them by skew.
	d, _ := startFleet(t, 1, func(d *DPS) { d.IDScope = "0ne00ABCDEF"; d.ClockSkew = 10 * 365 * 24 * time.Hour })
	if _, err := d.PutEnrollment(Enrollment{GroupID: "g", Attestation: Attestation{Type: AttestationSymmetricKey,
		SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: groupKey}}}, ""); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"node":   "SharedAccessSignature sr=0ne00ABCDEF/registrations/gw-0001&sig=n4djou652UWeoKx3zK3V2i69J5GLUL4NHFs3VUD2J7c%3D&skn=registration&se=1767225600",
		"python": "SharedAccessSignature sr=0ne00ABCDEF%2Fregistrations%2Fgw-0001&sig=E1t8dZqt2dlKHmHQtj3QmEoPfl%2BLWpufKjSDne4KfI8%3D&se=1767225600",
		"c":      "SharedAccessSignature sr=0ne00ABCDEF%2fregistrations%2fgw-0001&sig=4Nq5VPsUr8p1TVzW4l3vnzoRIpcdGsz1g7f3N8ONCxg%3D&se=1767225600&skn=registration",
	} {
		t.Run(name, func(t *testing.T) {
			c := dialDPSToken(t, d, "gw-0001", tok)
			if r := c.register(t); r.status != 200 || r.state(t).Status != "assigned" {
				t.Errorf("%d %s", r.status, r.raw)
			}
		})
	}
	// The same token for another registration id, or with another skn, is refused.
	bad := "SharedAccessSignature sr=0ne00ABCDEF/registrations/gw-0001&sig=n4djou652UWeoKx3zK3V2i69J5GLUL4NHFs3VUD2J7c%3D&skn=other&se=1767225600"
	if r := dialDPSToken(t, d, "gw-0001", bad).register(t); r.status != 401 {
		t.Errorf("skn other: %d", r.status)
	}
	if r := dialDPSToken(t, d, "gw-0002", strings.Replace(bad, "skn=other", "skn=registration", 1)).register(t); r.status != 401 {
		t.Errorf("other registration id: %d", r.status)
	}
}

// TestDPSRequestsPerSecond: beyond the request rate, 429 with retry-after.
func TestDPSRequestsPerSecond(t *testing.T) {
	d, _ := startFleet(t, 1, func(d *DPS) { d.RequestsPerSecond = 0.01 }) // one request, then one per 100 s
	e, err := d.PutEnrollment(Enrollment{RegistrationID: "r", Attestation: Attestation{Type: AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	c := dialDPS(t, d, "r", e.Attestation.SymmetricKey.PrimaryKey, nil)
	if r := c.request(t, dpsRegisterPfx+"?$rid={rid}", `{"registrationId":"r"}`); r.status != 202 {
		t.Errorf("first: %d %s", r.status, r.raw)
	}
	if r := c.request(t, dpsRegisterPfx+"?$rid={rid}", `{"registrationId":"r"}`); r.status != 429 || r.retryAfter != "1" {
		t.Errorf("second: %d retry-after %q", r.status, r.retryAfter)
	}
}
