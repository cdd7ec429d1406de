package hubsim

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

func TestTelemetryJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		in   Telemetry
		want string
	}{
		{"text body, properties as object", Telemetry{Seq: 7, DeviceID: "d", Body: []byte(`{"t":21.5}`), Received: at,
			Properties: []edgegw.Property{{Key: "Alert Level", Value: "high"}, {Key: "unit", Value: "°C"}, {Key: "Alert Level", Value: "dup"}}},
			`{"seq":7,"deviceId":"d","body":"{\"t\":21.5}","properties":{"Alert Level":"high","unit":"°C"},"received":"2026-01-02T03:04:05Z"}`},
		{"binary body as base64, flagged", Telemetry{Seq: 1, DeviceID: "d", Body: []byte{0xff, 0, 1}, Received: at},
			`{"seq":1,"deviceId":"d","body":"/wAB","bodyEncoding":"base64","received":"2026-01-02T03:04:05Z"}`},
		{"empty body", Telemetry{Seq: 2, DeviceID: "d", ModuleID: "m", Received: at, ContentType: "text/plain"},
			`{"seq":2,"deviceId":"d","moduleId":"m","body":"","contentType":"text/plain","received":"2026-01-02T03:04:05Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.in)
			if err != nil || string(b) != tc.want {
				t.Fatalf("got  %s (%v)\nwant %s", b, err, tc.want)
			}
			var back Telemetry
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			want := tc.in
			if len(want.Properties) == 3 {
				want.Properties = want.Properties[:2]
			}
			if len(want.Body) == 0 {
				want.Body = []byte{}
			}
			if !reflect.DeepEqual(back, want) {
				t.Errorf("round trip: %+v\nwant %+v", back, want)
			}
		})
	}
	for _, bad := range []string{`{"body":"x","bodyEncoding":"hex"}`, `{"body":"!!","bodyEncoding":"base64"}`,
		`{"properties":[{"Key":"a","Value":"b"}]}`, `{"properties":{"a":1}}`} {
		var m Telemetry
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// FuzzTelemetryJSON: whatever decodes encodes back to a line that
// decodes to the same message.
func FuzzTelemetryJSON(f *testing.F) {
	f.Add([]byte(`{"seq":7,"deviceId":"d","body":"{\"t\":21.5}","properties":{"Alert Level":"high","unit":"°C"},"received":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"seq":1,"deviceId":"d","body":"/wAB","bodyEncoding":"base64"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Telemetry
		if err := json.Unmarshal(b, &m); err != nil {
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("%q: decoded %+v does not encode: %v", b, m, err)
		}
		var again Telemetry
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("%s does not decode: %v", out, err)
		}
		if string(again.Body) != string(m.Body) || fmt.Sprint(again.Properties) != fmt.Sprint(dedup(m.Properties)) {
			t.Fatalf("%q: round trip %+v != %+v", b, again, m)
		}
	})
}

func dedup(p []edgegw.Property) []edgegw.Property {
	var out []edgegw.Property
	seen := map[string]bool{}
	for _, e := range p {
		if !seen[e.Key] {
			seen[e.Key] = true
			out = append(out, e)
		}
	}
	return out
}
