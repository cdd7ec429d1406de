package hubsim

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/edgegw/edgegw/iothub"
)

// DefaultClockSkew is how long after its expiry a SAS token is still
// accepted, as IoT Hub does (SharedAccessSignatureConstants.MaxClockSkew).
const DefaultClockSkew = iothub.MaxClockSkew

// NewSAS returns a SAS token for resource (not encoded; it is encoded the
// way the SDKs do) signed with key (base64, as the registry keeps keys),
// named keyName ("" for device keys), valid until expiry. See
// iothub.SASToken.
func NewSAS(resource, keyName, key string, expiry time.Time) (string, error) {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return "", fmt.Errorf("decode key: %w", err)
	}
	return iothub.SASToken(resource, k, keyName, expiry), nil
}

// NewKey returns a random base64 key of 32 bytes, as IoT Hub generates.
func NewKey() string { return newKey(32) }

// newKey returns a random base64 key of n bytes.
func newKey(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// verifySAS verifies s for resource now with the first of keys (base64,
// as the registry keeps them; empty or undecodable ones are skipped) that
// matches. See iothub.SAS.Verify.
func verifySAS(s iothub.SAS, resource string, skew time.Duration, keys ...string) error {
	raw := make([][]byte, 0, len(keys))
	for _, k := range keys {
		if b, err := base64.StdEncoding.DecodeString(k); err == nil {
			raw = append(raw, b)
		}
	}
	return s.Verify(resource, time.Now(), skew, raw...)
}
