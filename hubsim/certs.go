package hubsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CA is a certificate authority: it signs server certificates (so that
// several hubs and a DPS can share one trust anchor) and client
// certificates. Create one with NewCA or LoadOrCreateCA.
type CA struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	pool   *x509.CertPool
}

// certs holds the hub's CA and server certificate.
type certs struct {
	*CA
	serverTL tls.Certificate
}

// NewCA returns a new in-memory CA named cn.
func NewCA(cn string) (*CA, error) {
	certPEM, keyPEM, err := newCA(cn)
	if err != nil {
		return nil, err
	}
	c := &CA{}
	return c, c.setCA(certPEM, keyPEM)
}

// LoadOrCreateCA loads ca.pem and ca.key from dir, creating them first if
// they do not exist.
func LoadOrCreateCA(dir string) (*CA, error) {
	c := &CA{}
	caFile, caKeyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := c.loadCA(caFile, caKeyFile); err == nil {
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	certPEM, keyPEM, err := newCA("hubsim CA")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := writeFiles(caFile, certPEM, caKeyFile, keyPEM); err != nil {
		return nil, err
	}
	return c, c.setCA(certPEM, keyPEM)
}

// CertPEM returns the CA certificate in PEM.
func (c *CA) CertPEM() []byte { return append([]byte(nil), c.caPEM...) }

// Cert returns the CA certificate.
func (c *CA) Cert() *x509.Certificate { return c.caCert }

// Pool returns a pool holding the CA, for RootCAs.
func (c *CA) Pool() *x509.CertPool { return c.pool.Clone() }

// IssueClientCert returns a client certificate with CommonName cn signed by
// the CA.
func (c *CA) IssueClientCert(cn string) (certPEM, keyPEM []byte, err error) {
	return c.issue(cn, nil, x509.ExtKeyUsageClientAuth)
}

// loadOrCreateCerts returns the CA (ca, or else the data dir's, created on
// first start) and a server certificate covering names. With a data dir it
// reuses server.pem/server.key, re-issuing the server certificate when
// names change or another CA signs it.
func loadOrCreateCerts(dir string, names []string, ca *CA) (*certs, error) {
	c := &certs{CA: ca}
	srvFile, srvKeyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	if c.CA == nil && dir != "" {
		var err error
		if c.CA, err = LoadOrCreateCA(dir); err != nil {
			return nil, err
		}
	}
	if c.CA == nil {
		var err error
		if c.CA, err = NewCA("hubsim CA"); err != nil {
			return nil, err
		}
	}
	if dir != "" {
		if tc, err := tls.LoadX509KeyPair(srvFile, srvKeyFile); err == nil && covers(tc.Leaf, names) && c.signed(tc.Leaf) {
			c.serverTL = tc
			return c, nil
		}
	}
	certPEM, keyPEM, err := c.issue(names[0], names, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if err := writeFiles(srvFile, certPEM, srvKeyFile, keyPEM); err != nil {
			return nil, err
		}
	}
	c.serverTL, err = tls.X509KeyPair(certPEM, keyPEM)
	return c, err
}

func (c *CA) loadCA(certFile, keyFile string) error {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	if err := c.setCA(certPEM, keyPEM); err != nil {
		return fmt.Errorf("load %s: %w", certFile, err)
	}
	return nil
}

func (c *CA) setCA(certPEM, keyPEM []byte) error {
	tc, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	key, ok := tc.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("CA key is not ECDSA")
	}
	c.caCert, c.caKey, c.caPEM = tc.Leaf, key, certPEM
	c.pool = x509.NewCertPool()
	c.pool.AddCert(tc.Leaf)
	return nil
}

func (c *CA) signed(leaf *x509.Certificate) bool {
	_, err := leaf.Verify(x509.VerifyOptions{Roots: c.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

// covers reports whether leaf has a SAN for every name.
func covers(leaf *x509.Certificate, names []string) bool {
	if leaf == nil || time.Until(leaf.NotAfter) < 24*time.Hour {
		return false
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

func newCA(cn string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"hubsim"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return encodePair(der, key)
}

// issue signs a leaf certificate for cn with SANs names (IPs become IP SANs).
func (c *CA) issue(cn string, names []string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &key.PublicKey, c.caKey)
	if err != nil {
		return nil, nil, err
	}
	return encodePair(der, key)
}

// NewSelfSignedCert returns a self-signed client certificate with CommonName
// cn and its SHA-1 thumbprint (upper-case hex), for devices registered with
// AuthSelfSigned.
func NewSelfSignedCert(cn string) (certPEM, keyPEM []byte, thumbprint string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, "", err
	}
	certPEM, keyPEM, err = encodePair(der, key)
	return certPEM, keyPEM, Thumbprint(der), err
}

// IssueDeviceCert returns a client certificate for deviceID (CommonName)
// signed by the hub's CA, for devices registered with AuthCA.
func (h *Hub) IssueDeviceCert(deviceID string) (certPEM, keyPEM []byte, err error) {
	c := h.certs
	if c == nil {
		return nil, nil, errors.New("hubsim: not started")
	}
	return c.issue(deviceID, nil, x509.ExtKeyUsageClientAuth)
}

// Thumbprint returns the SHA-1 thumbprint of a DER certificate as IoT Hub
// shows it: upper-case hex.
func Thumbprint(der []byte) string {
	s := sha1.Sum(der)
	return strings.ToUpper(hex.EncodeToString(s[:]))
}

func encodePair(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func writeFiles(certFile string, certPEM []byte, keyFile string, keyPEM []byte) error {
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, certPEM, 0o644)
}

// certNames returns the SAN list for the server certificate.
func certNames(host string, extra []string) []string {
	names := []string{}
	add := func(n string) {
		if h, _, err := net.SplitHostPort(n); err == nil {
			n = h
		}
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	add(host)
	for _, n := range extra {
		add(n)
	}
	for _, n := range []string{"localhost", "127.0.0.1", "::1"} {
		add(n)
	}
	return names
}
