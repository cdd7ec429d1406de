package hubsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgegw/edgegw/iothub"
)

// httpHandler serves the service REST API, MQTT over WebSocket and
// hubsim's own /edgegw/ endpoints.
func (h *Hub) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wsPath, h.serveWebsocket)
	mux.Handle("GET /edgegw/telemetry", h.serviceAuth([]Right{RightServiceConnect}, h.serveTelemetry))
	h.restRoutes(mux)
	return mux
}

// writeJSON writes v with IoT Hub's content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// writeError writes an error body in the shape azure-iothub parses:
// {"Message":"ErrorCode:<Code>;<text>","ExceptionMessage":"Tracking ID:..."}.
// The numeric IoT Hub code is added as "errorCode".
func writeError(w http.ResponseWriter, status int, code string, num int, text string) {
	w.Header().Set("iothub-errorcode", code)
	var b [8]byte
	_, _ = rand.Read(b[:])
	writeJSON(w, status, map[string]any{
		"Message":          "ErrorCode:" + code + ";" + text,
		"ExceptionMessage": "Tracking ID:" + hex.EncodeToString(b[:]) + "-G:0-TimeStamp:" + time.Now().UTC().Format("01/02/2006 15:04:05"),
		"errorCode":        num,
	})
}

// serviceAuth requires a service SAS token (Authorization header) signed
// with a policy that has one of rights.
func (h *Hub) serviceAuth(rights []Right, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := r.Header.Get("Authorization")
		if token == "" && strings.HasPrefix(r.URL.Path, "/edgegw/") {
			token = r.URL.Query().Get("access_token") // for browsers and plain curl
		}
		if token == "" {
			writeError(w, http.StatusUnauthorized, "IotHubUnauthorizedAccess", 401002, errMissingAuth(r.URL.Path))
			return
		}
		if err := h.checkServiceToken(token, rights); err != nil {
			writeError(w, http.StatusUnauthorized, "IotHubUnauthorizedAccess", 401002, err.Error())
			return
		}
		next(w, r)
	})
}

func (h *Hub) checkServiceToken(token string, rights []Right) error {
	s, err := iothub.ParseSAS(token)
	if err != nil {
		return err
	}
	if s.KeyName == "" {
		return errMissingPolicy
	}
	p, ok := h.policy(s.KeyName)
	if !ok {
		return errUnknownPolicy
	}
	if !slices.ContainsFunc(rights, p.has) {
		return errPolicyRights
	}
	host, rest, _ := strings.Cut(s.Resource, "/")
	if !h.isHubHost(host) {
		return iothub.ErrBadAudience
	}
	aud := s
	aud.Resource = h.HostName
	if rest != "" {
		aud.Resource += "/" + rest
	}
	return verifySAS(aud, h.HostName, h.ClockSkew, p.PrimaryKey, p.SecondaryKey)
}

// errMissingAuth says what a request without credentials lacks.
func errMissingAuth(path string) string {
	msg := "missing Authorization: send a service SAS token, signed with a shared access policy's key, in the header \"Authorization: SharedAccessSignature sr=...\""
	if strings.HasPrefix(path, "/edgegw/") {
		msg += " (or the token as the query parameter access_token)"
	}
	return msg
}

type restError string

func (e restError) Error() string { return string(e) }

const (
	errMissingPolicy restError = "service token has no skn (policy name)"
	errUnknownPolicy restError = "unknown shared access policy"
	errPolicyRights  restError = "shared access policy lacks the required permission"
)
