package lanmqtt

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/edgegw/edgegw"
)

// certAuth authenticates LAN devices by the client certificate of their TLS
// connection, as IoT Hub's X.509 authentication does: the CONNECT has the
// usual username ({host}/{device}/?api-version=... or a configured
// username) and client id (the device id), and no password. The
// certificate must either have the user's thumbprint (self-signed, checked
// for its validity period only) or chain to a client CA with the user's
// device as subject CN. It is immutable once Run serves.
type certAuth struct {
	thumbprints map[string][]byte // username -> SHA-1 or SHA-256 digest of the DER certificate
	roots       *x509.CertPool    // nil without tls.client_ca_file
	now         func() time.Time
}

// newCertAuth returns the certificate authentication c configures, loading
// the client CAs, or nil when no user may use a certificate.
func newCertAuth(c *Config) (*certAuth, error) {
	x := &certAuth{thumbprints: map[string][]byte{}, now: time.Now}
	for _, u := range c.Users {
		if u.X509Thumbprint != "" {
			x.thumbprints[u.Username], _ = parseThumbprint(u.X509Thumbprint) // validated
		}
	}
	if f := c.TLS.ClientCAFile; f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file: %w", err)
		}
		x.roots = x509.NewCertPool()
		if !x.roots.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("client_ca_file %s: no PEM certificate", f)
		}
	}
	if len(x.thumbprints) == 0 && x.roots == nil {
		return nil, nil
	}
	return x, nil
}

// parseThumbprint decodes a hex SHA-1 (40 digits, as IoT Hub shows them) or
// SHA-256 (64 digits) thumbprint; colons between bytes are allowed.
func parseThumbprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != sha1.Size && len(b) != sha256.Size {
		return nil, errors.New("must be the SHA-1 (40 hex digits) or SHA-256 (64 hex digits) thumbprint of the certificate")
	}
	return b, nil
}

// authenticateCert authenticates a CONNECT without a password by its
// client certificate. It returns the account, or nil and why not; the
// reason is "" when the CONNECT has a password or there is no certificate,
// so that the password check's answer stands.
func (a *Adapter) authenticateCert(cl *mqtt.Client, username string, password []byte) (*account, string) {
	x := a.x509.Load()
	if x == nil || len(password) > 0 {
		return nil, ""
	}
	conn, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState }) // *tls.Conn, or a websocket over TLS
	if !ok {
		return nil, ""
	}
	peer := conn.ConnectionState().PeerCertificates
	if len(peer) == 0 {
		return nil, ""
	}
	acc := a.accounts.Load().lookup(username)
	if acc == nil || acc.identity == "" {
		return nil, "client certificate: no user bound to a device has this username"
	}
	if err := x.verify(acc, peer); err != nil {
		return nil, "client certificate: " + err.Error()
	}
	return acc, ""
}

// verify checks that peer (leaf first) authenticates acc.
func (x *certAuth) verify(acc *account, peer []*x509.Certificate) error {
	leaf, now := peer[0], x.now()
	var errs []string
	if want := x.thumbprints[acc.name]; want != nil {
		switch {
		case !bytes.Equal(want, thumbprint(leaf.Raw, len(want))):
			errs = append(errs, "thumbprint does not match")
		case now.Before(leaf.NotBefore) || now.After(leaf.NotAfter):
			errs = append(errs, fmt.Sprintf("thumbprint matches, but valid only from %s to %s", leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339)))
		default:
			return nil
		}
	}
	if x.roots != nil {
		inter := x509.NewCertPool()
		for _, c := range peer[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots: x.roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		switch {
		case err != nil:
			errs = append(errs, err.Error())
		case leaf.Subject.CommonName != acc.identity:
			errs = append(errs, fmt.Sprintf("subject CN %q is not the device %q", leaf.Subject.CommonName, acc.identity))
		default:
			return nil
		}
	}
	if len(errs) == 0 {
		return errors.New("the user has no x509_thumbprint and there is no client_ca_file")
	}
	return errors.New(strings.Join(errs, "; "))
}

// thumbprint returns the SHA-1 (n 20) or SHA-256 digest of der.
func thumbprint(der []byte, n int) []byte {
	if n == sha1.Size {
		s := sha1.Sum(der)
		return s[:]
	}
	s := sha256.Sum256(der)
	return s[:]
}

// mayUseCert reports whether u can authenticate with a client certificate.
func (u *User) mayUseCert(c *Config) bool {
	return u.X509Thumbprint != "" || u.Device != "" && c.TLS != nil && c.TLS.ClientCAFile != ""
}

// checkX509 checks u's certificate settings; p is u's path.
func (u *User) checkX509(c *Config, p string) []error {
	if u.X509Thumbprint == "" {
		return nil
	}
	var errs []error
	if _, err := parseThumbprint(u.X509Thumbprint); err != nil {
		errs = append(errs, edgegw.Errorf(p+".x509_thumbprint", "%v (got %q)", err, u.X509Thumbprint))
	}
	if u.Device == "" {
		errs = append(errs, edgegw.Errorf(p+".x509_thumbprint", "needs device set"))
	}
	if c.TLS == nil {
		errs = append(errs, edgegw.Errorf(p+".x509_thumbprint", "needs tls (a client certificate comes with TLS)"))
	}
	return errs
}
