package northbound

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/identity"
)

// TestPoolDPSAttestations: one identity of each attestation (a group
// enrollment's derived key, an individual enrollment's key, an X.509
// certificate) registers with hubsim's DPS and connects to the hub DPS
// assigned with the same credentials; one with a wrong key is refused by
// DPS alone. Assignments land in the provisioning directory.
func TestPoolDPSAttestations(t *testing.T) {
	ca, err := hubsim.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	d := &hubsim.DPS{CA: ca}
	for range 2 {
		d.Hubs = append(d.Hubs, hubsim.LinkedHub{Hub: startHub(t, &hubsim.Hub{CA: ca})})
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	const group = "ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY="
	individual := hubsim.NewKey()
	dir := t.TempDir()
	certPEM, keyPEM, _ := ca.IssueClientCert("cam-7")
	cf, kf := filepath.Join(dir, "cam-7.pem"), filepath.Join(dir, "cam-7.key")
	os.WriteFile(cf, certPEM, 0o600)
	os.WriteFile(kf, keyPEM, 0o600)
	for _, e := range []hubsim.Enrollment{
		{GroupID: "plant", Attestation: hubsim.Attestation{Type: hubsim.AttestationSymmetricKey, SymmetricKey: &hubsim.SymmetricKeyAttestation{PrimaryKey: group}}},
		{RegistrationID: "boiler-1", DeviceID: "boiler-one", Attestation: hubsim.Attestation{Type: hubsim.AttestationSymmetricKey, SymmetricKey: &hubsim.SymmetricKeyAttestation{PrimaryKey: individual}}},
		{RegistrationID: "cam-7", Attestation: hubsim.Attestation{Type: hubsim.AttestationX509, X509: &hubsim.X509Attestation{
			ClientCertificates: &hubsim.X509Certificates{Primary: &hubsim.X509Certificate{Certificate: string(certPEM)}}}}},
	} {
		if _, err := d.PutEnrollment(e, ""); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(d.MQTTAddress())
	p, _ := strconv.Atoi(port)
	prov := func(c identity.Config) identity.Config {
		if c.DPS == nil {
			c.DPS = &identity.DPSConfig{}
		}
		c.DPS.Host, c.DPS.Port, c.DPS.IDScope = "localhost", p, d.IDScope
		return c
	}
	ids := []identity.Config{
		prov(identity.Config{ID: "gw-{n}", Count: 2, DPS: &identity.DPSConfig{GroupKey: group}}),
		prov(identity.Config{ID: "boiler-1", Key: edgegw.Secret(individual)}),
		prov(identity.Config{ID: "cam-7", CertFile: cf, CertKeyFile: kf}),
		prov(identity.Config{ID: "intruder", DPS: &identity.DPSConfig{GroupKey: "d3Jvbmcta2V5"}}),
	}
	cfg := Config{RootCAs: ca.Pool(), BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second, ConnectRate: 200,
		AckTimeout: 5 * time.Second, ProvisioningDir: filepath.Join(dir, "dps")}
	q := newMemQueue()
	names := []string{"gw-1", "gw-2", "boiler-1", "cam-7", "intruder"}
	for _, id := range names {
		q.append(id, telemetry(id, 1), telemetry(id, 2))
	}
	log, _ := testLogger(t)
	pool, err := New(cfg, ids, q, newRecorder(), log)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, pool)
	eventually(t, 30*time.Second, "provisioned identities drained", func() bool {
		for _, id := range names[:4] {
			if q.pending(id) != 0 {
				return false
			}
		}
		return true
	})
	for i, s := range pool.Status()[:4] {
		h, ok := d.HubFor(s.Hub)
		want := names[i]
		if want == "boiler-1" {
			want = "boiler-one" // the device id the enrollment gives
		}
		if !ok || s.DeviceID != want || len(h.Telemetry(want)) < 2 {
			t.Errorf("%s: status %+v, hub found %v", names[i], s, ok)
		}
		if _, err := os.Stat(filepath.Join(dir, "dps", names[i]+".json")); err != nil {
			t.Errorf("%s: assignment not kept: %v", names[i], err)
		}
	}
	eventually(t, 10*time.Second, "the intruder refused", func() bool { return pool.Status()[4].LastError != "" })
	if s := pool.Status()[4]; q.pending("intruder") != 2 || s.Hub != "" {
		t.Fatalf("intruder: %+v", s)
	}
}
