package lanmqtt

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
)

func TestExecuteReachesPahoSubscriber(t *testing.T) {
	a := start(t, baseConfig(), new(testpeer.Uplink))
	ctx := context.Background()
	topic := "devices/dev1/messages/devicebound/%24.mid=m1&k=v"
	act := edgegw.Action{Adapter: "lan", Device: "dev1", Kind: edgegw.PublishLAN, Topic: topic, Payload: []byte("hello")}
	if err := a.Execute(ctx, act); !errors.Is(err, southbound.ErrUnavailable) {
		t.Errorf("no subscriber: err %v, want ErrUnavailable", err)
	}
	got := make(chan paho.Message, 1)
	c := connect(t, pahoOpts(brokerURL(a), "dev1", "dev1", "pw1"))
	tok := c.Subscribe("devices/dev1/messages/devicebound/#", 1, func(_ paho.Client, m paho.Message) { got <- m })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe failed")
	}
	if err := a.Execute(ctx, act); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic() != topic || string(m.Payload()) != "hello" || m.Qos() != 1 {
			t.Errorf("got %s %q qos %d", m.Topic(), m.Payload(), m.Qos())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not delivered")
	}
	for _, bad := range []edgegw.Action{
		{Kind: edgegw.PublishLAN, Topic: "devices/+/x"},
		{Kind: edgegw.PublishLAN, Topic: ""},
		{Kind: edgegw.WritePoint, Topic: "x"},
	} {
		if err := a.Execute(ctx, bad); !errors.Is(err, southbound.ErrUnknownTarget) {
			t.Errorf("%v: err %v, want ErrUnknownTarget", bad, err)
		}
	}
	if s := a.Stats(); s.Published != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestExecuteBeforeRun(t *testing.T) {
	a, err := New("lan", baseConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Execute(context.Background(), edgegw.Action{Kind: edgegw.PublishLAN, Topic: "a/b"})
	if !errors.Is(err, southbound.ErrUnavailable) {
		t.Errorf("err %v, want ErrUnavailable", err)
	}
}

func TestMosquittoClients(t *testing.T) {
	pub := testpeer.RequireTool(t, "mosquitto_pub")
	sub := testpeer.RequireTool(t, "mosquitto_sub")
	up := new(testpeer.Uplink)
	a := start(t, baseConfig(), up)
	p := port(a)

	// mosquitto_pub on the IoT Hub surface, QoS 1: exits 0 only after PUBACK.
	out, err := exec.Command(pub, "-h", "127.0.0.1", "-p", p, "-i", "dev1", "-u", "dev1", "-P", "pw1",
		"-q", "1", "-t", "devices/dev1/messages/events/%24.ct=application%2Fjson&src=mosq", "-m", `{"a":1}`).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	rs := up.Wait(t, 1)
	if m := rs[0].Message; m.Identity != "dev1" || m.ContentType != "application/json" || string(m.Body) != `{"a":1}` {
		t.Errorf("got %s", fmtReading(rs[0]))
	}
	// Wrong password: refused.
	out, err = exec.Command(pub, "-h", "127.0.0.1", "-p", p, "-i", "dev1", "-u", "dev1", "-P", "nope",
		"-q", "1", "-t", "devices/dev1/messages/events/", "-m", "x").CombinedOutput()
	if err == nil {
		t.Errorf("mosquitto_pub with a wrong password succeeded: %s", out)
	}

	// mosquitto_sub receives what Execute publishes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sub, "-h", "127.0.0.1", "-p", p, "-i", "dev2", "-u", "dev2", "-P", "pw2",
		"-q", "1", "-C", "1", "-v", "-t", "devices/dev2/messages/devicebound/#")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	act := edgegw.Action{Kind: edgegw.PublishLAN, Topic: "devices/dev2/messages/devicebound/k=v", Payload: []byte("to-dev2")}
	eventually(t, "mosquitto_sub subscribed", func() bool { return a.Execute(ctx, act) == nil })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(line); got != "devices/dev2/messages/devicebound/k=v to-dev2" {
		t.Errorf("mosquitto_sub got %q", got)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns the
// file names and a pool that trusts it.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgegw test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSAndWebsocket(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	cfg := baseConfig()
	cfg.TLS = &TLSConfig{CertFile: certFile, KeyFile: keyFile}
	cfg.Websocket = "127.0.0.1:0"
	up := new(testpeer.Uplink)
	a := start(t, cfg, up)
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	c := connect(t, pahoOpts("ssl://"+a.Addr().String(), "dev1", "dev1", "pw1").SetTLSConfig(tlsCfg))
	publish(t, c, "devices/dev1/messages/events/", 1, "over tls")
	c2 := connect(t, pahoOpts("wss://"+a.WebsocketAddr().String()+"/", "dev2", "dev2", "pw2").SetTLSConfig(tlsCfg))
	publish(t, c2, "devices/dev2/messages/events/", 1, "over websocket")
	rs := up.Wait(t, 2)
	if string(rs[0].Message.Body) != "over tls" || string(rs[1].Message.Body) != "over websocket" {
		t.Errorf("got %s, %s", fmtReading(rs[0]), fmtReading(rs[1]))
	}
	// Plain TCP to the TLS port does not get in.
	if err := connectErr(t, pahoOpts("tcp://"+a.Addr().String(), "dev1", "dev1", "pw1")); err == nil {
		t.Error("plaintext connect to the TLS listener succeeded")
	}
}

func TestListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := baseConfig()
	cfg.Listen = ln.Addr().String()
	a, err := New("lan", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background(), new(testpeer.Uplink)); err == nil {
		t.Fatal("Run succeeded on a port in use")
	}
}
