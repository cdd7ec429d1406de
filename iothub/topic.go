package iothub

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

// ClientID returns the ClientId IoT Hub requires for this username, which
// is also the identity it names: "device" or "device/module".
func (u Username) ClientID() string {
	if u.ModuleID != "" {
		return u.DeviceID + "/" + u.ModuleID
	}
	return u.DeviceID
}

// ParseUsername parses a username with edgeHub's rules: split on "/"; if the
// last segment starts with "?", three segments are host/device/?props and four
// are host/device/module/?props; the legacy form without "?" (the last
// segment itself is the property list, containing "api-version=") is
// accepted too. Host, device and module must not be empty. Properties are
// split on "&", each on the first "=", values percent-decoded (left as
// they are if they do not decode), first occurrence wins. api-version is
// required; its value and unknown properties are not checked.
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
	for kv := range strings.SplitSeq(query, "&") {
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

// ParseEventsTopic recognises the telemetry topics
//
//	devices/{device}/messages/events/{property-bag}
//	devices/{device}/modules/{module}/messages/events/{property-bag}
//
// and returns the identity they name ("device" or "device/module", as
// Username.ClientID) and the raw bag. The bag and the slash before it are
// optional; slashes around the bag are dropped (the Node SDK adds one after
// module output events; an encoded bag has none). ok is false for any
// other topic, and for an empty device or module.
func ParseEventsTopic(topic string) (identity, bag string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "devices/")
	if !ok {
		return "", "", false
	}
	dev, rest, ok := strings.Cut(rest, "/")
	if !ok || dev == "" {
		return "", "", false
	}
	identity = dev
	if r, isModule := strings.CutPrefix(rest, "modules/"); isModule {
		mod, r, ok := strings.Cut(r, "/")
		if !ok || mod == "" {
			return "", "", false
		}
		identity, rest = dev+"/"+mod, r
	}
	rest, ok = strings.CutPrefix(rest, "messages/events")
	if !ok || rest != "" && rest[0] != '/' {
		return "", "", false
	}
	return identity, strings.Trim(rest, "/"), true
}
