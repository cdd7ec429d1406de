package hubsim

import (
	"strings"
	"testing"
	"time"
)

func FuzzPropertyBag(f *testing.F) {
	for _, s := range []string{
		"", "a=b", "%24.mid=mid-1&%24.cid=cid%201&%24.ct=application%2Fjson&alert=yes%26no&%24.sub=sub1",
		"nul&empty=&x=%zz", "&&=&a==b", "k=%E2%82%AC", "%", "a=%2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, bag string) {
		entries, err := ParsePropertyBag(bag)
		if err != nil {
			return
		}
		// Encoding and decoding again gives the same entries.
		again, err := ParsePropertyBag(EncodePropertyBag(entries))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", EncodePropertyBag(entries), err)
		}
		if len(again) != len(entries) {
			t.Fatalf("%q: %d entries, re-parsed %d", bag, len(entries), len(again))
		}
		for i := range entries {
			if entries[i] != again[i] {
				t.Fatalf("%q: entry %d %+v != %+v", bag, i, entries[i], again[i])
			}
		}
	})
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{
		"hub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4",
		"localhost:8884/dev1/?api-version=2021-04-12&model-id=dtmi:com:example:Thermostat;1&DeviceClientType=x",
		"hub/dev/mod/?api-version=1", "hub/dev/api-version=2016-11-14&DeviceClientType=c", "a/b", "//?", "h/d/m/x/?api-version=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUsername(s)
		if err != nil {
			return
		}
		if u.DeviceID == "" || u.Host == "" || strings.Contains(u.DeviceID, "/") || strings.Contains(u.ModuleID, "/") {
			t.Fatalf("%q parsed to %+v", s, u)
		}
		if _, ok := u.Props["api-version"]; !ok {
			t.Fatalf("%q: no api-version but no error", s)
		}
	})
}

func FuzzParseSAS(f *testing.F) {
	key := "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
	tok, _ := NewSAS("hub/devices/d1", "", key, time.Unix(1795306869, 0))
	for _, s := range []string{
		tok,
		"SharedAccessSignature sr=localhost&sig=zDX%3D&skn=iothubowner&se=1795307005",
		"SharedAccessSignature sr=a&sig=b", "SharedAccessSignature  sr=a", "sr=a&sig=b&se=1", "SharedAccessSignature SE=1&SR=x&SIG=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sas, err := ParseSAS(s)
		if err != nil {
			return
		}
		if sas.RawResource == "" || sas.Signature == "" || sas.RawExpiry == "" {
			t.Fatalf("%q parsed without required fields: %+v", s, sas)
		}
		// Verification never panics and never accepts a token signed
		// with another key.
		if err := sas.VerifyKeys(sas.Resource, sas.Expiry, 0, NewKey()); err == nil {
			t.Fatalf("%q verified with a random key", s)
		}
	})
}

func TestSASRoundTrip(t *testing.T) {
	key := NewKey()
	tok, err := NewSAS("Hub.example/devices/d(1)", "", key, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tok, "sr=Hub.example%2Fdevices%2Fd%281%29&sig=") {
		t.Errorf("token = %s", tok)
	}
	s, err := ParseSAS(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyKeys("hub.example/devices/d(1)", time.Now(), 0, "", NewKey(), key); err != nil {
		t.Errorf("verify: %v", err)
	}
	if err := s.VerifyKeys("hub.example/devices/d(1)", time.Now().Add(2*time.Minute), 0, key); err == nil {
		t.Error("expired token verified")
	}
	if err := s.VerifyKeys("hub.example/devices/d(1)", time.Now().Add(2*time.Minute), 5*time.Minute, key); err != nil {
		t.Errorf("within skew: %v", err)
	}
}
