package lanmqtt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw"
)

func TestConfigDefaultsAndYAML(t *testing.T) {
	src := `
listen: ":1883"
users:
  - {username: pump, password: s3cret, device: pump-7}
topics:
  - {filter: "plant/+/temp", device: "line-{2}"}
session_expiry: 2h
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxMessageBytes != 256<<10 || c.MaxPending != 256 || c.SessionExpiry != 2*time.Hour || c.ConnectTimeout != 10*time.Second || c.MaxInflight != 64 {
		t.Errorf("defaults: %+v", c)
	}
	if c.Points("lan") != nil {
		t.Error("Points should be nil")
	}
	var d Config
	d.SetDefaults()
	if d.Listen != "127.0.0.1:1883" {
		t.Errorf("default listen %q", d.Listen)
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config { c := baseConfig(); c.SetDefaults(); return c }
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		path   string
		reason string
	}{
		{"no users", func(c *Config) { c.Users = nil }, "users", "allow_anonymous"},
		{"bad listen", func(c *Config) { c.Listen = "1883" }, "listen", `got "1883"`},
		{"negative pending", func(c *Config) { c.MaxPending = -1 }, "max_pending", "got -1"},
		{"expiry", func(c *Config) { c.SessionExpiry = time.Millisecond }, "session_expiry", "got 1ms"},
		{"tls half", func(c *Config) { c.TLS = &TLSConfig{CertFile: "x"} }, "tls.key_file", "must be set"},
		{"dup user", func(c *Config) { c.Users[1].Username = "dev1" }, "users[1].username", "duplicate"},
		{"no password", func(c *Config) { c.Users[0].Password = "" }, "users[0].password", "must be set"},
		{"bad device", func(c *Config) { c.Users[0].Device = "a/b/c" }, "users[0].device", "device/module"},
		{"wildcard device", func(c *Config) { c.Users[0].Device = "a+" }, "users[0].device", "+ or #"},
		{"useless user", func(c *Config) { c.Users[0].Device = "" }, "users[0]", "needs a device"},
		{"bad filter", func(c *Config) { c.Users[2].Publish = []string{"a/#/b"} }, "users[2].publish[0]", "last level"},
		{"bad placeholder", func(c *Config) { c.Users[2].Publish = []string{"{device}/x"} }, "users[2].publish[0]", "{device}"},
		{"unknown placeholder", func(c *Config) { c.Users[0].Subscribe = []string{"{foo}"} }, "users[0].subscribe[0]", "unknown placeholder"},
		{"module placeholder", func(c *Config) { c.Users[0].Subscribe = []string{"{module}"} }, "users[0].subscribe[0]", "module identity"},
		{"rule filter", func(c *Config) { c.Topics[0].Filter = "a+" }, "topics[0].filter", "whole level"},
		{"rule device", func(c *Config) { c.Topics[0].Device = "" }, "topics[0].device", "must be set"},
		{"rule level", func(c *Config) { c.Topics[0].Device = "x-{4}" }, "topics[0].device", "{4}"},
		{"rule hash", func(c *Config) { c.Topics[1].Device = "x-{3}" }, "topics[1].device", "not #"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mutate(&c)
			err := c.Validate()
			var fe *edgegw.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a FieldError, got %v", err)
			}
			if fe.Path != tc.path || !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("got %q: %q; want path %q reason containing %q", fe.Path, fe.Reason, tc.path, tc.reason)
			}
		})
	}
	c := good()
	if err := c.Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
}

// Passwords are Secrets: they never show up in formatted configs.
func TestPasswordRedacted(t *testing.T) {
	c := baseConfig()
	var buf bytes.Buffer
	if err := yaml.NewEncoder(&buf).Encode(c); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "pw1") {
		t.Error("password in YAML output")
	}
}
