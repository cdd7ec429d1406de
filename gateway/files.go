package gateway

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
)

// CheckFiles opens every file the config names, as the rooms will when the
// gateway starts: the hub's CA file, the identities' key files,
// certificates and certificate keys, each LAN broker's TLS certificate, key
// and client CA file, each OPC UA adapter's user certificate and key, and
// the serial ports marked required. Each file that cannot be used is a
// *ConfigError (file: path: reason), the fault `edgegw check` and `edgegw
// run` exit 2 on, before anything starts.
//
// The warnings are configs that work but expose more than an operator may
// think: key files readable by group or others, anonymous or plaintext LAN
// listeners beyond loopback, LAN passwords stored in plain text. Identity
// key files are warned about again by the identity room when it loads them.
func (c *Config) CheckFiles() (warnings []*edgegw.FieldError, err error) {
	var errs []error
	add := func(prefix string, e error) {
		if e != nil {
			errs = append(errs, edgegw.PrefixErrors(prefix, e))
		}
	}
	warn := func(prefix string, ws ...*edgegw.FieldError) {
		for _, w := range ws {
			warnings = append(warnings, &edgegw.FieldError{Path: prefix + "." + w.Path, Reason: w.Reason})
		}
	}
	embedded := c.Hubsim != nil && c.Hubsim.Enabled
	if f := c.Hub.CAFile; f != "" && !c.Hub.Insecure && !embedded {
		if data, err := os.ReadFile(f); err != nil {
			add("hub.ca_file", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(data) {
			add("hub.ca_file", fmt.Errorf("%s: no PEM certificate in it", f))
		}
	}
	for i, ic := range c.Identities {
		p := "identities[" + strconv.Itoa(i) + "]"
		// LoadAll: a fleet entry (count) stands for many identities, its
		// keys derived from a group key file or its certificates named by id.
		if _, err := identity.LoadAll(ic, slog.New(slog.DiscardHandler)); err != nil {
			add(p, err)
		}
		var groupKeyFile string
		if ic.DPS != nil {
			groupKeyFile = ic.DPS.GroupKeyFile
		}
		for _, f := range []struct{ path, name string }{{"key_file", ic.KeyFile}, {"cert_key_file", ic.CertKeyFile}, {"dps.group_key_file", groupKeyFile}} {
			if mode, ok := exposed(f.name); ok {
				warnings = append(warnings, &edgegw.FieldError{Path: p + "." + f.path,
					Reason: fmt.Sprintf("%s is readable by group or others (mode %04o): chmod 600 it", f.name, mode)})
			}
		}
	}
	for i, s := range c.Southbound {
		p := "southbound[" + strconv.Itoa(i) + "]"
		switch {
		case s.LANMQTT != nil:
			ws, err := s.LANMQTT.CheckFiles()
			add(p+".lanmqtt", err)
			warn(p+".lanmqtt", ws...)
		case s.Serial != nil:
			add(p+".serial", s.Serial.CheckFiles())
		case s.Modbus != nil:
			add(p+".modbus", s.Modbus.CheckFiles())
		case s.OPCUA != nil:
			ws, err := s.OPCUA.CheckFiles()
			add(p+".opcua", err)
			warn(p+".opcua", ws...)

		}
	}
	if len(errs) > 0 {
		return warnings, &ConfigError{File: c.File, Err: errors.Join(errs...)}
	}
	return warnings, nil
}

// IdentityWarning reports whether w is about an identity, which the
// identity room warns about itself when the gateway starts.
func IdentityWarning(w *edgegw.FieldError) bool { return strings.HasPrefix(w.Path, "identities[") }

// exposed returns the permission bits of a file that group or others may
// use, as the identity room judges key files.
func exposed(path string) (os.FileMode, bool) {
	if path == "" {
		return 0, false
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	return st.Mode().Perm(), st.Mode().Perm()&0o077 != 0
}
