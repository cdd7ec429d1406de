package northbound

// Authentication and transport end-to-end tests against hubsim.

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/identity"
)

// TestIoTHubBadKeyIsolated gives one identity a wrong key: it gets a clear
// per-identity error and the others carry on.
func TestIoTHubBadKeyIsolated(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "good1", "bad", "good2")
	ids[1].Key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	q := newMemQueue()
	for _, ic := range ids {
		for i := 1; i <= 20; i++ {
			q.append(ic.ID, telemetry(ic.ID, i))
		}
	}
	log, logs := testLogger(t)
	p, err := New(hubConfig(h), ids, q, newRecorder(), log)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	eventually(t, 10*time.Second, "good identities drained", func() bool {
		return q.pending("good1") == 0 && q.pending("good2") == 0
	})
	eventually(t, 10*time.Second, "bad identity error", func() bool { return p.Status()[1].LastError != "" })
	st := p.Status()
	if st[1].Connected || !strings.Contains(st[1].LastError, "refused the credentials") || q.pending("bad") != 20 {
		t.Fatalf("bad identity status %+v", st[1])
	}
	if !st[0].Connected || !st[2].Connected || st[0].LastError != "" || st[2].LastError != "" {
		t.Fatalf("good identities disturbed: %+v %+v", st[0], st[2])
	}
	stop()
	if !strings.Contains(logs.String(), "identity=bad") || strings.Contains(logs.String(), ids[1].Key.Reveal()) {
		t.Fatalf("logs: %s", logs.String())
	}
}

// TestIoTHubSecondaryKey connects with the secondary key when the primary
// is refused.
func TestIoTHubSecondaryKey(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	d, _ := h.Device("dev1", "")
	ids[0].Key, ids[0].SecondaryKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", edgegw.Secret(d.SecondaryKey)
	q := newMemQueue()
	q.append("dev1", telemetry("dev1", 1))
	p, err := New(hubConfig(h), ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	eventually(t, 10*time.Second, "drained with the secondary key", func() bool { return q.pending("dev1") == 0 })
}

func TestIoTHubUnknownCARefused(t *testing.T) {
	h := startHub(t, nil)
	other := startHub(t, nil) // another CA
	ids := register(t, h, "dev1")
	cfg := hubConfig(h)
	cfg.RootCAs = other.CACertPool()
	p, err := New(cfg, ids, newMemQueue(), newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	eventually(t, 10*time.Second, "TLS error", func() bool { return p.Status()[0].LastError != "" })
	if st := p.Status()[0]; st.Connected || !strings.Contains(st.LastError, "unknown authority") {
		t.Fatalf("status %+v", st)
	}
	// The system roots do not know hubsim's CA either.
	cfg.RootCAs = x509.NewCertPool()
	cfg.RootCAs = nil
	p2, err := New(cfg, ids, newMemQueue(), newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p2)
	eventually(t, 10*time.Second, "TLS error with system roots", func() bool { return p2.Status()[0].LastError != "" })
	if st := p2.Status()[0]; !strings.Contains(st.LastError, "certificate") {
		t.Fatalf("status %+v", st)
	}
}

func TestIoTHubWebSocket(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "ws1")
	cfg := hubConfig(h)
	cfg.Transport, cfg.Address = TransportWebSocket, h.HTTPAddress()
	q := newMemQueue()
	for i := 1; i <= 50; i++ {
		q.append("ws1", telemetry("ws1", i))
	}
	p, err := New(cfg, ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.ep.url, "wss://") || !strings.HasSuffix(p.ep.url, "/$iothub/websocket") {
		t.Fatalf("url %s", p.ep.url)
	}
	runPool(t, p)
	eventually(t, 10*time.Second, "drained over websocket", func() bool { return q.pending("ws1") == 0 })
	bodies, props := hubTelemetry(h, "ws1")
	checkInOrder(t, "ws1", bodies, props, 50)
}

// TestIoTHubX509 connects one identity with a CA-signed client certificate
// and one with a self-signed certificate registered by thumbprint.
func TestIoTHubX509(t *testing.T) {
	h := startHub(t, nil)
	dir := t.TempDir()
	write := func(name string, certPEM, keyPEM []byte) identity.Config {
		cf, kf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		if err := os.WriteFile(cf, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		return identity.Config{ID: name, CertFile: cf, CertKeyFile: kf}
	}
	if _, err := h.AddDevice(hubsim.Device{ID: "x509ca", Auth: hubsim.AuthCA}); err != nil {
		t.Fatal(err)
	}
	cp, kp, err := h.IssueDeviceCert("x509ca")
	if err != nil {
		t.Fatal(err)
	}
	ss, sk, thumb, err := hubsim.NewSelfSignedCert("x509ss")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddDevice(hubsim.Device{ID: "x509ss", Auth: hubsim.AuthSelfSigned, PrimaryThumbprint: thumb}); err != nil {
		t.Fatal(err)
	}
	ids := []identity.Config{write("x509ca", cp, kp), write("x509ss", ss, sk)}
	q := newMemQueue()
	for _, ic := range ids {
		for i := 1; i <= 10; i++ {
			q.append(ic.ID, telemetry(ic.ID, i))
		}
	}
	p, err := New(hubConfig(h), ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	for _, ic := range ids {
		eventually(t, 10*time.Second, ic.ID+" drained", func() bool { return q.pending(ic.ID) == 0 })
		bodies, props := hubTelemetry(h, ic.ID)
		checkInOrder(t, ic.ID, bodies, props, 10)
	}
	for _, s := range p.Status() {
		if !s.TokenExpiry.IsZero() || s.Renewals != 0 {
			t.Errorf("certificate identity has a token: %+v", s)
		}
	}
}

// TestIoTHubPolicyToken signs with the hub's "device" policy (DeviceConnect)
// instead of the device's own key, as a gateway without device keys does.
func TestIoTHubPolicyToken(t *testing.T) {
	h := startHub(t, nil)
	register(t, h, "pol1", "pol2/m")
	pol, ok := h.Policy("device")
	if !ok {
		t.Fatal("no device policy")
	}
	ids := []identity.Config{{ID: "pol1", Policy: "device", Key: edgegw.Secret(pol.PrimaryKey)},
		{ID: "pol2/m", Policy: "device", Key: edgegw.Secret(pol.PrimaryKey)}}
	q := newMemQueue()
	for _, ic := range ids {
		q.append(ic.ID, telemetry(ic.ID, 1))
	}
	p, err := New(hubConfig(h), ids, q, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	for _, ic := range ids {
		eventually(t, 10*time.Second, ic.ID+" drained", func() bool { return q.pending(ic.ID) == 0 })
	}
}
