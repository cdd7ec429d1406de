package hubsim

import (
	"encoding/json"
	"strings"
	"testing"
)

// A request without credentials is told what it lacks, not that its
// (absent) token is malformed; a token that is there but wrong still gets
// the token's own error.
func TestRESTMissingAuthorization(t *testing.T) {
	h := startHub(t)
	if _, err := h.CreateDevice("d1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token, method, path, want string
	}{
		{"", "GET", "/twins/d1?api-version=2021-04-12", `missing Authorization: send a service SAS token, signed with a shared access policy's key, in the header "Authorization: SharedAccessSignature sr=...`},
		{"", "POST", "/edgegw/devices/d1/messages", "(or the token as the query parameter access_token)"},
		{"", "GET", "/edgegw/telemetry", "missing Authorization"},
		{"Bearer x", "GET", "/twins/d1?api-version=2021-04-12", "malformed"},
	} {
		rc := newRest(t, h, "iothubowner")
		rc.token = tc.token
		var e map[string]any
		st, _ := rc.do(tc.method, tc.path, "", nil, &e)
		msg, _ := e["Message"].(string)
		if st != 401 || !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "ErrorCode:IotHubUnauthorizedAccess;") {
			b, _ := json.Marshal(e)
			t.Errorf("%s %s with %q: %d %s; want 401 and %q", tc.method, tc.path, tc.token, st, b, tc.want)
		}
		if strings.Contains(tc.path, "twins") && tc.token == "" && strings.Contains(msg, "access_token") {
			t.Errorf("/twins does not take access_token, but the error says so: %s", msg)
		}
	}
}
