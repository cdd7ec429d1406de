package hubsim

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDPSUsername(t *testing.T) {
	for _, tc := range []struct {
		in, scope, reg, api string
	}{
		{"0ne00ABCDEF/registrations/gw-0001/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1", "0ne00ABCDEF", "gw-0001", "2019-03-31"},
		{"0ne00ABCDEF/registrations/gw-0001/api-version=2021-06-01&ClientVersion=1.15.0", "0ne00ABCDEF", "gw-0001", "2021-06-01"},
		{"0ne00ABCDEF/registrations/a.b_c:d/?api-version=2019-03-31", "0ne00ABCDEF", "a.b_c:d", "2019-03-31"},
	} {
		u, err := parseDPSUsername(tc.in)
		if err != nil || u.IDScope != tc.scope || u.RegistrationID != tc.reg || u.APIVersion != tc.api {
			t.Errorf("%q: %+v, %v", tc.in, u, err)
		}
	}
	for _, bad := range []string{"", "scope", "scope/registrations", "scope/devices/x/api-version=1", "/registrations/x/api-version=1",
		"s/registrations/x/ClientVersion=1", "s/registrations//api-version=1", "s/registrations/a b/api-version=1", "s/registrations/x/api-version=%zz"} {
		if u, err := parseDPSUsername(bad); !errors.Is(err, errDPSRequest) {
			t.Errorf("%q: %+v, %v; want errDPSRequest", bad, u, err)
		}
	}
}

func TestParseDPSTopic(t *testing.T) {
	for _, tc := range []struct {
		in      string
		op      dpsOp
		rid, id string
	}{
		{"$dps/registrations/PUT/iotdps-register/?$rid=c21ad400-94c6-4233-be9c-67d50844ba33", dpsRegister, "c21ad400-94c6-4233-be9c-67d50844ba33", ""},
		{"$dps/registrations/PUT/iotdps-register?$rid=1", dpsRegister, "1", ""},
		{"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=7&operationId=5.316aac5bdc130deb.b1e02da8-c3a0", dpsPoll, "7", "5.316aac5bdc130deb.b1e02da8-c3a0"},
	} {
		got, err := parseDPSTopic(tc.in)
		if err != nil || got.op != tc.op || got.rid != tc.rid || got.operationID != tc.id {
			t.Errorf("%q: %+v, %v", tc.in, got, err)
		}
	}
	for _, bad := range []string{"$dps/registrations/PUT/iotdps-register/", "$dps/registrations/PUT/iotdps-register/?x=1",
		"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1", "$dps/registrations/res/200/?$rid=1", "devices/x/messages/events/?$rid=1"} {
		if _, err := parseDPSTopic(bad); !errors.Is(err, errDPSRequest) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if got := dpsResponseTopic(202, "ab", 3); got != "$dps/registrations/res/202/?$rid=ab&retry-after=3" {
		t.Errorf("response topic = %q", got)
	}
}

func TestParseRegisterBody(t *testing.T) {
	for in, want := range map[string]string{
		`{"registrationId":"gw-0001"}`:                      "gw-0001",
		`{"registrationId":"gw-0001","payload":null}`:       "gw-0001",
		`{"registrationId":"x","payload":{"a":1},"tpm":{}}`: "x",
		` `: "",
		``:  "",
	} {
		b, err := parseRegisterBody([]byte(in))
		if err != nil || b.RegistrationID != want {
			t.Errorf("%q: %+v, %v", in, b, err)
		}
	}
	for _, bad := range []string{`[1]`, `"x"`, `{"registrationId":1}`, `{} {}`, `{`} {
		if _, err := parseRegisterBody([]byte(bad)); !errors.Is(err, errDPSRequest) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func FuzzParseDPSUsername(f *testing.F) {
	f.Add("0ne00ABCDEF/registrations/gw-0001/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1")
	f.Add("s/registrations/x/?api-version=1")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseDPSUsername(s)
		if err != nil {
			if !errors.Is(err, errDPSRequest) {
				t.Fatalf("%q: error does not wrap errDPSRequest: %v", s, err)
			}
			return
		}
		if u.IDScope == "" || u.APIVersion == "" || strings.Contains(u.IDScope, "/") || validRegistrationID(u.RegistrationID) != nil {
			t.Fatalf("%q parsed to %+v", s, u)
		}
		if !strings.HasPrefix(s, u.IDScope+"/registrations/"+u.RegistrationID+"/") {
			t.Fatalf("%q: parts %+v do not rebuild its prefix", s, u)
		}
	})
}

func FuzzParseDPSTopic(f *testing.F) {
	f.Add("$dps/registrations/PUT/iotdps-register/?$rid=1")
	f.Add("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=7&operationId=5.ab.cd")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseDPSTopic(s)
		if err != nil {
			if !errors.Is(err, errDPSRequest) {
				t.Fatalf("%q: error does not wrap errDPSRequest: %v", s, err)
			}
			return
		}
		if got.rid == "" || got.op == dpsPoll && got.operationID == "" || got.op != dpsPoll && got.op != dpsRegister {
			t.Fatalf("%q parsed to %+v", s, got)
		}
		if strings.Contains(got.rid, "&") || strings.Contains(got.operationID, "&") {
			t.Fatalf("%q: value runs into the next field: %+v", s, got)
		}
	})
}

func FuzzParseRegisterBody(f *testing.F) {
	f.Add([]byte(`{"registrationId":"gw-0001","payload":{"a":[1,2]}}`))
	f.Add([]byte(" "))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRegisterBody(b)
		if err != nil {
			if !errors.Is(err, errDPSRequest) {
				t.Fatalf("%q: error does not wrap errDPSRequest: %v", b, err)
			}
			if r.RegistrationID != "" || r.Payload != nil {
				t.Fatalf("%q: error with a result %+v", b, r)
			}
		}
	})
}
