package northbound

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/identity"
)

func TestConfigDefaults(t *testing.T) {
	for _, tt := range []struct {
		in   Config
		port int
		url  string
	}{
		{Config{Host: "hub.example"}, 8883, "mqtts://hub.example:8883"},
		{Config{Host: "hub.example", Transport: "websocket"}, 443, "wss://hub.example:443/$iothub/websocket"},
		{Config{Host: "h", Insecure: true, Profile: "mqtt"}, 1883, "tcp://h:1883"},
		{Config{Host: "h", Insecure: true, Profile: "mqtt", Transport: "websocket"}, 80, "ws://h:80/mqtt"},
		{Config{Host: "h", Address: "127.0.0.1:9"}, 8883, "mqtts://127.0.0.1:9"},
	} {
		c := tt.in
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("%+v: %v", tt.in, err)
		}
		ep, err := newEndpoint(&c, nil)
		if err != nil || c.Port != tt.port || ep.url != tt.url {
			t.Errorf("%+v: port %d url %s err %v", tt.in, c.Port, ep.url, err)
		}
		if c.ConnectRate != 50 || c.InFlight != 20 || c.TokenTTL != time.Hour || c.ConnectBurst != 1 {
			t.Errorf("defaults %+v", c)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		mod  func(c *Config)
		want string
	}{
		{func(c *Config) { c.Profile = "aws" }, `profile: must be "azure-iothub" or "mqtt" (got "aws")`},
		{func(c *Config) { c.Host = "mqtts://x" }, "host: must be a host name"},
		{func(c *Config) { c.Port = 70000 }, "port: must be 1-65535 (got 70000)"},
		{func(c *Config) { c.Address = "nope" }, `address: must be host:port, the address to dial instead of host:port (got "nope")`},
		{func(c *Config) { c.Address = "127.0.0.1:0" }, "address: must be host:port"},
		{func(c *Config) { c.Transport = "quic" }, "transport: must be"},
		{func(c *Config) { c.ConnectRate = -1 }, "connect_rate: must be > 0 (got -1)"},
		{func(c *Config) { c.BackoffMax = time.Millisecond }, "backoff_max: must be >= backoff_min"},
		{func(c *Config) { c.KeepAlive = time.Hour }, "keep_alive: must be 1s-1177s"},
		{func(c *Config) { c.TokenTTL = time.Millisecond }, "token_ttl: must be >= 1s (got 1ms)"},
		{func(c *Config) { c.InFlight = -1 }, "in_flight: must be 1-1000 (got -1)"},
		{func(c *Config) { c.DesiredRetryMin = -time.Second }, "desired_retry_min: must be > 0 (got -1s)"},
		{func(c *Config) { c.DesiredRetryMax = time.Second }, "desired_retry_max: must be >= desired_retry_min 5s (got 1s)"},
		{func(c *Config) { c.AckTimeout = -time.Second }, "ack_timeout: must be > 0"},
		{func(c *Config) { c.Insecure, c.CAFile = true, "ca.pem" }, "ca_file: makes no sense"},
		{func(c *Config) { c.Profile, c.Topics.Telemetry = "mqtt", "a/+/b" }, "topics.telemetry: must not contain MQTT wildcards"},
		{func(c *Config) { c.Profile, c.Topics.C2D = "mqtt", "shared/c2d" }, "topics.c2d: must contain {id} or {device}"},
		{func(c *Config) { c.Profile, c.Topics.ClientID = "mqtt", "gw" }, "topics.client_id: must contain {id}"},
	} {
		c := Config{Host: "hub.example"}
		c.SetDefaults()
		tt.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want %q", err, tt.want)
		}
	}
}

func TestValidateIdentities(t *testing.T) {
	c := Config{Host: "h"}
	c.SetDefaults()
	key := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	err := c.ValidateIdentities([]identity.Config{
		{ID: "a", Key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
		{ID: "a", Key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
		{ID: "b"},
		{ID: "c", Key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", CertFile: "x", CertKeyFile: "y"},
		{ID: "d", Key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", Username: "u"},
		{ID: "e#"},
	})
	for _, want := range []string{`[1].id: duplicate of identities[0] (got "a")`, "[2]: needs a key, key_file or cert_file",
		"[3].cert_file: set either a key or a certificate", "[4].username: is for the mqtt profile only", "[5].id: character '#'"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	if strings.Contains(err.Error(), key) {
		t.Fatal("key in error")
	}
	c.Profile = ProfileMQTT
	if err := c.ValidateIdentities([]identity.Config{{ID: "b"}, {ID: "u", Username: "x", Password: "y"}}); err != nil {
		t.Fatalf("mqtt profile: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("not pem"), 0o644)
	_, err := New(Config{Host: "h", CAFile: ca}, nil, newMemQueue(), newRecorder(), nil)
	if err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
		t.Fatalf("bad CA file: %v", err)
	}
	_, err = New(Config{Host: "h"}, []identity.Config{{ID: "x", KeyFile: filepath.Join(dir, "missing")}}, newMemQueue(), newRecorder(), nil)
	if err == nil || !strings.Contains(err.Error(), "identities[0].key_file:") {
		t.Fatalf("missing key file: %v", err)
	}
	if _, err := New(Config{Host: "h"}, nil, nil, newRecorder(), nil); err == nil {
		t.Fatal("nil queue accepted")
	}
	p, err := New(Config{Host: "h"}, nil, newMemQueue(), newRecorder(), nil)
	if err != nil || len(p.Status()) != 0 {
		t.Fatalf("empty pool: %v", err)
	}
}

func TestRunTwiceAtOnceRefused(t *testing.T) {
	h := startHub(t, nil)
	p, err := New(hubConfig(h), register(t, h, "twice"), newMemQueue(), newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	eventually(t, 10*time.Second, "connected", func() bool { return connected(p) == 1 })
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("second concurrent Run accepted")
	}
	stop()
	// Once stopped, it may run again.
	runPool(t, p)
	eventually(t, 10*time.Second, "connected again", func() bool { return connected(p) == 1 })
}
