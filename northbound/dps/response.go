package dps

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Topics of the DPS device API over MQTT.
const (
	responseFilter = "$dps/registrations/res/#"
	responsePrefix = "$dps/registrations/res/"
	registerTopic  = "$dps/registrations/PUT/iotdps-register/?$rid="
	pollTopic      = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="
)

// response is one answer of DPS: the topic's status code, request id and
// retry-after, and the body.
type response struct {
	status     int
	rid        string
	retryAfter time.Duration // 0: not given
	body       operationStatus
}

// operationStatus is DPS's RegistrationOperationStatus, or the flat error
// body of a status >= 300 (errorCode, message).
type operationStatus struct {
	OperationID       string             `json:"operationId"`
	Status            string             `json:"status"`
	RegistrationState *registrationState `json:"registrationState"`
	ErrorCode         int64              `json:"errorCode"`
	Message           string             `json:"message"`
	TrackingID        string             `json:"trackingId"`
}

type registrationState struct {
	RegistrationID string `json:"registrationId"`
	AssignedHub    string `json:"assignedHub"`
	DeviceID       string `json:"deviceId"`
	Status         string `json:"status"`
	Substatus      string `json:"substatus"`
	ErrorCode      int64  `json:"errorCode"`
	ErrorMessage   string `json:"errorMessage"`
}

// maxRetryAfter bounds the wait DPS may ask for (the C SDK clamps to 300 s;
// below the connection's keep-alive so a wait never idles it out).
const maxRetryAfter = 120 * time.Second

// parseTopic reads "$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]".
func parseTopic(topic string) (status int, rid string, retryAfter time.Duration, err error) {
	rest, ok := strings.CutPrefix(topic, responsePrefix)
	if !ok {
		return 0, "", 0, fmt.Errorf("not a DPS response topic: %q", topic)
	}
	code, query, ok := strings.Cut(rest, "/?")
	if !ok {
		return 0, "", 0, fmt.Errorf("DPS response topic without a query: %q", topic)
	}
	status, err = strconv.Atoi(code)
	if err != nil || status < 100 || status > 999 || len(code) != 3 {
		return 0, "", 0, fmt.Errorf("DPS response status %q is not a status code", code)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return 0, "", 0, fmt.Errorf("DPS response query %q: %w", query, err)
	}
	rid = q.Get("$rid")
	if rid == "" {
		return 0, "", 0, fmt.Errorf("DPS response without $rid: %q", topic)
	}
	if ra := q.Get("retry-after"); ra != "" {
		n, err := strconv.ParseFloat(ra, 64)
		if err != nil || n < 0 || n != n {
			return 0, "", 0, fmt.Errorf("DPS retry-after %q is not a number of seconds", ra)
		}
		retryAfter = min(max(time.Duration(n*float64(time.Second)), time.Second), maxRetryAfter)
	}
	return status, rid, retryAfter, nil
}

// parseResponse reads one DPS response: its topic and its JSON body. A
// body is required on every status (DPS always sends one); what a body must
// hold for its status is checked by outcome.
func parseResponse(topic string, payload []byte) (response, error) {
	status, rid, ra, err := parseTopic(topic)
	if err != nil {
		return response{}, err
	}
	r := response{status: status, rid: rid, retryAfter: ra}
	if err := json.Unmarshal(payload, &r.body); err != nil {
		return r, fmt.Errorf("DPS response %d body: %w", status, err)
	}
	return r, nil
}

// Assignment states of DPS (status fields are matched without case, as
// the Node SDK does).
const (
	stAssigned   = "assigned"
	stAssigning  = "assigning"
	stFailed     = "failed"
	stDisabled   = "disabled"
	stUnassigned = "unassigned"
)

// Errors of a registration. ErrUnauthorized, ErrDisabled and ErrFailed are
// DPS's final word for this attestation: registering again the same way
// gives the same answer, so callers back off long before they do.
var (
	ErrUnauthorized = errors.New("DPS refused the attestation (401)")
	ErrDisabled     = errors.New("the enrollment or registration is disabled at DPS")
	ErrFailed       = errors.New("DPS could not assign the device")
	ErrRejected     = errors.New("DPS rejected the request")
	errThrottled    = errors.New("DPS is busy (throttled or unavailable)")
)

// step is what a response tells the client to do next.
type step int

