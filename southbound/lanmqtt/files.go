package lanmqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/edgegw/edgegw"
)

// CheckFiles opens the files c names as Run will (the TLS certificate and
// key, the client CA file, the CA that tls auto made on an earlier start) and returns what would keep Run from serving, as
// FieldErrors relative to this config. It also returns warnings about a
// config that works but exposes more than its operator may think: a key
// file readable by group or others, anonymous access or plaintext MQTT on
// an address beyond loopback, passwords stored in plain text.
func (c *Config) CheckFiles() (warnings []*edgegw.FieldError, err error) {
	var errs []error
	warn := func(path, format string, args ...any) {
		warnings = append(warnings, &edgegw.FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	if t := c.TLS; t != nil && !t.Auto {
		cert, certErr := os.ReadFile(t.CertFile)
		if certErr != nil {
			errs = append(errs, edgegw.Errorf("tls.cert_file", "%v", certErr))
		}
		key, keyErr := os.ReadFile(t.KeyFile)
		if keyErr != nil {
			errs = append(errs, edgegw.Errorf("tls.key_file", "%v", keyErr))
		} else if mode, ok := groupOrWorldReadable(t.KeyFile); ok {
			warn("tls.key_file", "%s is readable by group or others (mode %04o): chmod 600 it", t.KeyFile, mode)
		}
		if certErr == nil && keyErr == nil {
			if _, err := tls.X509KeyPair(cert, key); err != nil {
				errs = append(errs, edgegw.Errorf("tls", "cert_file %s and key_file %s: %v", t.CertFile, t.KeyFile, err))
			}
		}
	}
	if t := c.TLS; t != nil && t.Auto && t.Dir != "" {
		// A CA made on an earlier start must still be usable; a missing
		// one is made when the broker starts.
		if _, err := os.Stat(filepath.Join(t.Dir, caCertName)); err == nil {
			ac := &autoCert{dir: t.Dir, now: time.Now}
			if err := ac.loadCA(); err != nil {
				errs = append(errs, edgegw.Errorf("tls.dir", "%v", err))
			}
		}
	}
	if t := c.TLS; t != nil && t.ClientCAFile != "" {
		if data, err := os.ReadFile(t.ClientCAFile); err != nil {
			errs = append(errs, edgegw.Errorf("tls.client_ca_file", "%v", err))
		} else if !x509.NewCertPool().AppendCertsFromPEM(data) {
			errs = append(errs, edgegw.Errorf("tls.client_ca_file", "%s: no PEM certificate in it", t.ClientCAFile))
		}
	}
	for _, l := range []struct{ path, addr string }{{"listen", c.Listen}, {"websocket", c.Websocket}} {
		if l.addr == "" || loopback(l.addr) {
			continue
		}
		if c.TLS == nil {
			warn(l.path, "plaintext MQTT on %s, beyond loopback: passwords and data cross the network unencrypted (set tls; auto: true makes a certificate)", l.addr)
		}
		if c.AllowAnonymous {
			warn("allow_anonymous", "anyone who reaches %s may connect without a password, publish for every identity and read every topic", l.addr)
		}
	}
	for i, u := range c.Users {
		if u.Password != "" && !IsPasswordHash(u.Password.Reveal()) {
			warn(fmt.Sprintf("users[%d].password", i), "stored in plain text: store a hash instead (edgegw passwd)")
		}
	}
	return warnings, errors.Join(errs...)
}

// loopback reports whether a listen address serves this machine only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// groupOrWorldReadable returns the permission bits of a file that group
// or others may use, as the identity room judges key files.
func groupOrWorldReadable(path string) (os.FileMode, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	return st.Mode().Perm(), st.Mode().Perm()&0o077 != 0
}
