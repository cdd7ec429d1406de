package identity

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw"
)

// MaxFleet is the largest count of one fleet entry.
const MaxFleet = 1_000_000

// A fleet is one config entry standing for Count identities of one group
// enrollment: its id is a pattern with one "{n}" or "{n:W}" (W, 1-9: zero
// padded to at least W digits), replaced by First, First+1, ...,
// First+Count-1. "{id}" in cert_file and cert_key_file is replaced by each
// identity's id, so an X.509 fleet names one certificate per identity.
//
//	- id: sensor-{n:04}     # sensor-0001 ... sensor-10000
//	  count: 10000
//	  dps: {id_scope: 0ne00ABCDEF, group_key_file: /etc/edgegw/plant.key}

// pattern is a parsed fleet id.
type pattern struct {
	prefix, suffix string
	width          int
}

func parsePattern(s string) (pattern, error) {
	i := strings.Index(s, "{n")
	if i < 0 {
		return pattern{}, errors.New(`must contain {n} or {n:W} (a fleet names its identities by number)`)
	}
	j := strings.IndexByte(s[i:], '}')
	if j < 0 {
		return pattern{}, errors.New("unclosed {n")
	}
	p := pattern{prefix: s[:i], suffix: s[i+j+1:]}
	switch spec := s[i+2 : i+j]; {
	case spec == "":
	case strings.HasPrefix(spec, ":"):
		w, err := strconv.Atoi(strings.TrimPrefix(spec, ":"))
		if err != nil || w < 1 || w > 9 {
			return pattern{}, fmt.Errorf("{n%s}: the width must be a number 1-9, as in {n:4}", spec)
		}
		p.width = w
	default:
		return pattern{}, fmt.Errorf("{n%s}: write {n} or {n:W}", spec)
	}
	if strings.Contains(p.prefix+p.suffix, "{") || strings.Contains(p.prefix+p.suffix, "}") {
		return pattern{}, errors.New("must contain one {n} and no other braces")
	}
	return p, nil
}

func (p pattern) id(n int) string {
	num := strconv.Itoa(n)
	if len(num) < p.width {
		num = strings.Repeat("0", p.width-len(num)) + num
	}
	return p.prefix + num + p.suffix
}

func (c *Config) first() int {
	if c.First != nil {
		return *c.First
	}
	return 1
}

// validateFleet checks the fleet fields and the ids of the first and last
// identity (the others differ from them only in digits).
func (c *Config) validateFleet() error {
	var errs []error
	if c.Count < 1 || c.Count > MaxFleet {
		errs = append(errs, edgegw.Errorf("count", "must be 1-%d (got %d)", MaxFleet, c.Count))
	}
	if c.First != nil && (*c.First < 0 || *c.First > 1_000_000_000) {
		errs = append(errs, edgegw.Errorf("first", "must be 0-1000000000 (got %d)", *c.First))
	}
	if c.DPS == nil {
		errs = append(errs, edgegw.Errorf("count", "a fleet is provisioned by DPS: set dps (with a group enrollment key or per-identity certificates)"))
	}
	p, err := parsePattern(c.ID)
	if err != nil {
		return errors.Join(append(errs, edgegw.Errorf("id", "%v (got %q)", err, c.ID))...)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, n := range []int{c.first(), c.first() + c.Count - 1} {
		id := p.id(n)
		if err := validID(id); err != nil {
			errs = append(errs, edgegw.Errorf("id", "%s: %v", id, err))
		} else if err := validRegistrationID(id); err != nil {
			errs = append(errs, edgegw.Errorf("id", "%s is a DPS registration id: %v", id, err))
		}
	}
	for _, f := range []struct{ name, v string }{{"cert_file", c.CertFile}, {"cert_key_file", c.CertKeyFile}} {
		if f.v != "" && !strings.Contains(f.v, "{id}") {
			errs = append(errs, edgegw.Errorf(f.name, "must contain {id} in a fleet: each identity has its own certificate (got %q)", f.v))
		}
	}
	return errors.Join(errs...)
}

// IDs returns the ids c stands for: its id, or a fleet's ids in order.
// A count out of range (which Validate reports) stands for none.
func (c *Config) IDs() []string {
	if c.Count == 0 {
		return []string{c.ID}
	}
	if c.Count < 0 || c.Count > MaxFleet {
		return nil
	}
	p, err := parsePattern(c.ID)
	if err != nil {
		return nil
	}
	ids := make([]string, c.Count)
	for i := range ids {
		ids[i] = p.id(c.first() + i)
	}
	return ids
}

// Members returns the configs of the identities c stands for: c itself, or
// one per identity of a fleet (with the fleet's group key file, not a
// derived key: LoadAll derives them). c must be valid.
func (c *Config) Members() []Config {
	if c.Count == 0 {
		return []Config{*c}
	}
	ids := c.IDs()
	out := make([]Config, len(ids))
	for i, id := range ids {
		out[i] = c.member(id)
	}
	return out
}

// member returns the config of one identity of a fleet.
func (c *Config) member(id string) Config {
	m := *c
	m.ID, m.Count, m.First = id, 0, nil
	m.CertFile = strings.ReplaceAll(c.CertFile, "{id}", id)
	m.CertKeyFile = strings.ReplaceAll(c.CertKeyFile, "{id}", id)
	return m
}

// LoadAll loads the identities c stands for: one, or every identity of a
// fleet. A group key file is read once; each identity's key is derived from
// it. Errors name the field; a member's error also names its id.
func LoadAll(c Config, log *slog.Logger) ([]*Identity, error) {
	if c.Count == 0 {
		id, err := Load(c, log)
		if err != nil {
			return nil, err
		}
		return []*Identity{id}, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	group, err := groupKey(c, log)
	if err != nil {
		return nil, err
	}
	ids := c.IDs()
	out := make([]*Identity, 0, len(ids))
	for _, s := range ids {
		m := c.member(s)
		if group != nil {
			m.DPS = &DPSConfig{Host: c.DPS.Host, Port: c.DPS.Port, Address: c.DPS.Address, IDScope: c.DPS.IDScope}
			m.Key = edgegw.Secret(EncodeKey(DeriveKey(group, s)))
		}
		id, err := Load(m, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		out = append(out, id)
	}
	return out, nil
}

// groupKey reads and decodes the group enrollment key of c, nil when it
// has none.
func groupKey(c Config, log *slog.Logger) ([]byte, error) {
	if c.DPS == nil || !c.DPS.hasGroupKey() {
		return nil, nil
	}
	s := c.DPS.GroupKey.Reveal()
	if c.DPS.GroupKeyFile != "" {
		b, err := readSecretFile(c.DPS.GroupKeyFile, c.ID, log)
		if err != nil {
			return nil, edgegw.Errorf("dps.group_key_file", "%v", err)
		}
		s = strings.TrimSpace(string(b))
	}
	k, err := decodeKey(s)
	if err != nil {
		path := "dps.group_key"
		if c.DPS.GroupKeyFile != "" {
			path = "dps.group_key_file"
		}
		return nil, edgegw.Errorf(path, "%v", err)
	}
	return k, nil
}