const (
	stepDone     step = iota // assigned: Assignment is set
	stepPoll                 // assigning: poll operationId after the wait
	stepRegister             // register (again) after the wait
	stepRetry                // throttled or unavailable: repeat the request after the wait
)

// outcome decides on a response: the next step, or a final error.
func (r *response) outcome() (step, error) {
	b := &r.body
	switch {
	case r.status == 429 || r.status >= 500:
		return stepRetry, fmt.Errorf("%w: status %d%s", errThrottled, r.status, r.detail())
	case r.status == 401:
		return 0, fmt.Errorf("%w%s", ErrUnauthorized, r.detail())
	case r.status >= 300:
		return 0, fmt.Errorf("%w: status %d%s", ErrRejected, r.status, r.detail())
	case r.status < 200:
		return 0, fmt.Errorf("%w: unexpected status %d", ErrRejected, r.status)
	}
	status := strings.ToLower(b.Status)
	if status == "" && b.RegistrationState != nil {
		status = strings.ToLower(b.RegistrationState.Status)
	}
	switch status {
	case stAssigned:
		rs := b.RegistrationState
		if rs == nil || rs.AssignedHub == "" || rs.DeviceID == "" {
			return 0, fmt.Errorf("%w: assigned without assignedHub and deviceId", ErrRejected)
		}
		if err := checkHub(rs.AssignedHub); err != nil {
			return 0, fmt.Errorf("%w: assignedHub: %v", ErrRejected, err)
		}
		if err := checkDeviceID(rs.DeviceID); err != nil {
			return 0, fmt.Errorf("%w: deviceId: %v", ErrRejected, err)
		}
		return stepDone, nil
	case stAssigning:
		if b.OperationID == "" {
			return stepRegister, nil
		}
		if err := checkOperationID(b.OperationID); err != nil {
			return 0, fmt.Errorf("%w: operationId: %v", ErrRejected, err)
		}
		return stepPoll, nil
	case stFailed:
		return 0, fmt.Errorf("%w%s", ErrFailed, r.detail())
	case stDisabled:
		return 0, ErrDisabled
	case stUnassigned:
		return 0, fmt.Errorf("%w: status unassigned%s", ErrFailed, r.detail())
	}
	return 0, fmt.Errorf("%w: unknown status %q", ErrRejected, clip(b.Status))
}

// detail is the error code and message of a response, for errors.
func (r *response) detail() string {
	code, msg := r.body.ErrorCode, r.body.Message
	if rs := r.body.RegistrationState; rs != nil && (rs.ErrorCode != 0 || rs.ErrorMessage != "") {
		code, msg = rs.ErrorCode, rs.ErrorMessage
	}
	switch {
	case code != 0 && msg != "":
		return fmt.Sprintf(" (errorCode %d: %s)", code, clip(msg))
	case code != 0:
		return fmt.Sprintf(" (errorCode %d)", code)
	case msg != "":
		return " (" + clip(msg) + ")"
	}
	return ""
}

// clip shortens what the service said to a loggable length and drops
// control characters.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// checkHub checks an assigned hub: a host name, optionally with a port
// (real DPS gives a host name; an emulator may add its port).
func checkHub(h string) error {
	host, port, hasPort := strings.Cut(h, ":")
	if host == "" || len(host) > 253 {
		return fmt.Errorf("%q is not a host name", clip(h))
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%q is not a host name", clip(h))
		}
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return fmt.Errorf("%q has a bad port", clip(h))
		}
	}
	return nil
}

// checkDeviceID checks an assigned device id as IoT Hub allows them.
func checkDeviceID(d string) error {
	if len(d) > 128 {
		return errors.New("longer than 128 characters")
	}
	for _, c := range d {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-.%_*?!(),:=@$'", c)
		if !ok {
			return fmt.Errorf("%q has a character IoT Hub does not allow", clip(d))
		}
	}
	return nil
}

// checkOperationID refuses an operation id that cannot go into a topic
// (it is sent unencoded, as the SDKs send it).
func checkOperationID(op string) error {
	if len(op) > 256 {
		return errors.New("longer than 256 characters")
	}
	for _, c := range op {
		if c <= 0x20 || c == 0x7f || c == '#' || c == '+' || c == '&' || c == '/' || c >= utf8.RuneSelf {
			return fmt.Errorf("%q cannot go into a topic", clip(op))
		}
	}
	return nil
}
