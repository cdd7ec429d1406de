package identity

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The worked examples of reference/dps-mqtt.md §2 (computed with the Node
// SDK sample's code and openssl).
func TestDeriveKey(t *testing.T) {
	for _, tt := range []struct{ group, reg, want string }{
		{"ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY=", "gw-0001", "kXF5MO9AkoQnSuFaXbh9W5sf4leFxgZlKiruWgH24kM="},
		{"8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
			"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="},
	} {
		g, _ := base64.StdEncoding.DecodeString(tt.group)
		if got := EncodeKey(DeriveKey(g, tt.reg)); got != tt.want {
			t.Errorf("%s: derived %s, want %s", tt.reg, got, tt.want)
		}
	}
}

// TestProvisioningToken checks the token against the worked example of
// reference/dps-mqtt.md §1.2: sr encoded with %2F (the Python SDK's form,
// whose signature it gives) and skn=registration (the C SDK's).
func TestProvisioningToken(t *testing.T) {
	id, err := Load(Config{ID: "gw-0001", DPS: &DPSConfig{IDScope: "0ne00ABCDEF",
		GroupKey: "ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY="}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := id.ProvisioningToken(time.Unix(1767225600, 0), false)
	want := "SharedAccessSignature sr=0ne00ABCDEF%2Fregistrations%2Fgw-0001&sig=E1t8dZqt2dlKHmHQtj3QmEoPfl%2BLWpufKjSDne4KfI8%3D&skn=registration&se=1767225600"
	if err != nil || got != want {
		t.Fatalf("token\n got %s %v\nwant %s", got, err, want)
	}
	if id.DPS.Host != DefaultDPSHost || id.DPS.Port != 8883 || id.DPS.Dial() != DefaultDPSHost+":8883" {
		t.Fatalf("provisioning %+v", id.DPS)
	}
	// At the hub the derived key signs as the device's own key.
	hub := id.WithDevice("gw-0001")
	if hub != id {
		t.Fatal("same device id should give the same identity")
	}
	other := id.WithDevice("dev-7")
	if other.ID != "dev-7" || other.Device != "dev-7" || other.Keys() != 1 || id.ID != "gw-0001" {
		t.Fatalf("WithDevice: %+v (orig %+v)", other, id)
	}
	if _, err := (&Identity{DPS: id.DPS}).ProvisioningToken(time.Now(), false); err != ErrNoKey {
		t.Fatalf("no key: %v", err)
	}
	if _, err := (&Identity{}).ProvisioningToken(time.Now(), false); err == nil {
		t.Fatal("no DPS: no error")
	}
}

func intp(n int) *int { return &n }

func TestValidateDPS(t *testing.T) {
	dps := func() *DPSConfig { return &DPSConfig{IDScope: "0ne00ABCDEF", GroupKey: testKey} }
	tests := []struct {
		cfg  Config
		want string // substring of the error, "" = valid
	}{
		{Config{ID: "dev1", DPS: dps()}, ""},
		{Config{ID: "dev1", Key: testKey, DPS: &DPSConfig{IDScope: "0ne1"}}, ""},
		{Config{ID: "dev1", CertFile: "c", CertKeyFile: "k", DPS: &DPSConfig{IDScope: "0ne1"}}, ""},
		{Config{ID: "dev1", DPS: &DPSConfig{IDScope: "0ne1"}}, "dps: needs an attestation"},
		{Config{ID: "dev1", Key: testKey, DPS: dps()}, "dps: set one attestation"},
		{Config{ID: "dev1", DPS: &DPSConfig{GroupKey: testKey}}, "dps.id_scope: must be set"},
		{Config{ID: "dev1", DPS: &DPSConfig{IDScope: "0ne/1", GroupKey: testKey}}, "dps.id_scope: character '/'"},
		{Config{ID: "dev1", DPS: &DPSConfig{IDScope: "s", GroupKey: "!!"}}, "dps.group_key: not valid base64"},
		{Config{ID: "dev1", DPS: &DPSConfig{IDScope: "s", GroupKey: testKey, GroupKeyFile: "f"}}, "dps.group_key_file: set either"},
		{Config{ID: "dev1", DPS: &DPSConfig{IDScope: "s", GroupKey: testKey, Host: "https://x"}}, "dps.host: must be a host name"},
		{Config{ID: "dev1", DPS: &DPSConfig{IDScope: "s", GroupKey: testKey, Port: 70000}}, "dps.port: must be 1-65535"},
		{Config{ID: "dev(1)", DPS: dps()}, "id: is the DPS registration id"},
		{Config{ID: "dev(1)", DPS: &DPSConfig{IDScope: "s", GroupKey: testKey, RegistrationID: "dev-1"}}, ""},
		{Config{ID: "d", DPS: &DPSConfig{IDScope: "s", GroupKey: testKey, RegistrationID: "a b"}}, "dps.registration_id: character ' '"},
		{Config{ID: "d/m", DPS: dps()}, "not modules"},
		{Config{ID: "d", Policy: "device", Key: testKey, DPS: &DPSConfig{IDScope: "s"}}, "policy: not allowed with dps"},
		{Config{ID: "d", Username: "u", DPS: dps()}, "username: not allowed with dps"},
		{Config{ID: "d", SecondaryKey: testKey, DPS: dps()}, "secondary_key: goes with key"},
		// Fleets.
		{Config{ID: "sensor-{n:04}", Count: 10000, DPS: dps()}, ""},
		{Config{ID: "s{n}", Count: 3, First: intp(0), DPS: dps()}, ""},
		{Config{ID: "s{n}", Count: 3, CertFile: "/c/{id}.pem", CertKeyFile: "/c/{id}.key", DPS: &DPSConfig{IDScope: "s"}}, ""},
		{Config{ID: "s{n}", Count: 3, CertFile: "/c/x.pem", CertKeyFile: "/c/{id}.key", DPS: &DPSConfig{IDScope: "s"}}, "cert_file: must contain {id}"},
		{Config{ID: "sensor", Count: 3, DPS: dps()}, "id: must contain {n}"},
		{Config{ID: "s{n:0}", Count: 3, DPS: dps()}, "width must be a number 1-9"},
		{Config{ID: "s{n:x}", Count: 3, DPS: dps()}, "width must be a number 1-9"},
		{Config{ID: "s{nn}", Count: 3, DPS: dps()}, "write {n} or {n:W}"},
		{Config{ID: "s{n", Count: 3, DPS: dps()}, "unclosed {n"},
		{Config{ID: "s{n}{n}", Count: 3, DPS: dps()}, "one {n} and no other braces"},
		{Config{ID: "s{n}", Count: 0, First: intp(1), DPS: dps()}, "count: must be 1-1000000"},
		{Config{ID: "s{n}", Count: 2_000_000, DPS: dps()}, "count: must be 1-1000000"},
		{Config{ID: "s{n}", Count: 2, First: intp(-1), DPS: dps()}, "first: must be 0-"},
		{Config{ID: "s{n}", Count: 2, Key: testKey, DPS: &DPSConfig{IDScope: "s"}}, "key: a fleet (count) shares no individual key"},
		{Config{ID: "s{n}", Count: 2, Key: testKey}, "count: a fleet is provisioned by DPS"},
		{Config{ID: "s{n}", Count: 2, DPS: &DPSConfig{IDScope: "s", GroupKey: testKey, RegistrationID: "r"}}, "dps.registration_id: not allowed in a fleet"},
		{Config{ID: strings.Repeat("x", 125) + "{n}", Count: 1000, DPS: dps()}, "longer than 128"},
		{Config{ID: "s({n})", Count: 2, DPS: dps()}, "is a DPS registration id: character '('"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), testKey) {
			t.Errorf("error shows the key: %v", err)
		}
	}
}

func TestFleetIDs(t *testing.T) {
	c := Config{ID: "sensor-{n:04}.a", Count: 3, First: intp(9998), DPS: &DPSConfig{IDScope: "s", GroupKey: testKey}}
	if got := strings.Join(c.IDs(), " "); got != "sensor-9998.a sensor-9999.a sensor-10000.a" {
		t.Fatalf("ids %s", got)
	}
	c = Config{ID: "{n}", Count: 2, DPS: c.DPS}
	if got := strings.Join(c.IDs(), " "); got != "1 2" {
		t.Fatalf("ids %s", got)
	}
	if got := (&Config{ID: "one"}).IDs(); len(got) != 1 || got[0] != "one" {
		t.Fatalf("ids %v", got)
	}
}

// TestLoadFleet loads a fleet of 1,000 from a group key file: the file is
// read (and its permissions warned about) once, each identity's key is
// derived from its own registration id.
func TestLoadFleet(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "group.key")
	group := "ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY="
	os.WriteFile(kf, []byte(group+"\n"), 0o644)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c := Config{ID: "gw-{n:04}", Count: 1000, DPS: &DPSConfig{IDScope: "0ne00ABCDEF", GroupKeyFile: kf, Address: "127.0.0.1:1"}}
	ids, err := LoadAll(c, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1000 || ids[0].ID != "gw-0001" || ids[999].ID != "gw-1000" {
		t.Fatalf("%d identities, first %v", len(ids), ids[0].ID)
	}
	if n := strings.Count(logs.String(), "readable by group"); n != 1 {
		t.Fatalf("%d permission warnings, want 1: %s", n, logs.String())
	}
	tok, _ := ids[0].ProvisioningToken(time.Unix(1767225600, 0), false)
	if !strings.Contains(tok, "sig=E1t8dZqt2dlKHmHQtj3QmEoPfl%2BLWpufKjSDne4KfI8%3D") {
		t.Fatalf("gw-0001 not signed with its derived key: %s", tok)
	}
	if ids[1].DPS.RegistrationID != "gw-0002" || ids[1].DPS.Dial() != "127.0.0.1:1" || ids[1].DPS.IDScope != "0ne00ABCDEF" {
		t.Fatalf("member %+v", ids[1].DPS)
	}
	if strings.Contains(logs.String(), group) {
		t.Fatal("key in log")
	}
	// A bad group key file fails once, naming the field.
	os.WriteFile(kf, []byte("???"), 0o600)
	if _, err := LoadAll(c, nil); err == nil || !strings.HasPrefix(err.Error(), "dps.group_key_file: not valid base64") {
		t.Fatalf("bad key file: %v", err)
	}
	if _, err := Load(c, nil); err == nil || !strings.Contains(err.Error(), "LoadAll") {
		t.Fatalf("Load of a fleet: %v", err)
	}
}

// TestLoadFleetCertificates: an X.509 fleet names one certificate per
// identity, whose CN must be the registration id.
func TestLoadFleetCertificates(t *testing.T) {
	dir := t.TempDir()
	for _, cn := range []string{"cam-1", "cam-2"} {
		writeTestCert(t, dir, cn, time.Now().Add(time.Hour))
	}
	c := Config{ID: "cam-{n}", Count: 2, CertFile: filepath.Join(dir, "{id}.pem"), CertKeyFile: filepath.Join(dir, "{id}.key"),
		DPS: &DPSConfig{IDScope: "s"}}
	ids, err := LoadAll(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids[1].Certificate() == nil || ids[1].Certificate().Leaf.Subject.CommonName != "cam-2" {
		t.Fatal("wrong certificate")
	}
	if _, err := ids[0].ProvisioningToken(time.Now(), false); err != ErrNoKey {
		t.Fatalf("x509 token: %v", err)
	}
	c.Count = 3 // cam-3 has no certificate
	if _, err := LoadAll(c, nil); err == nil || !strings.HasPrefix(err.Error(), "cam-3: cert_file:") {
		t.Fatalf("missing certificate: %v", err)
	}
	// A certificate whose CN is not the registration id.
	single := Config{ID: "cam-9", CertFile: filepath.Join(dir, "cam-1.pem"), CertKeyFile: filepath.Join(dir, "cam-1.key"), DPS: &DPSConfig{IDScope: "s"}}
	if _, err := Load(single, nil); err == nil || !strings.Contains(err.Error(), `subject CN "cam-1" is not the registration id "cam-9"`) {
		t.Fatalf("CN mismatch: %v", err)
	}
}

// FuzzFleetConfig feeds fleet entries: validation never panics, and a
// valid fleet stands for count distinct ids, each a valid device and
// registration id.
func FuzzFleetConfig(f *testing.F) {
	f.Add("sensor-{n:04}", 3, 9998, "0ne00ABCDEF", "")
	f.Add("{n}", 1, 0, "s", "/c/{id}.pem")
	f.Add("a{n:9}b", 2, 1, "x", "")
	f.Add("s{n", 2, 1, "x", "")
	f.Add("s{n}", -3, 1, "x", "") // IDs is called before Validate (gateway's SetDefaults)
	f.Fuzz(func(t *testing.T, id string, count, first int, scope, certFile string) {
		count = count % 50 // keep each input cheap
		c := Config{ID: id, Count: count, First: &first, DPS: &DPSConfig{IDScope: scope, GroupKey: testKey}}
		if certFile != "" {
			c.DPS.GroupKey, c.CertFile, c.CertKeyFile = "", certFile, certFile
		}
		before := c.IDs()
		if c.Validate() != nil {
			return
		}
		ids := c.IDs()
		if len(before) != len(ids) {
			t.Fatalf("IDs before Validate gave %d ids, after %d", len(before), len(ids))
		}
		if len(ids) != count {
			t.Fatalf("%d ids for count %d", len(ids), count)
		}
		seen := map[string]bool{}
		for _, s := range ids {
			if seen[s] || validID(s) != nil || validRegistrationID(s) != nil {
				t.Fatalf("id %q: duplicate or invalid", s)
			}
			seen[s] = true
		}
	})
}
