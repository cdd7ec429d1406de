package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// loadCert reads a PEM certificate (chain) and its private key. The key
// file gets the same permission warning as key files.
func loadCert(certFile, keyFile, id string, log *slog.Logger) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readSecretFile(keyFile, id, log)
	if err != nil {
		return nil, fmt.Errorf("cert_key_file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// tls errors name the PEM block types, never key material.
		return nil, fmt.Errorf("%s with %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	if cert.Leaf != nil && time.Now().After(cert.Leaf.NotAfter) {
		log.Warn("client certificate has expired", "identity", id, "file", certFile,
			"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// CertExpiry returns when the identity's client certificate expires, or an
// error if it has none.
func (id *Identity) CertExpiry() (time.Time, error) {
	if id.cert == nil || id.cert.Leaf == nil {
		return time.Time{}, errors.New("identity has no client certificate")
	}
	return id.cert.Leaf.NotAfter, nil
}
