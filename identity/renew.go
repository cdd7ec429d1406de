package identity

import (
	"math/rand/v2"
	"time"
)

// Renewal fractions: a token is renewed when 70-80% of its lifetime has
// passed (the Azure SDKs renew at 75%: a 60 min token after 45 min). The
// 10% window is spread uniformly, so 10,000 identities with 1 h tokens
// renew over 6 minutes (about 28 per second) instead of in one second,
// and an identity that renews late still has 20% of the lifetime left.
const (
	renewEarliest = 0.70
	renewWindow   = 0.10
)

// Schedule plans SAS token lifetimes and their renewal times.
type Schedule struct {
	TTL time.Duration // token lifetime; below one second counts as one second
	// Jitter returns a number in [0, 1); nil uses math/rand/v2.
	Jitter func() float64
}

// Next returns the expiry of a token issued at now and the time to renew
// it. The expiry is rounded up to whole seconds, as the token's se field
// is, and the renewal is planned from that real lifetime.
func (s Schedule) Next(now time.Time) (expiry, renew time.Time) {
	ttl := max(s.TTL, time.Second)
	expiry = now.Add(ttl)
	if t := expiry.Truncate(time.Second); t.Before(expiry) {
		expiry = t.Add(time.Second) // se is whole seconds: round up
	}
	j := rand.Float64
	if s.Jitter != nil {
		j = s.Jitter
	}
	frac := renewEarliest + renewWindow*min(max(j(), 0), 1)
	return expiry, now.Add(time.Duration(float64(expiry.Sub(now)) * frac))
}
