package hubsim

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultClockSkew is how long after its expiry a SAS token is still
// accepted, as IoT Hub does (SharedAccessSignatureConstants.MaxClockSkew).
const DefaultClockSkew = 5 * time.Minute

// Errors returned by ParseSAS and the verifiers.
var (
	ErrMalformedToken = errors.New("malformed shared access signature")
	ErrTokenExpired   = errors.New("shared access signature expired")
	ErrBadSignature   = errors.New("shared access signature does not match")
	ErrBadAudience    = errors.New("shared access signature audience does not cover the resource")
)

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

// ParseSAS parses "SharedAccessSignature sr=...&sig=...&se=...[&skn=...]".
// Field names are case-insensitive and may come in any order.
func ParseSAS(token string) (SAS, error) {
	var s SAS
	scheme, rest, ok := strings.Cut(strings.TrimSpace(token), " ")
	if !ok || scheme != "SharedAccessSignature" || strings.ContainsAny(rest, " \t\r\n") {
		return s, fmt.Errorf("%w: want \"SharedAccessSignature <fields>\"", ErrMalformedToken)
	}
	seen := map[string]bool{}
	for _, field := range strings.Split(rest, "&") {
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
			return s, fmt.Errorf("%w: field %s: %v", ErrMalformedToken, k, err)
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

// Sign computes the signature of s with a base64 key.
func (s SAS) Sign(key string) (string, error) {
	return signSAS(s.RawResource, s.RawExpiry, key)
}

func signSAS(rawResource, rawExpiry, key string) (string, error) {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return "", fmt.Errorf("decode key: %w", err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(rawResource + "\n" + rawExpiry))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// VerifyKeys reports nil if the signature matches one of keys (empty keys are
// skipped), the token is not expired beyond skew at now, and the decoded
// audience covers resource, segment by segment and case-insensitively.
func (s SAS) VerifyKeys(resource string, now time.Time, skew time.Duration, keys ...string) error {
	if !AudienceCovers(s.Resource, resource) {
		return fmt.Errorf("%w: %q for %q", ErrBadAudience, s.Resource, resource)
	}
	if s.Expiry.Add(skew).Before(now) {
		return fmt.Errorf("%w at %s", ErrTokenExpired, s.Expiry.UTC().Format(time.RFC3339))
	}
	for _, k := range keys {
		if k == "" {
			continue
		}
		sig, err := s.Sign(k)
		if err != nil {
			continue
		}
		if hmac.Equal([]byte(sig), []byte(s.Signature)) {
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

// NewSAS returns a SAS token for resource (not encoded; this function encodes
// it the way the SDKs do) signed with key, named keyName ("" for device keys),
// valid until expiry.
func NewSAS(resource, keyName, key string, expiry time.Time) (string, error) {
	sr := encodeURIComponent(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig, err := signSAS(sr, se, key)
	if err != nil {
		return "", err
	}
	t := "SharedAccessSignature sr=" + sr + "&sig=" + encodeURIComponent(sig)
	if keyName != "" {
		t += "&skn=" + encodeURIComponent(keyName)
	}
	return t + "&se=" + se, nil
}

// encodeURIComponent escapes like JavaScript's encodeURIComponent plus
// !'()* (the SDKs' encodeUriComponentStrict).
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// NewKey returns a random base64 key of 32 bytes, as IoT Hub generates.
func NewKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
