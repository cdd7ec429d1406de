package opcua

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The application instance certificate lives in <pki>/own (cert.der,
// key.pem). Trusted server certificates are the files in <pki>/trusted;
// a refused one is written to <pki>/rejected/<thumbprint>.der.

// appCert is the gateway's application instance certificate and key.
type appCert struct {
	der []byte
	key *rsa.PrivateKey
	uri string
}

// loadOrCreateAppCert returns the certificate in dir/own, creating it on
// first use: RSA 2048, SHA-256, the application URI and host name in its
// subject alternative names, valid for 20 years. Two adapters sharing dir
// may race on the first start: the pair is written to a temporary directory
// renamed into place, and the loser loads the winner's.
func loadOrCreateAppCert(dir, uri, host string) (*appCert, error) {
	own := filepath.Join(dir, "own")
	if c, err := loadAppCert(own); err == nil {
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".own-")
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	defer os.RemoveAll(tmp)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("pki: key: %w", err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("pki: application uri: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "edgegw", Organization: []string{"edgegw"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(20, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment |
			x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
		DNSNames:              []string{host},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: certificate: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := writeSync(filepath.Join(tmp, "key.pem"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeSync(filepath.Join(tmp, "cert.der"), der, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, own); err != nil {
		if c, lerr := loadAppCert(own); lerr == nil { // another adapter made it first
			return c, nil
		}
		return nil, fmt.Errorf("pki: %w", err)
	}
	return &appCert{der: der, key: key, uri: uri}, nil
}

func writeSync(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func loadAppCert(own string) (*appCert, error) {
	der, err := os.ReadFile(filepath.Join(own, "cert.der"))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(own, "key.pem"))
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", own, err)
	}
	key, err := parseRSAKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", own, err)
	}
	uri := ""
	if len(cert.URIs) > 0 {
		uri = cert.URIs[0].String()
	}
	return &appCert{der: der, key: key, uri: uri}, nil
}

// parseRSAKey reads an RSA private key in PEM (PKCS#1 or PKCS#8).
func parseRSAKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block in key file")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("key is not RSA")
	}
	return rk, nil
}

// readCertFile reads a certificate in DER or PEM and returns its DER.
func readCertFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil {
		data = block.Bytes
	}
	if _, err := x509.ParseCertificate(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// Thumbprint is the SHA-1 thumbprint of a DER certificate in upper-case
// hex, as OPC UA tools show it.
func Thumbprint(der []byte) string {
	s := sha1.Sum(der)
	return strings.ToUpper(hex.EncodeToString(s[:]))
}

// trustList decides whether a server certificate is trusted: its
// thumbprint is in the config, or the certificate is a file in
// <pki>/trusted (read anew at each connect, so an operator can trust a
// certificate without a restart).
type trustList struct {
	dir    string
	thumbs map[string]bool
}

func newTrustList(pkiDir string, thumbs []string) *trustList {
	t := &trustList{dir: pkiDir, thumbs: map[string]bool{}}
	for _, s := range thumbs {
		if b, err := parseThumbprint(s); err == nil {
			t.thumbs[strings.ToUpper(hex.EncodeToString(b))] = true
		}
	}
	return t
}

// trusted reports whether der is trusted.
func (t *trustList) trusted(der []byte) bool {
	if t.thumbs[Thumbprint(der)] {
		return true
	}
	entries, err := os.ReadDir(filepath.Join(t.dir, "trusted"))
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		c, err := readCertFile(filepath.Join(t.dir, "trusted", e.Name()))
		if err == nil && bytes.Equal(c, der) {
			return true
		}
	}
	return false
}

// reject keeps a refused certificate in <pki>/rejected for an operator to
// inspect and move to trusted/, which it creates too: `mv` into a missing
// trusted would rename the file to "trusted" instead. It returns the file's
// path.
func (t *trustList) reject(der []byte) string {
	dir := filepath.Join(t.dir, "rejected")
	path := filepath.Join(dir, Thumbprint(der)+".der")
	if err := os.MkdirAll(filepath.Join(t.dir, "trusted"), 0o700); err != nil {
		return ""
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	if err := os.WriteFile(path, der, 0o644); err != nil {
		return ""
	}
	return path
}
