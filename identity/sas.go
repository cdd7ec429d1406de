package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SASToken returns a shared access signature as IoT Hub expects it:
//
//	SharedAccessSignature sr={enc(resourceURI)}&sig={enc(sig)}[&skn={enc(policy)}]&se={expiry}
//
// where resourceURI is the plain, unencoded URI (such as
// "myhub.azure-devices.net/devices/dev1"), key is the decoded key, expiry is
// truncated to whole seconds since the epoch, sig is
// base64(HMAC-SHA256(key, enc(resourceURI) + "\n" + se)) and enc is
// JavaScript's encodeURIComponent made strict (also !'()* escaped), as the
// Azure SDKs do. policy is empty for device and module keys.
func SASToken(resourceURI string, key []byte, policy string, expiry time.Time) string {
	sr := EscapeComponent(resourceURI)
	se := strconv.FormatInt(expiry.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(sr + "\n" + se))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	var b strings.Builder
	b.Grow(len(sr) + len(sig) + len(policy) + 64)
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

// ResourceURI returns the token audience of the identity at hubHost:
// "{hub}/devices/{device}" or "{hub}/devices/{device}/modules/{module}".
func (id *Identity) ResourceURI(hubHost string) string {
	uri := hubHost + "/devices/" + id.Device
	if id.Module != "" {
		uri += "/modules/" + id.Module
	}
	return uri
}

// ErrNoKey is returned when a token is asked of an identity without keys.
var ErrNoKey = errors.New("identity has no symmetric key")

// Token returns a SAS token for the identity at hubHost valid until expiry,
// signed with the primary key (secondary false) or the secondary key. If
// the identity has only one key, that key is used either way.
func (id *Identity) Token(hubHost string, expiry time.Time, secondary bool) (string, error) {
	if len(id.keys) == 0 {
		return "", ErrNoKey
	}
	k := id.keys[0]
	if secondary && len(id.keys) > 1 {
		k = id.keys[1]
	}
	return SASToken(id.ResourceURI(hubHost), k, id.Policy, expiry), nil
}

// EscapeComponent percent-encodes s like JavaScript's encodeURIComponent,
// and also escapes !'()* : only A-Z a-z 0-9 - _ . ~ stay as they are.
// Hex digits are upper case. It is the encoding of SAS fields and of IoT
// Hub property bags.
func EscapeComponent(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

func unreserved(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '-' || c == '_' || c == '.' || c == '~'
}
