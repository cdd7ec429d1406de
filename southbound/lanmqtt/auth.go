package lanmqtt

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgegw/edgegw/iothub"
)

// account is a User prepared for the hot path.
type account struct {
	name        string
	pwHash      [32]byte      // SHA-256 of a plain-text password
	pwKDF       *passwordHash // a hashed password instead; nil if plain
	hasPassword bool
	sasKey      []byte // decoded symmetric key; nil if none
	identity    string // the hub identity it may speak for; "" none
	anyIdentity bool   // anonymous: any identity
	relay       bool   // the device speaks the IoT Hub protocol through us
	publish     []string
	subscribe   []string
}

// accounts is immutable; ApplyUsers replaces it whole.
type accounts struct {
	byName   map[string]*account
	byDevice map[string]*account // for IoT Hub style usernames
	anon     *account            // nil unless allow_anonymous
	now      func() time.Time
}

func newAccounts(c *Config) *accounts {
	as := &accounts{byName: map[string]*account{}, byDevice: map[string]*account{}, now: time.Now}
	if c.AllowAnonymous {
		as.anon = &account{anyIdentity: true, publish: []string{"#"}, subscribe: []string{"#"}}
	}
	for _, u := range c.Users {
		a := &account{
			name:        u.Username,
			pwHash:      sha256.Sum256([]byte(u.Password.Reveal())),
			hasPassword: u.Password != "",
			identity:    u.Device,
			relay:       u.Relayed(),
		}
		if IsPasswordHash(u.Password.Reveal()) {
			a.pwKDF, _ = parsePasswordHash(u.Password.Reveal()) // validated
		}
		if u.SASKey != "" {
			a.sasKey, _ = base64.StdEncoding.DecodeString(u.SASKey.Reveal()) // validated
		}
		dev, mod, isModule := strings.Cut(u.Device, "/")
		pub, sub := u.Publish, u.Subscribe
		if u.Device != "" && len(pub) == 0 {
			pub = []string{"devices/{device}/messages/events/#"}
			if isModule {
				pub = []string{"devices/{device}/modules/{module}/messages/events/#"}
			}
		}
		if u.Device != "" && len(sub) == 0 {
			sub = []string{"devices/{device}/messages/devicebound/#"}
			if isModule {
				sub = []string{"devices/{device}/modules/{module}/#"}
			}
		}
		if a.relay {
			// The IoT Hub request and response topics are the same for
			// every device; the gateway answers each device alone and
			// never forwards them between clients.
			pub = append(pub[:len(pub):len(pub)], relayPublish...)
			sub = append(sub[:len(sub):len(sub)], relaySubscribe...)
		}
		r := strings.NewReplacer("{username}", u.Username, "{device}", dev, "{module}", mod)
		for _, f := range pub {
			a.publish = append(a.publish, r.Replace(f))
		}
		for _, f := range sub {
			a.subscribe = append(a.subscribe, r.Replace(f))
		}
		as.byName[u.Username] = a
		if u.Device != "" {
			as.byDevice[u.Device] = a
		}
	}
	return as
}

// lookup returns the account a username stands for: a configured
// username, or an IoT Hub style username ({host}/{device}/?api-version=...)
// naming a user's device, or "" for anonymous.
func (as *accounts) lookup(username string) *account {
	if username == "" {
		return as.anon
	}
	if a := as.byName[username]; a != nil {
		return a
	}
	if u, err := iothub.ParseUsername(username); err == nil {
		return as.byDevice[u.ClientID()]
	}
	return nil
}

// authenticate returns the account for the credentials, or nil. The
// password must equal the user's password (or match its hash) or be a
// valid SAS token signed with the user's sas_key. A username that is not configured is refused
// even when anonymous access is allowed.
func (as *accounts) authenticate(username string, password []byte) *account {
	a := as.lookup(username)
	if username == "" {
		return a
	}
	h := sha256.Sum256(password)
	if a == nil {
		// Compare anyway so unknown names take as long as known ones.
		subtle.ConstantTimeCompare(h[:], make([]byte, len(h)))
		return nil
	}
	switch {
	case !a.hasPassword:
	case a.pwKDF != nil:
		if a.pwKDF.verify(password, h) {
			return a
		}
	case subtle.ConstantTimeCompare(h[:], a.pwHash[:]) == 1:
		return a
	}
	if a.sasKey != nil && verifySAS(string(password), a.sasKey, a.identity, as.now()) == nil {
		return a
	}
	return nil
}

var errBadToken = errors.New("bad SAS token")

// verifySAS checks an IoT Hub device (or module) SAS token, as the device
// SDKs send it as the MQTT password, against the identity's symmetric key
// (iothub.SAS.Verify): the signature must match and the token must not
// have expired beyond iothub.MaxClockSkew. Stricter than IoT Hub, whose
// audience covers by prefix, sr must name exactly
// {any host}/devices/{device}[/modules/{module}], because LAN users may
// share a key; and policy tokens (skn) are refused.
func verifySAS(token string, key []byte, identity string, now time.Time) error {
	s, err := iothub.ParseSAS(token)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadToken, err)
	}
	if s.KeyName != "" {
		return fmt.Errorf("%w: policy tokens (skn) are not accepted from LAN devices", errBadToken)
	}
	host, _, _ := strings.Cut(s.Resource, "/")
	dev, mod, _ := strings.Cut(identity, "/")
	res := iothub.ResourceURI(host, dev, mod)
	if !strings.EqualFold(strings.TrimSuffix(s.Resource, "/"), res) {
		return fmt.Errorf("%w: %w: token is for %q, not %s", errBadToken, iothub.ErrBadAudience, s.Resource, identity)
	}
	if err := s.Verify(res, now, iothub.MaxClockSkew, key); err != nil {
		return fmt.Errorf("%w: %w", errBadToken, err)
	}
	return nil
}

// mayPublish reports whether a may publish on topic: a filter allows it and,
// on the IoT Hub surface, the identity in the topic is a's own.
func (a *account) mayPublish(topic string) bool {
	if !anyCovers(a.publish, topic) {
		return false
	}
	if id, _, ok := iothub.ParseEventsTopic(topic); ok {
		return a.anyIdentity || id == a.identity
	}
	return true
}

// maySubscribe reports whether a may subscribe to filter (or receive a
// message on a topic). Shared subscriptions are checked on their filter.
func (a *account) maySubscribe(filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			filter = f
		}
	}
	return anyCovers(a.subscribe, filter)
}

func anyCovers(allowed []string, requested string) bool {
	for _, f := range allowed {
		if covers(f, requested) {
			return true
		}
	}
	return false
}

// covers reports whether every topic matched by requested (a topic name or
// a filter) is matched by the filter allowed. As in MQTT, a leading
// wildcard does not match topics starting with "$".
func covers(allowed, requested string) bool {
	if strings.HasPrefix(requested, "$") && (strings.HasPrefix(allowed, "+") || strings.HasPrefix(allowed, "#")) {
		return false
	}
	for {
		al, arest, amore := strings.Cut(allowed, "/")
		if al == "#" {
			return true
		}
		rl, rrest, rmore := strings.Cut(requested, "/")
		switch {
		case al == "+":
			if rl == "#" {
				return false
			}
		case al != rl:
			return false
		}
		if !amore || !rmore {
			if amore && !rmore {
				// "a/#" also matches "a".
				return arest == "#"
			}
			return amore == rmore
		}
		allowed, requested = arest, rrest
	}
}
