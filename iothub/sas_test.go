package iothub

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustKey(t testing.TB, b64 string) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

// The expected tokens were computed with the algorithm of the Node SDK
// (azure-iot-common authorization.js / shared_access_signature.js).
func TestSASTokenMatchesSDK(t *testing.T) {
	key := mustKey(t, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	exp := time.Unix(1795306869, 0)
	tests := []struct{ uri, policy, want string }{
		{"myhub.azure-devices.net/devices/dev1", "",
			"SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1&sig=w1%2BVkl0T84nkNyE%2BAF3ja219oZv2jShvK%2Fz1JGh3CFc%3D&se=1795306869"},
		{"myhub.azure-devices.net/devices/dev 1(x)/modules/m!", "device",
			"SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev%201%28x%29%2Fmodules%2Fm%21&sig=F%2B6E2XFtuXbWYnKokO2iwh0tW%2FZoiiuHXs6Hr43gj3o%3D&skn=device&se=1795306869"},
	}
	for _, tt := range tests {
		if got := SASToken(tt.uri, key, tt.policy, exp.Add(999*time.Millisecond)); got != tt.want {
			t.Errorf("SASToken(%q)\n got %s\nwant %s", tt.uri, got, tt.want)
		}
	}
	if got := ResourceURI("h", "d", ""); got != "h/devices/d" {
		t.Errorf("ResourceURI device: %s", got)
	}
	if got := ResourceURI("h", "d", "m"); got != "h/devices/d/modules/m" {
		t.Errorf("ResourceURI module: %s", got)
	}
}

func TestSASRoundTrip(t *testing.T) {
	key := randomKey()
	tok := SASToken("Hub.example/devices/d(1)", key, "", time.Now().Add(time.Minute))
	if !strings.Contains(tok, "sr=Hub.example%2Fdevices%2Fd%281%29&sig=") {
		t.Errorf("token = %s", tok)
	}
	s, err := ParseSAS(tok)
	if err != nil {
		t.Fatal(err)
	}
	if s.Resource != "Hub.example/devices/d(1)" || s.KeyName != "" || s.RawResource != "Hub.example%2Fdevices%2Fd%281%29" {
		t.Errorf("parsed %+v", s)
	}
	if err := s.Verify("hub.example/devices/d(1)", time.Now(), 0, nil, randomKey(), key); err != nil {
		t.Errorf("verify: %v", err)
	}
	if err := s.Verify("hub.example/devices/d(1)", time.Now().Add(2*time.Minute), 0, key); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired token: %v", err)
	}
	if err := s.Verify("hub.example/devices/d(1)", time.Now().Add(2*time.Minute), MaxClockSkew, key); err != nil {
		t.Errorf("within skew: %v", err)
	}
	if err := s.Verify("hub.example/devices/d(1)", time.Now(), 0, randomKey()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: %v", err)
	}
	if err := s.Verify("hub.example/devices/d(2)", time.Now(), 0, key); !errors.Is(err, ErrBadAudience) {
		t.Errorf("other device: %v", err)
	}
	if err := s.Verify("hub.example/devices/d(1)", time.Now(), 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("no keys: %v", err)
	}
	policy := SASToken("h/devices", key, "device owner", time.Now().Add(time.Minute))
	if p, err := ParseSAS(policy); err != nil || p.KeyName != "device owner" || !strings.Contains(policy, "&skn=device%20owner&se=") {
		t.Errorf("policy token %s: %+v, %v", policy, p, err)
	}
}

