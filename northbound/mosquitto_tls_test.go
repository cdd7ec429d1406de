package northbound

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/internal/testpeer"
)

// testCA issues certificates for the mosquitto TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: dir}
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", der)
	return ca
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue writes name.pem and name.key signed by the CA.
func (ca *testCA) issue(t *testing.T, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

// TestMQTTProfileTLSMosquitto connects to mosquitto over TLS, verified
// against a CA file: one identity with a client certificate, one with a
// username and password, one with a wrong password (refused, alone).
func TestMQTTProfileTLSMosquitto(t *testing.T) {
	passwd := testpeer.RequireTool(t, "mosquitto_passwd")
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	sc, sk := ca.issue(t, "server", true)
	cc, ck := ca.issue(t, "dev-cert", false)
	pwfile := filepath.Join(dir, "passwd")
	if out, err := exec.Command(passwd, "-c", "-b", pwfile, "dev-pw", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	os.Chmod(pwfile, 0o600)
	port := startMosquittoConf(t, func(port int) string {
		return strings.Join([]string{
			"listener " + strconv.Itoa(port) + " 127.0.0.1",
			"cafile " + filepath.Join(dir, "ca.pem"), "certfile " + sc, "keyfile " + sk,
			"require_certificate false", "use_identity_as_username false",
			"password_file " + pwfile, "allow_anonymous true", "persistence false",
		}, "\n") + "\n"
	})
	cfg := Config{Profile: ProfileMQTT, Host: "localhost", Port: port, CAFile: filepath.Join(dir, "ca.pem"),
		BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}
	ids := []identity.Config{
		{ID: "dev-cert", CertFile: cc, CertKeyFile: ck},
		{ID: "dev-pw", Username: "dev-pw", Password: "s3cret"},
		{ID: "dev-bad", Username: "dev-pw", Password: "wrong"},
	}
	q := newMemQueue()
	for _, ic := range ids {
		for i := 1; i <= 20; i++ {
			q.append(ic.ID, telemetry(ic.ID, i))
		}
	}
	log, logs := testLogger(t)
	p, err := New(cfg, ids, q, newRecorder(), log)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	eventually(t, 10*time.Second, "good identities drained", func() bool {
		return q.pending("dev-cert") == 0 && q.pending("dev-pw") == 0
	})
	eventually(t, 10*time.Second, "bad password refused", func() bool {
		return strings.Contains(p.Status()[2].LastError, "refused the credentials")
	})
	if q.pending("dev-bad") != 20 {
		t.Fatal("refused identity sent something")
	}
	if strings.Contains(logs.String(), "s3cret") || strings.Contains(logs.String(), "wrong") {
		t.Fatal("password in logs")
	}
}

// startMosquittoConf runs mosquitto with the config conf(port) returns.
func startMosquittoConf(t *testing.T, conf func(port int) string) int {
	t.Helper()
	bin := testpeer.RequireTool(t, "mosquitto")
	port := freePort(t)
	path := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := conf(port)
	if os.Geteuid() == 0 {
		body += "user root\n" // else it drops to "mosquitto" and cannot read the test's files
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path)
	out := &testpeer.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})
	eventually(t, 5*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}

// TestMQTTProfileX509OnlyMosquitto authenticates every identity by its
// client certificate alone, as Azure Event Grid's MQTT broker does:
// mosquitto requires a certificate, takes the certificate's CN as the user
// name, and its ACL lets each user publish only under its own name. Each
// identity has its own certificate and the client id the config's template
// gives; telemetry from both arrives, a command reaches the right identity,
// and an identity without a certificate fails alone.
func TestMQTTProfileX509OnlyMosquitto(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	sc, sk := ca.issue(t, "server", true)
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, []byte("user test-sub\ntopic readwrite #\n\npattern readwrite plant/%u/#\n"), 0o600)
	port := startMosquittoConf(t, func(port int) string {
		return strings.Join([]string{
			"listener " + strconv.Itoa(port) + " 127.0.0.1",
			"cafile " + filepath.Join(dir, "ca.pem"), "certfile " + sc, "keyfile " + sk,
			"require_certificate true", "use_identity_as_username true",
			"acl_file " + acl, "allow_anonymous false", "persistence false",
		}, "\n") + "\n"
	})
	subCert, subKey := ca.issue(t, "test-sub", false)
	pair, err := tls.LoadX509KeyPair(subCert, subKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	url := "ssl://localhost:" + strconv.Itoa(port)
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID("test-sub").SetAutoReconnect(false).
		SetTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}})
	sub := mqtt.NewClient(o)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { sub.Disconnect(100) })
	var mu sync.Mutex
	got := map[string]int{}
	if tok := sub.Subscribe("plant/+/telemetry", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		got[strings.Split(m.Topic(), "/")[1]]++
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	ac, ak := ca.issue(t, "dev-a", false)
	bc, bk := ca.issue(t, "dev-b", false)
	cfg := Config{Profile: ProfileMQTT, Host: "localhost", Port: port, CAFile: filepath.Join(dir, "ca.pem"),
		BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
		Topics: Topics{ClientID: "gw1-{id}", Telemetry: "plant/{id}/telemetry", C2D: "plant/{id}/c2d",
			Commands: "plant/{id}/commands", Responses: "plant/{id}/responses", Desired: "plant/{id}/desired", Reported: "plant/{id}/reported"}}
	ids := []identity.Config{
		{ID: "dev-a", CertFile: ac, CertKeyFile: ak},
		{ID: "dev-b", CertFile: bc, CertKeyFile: bk},
		{ID: "dev-nocert"},
	}
	q := newMemQueue()
	for _, ic := range ids {
		for i := 1; i <= 10; i++ {
			q.append(ic.ID, telemetry(ic.ID, i))
		}
	}
	rec := newRecorder()
	log, _ := testLogger(t)
	p, err := New(cfg, ids, q, rec, log)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	eventually(t, 20*time.Second, "both certificate identities drained", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return q.pending("dev-a") == 0 && q.pending("dev-b") == 0 && got["dev-a"] >= 10 && got["dev-b"] >= 10
	})
	if tok := sub.Publish("plant/dev-b/c2d", 1, false, `{"open":true}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("c2d: %v", tok.Error())
	}
	if c := rec.next(t, edgegw.C2D); c.Identity != "dev-b" || string(c.Payload) != `{"open":true}` {
		t.Fatalf("command %+v", c)
	}
	eventually(t, 20*time.Second, "the identity without a certificate failing", func() bool {
		return p.Status()[2].LastError != ""
	})
	if q.pending("dev-nocert") != 10 || !p.Status()[0].Connected || !p.Status()[1].Connected {
		t.Fatalf("status %+v", p.Status())
	}
}
