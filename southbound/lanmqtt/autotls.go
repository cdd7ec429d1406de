package lanmqtt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Automatic LAN TLS: the gateway is its own certificate authority, as an
// IoT Edge device is for its leaf devices. On first start it creates a CA
// and a server certificate signed by it in its directory; LAN devices trust
// the CA (ca.pem), once. Later starts reuse both. The server certificate is
// issued again, under the same CA, when its host names change or when it
// nears its end (checked at start and on each TLS handshake, so a gateway
// that runs for years keeps a valid one). The CA is never replaced: a new
// CA would lock out every device that trusts the old one.
//
// Files in the directory (keys 0600, directory 0700):
//
//	ca.pem          the CA certificate: give it to LAN devices
//	ca-key.pem      the CA key (PKCS #8)
//	server.pem      the server certificate
//	server-key.pem  its key
//
// Each file is written to a temporary name and renamed, a key before its
// certificate, so a crash leaves either the old pair or a new key that does
// not match its certificate, which the next start replaces.
const (
	caCertName     = "ca.pem"
	caKeyName      = "ca-key.pem"
	serverCertName = "server.pem"
	serverKeyName  = "server-key.pem"

	caLifetime     = 10 * 365 * 24 * time.Hour
	serverLifetime = 365 * 24 * time.Hour
	// renewBefore is how long before its end a server certificate is
	// replaced.
	renewBefore = 30 * 24 * time.Hour
	// backdate covers devices whose clocks run a little behind.
	backdate = time.Hour
)

// autoCert holds the CA and the current server certificate of one
// adapter's automatic TLS.
type autoCert struct {
	dir   string
	hosts []string // normalised: lower-case names, canonical IPs
	log   *slog.Logger
	now   func() time.Time

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey

	mu   sync.Mutex
	cert *tls.Certificate // Leaf set
}

// defaultHosts are the names a server certificate is for when none are
// configured: this machine's host name, localhost and the loopback
// addresses.
func defaultHosts() []string {
	var hosts []string
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return append(hosts, "localhost", "127.0.0.1", "::1")
}

// normalHosts returns hosts lower-cased (names) or in canonical form (IP
// addresses), without duplicates, sorted.
func normalHosts(hosts []string) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		} else {
			h = strings.TrimSuffix(strings.ToLower(h), ".")
		}
		out = append(out, h)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// openAutoCert loads the CA from dir, creating dir and the CA when there is
// none, and loads the server certificate for hosts, issuing a new one when
// it is missing, damaged, for other hosts, not from this CA or near its end.
func openAutoCert(dir string, hosts []string, log *slog.Logger, now func() time.Time) (*autoCert, error) {
	ac := &autoCert{dir: dir, hosts: normalHosts(hosts), log: log, now: now}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := ac.loadCA(); err != nil {
		return nil, err
	}
	if cert, err := ac.loadServer(); err == nil {
		ac.cert = cert
		return ac, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		ac.log.Info("lanmqtt: issuing a new server certificate", "reason", err.Error())
	}
	cert, err := ac.issue()
	if err != nil {
		return nil, err
	}
	if err := ac.writeServer(cert); err != nil {
		return nil, err
	}
	ac.cert = cert
	return ac, nil
}

// caPath is the CA certificate LAN devices must trust.
func (ac *autoCert) caPath() string { return filepath.Join(ac.dir, caCertName) }

// loadCA reads the CA, or creates it when its certificate does not exist.
// A CA certificate without its key, or one near its end, is an error for
// the operator to resolve: replacing it silently would lock out devices.
func (ac *autoCert) loadCA() error {
	certPEM, err := os.ReadFile(ac.caPath())
	if errors.Is(err, fs.ErrNotExist) {
		return ac.createCA()
	}
	if err != nil {
		return err
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", ac.caPath(), err)
	}
	if !cert.IsCA {
		return fmt.Errorf("%s: not a CA certificate", ac.caPath())
	}
	keyPath := filepath.Join(ac.dir, caKeyName)
	key, err := readKey(keyPath)
	if err == nil && !key.PublicKey.Equal(cert.PublicKey) {
		err = errors.New("does not belong to " + caCertName)
	}
	if err != nil {
		return fmt.Errorf("CA key %s: %w (restore it, or remove %s and %s to create a new CA that LAN devices must then trust)", keyPath, err, caCertName, caKeyName)
	}
	if !ac.now().Add(renewBefore).Before(cert.NotAfter) {
		return fmt.Errorf("CA %s ends %s: remove %s and %s to create a new CA that LAN devices must then trust", ac.caPath(), cert.NotAfter.Format(time.DateOnly), caCertName, caKeyName)
	}
	ac.ca, ac.caKey = cert, key
	return nil
}

