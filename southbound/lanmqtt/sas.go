package lanmqtt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// hubUsernameIdentity recognises the MQTT username IoT Hub device SDKs send,
// {host}/{device}/?api-version=... or {host}/{device}/{module}/?..., (also
// the legacy form whose last segment has no "?"), as edgeHub parses it, and
// returns the identity it names. The host is not checked.
func hubUsernameIdentity(u string) (string, bool) {
	parts := strings.Split(u, "/")
	last := parts[len(parts)-1]
	if !strings.HasPrefix(last, "?") && !strings.Contains(last, "api-version=") {
		return "", false
	}
	switch {
	case len(parts) == 3 && parts[1] != "":
		return parts[1], true
	case len(parts) == 4 && parts[1] != "" && parts[2] != "":
		return parts[1] + "/" + parts[2], true
	}
	return "", false
}

// maxClockSkew is how long after its expiry a token is still accepted, as
// in Microsoft's own validator.
const maxClockSkew = 5 * time.Minute

var errBadToken = errors.New("bad SAS token")

// verifySAS checks an IoT Hub device (or module) SAS token, as the device
// SDKs send it as the MQTT password, against the identity's symmetric key:
// the signature is an HMAC-SHA256 over the raw sr value, a newline and se;
// sr must name {any host}/devices/{device}[/modules/{module}]; the token
// must not have expired. Policy tokens (skn) are refused.
func verifySAS(token string, key []byte, identity string, now time.Time) error {
	f := strings.Fields(token)
	if len(f) != 2 || f[0] != "SharedAccessSignature" {
		return fmt.Errorf("%w: not a SharedAccessSignature", errBadToken)
	}
	var rawSr, rawSe, sig string
	for item := range strings.SplitSeq(f[1], "&") {
		k, v, _ := strings.Cut(item, "=")
		switch strings.ToLower(k) {
		case "sr":
			rawSr = v
		case "se":
			rawSe = v
		case "sig":
			s, err := url.PathUnescape(v)
			if err != nil {
				return fmt.Errorf("%w: sig: %v", errBadToken, err)
			}
			sig = s
		case "skn":
			return fmt.Errorf("%w: policy tokens (skn) are not accepted from LAN devices", errBadToken)
		}
	}
	if rawSr == "" || rawSe == "" || sig == "" {
		return fmt.Errorf("%w: sr, sig and se are required", errBadToken)
	}
	se, err := strconv.ParseInt(rawSe, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: se: %v", errBadToken, err)
	}
	if time.Unix(se, 0).Add(maxClockSkew).Before(now) {
		return fmt.Errorf("%w: expired at %s", errBadToken, time.Unix(se, 0).UTC().Format(time.RFC3339))
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: sig: %v", errBadToken, err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(rawSr + "\n" + rawSe))
	if !hmac.Equal(mac.Sum(nil), got) {
		return fmt.Errorf("%w: signature mismatch", errBadToken)
	}
	aud, err := url.PathUnescape(rawSr)
	if err != nil {
		return fmt.Errorf("%w: sr: %v", errBadToken, err)
	}
	_, path, _ := strings.Cut(strings.TrimSuffix(aud, "/"), "/")
	want := "devices/" + identity
	if dev, mod, ok := strings.Cut(identity, "/"); ok {
		want = "devices/" + dev + "/modules/" + mod
	}
	if !strings.EqualFold(path, want) {
		return fmt.Errorf("%w: token is for %q, not %s", errBadToken, aud, identity)
	}
	return nil
}
