package dps

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bodies as DPS sends them (reference/dps-mqtt.md §3.2).
const (
	bodyAssigning = `{"operationId":"4.d0a671905ea5b2c8.e7173b7b-0e54-4aa0-9d20-aeb1b89e6c7d","status":"assigning"}`
	bodyAssigned  = `{"operationId":"5.316aac5bdc130deb.b1e02da8-c3a0-4ff2-a121-7ea7a6b7f550","status":"assigned",
 "registrationState":{"registrationId":"my-symkey-device","createdDateTimeUtc":"2022-08-31T22:02:50.5163352Z",
  "assignedHub":"MyExampleHub.azure-devices.net","deviceId":"my-symkey-device","status":"assigned",
  "substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2022-08-31T22:02:50.7370676Z",
  "etag":"IjY5MDAzNTUyLTAwMDAtMDMwMC0wMDAwLTYzMGZkYThhMDAwMCI="}}`
	bodyUnauthorized = `{"errorCode":401000,"trackingId":"7f2a","message":"Unauthorized","timestampUtc":"2019-11-19T21:39:05.1573304Z"}`
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		topic, body string
		status      int
		rid         string
		retry       time.Duration
		step        step
		err         error  // errors.Is target; nil: no outcome error
		parseErr    string // substring; "" = parses
	}{
		{"$dps/registrations/res/202/?$rid=1&retry-after=3", bodyAssigning, 202, "1", 3 * time.Second, stepPoll, nil, ""},
		{"$dps/registrations/res/200/?$rid=7", bodyAssigned, 200, "7", 0, stepDone, nil, ""},
		{"$dps/registrations/res/200/?$rid=7", `{"status":"ASSIGNING"}`, 200, "7", 0, stepRegister, nil, ""},
		{"$dps/registrations/res/429/?$rid=2&retry-after=0", `{"errorCode":429001}`, 429, "2", time.Second, stepRetry, errThrottled, ""},
		{"$dps/registrations/res/503/?$rid=2&retry-after=9999", `{}`, 503, "2", maxRetryAfter, stepRetry, errThrottled, ""},
		{"$dps/registrations/res/401/?$rid=1", bodyUnauthorized, 401, "1", 0, 0, ErrUnauthorized, ""},
		{"$dps/registrations/res/404/?$rid=1", `{"errorCode":404201,"message":"operation not found"}`, 404, "1", 0, 0, ErrRejected, ""},
		{"$dps/registrations/res/200/?$rid=1", `{"status":"disabled"}`, 200, "1", 0, 0, ErrDisabled, ""},
		{"$dps/registrations/res/200/?$rid=1", `{"status":"failed","registrationState":{"status":"failed","errorCode":400209,"errorMessage":"unauthorized"}}`, 200, "1", 0, 0, ErrFailed, ""},
		{"$dps/registrations/res/200/?$rid=1", `{"status":"unassigned"}`, 200, "1", 0, 0, ErrFailed, ""},
		{"$dps/registrations/res/200/?$rid=1", `{"status":"weird"}`, 200, "1", 0, 0, ErrRejected, ""},
		{"$dps/registrations/res/200/?$rid=1", `{"status":"assigned","registrationState":{"deviceId":"d"}}`, 200, "1", 0, 0, ErrRejected, ""},
		{"$dps/registrations/res/200/?$rid=1", `{"status":"assigned","registrationState":{"assignedHub":"h/x","deviceId":"d"}}`, 200, "1", 0, 0, ErrRejected, ""},
		{"$dps/registrations/res/200/?$rid=1", `{"status":"assigned","registrationState":{"assignedHub":"localhost:8883","deviceId":"d#"}}`, 200, "1", 0, 0, ErrRejected, ""},
		{"$dps/registrations/res/200/?$rid=1", `{"status":"assigned","registrationState":{"assignedHub":"localhost:8883","deviceId":"d"}}`, 200, "1", 0, stepDone, nil, ""},
		{"$dps/registrations/res/202/?$rid=1", `{"status":"assigning","operationId":"a/b"}`, 202, "1", 0, 0, ErrRejected, ""},
		{"$dps/registrations/res/100/?$rid=1", `{}`, 100, "1", 0, 0, ErrRejected, ""},
		{"$dps/registrations/res/200/?$rid=1", `not json`, 0, "", 0, 0, nil, "body"},
		{"$dps/registrations/res/2000/?$rid=1", `{}`, 0, "", 0, 0, nil, "not a status code"},
		{"$dps/registrations/res/abc/?$rid=1", `{}`, 0, "", 0, 0, nil, "not a status code"},
		{"$dps/registrations/res/200/", `{}`, 0, "", 0, 0, nil, "without a query"},
		{"$dps/registrations/res/200/?x=1", `{}`, 0, "", 0, 0, nil, "without $rid"},
		{"$dps/registrations/res/200/?$rid=1&retry-after=soon", `{}`, 0, "", 0, 0, nil, "retry-after"},
		{"$dps/registrations/res/200/?$rid=%zz", `{}`, 0, "", 0, 0, nil, "query"},
		{"$iothub/twin/res/200/?$rid=1", `{}`, 0, "", 0, 0, nil, "not a DPS response"},
	}
	for _, tt := range tests {
		r, err := parseResponse(tt.topic, []byte(tt.body))
		if tt.parseErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.parseErr) {
				t.Errorf("%s %s: parse error %v, want %q", tt.topic, tt.body, err, tt.parseErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.topic, err)
			continue
		}
		if r.status != tt.status || r.rid != tt.rid || r.retryAfter != tt.retry {
			t.Errorf("%s: got %d %q %v", tt.topic, r.status, r.rid, r.retryAfter)
		}
		s, err := r.outcome()
		switch {
		case tt.err == nil && err != nil:
			t.Errorf("%s %s: outcome error %v", tt.topic, tt.body, err)
		case tt.err != nil && !errors.Is(err, tt.err):
			t.Errorf("%s %s: outcome error %v, want %v", tt.topic, tt.body, err, tt.err)
		case err == nil && s != tt.step:
			t.Errorf("%s %s: step %d, want %d", tt.topic, tt.body, s, tt.step)
		}
	}
	// The detail of a failure names DPS's code and message.
	r, _ := parseResponse("$dps/registrations/res/401/?$rid=1", []byte(bodyUnauthorized))
	if _, err := r.outcome(); !strings.Contains(err.Error(), "errorCode 401000: Unauthorized") || !Final(err) {
		t.Errorf("401: %v", err)
	}
	r, _ = parseResponse("$dps/registrations/res/429/?$rid=1", []byte(`{}`))
	if _, err := r.outcome(); Final(err) {
		t.Errorf("429 is final: %v", err)
	}
}

