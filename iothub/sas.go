package iothub

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

// MaxClockSkew is how long after its expiry a SAS token is still accepted,
// as in Microsoft's own validator (SharedAccessSignatureConstants).
const MaxClockSkew = 5 * time.Minute

// Errors returned by ParseSAS and SAS.Verify.
var (
	ErrMalformedToken = errors.New("malformed shared access signature")
	ErrTokenExpired   = errors.New("shared access signature expired")
	ErrBadSignature   = errors.New("shared access signature does not match")
	ErrBadAudience    = errors.New("shared access signature audience does not cover the resource")
)

// SASToken returns a shared access signature as IoT Hub expects it:
//
//	SharedAccessSignature sr={enc(resource)}&sig={enc(sig)}[&skn={enc(policy)}]&se={expiry}
//
// where resource is the plain, unencoded URI (such as
// "myhub.azure-devices.net/devices/dev1", see ResourceURI), key is the
// decoded key, expiry is truncated to whole seconds since the epoch, sig is
// base64(HMAC-SHA256(key, enc(resource) + "\n" + se)) and enc is
// EscapeComponent, as the Azure SDKs do. policy is empty for device and
// module keys.
func SASToken(resource string, key []byte, policy string, expiry time.Time) string {
	sr := EscapeComponent(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig := sign(sr, se, key)
	var b strings.Builder
	b.Grow(len(sr) + 2*len(sig) + 3*len(policy) + 64)
	b.WriteString("SharedAccessSignature sr=")
	b.WriteString(sr)
	b.WriteString("&sig=")
	b.WriteString(EscapeComponent(sig))
	if policy != "" {
		b.WriteString("&skn=")
		b.WriteString(EscapeComponent(policy))
	}
	b.WriteString("&se=")
	b.WriteString(se)
	return b.String()
}

// ResourceURI returns the token audience of an identity at host:
// "{host}/devices/{device}" or "{host}/devices/{device}/modules/{module}".
func ResourceURI(host, device, module string) string {
	uri := host + "/devices/" + device
	if module != "" {
		uri += "/modules/" + module
	}
	return uri
}

// SAS is a parsed shared access signature.
//
// RawResource is the sr field exactly as received: the signature is an HMAC
// over it, so it must never be re-encoded (both %2f and %2F occur).
type SAS struct {
	RawResource string    // sr as sent
	Resource    string    // sr, percent-decoded (the audience)
	Signature   string    // sig, percent-decoded (base64)
	KeyName     string    // skn, "" for device and module keys
	RawExpiry   string    // se as sent
	Expiry      time.Time // se
}

// ParseSAS parses "SharedAccessSignature sr=...&sig=...&se=...[&skn=...]"
// as Microsoft's validator does: the scheme and the fields are the two
// whitespace-separated parts; field names are case-insensitive and may
// come in any order; unknown fields are ignored. sr, sig and se are
// required; a field without "=", a repeated field, a bad escape in any
// value or an se that is not a non-negative number of seconds is an error
// wrapping ErrMalformedToken.
func ParseSAS(token string) (SAS, error) {
	var s SAS
	parts := strings.Fields(token)
	if len(parts) != 2 || parts[0] != "SharedAccessSignature" {
		return s, fmt.Errorf("%w: want \"SharedAccessSignature <fields>\"", ErrMalformedToken)
	}
	seen := map[string]bool{}
	for field := range strings.SplitSeq(parts[1], "&") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return s, fmt.Errorf("%w: field %q has no value", ErrMalformedToken, field)
		}
		k = strings.ToLower(k)
		if seen[k] {
			return s, fmt.Errorf("%w: duplicate field %q", ErrMalformedToken, k)
		}
		seen[k] = true
		dv, err := url.PathUnescape(v)
		if err != nil {
			return s, fmt.Errorf("%w: field %s: %w", ErrMalformedToken, k, err)
		}
		switch k {
		case "sr":
			s.RawResource, s.Resource = v, dv
		case "sig":
			s.Signature = dv
		case "skn":
			s.KeyName = dv
		case "se":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return s, fmt.Errorf("%w: se %q is not a number of seconds", ErrMalformedToken, v)
			}
			s.RawExpiry, s.Expiry = v, time.Unix(n, 0)
		}
	}
	if s.RawResource == "" || s.Signature == "" || s.RawExpiry == "" {
		return s, fmt.Errorf("%w: sr, sig and se are required", ErrMalformedToken)
	}
	return s, nil
}

// Sign returns the signature of s under key (decoded), base64: the HMAC
// over the raw sr, a newline and the raw se.
func (s SAS) Sign(key []byte) string { return sign(s.RawResource, s.RawExpiry, key) }

func sign(rawResource, rawExpiry string, key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(rawResource))
	m.Write([]byte{'\n'})
	m.Write([]byte(rawExpiry))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify reports nil if the decoded audience covers resource (see
// AudienceCovers), the token has not expired more than skew before now,
// and the signature matches one of keys (decoded; empty ones are skipped).
// Otherwise the error wraps ErrBadAudience, ErrTokenExpired or
// ErrBadSignature, checked in that order.
func (s SAS) Verify(resource string, now time.Time, skew time.Duration, keys ...[]byte) error {
	if !AudienceCovers(s.Resource, resource) {
		return fmt.Errorf("%w: %q for %q", ErrBadAudience, s.Resource, resource)
	}
	if s.Expiry.Add(skew).Before(now) {
		return fmt.Errorf("%w at %s", ErrTokenExpired, s.Expiry.UTC().Format(time.RFC3339))
	}
	for _, k := range keys {
		if len(k) > 0 && hmac.Equal([]byte(s.Sign(k)), []byte(s.Signature)) {
			return nil
		}
	}
	return ErrBadSignature
}

// AudienceCovers reports whether the token audience aud (a decoded sr) is a
// segment prefix of resource, ignoring case and a trailing slash:
// "hub/devices" covers "hub/devices/d1" but not "hub/devicesX".
func AudienceCovers(aud, resource string) bool {
	aud = strings.ToLower(strings.TrimRight(aud, "/"))
	resource = strings.ToLower(strings.TrimRight(resource, "/"))
	if aud == "" {
		return false
	}
	if aud == resource {
		return true
	}
	return strings.HasPrefix(resource, aud+"/")
}
