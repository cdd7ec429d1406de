package opcua

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw"
)

// FuzzParseNodeID: any text either fails with an error or gives a NodeId
// whose text form parses back to the same NodeId. Seeds are in
// testdata/fuzz/FuzzParseNodeID.
func FuzzParseNodeID(f *testing.F) {
	for _, s := range []string{"ns=1;s=Boiler.Temperature", "i=85", "ns=2;i=4294967295", "ns=65535;b=AAE=",
		"ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63", "ns=1;s=a;b=c", "nsu=urn:x;s=y", "ns=01;i=1", "s=", "g={x}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseNodeID(s)
		if err != nil {
			if id != nil {
				t.Fatalf("%q: error %v with a NodeId", s, err)
			}
			return
		}
		text := formatNodeID(id)
		again, err := ParseNodeID(text)
		if err != nil {
			t.Fatalf("%q -> %q does not parse: %v", s, text, err)
		}
		if formatNodeID(again) != text || again.Namespace() != id.Namespace() || again.Type() != id.Type() {
			t.Fatalf("%q -> %q -> %q", s, text, formatNodeID(again))
		}
		if _, err := id.Encode(); err != nil {
			t.Fatalf("%q: encode: %v", s, err)
		}
	})
}

// FuzzConfig: any YAML either fails decoding or validation with field
// errors, or makes an adapter; nothing panics. Seeds are in
// testdata/fuzz/FuzzConfig.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`endpoint: opc.tcp://127.0.0.1:4840/UA
security: {policy: Basic256Sha256, mode: Sign}
trusted: ["D0:22:D8:AC:5C:79:4A:EB:19:37:01:3C:10:32:E7:A4:6B:25:2C:0B"]
auth: {kind: username, username: op, password: pw}
devices:
  - name: boiler
    points:
      - {name: t, node: "ns=1;s=T", type: double, deadband: 5, deadband_type: percent}
      - {name: a, node: "ns=1;i=7", type: int16, length: 4, scale: 0.1}
    methods:
      - {name: m, object: "ns=1;s=B", method: "ns=1;s=B.M", inputs: [double], outputs: [ok]}
`))
	f.Add([]byte("endpoint: opc.tcp://h:1\ndevices: [{name: d, mode: poll, points: [{name: x, node: 'i=1', type: bool}]}]\n"))
	f.Add([]byte("endpoint: 'opc.tcp://[::1]:4840'\nsecurity: {policy: None, mode: Sign}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return
		}
		c.SetDefaults()
		err := c.Validate()
		if err != nil {
			var fe *edgegw.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("validate error without a field: %v", err)
			}
			return
		}
		c.PKIDir = t.TempDir()
		a, err := New("fuzz", c, nil)
		if err != nil {
			t.Fatalf("valid config refused by New: %v", err)
		}
		_ = c.Points("fuzz")
		for _, d := range a.devs {
			for _, it := range d.items {
				if it.node == nil {
					t.Fatalf("point %s without a NodeId", it.name)
				}
			}
		}
	})
}
