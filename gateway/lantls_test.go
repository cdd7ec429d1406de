package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// tls.auto keeps the LAN CA in <state_dir>/lan-ca unless tls.dir says
// otherwise; two adapters cannot share one.
func TestLANAutoTLSConfig(t *testing.T) {
	auto := edit(t, "      listen: 127.0.0.1:1883\n", "      listen: 127.0.0.1:1883\n      tls: {auto: true}\n")
	cfg, err := Parse("auto.yaml", []byte(auto))
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Southbound[0].LANMQTT.TLS.Dir; d != "/tmp/edgegw-config-test/lan-ca" {
		t.Errorf("tls.dir default = %q", d)
	}
	second := auto + "  - name: lan2\n    lanmqtt:\n      listen: 127.0.0.1:1884\n      tls: {auto: true}\n      allow_anonymous: true\n"
	_, err = Parse("two.yaml", []byte(second))
	if want := "two.yaml: southbound[1].lanmqtt.tls.dir: /tmp/edgegw-config-test/lan-ca is already used by southbound[0]"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %s", err, want)
	}
	if _, err := Parse("two.yaml", []byte(strings.Replace(second, "tls: {auto: true}\n      allow", "tls: {auto: true, dir: /tmp/lan2-ca}\n      allow", 1))); err != nil {
		t.Errorf("own dir: %v", err)
	}
	both := strings.Replace(auto, "tls: {auto: true}", "tls: {auto: true, cert_file: c.pem, key_file: k.pem}", 1)
	_, err = Parse("both.yaml", []byte(both))
	if want := "both.yaml: southbound[0].lanmqtt.tls.auto: cannot be used with cert_file and key_file"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// A LAN device that trusts only the CA the gateway created in its state
// directory publishes over TLS.
func TestLANAutoTLSEndToEnd(t *testing.T) {
	cfg := skeletonConfig(t)
	cfg.Southbound[0].LANMQTT.TLS = &lanmqtt.TLSConfig{Auto: true}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	data, err := os.ReadFile(filepath.Join(cfg.StateDir, "lan-ca", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatal("ca.pem holds no certificate")
	}
	lan := gw.Adapter("lan").(*lanmqtt.Adapter)
	opts := mqtt.NewClientOptions().AddBroker("ssl://" + lan.Addr().String()).
		SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}).
		SetClientID("sensor-1").SetUsername("sensor-1").SetPassword("pw").SetAutoReconnect(false)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("LAN connect over TLS: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish("devices/sensor-1/messages/events/", 1, false, "over the gateway's own TLS"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}
