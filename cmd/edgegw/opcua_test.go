package main

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound/opcua"
)

func TestOPCUABrowseUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"opcua"}, "usage: edgegw opcua browse"},
		{[]string{"opcua", "browse"}, "endpoint: is required"},
		{[]string{"opcua", "browse", "-endpoint", "http://x:1"}, "must be opc.tcp://"},
		{[]string{"opcua", "browse", "-endpoint", "opc.tcp://127.0.0.1:4840", "-node", "ns=1;q=2"}, "-node: NodeId"},
		{[]string{"opcua", "browse", "-endpoint", "opc.tcp://127.0.0.1:4840", "-depth", "0"}, "-depth must be 1-20"},
		{[]string{"opcua", "browse", "-endpoint", "opc.tcp://127.0.0.1:4840", "-policy", "Basic128"}, "security.policy"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q, want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// TestOPCUABrowse lists the boiler of the node-opcua server with types,
// array lengths, access levels and method signatures, and prints a config
// snippet that an adapter config accepts.
func TestOPCUABrowse(t *testing.T) {
	srv := testpeer.StartOPCUAServer(t, t.TempDir())
	pki := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"opcua", "browse", "-endpoint", srv.Endpoint, "-node", "ns=1;s=Boiler", "-pki", pki, "-snippet", "boiler"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"ns=1;s=Boiler.Setpoint", "double", "rw",
		"ns=1;s=Boiler.Temps  ", "double[4]",
		"ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63", "ns=1;b=Ym9pbGVyLXRhZw==", "ns=1;i=1001",
		"(power double, duration uint32) -> (accepted boolean, message string)",
		`{name: "Setpoint", node: "ns=1;s=Boiler.Setpoint", type: double, writable: true}`,
		`{name: "Start", object: "ns=1;s=Boiler", method: "ns=1;s=Boiler.Start", inputs: [double, uint32], outputs: ["accepted", "message"]}`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	snippet := out.String()[strings.Index(out.String(), "devices:"):]
	var doc struct {
		Devices []opcua.DeviceConfig `yaml:"devices"`
	}
	dec := yaml.NewDecoder(strings.NewReader(snippet))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("snippet: %v\n%s", err, snippet)
	}
	cfg := opcua.Config{Endpoint: srv.Endpoint, PKIDir: pki, Devices: doc.Devices}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Errorf("snippet does not validate: %v\n%s", err, snippet)
	}
	if n := len(doc.Devices[0].Points); n < 18 {
		t.Errorf("snippet has %d points", n)
	}

	// The server's own object: a method whose arguments this user may not
	// read (node-opcua hides PublishSubscribe's AddConnection from an
	// anonymous user) is listed without them and left out of the snippet,
	// instead of failing the whole listing; array arguments show as such.
	out.Reset()
	errb.Reset()
	args = []string{"opcua", "browse", "-endpoint", srv.Endpoint, "-node", "i=2253", "-depth", "2", "-pki", pki, "-snippet", "server"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("server object: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"(SubscriptionId uint32) -> (ServerHandles uint32[], ClientHandles uint32[])",
		"0:AddConnection", "(arguments unreadable: ", "# left out: i=17366 (method 0:AddConnection: arguments unreadable)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("server object: output lacks %q:\n%s", want, out.String())
		}
	}

	// A node the server does not have is an error, not an empty list.
	out.Reset()
	errb.Reset()
	args = []string{"opcua", "browse", "-endpoint", srv.Endpoint, "-node", "ns=1;s=Boiler.Nope", "-pki", pki}
	if code := run(args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "ns=1;s=Boiler.Nope") ||
		!strings.Contains(errb.String(), "BadNodeIDUnknown") {
		t.Errorf("unknown node: exit %d, stdout %q, stderr %q; want exit 1 naming the node and BadNodeIDUnknown", code, out.String(), errb.String())
	}

	// A secure policy needs the server's certificate trusted: refused
	// first (exit 1, naming the thumbprint), then accepted by thumbprint.
	pemData, err := os.ReadFile(srv.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	thumb := opcua.Thumbprint(block.Bytes)
	secure := []string{"opcua", "browse", "-endpoint", srv.Endpoint, "-node", "ns=1;s=Boiler", "-pki", pki,
		"-policy", "Aes128Sha256RsaOaep", "-mode", "Sign"}
	out.Reset()
	errb.Reset()
	if code := run(secure, &out, &errb); code != 1 || !strings.Contains(errb.String(), thumb) {
		t.Errorf("untrusted: exit %d, stderr %q", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(pki, "rejected", thumb+".der")); err != nil {
		t.Error(err)
	}
	out.Reset()
	errb.Reset()
	if code := run(append(secure, "-trust", thumb), &out, &errb); code != 0 || !strings.Contains(out.String(), "ns=1;s=Boiler.Start") {
		t.Errorf("trusted: exit %d, stderr %q", code, errb.String())
	}
}