func TestCache(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "dps")}
	if _, ok, err := c.Load("h", "s", "dev-1"); ok || err != nil {
		t.Fatalf("empty cache: %v %v", ok, err)
	}
	a := Assignment{DPSHost: "h", IDScope: "s", RegistrationID: "dev-1", Hub: "hub-2.example:8883", DeviceID: "dev-1",
		Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := c.Store(a); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Load("h", "s", "dev-1")
	if !ok || err != nil || got != a {
		t.Fatalf("load %+v %v %v", got, ok, err)
	}
	a.Hub = "hub-3.example"
	if err := c.Store(a); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := c.Load("h", "s", "dev-1"); got.Hub != "hub-3.example" {
		t.Fatalf("overwrite: %+v", got)
	}
	if _, ok, err := c.Load("h", "other-scope", "dev-1"); ok || err != nil {
		t.Fatalf("another scope: %v %v", ok, err)
	}
	// Only the assignment's file is left: no temporary files.
	ents, _ := os.ReadDir(c.Dir)
	if len(ents) != 1 || ents[0].Name() != "dev-1.json" {
		t.Fatalf("files %v", ents)
	}
	// A damaged or tampered file is an error, not an assignment.
	for _, body := range []string{`{"dps_host":`, `{"dps_host":"h","id_scope":"s","registration_id":"dev-1","assigned_hub":"a b","device_id":"d"}`,
		`{"dps_host":"h","id_scope":"s","registration_id":"dev-1","assigned_hub":"a","device_id":""}`} {
		os.WriteFile(filepath.Join(c.Dir, "dev-1.json"), []byte(body), 0o600)
		if _, ok, err := c.Load("h", "s", "dev-1"); ok || err == nil {
			t.Errorf("%s: ok %v err %v", body, ok, err)
		}
	}
	// A registration id of dots names a file, not a directory.
	a.RegistrationID = ".."
	if err := c.Store(a); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Load("h", "s", ".."); !ok {
		t.Fatal("'..' not cached")
	}
}

// FuzzParseResponse feeds DPS answers: parsing and deciding never panic,
// and an assignment always carries a checked hub and device id.
func FuzzParseResponse(f *testing.F) {
	f.Add("$dps/registrations/res/202/?$rid=1&retry-after=3", []byte(bodyAssigning))
	f.Add("$dps/registrations/res/200/?$rid=7", []byte(bodyAssigned))
	f.Add("$dps/registrations/res/401/?$rid=1", []byte(bodyUnauthorized))
	f.Add("$dps/registrations/res/429/?$rid=x&retry-after=1.5", []byte(`{}`))
	f.Fuzz(func(t *testing.T, topic string, body []byte) {
		r, err := parseResponse(topic, body)
		if err != nil {
			return
		}
		if r.retryAfter != 0 && (r.retryAfter < time.Second || r.retryAfter > maxRetryAfter) {
			t.Fatalf("retry-after %v out of bounds", r.retryAfter)
		}
		s, err := r.outcome()
		if err == nil && s == stepDone {
			rs := r.body.RegistrationState
			if checkHub(rs.AssignedHub) != nil || rs.DeviceID == "" || checkDeviceID(rs.DeviceID) != nil {
				t.Fatalf("assigned with unchecked %+v", rs)
			}
		}
		if err == nil && s == stepPoll && checkOperationID(r.body.OperationID) != nil {
			t.Fatalf("poll with operation id %q", r.body.OperationID)
		}
	})
}

// FuzzCacheLoad feeds kept assignment files: loading never panics, and
// what it accepts names a checked hub and device id.
func FuzzCacheLoad(f *testing.F) {
	f.Add([]byte(`{"dps_host":"h","id_scope":"s","registration_id":"dev-1","assigned_hub":"hub-2.example:8883","device_id":"dev-1","time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"dps_host":"h","id_scope":"s","registration_id":"dev-1","assigned_hub":"a b","device_id":"d"}`))
	f.Add([]byte(`{`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Cache{Dir: dir}
		if err := os.WriteFile(c.path("dev-1"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		a, ok, err := c.Load("h", "s", "dev-1")
		if ok && (err != nil || checkHub(a.Hub) != nil || a.DeviceID == "" || checkDeviceID(a.DeviceID) != nil || a.RegistrationID != "dev-1") {
			t.Fatalf("accepted %+v (%v)", a, err)
		}
	})
}