func (ac *autoCert) createCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	name := "edgegw LAN CA"
	if h, err := os.Hostname(); err == nil && h != "" {
		name += " " + h
	}
	now := ac.now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"edgegw"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(ac.dir, caKeyName), key); err != nil {
		return err
	}
	if err := writeFileAtomic(ac.caPath(), pemCert(der), 0o644); err != nil {
		return err
	}
	ac.log.Info("lanmqtt: created a LAN CA", "ca", ac.caPath(), "not_after", cert.NotAfter.Format(time.DateOnly))
	ac.ca, ac.caKey = cert, key
	return nil
}

// loadServer returns the stored server certificate if it can be served.
func (ac *autoCert) loadServer() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(filepath.Join(ac.dir, serverCertName))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(ac.dir, serverKeyName))
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err == nil && cert.Leaf == nil { // GODEBUG x509keypairleaf=0
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	if err != nil {
		return nil, err
	}
	leaf := cert.Leaf
	switch {
	case leaf.CheckSignatureFrom(ac.ca) != nil:
		return nil, errors.New("server certificate not signed by the CA")
	case !slices.Equal(certHosts(leaf), ac.hosts):
		return nil, fmt.Errorf("hosts changed from %v to %v", certHosts(leaf), ac.hosts)
	case ac.nearEnd(leaf):
		return nil, fmt.Errorf("server certificate ends %s", leaf.NotAfter.Format(time.DateOnly))
	}
	return &cert, nil
}

// nearEnd reports whether leaf should be replaced by now, when a new
// certificate would last longer (it cannot outlast the CA).
func (ac *autoCert) nearEnd(leaf *x509.Certificate) bool {
	return !ac.now().Add(renewBefore).Before(leaf.NotAfter) && ac.ca.NotAfter.After(leaf.NotAfter)
}

// certHosts returns the names and addresses leaf is for, normalised.
func certHosts(leaf *x509.Certificate) []string {
	hosts := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return normalHosts(hosts)
}

// issue signs a new server certificate for ac.hosts.
func (ac *autoCert) issue() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := ac.now()
	end := now.Add(serverLifetime)
	if end.After(ac.ca.NotAfter) {
		end = ac.ca.NotAfter // a certificate cannot outlast its CA
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: ac.hosts[0], Organization: []string{"edgegw"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     end,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range ac.hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ac.ca, &key.PublicKey, ac.caKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ac.log.Info("lanmqtt: issued a server certificate", "hosts", ac.hosts, "not_after", leaf.NotAfter.Format(time.DateOnly))
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func (ac *autoCert) writeServer(cert *tls.Certificate) error {
	if err := writeKey(filepath.Join(ac.dir, serverKeyName), cert.PrivateKey.(*ecdsa.PrivateKey)); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(ac.dir, serverCertName), pemCert(cert.Certificate[0]), 0o644)
}

// getCertificate is the listener's tls.Config.GetCertificate: the current
// server certificate, replaced first when it nears its end. A replacement
// that cannot be written to disk is served anyway (and written again at the
// next start).
func (ac *autoCert) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if !ac.nearEnd(ac.cert.Leaf) {
		return ac.cert, nil
	}
	cert, err := ac.issue()
	if err != nil {
		ac.log.Warn("lanmqtt: cannot renew the server certificate", "err", err)
		return ac.cert, nil
	}
	if err := ac.writeServer(cert); err != nil {
		ac.log.Warn("lanmqtt: cannot store the renewed server certificate", "err", err)
	}
	ac.cert = cert
	return cert, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1))
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// parseCertPEM returns the first certificate in data.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return ek, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// writeFileAtomic replaces path with data: written and synced under a
// temporary name, renamed, and the directory synced.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
