package identity

import (
	"errors"
	"time"

	"github.com/edgegw/edgegw/iothub"
)

// ResourceURI returns the token audience of the identity at hubHost:
// "{hub}/devices/{device}" or "{hub}/devices/{device}/modules/{module}".
func (id *Identity) ResourceURI(hubHost string) string {
	return iothub.ResourceURI(hubHost, id.Device, id.Module)
}

// ErrNoKey is returned when a token is asked of an identity without keys.
var ErrNoKey = errors.New("identity has no symmetric key")

// Token returns a SAS token for the identity at hubHost valid until expiry
// (see iothub.SASToken), signed with the primary key (secondary false) or
// the secondary key. If the identity has only one key, that key is used
// either way.
func (id *Identity) Token(hubHost string, expiry time.Time, secondary bool) (string, error) {
	if len(id.keys) == 0 {
		return "", ErrNoKey
	}
	k := id.keys[0]
	if secondary && len(id.keys) > 1 {
		k = id.keys[1]
	}
	return iothub.SASToken(id.ResourceURI(hubHost), k, id.Policy, expiry), nil
}