// The signature is over sr exactly as sent: lower-case escapes (as the IoT
// Hub docs show them) verify, and so do fields in another order and case.
func TestSASRawResource(t *testing.T) {
	key := randomKey()
	sr, se := "localhost%2fdevices%2fdev1", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	sig := SAS{RawResource: sr, RawExpiry: se}.Sign(key)
	tok := "SharedAccessSignature SE=" + se + "&Sig=" + url.QueryEscape(sig) + "&unknown=1&sr=" + sr
	s, err := ParseSAS(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify("LOCALHOST/devices/dev1/", time.Now(), 0, key); err != nil {
		t.Errorf("verify: %v", err)
	}
}

func TestParseSASMalformed(t *testing.T) {
	for name, tok := range map[string]string{
		"empty":          "",
		"no scheme":      "sr=a&sig=b&se=1",
		"other scheme":   "Bearer sr=a&sig=b&se=1",
		"three parts":    "SharedAccessSignature sr=a&sig=b se=1",
		"no sig":         "SharedAccessSignature sr=h%2Fdevices%2Fdev3&se=99999999999",
		"no sr":          "SharedAccessSignature sig=b&se=1",
		"no se":          "SharedAccessSignature sr=a&sig=b",
		"empty sig":      "SharedAccessSignature sr=a&sig=&se=1",
		"bare field":     "SharedAccessSignature sr=a&sig=b&se=1&skn",
		"duplicate":      "SharedAccessSignature sr=a&sig=b&se=1&SR=c",
		"bad escape":     "SharedAccessSignature sr=a&sig=%zz&se=1",
		"bad escape sr":  "SharedAccessSignature sr=a%2&sig=b&se=1",
		"negative se":    "SharedAccessSignature sr=a&sig=b&se=-1",
		"se not integer": "SharedAccessSignature sr=a&sig=b&se=1.5",
		"password":       "hunter2",
	} {
		if _, err := ParseSAS(tok); !errors.Is(err, ErrMalformedToken) {
			t.Errorf("%s: err %v, want ErrMalformedToken", name, err)
		}
	}
	// Whitespace around and between the two parts is allowed, as in
	// Microsoft's validator.
	if s, err := ParseSAS(" SharedAccessSignature\t sr=a&sig=b&se=1\n"); err != nil || s.Resource != "a" || s.Expiry.Unix() != 1 {
		t.Errorf("whitespace: %+v, %v", s, err)
	}
}

func TestAudienceCovers(t *testing.T) {
	for _, tt := range []struct {
		aud, res string
		want     bool
	}{
		{"hub/devices/d1", "hub/devices/d1", true},
		{"HUB/Devices/D1/", "hub/devices/d1", true},
		{"hub/devices", "hub/devices/d1", true},
		{"hub", "hub/devices/d1/modules/m", true},
		{"hub/devices/d1", "hub/devices/d1/modules/m", true},
		{"hub/devices/d", "hub/devices/d1", false},
		{"hub/devices/d1/modules/m", "hub/devices/d1", false},
		{"", "hub", false},
		{"/", "hub", false},
		{"other/devices/d1", "hub/devices/d1", false},
	} {
		if got := AudienceCovers(tt.aud, tt.res); got != tt.want {
			t.Errorf("AudienceCovers(%q, %q) = %v", tt.aud, tt.res, got)
		}
	}
}

func FuzzParseSAS(f *testing.F) {
	key := mustKey(f, "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=")
	for _, s := range []string{
		SASToken("hub/devices/d1", key, "", time.Unix(1795306869, 0)),
		"SharedAccessSignature sr=localhost&sig=zDX%3D&skn=iothubowner&se=1795307005",
		"SharedAccessSignature sr=a&sig=b", "SharedAccessSignature  sr=a", "sr=a&sig=b&se=1", "SharedAccessSignature SE=1&SR=x&SIG=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sas, err := ParseSAS(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("%q: error does not wrap ErrMalformedToken: %v", s, err)
			}
			return
		}
		if sas.RawResource == "" || sas.Signature == "" || sas.RawExpiry == "" {
			t.Fatalf("%q parsed without required fields: %+v", s, sas)
		}
		// Verification never panics and never accepts a token signed
		// with another key.
		if err := sas.Verify(sas.Resource, sas.Expiry, 0, randomKey()); err == nil {
			t.Fatalf("%q verified with a random key", s)
		}
		// Signed again with a key, it verifies with that key.
		sas.Signature = sas.Sign(key)
		if err := sas.Verify(sas.Resource+"/x", sas.Expiry, 0, key); sas.Resource != "" && strings.Trim(sas.Resource, "/") != "" && err != nil {
			t.Fatalf("%q re-signed: %v", s, err)
		}
	})
}
