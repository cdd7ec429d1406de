package hubsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// The DPS device protocol over MQTT: CONNECT usernames, request topics and
// register bodies, parsed as the provisioning service accepts what the
// Node, Python and C SDKs send.

// Request and response topics of the DPS device API.
const (
	dpsResFilter   = "$dps/registrations/res/#"
	dpsRegisterPfx = "$dps/registrations/PUT/iotdps-register/"
	dpsPollPfx     = "$dps/registrations/GET/iotdps-get-operationstatus/"
	dpsResPfx      = "$dps/registrations/res/"
)

// errDPSRequest is wrapped by every parse error of this file.
var errDPSRequest = errors.New("bad dps request")

// dpsUsername is a parsed CONNECT username:
// "{idScope}/registrations/{registrationId}/api-version={v}[&ClientVersion=...]".
type dpsUsername struct {
	IDScope        string
	RegistrationID string
	APIVersion     string
}

// parseDPSUsername splits on the first two slashes (ID scope,
// "registrations"), takes the registration id up to the next slash and
// reads the rest as a query string (an optional leading "?" allowed);
// api-version is required, other keys are ignored.
func parseDPSUsername(s string) (dpsUsername, error) {
	var u dpsUsername
	scope, rest, ok := strings.Cut(s, "/")
	if !ok || scope == "" {
		return u, fmt.Errorf("%w: username %q is not {idScope}/registrations/{registrationId}/api-version=...", errDPSRequest, s)
	}
	lit, rest, ok := strings.Cut(rest, "/")
	if !ok || lit != "registrations" {
		return u, fmt.Errorf("%w: username %q: second segment must be \"registrations\"", errDPSRequest, s)
	}
	reg, query, ok := strings.Cut(rest, "/")
	if !ok {
		return u, fmt.Errorf("%w: username %q has no api-version", errDPSRequest, s)
	}
	if err := validRegistrationID(reg); err != nil {
		return u, err
	}
	q, err := url.ParseQuery(strings.TrimPrefix(query, "?"))
	if err != nil {
		return u, fmt.Errorf("%w: username %q: %v", errDPSRequest, s, err)
	}
	u.APIVersion = q.Get("api-version")
	if u.APIVersion == "" {
		return u, fmt.Errorf("%w: username %q has no api-version", errDPSRequest, s)
	}
	u.IDScope, u.RegistrationID = scope, reg
	return u, nil
}

// validRegistrationID checks DPS's rule: 1-128 characters, alphanumerics
// and - . _ :.
func validRegistrationID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%w: registration id %q must be 1-128 characters", errDPSRequest, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':' {
			continue
		}
		return fmt.Errorf("%w: registration id %q contains %q", errDPSRequest, id, c)
	}
	return nil
}

type dpsOp int

const (
	dpsRegister dpsOp = iota + 1
	dpsPoll
)

// dpsTopic is a parsed device request topic.
type dpsTopic struct {
	op          dpsOp
	rid         string // echoed verbatim
	operationID string // poll only
}

// parseDPSTopic parses "$dps/registrations/PUT/iotdps-register/?$rid={rid}"
// and "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}".
// Values stay raw (the SDKs do not encode them and expect them echoed byte
// for byte); $rid is required, and operationId for a poll.
func parseDPSTopic(topic string) (dpsTopic, error) {
	var t dpsTopic
	path, query, ok := strings.Cut(topic, "?")
	if !ok {
		return t, fmt.Errorf("%w: topic %q has no query ($rid)", errDPSRequest, topic)
	}
	switch path {
	case dpsRegisterPfx, strings.TrimSuffix(dpsRegisterPfx, "/"):
		t.op = dpsRegister
	case dpsPollPfx, strings.TrimSuffix(dpsPollPfx, "/"):
		t.op = dpsPoll
	default:
		return t, fmt.Errorf("%w: topic %q is not a DPS request", errDPSRequest, topic)
	}
	q := parseQuery(query)
	t.rid = q["$rid"]
	if t.rid == "" {
		return t, fmt.Errorf("%w: topic %q has no $rid", errDPSRequest, topic)
	}
	if t.op == dpsPoll {
		t.operationID = q["operationId"]
		if t.operationID == "" {
			return t, fmt.Errorf("%w: topic %q has no operationId", errDPSRequest, topic)
		}
	}
	return t, nil
}

// dpsResponseTopic builds "$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]".
func dpsResponseTopic(status int, rid string, retryAfter int) string {
	t := dpsResPfx + strconv.Itoa(status) + "/?$rid=" + rid
	if retryAfter > 0 {
		t += "&retry-after=" + strconv.Itoa(retryAfter)
	}
	return t
}

// registerBody is the register request: {"registrationId":...,"payload":...}.
// Python sends "payload": null; other keys (tpm, ...) are ignored.
type registerBody struct {
	RegistrationID string          `json:"registrationId"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

// parseRegisterBody decodes a register body. An empty body names no
// registration id (the connection's is used); anything else must be one
// JSON object.
func parseRegisterBody(b []byte) (registerBody, error) {
	var r registerBody
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return r, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&r); err != nil {
		return registerBody{}, fmt.Errorf("%w: register body: %v", errDPSRequest, err)
	}
	if _, err := d.Token(); err != io.EOF { // More cannot see a stray '}' or ']'
		return registerBody{}, fmt.Errorf("%w: register body: trailing data", errDPSRequest)
	}
	if bytes.Equal(r.Payload, []byte("null")) {
		r.Payload = nil
	}
	return r, nil
}
