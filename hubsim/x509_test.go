package hubsim

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func keyPair(t *testing.T, certPEM, keyPEM []byte) *tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestX509(t *testing.T) {
	h := startHub(t)
	certPEM, keyPEM, tp, err := NewSelfSignedCert("self")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddDevice(Device{ID: "self", PrimaryThumbprint: tp}); err != nil {
		t.Fatal(err)
	}
	self := keyPair(t, certPEM, keyPEM)
	otherPEM, otherKey, _, _ := NewSelfSignedCert("self")
	other := keyPair(t, otherPEM, otherKey)
	if _, err := h.AddDevice(Device{ID: "ca-dev", Auth: AuthCA}); err != nil {
		t.Fatal(err)
	}
	caPEM, caKey, _ := h.IssueDeviceCert("ca-dev")
	caDev := keyPair(t, caPEM, caKey)
	wrongPEM, wrongKey, _ := h.IssueDeviceCert("someone-else")
	wrongCN := keyPair(t, wrongPEM, wrongKey)
	sas := mustDevice(t, h, "sas-dev")

	c := mustDial(t, h, "self", dialOpts{cert: self})
	if err := c.pub(t, "devices/self/messages/events/", 1, "x509"); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.Status("self", ""); st.Auth != "x509" {
		t.Errorf("auth = %q", st.Auth)
	}
	mustDial(t, h, "ca-dev", dialOpts{cert: caDev})
	for _, tc := range []struct {
		name string
		id   string
		cert *tls.Certificate
	}{
		{"unregistered thumbprint", "self", other},
		{"ca cert with wrong CN", "ca-dev", wrongCN},
		{"self-signed cert for a CA device", "ca-dev", self},
		{"cert for a sas device", "sas-dev", caDev},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := dial(t, h, tc.id, dialOpts{cert: tc.cert}); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
				t.Errorf("err = %v, want CONNACK 5", err)
			}
		})
	}
	// A SAS device with a client certificate still authenticates by token.
	mustDial(t, h, "sas-dev", dialOpts{key: sas.PrimaryKey})
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	h1 := &Hub{DataDir: dir}
	if err := h1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	d, _ := h1.CreateDevice("dev1")
	c := mustDial(t, h1, "dev1", dialOpts{key: d.PrimaryKey})
	c.sub(t, filterTwinRes, 0)
	c.pub(t, "$iothub/twin/PATCH/properties/reported/?$rid=1", 0, `{"fw":"2.0"}`)
	c.waitMsg(t, "204", topicPrefix("$iothub/twin/res/204/"))
	h1.PatchDesired("dev1", "", map[string]any{"sp": 7})
	h1.SendC2D("dev1", C2DMessage{Body: []byte("kept")})
	ca := h1.CACertPEM()
	owner, _ := h1.Policy("iothubowner")
	c.Disconnect(0)
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}

	h2 := &Hub{DataDir: dir}
	if err := h2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if !bytes.Equal(ca, h2.CACertPEM()) {
		t.Error("CA changed across restarts")
	}
	if o, _ := h2.Policy("iothubowner"); o.PrimaryKey != owner.PrimaryKey {
		t.Error("policy key changed")
	}
	d2, err := h2.Device("dev1", "")
	if err != nil || d2.PrimaryKey != d.PrimaryKey {
		t.Fatalf("device after restart: %+v %v", d2, err)
	}
	tw, _ := h2.Twin("dev1", "")
	if tw.Properties.Reported["fw"] != "2.0" || tw.Properties.Desired["sp"] == nil || tw.Properties.Desired["$version"] != int64(2) {
		t.Errorf("twin after restart: %+v", tw.Properties)
	}
	if n := len(h2.PendingC2D("dev1")); n != 1 {
		t.Errorf("pending c2d after restart = %d", n)
	}
	c2 := mustDial(t, h2, "dev1", dialOpts{key: d.PrimaryKey})
	c2.Disconnect(0)
}
