package hubsim

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrBadUsername is wrapped by every ParseUsername error.
var ErrBadUsername = errors.New("bad mqtt username")

// Username is the parsed MQTT CONNECT username of an IoT Hub device or
// module: "{host}/{device}/?api-version=...&DeviceClientType=..." or
// "{host}/{device}/{module}/?api-version=...".
type Username struct {
	Host       string
	DeviceID   string
	ModuleID   string
	APIVersion string
	ClientType string // DeviceClientType, decoded
	ModelID    string // model-id, decoded
	Props      map[string]string
}

// ClientID returns the ClientId IoT Hub requires for this username:
// "device" or "device/module".
func (u Username) ClientID() string {
	if u.ModuleID != "" {
		return u.DeviceID + "/" + u.ModuleID
	}
	return u.DeviceID
}

// ParseUsername parses a username with edgeHub's rules: split on "/"; if the
// last segment starts with "?", three segments are host/device/?props and four
// are host/device/module/?props; the legacy form without "?" (the last
// segment itself is the property list) is accepted too. Properties are split
// on "&", each on the first "=", values percent-decoded, first occurrence
// wins. api-version is required; its value and unknown properties are not
// checked.
func ParseUsername(s string) (Username, error) {
	var u Username
	parts := strings.Split(s, "/")
	if len(parts) < 3 {
		return u, fmt.Errorf("%w: %q has fewer than 3 segments", ErrBadUsername, s)
	}
	last := parts[len(parts)-1]
	var query string
	switch {
	case strings.HasPrefix(last, "?"):
		query = last[1:]
	case strings.Contains(last, "api-version="):
		query = last
	default:
		return u, fmt.Errorf("%w: %q has no property list", ErrBadUsername, s)
	}
	ids := parts[1 : len(parts)-1]
	switch len(ids) {
	case 1:
		u.DeviceID = ids[0]
	case 2:
		u.DeviceID, u.ModuleID = ids[0], ids[1]
	default:
		return u, fmt.Errorf("%w: %q has %d segments", ErrBadUsername, s, len(parts))
	}
	u.Host = parts[0]
	if u.Host == "" || u.DeviceID == "" || len(ids) == 2 && u.ModuleID == "" {
		return u, fmt.Errorf("%w: %q has an empty segment", ErrBadUsername, s)
	}
	u.Props = map[string]string{}
	for _, kv := range strings.Split(query, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if dv, err := url.PathUnescape(v); err == nil {
			v = dv
		}
		if _, ok := u.Props[k]; !ok {
			u.Props[k] = v
		}
	}
	var ok bool
	if u.APIVersion, ok = u.Props["api-version"]; !ok {
		return u, fmt.Errorf("%w: %q has no api-version", ErrBadUsername, s)
	}
	u.ClientType = u.Props["DeviceClientType"]
	u.ModelID = u.Props["model-id"]
	return u, nil
}
