package lanmqtt

import (
	"crypto/tls"
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/edgegw/edgegw"
)

// TLSConfig serves MQTT over TLS (on Listen and on Websocket) with the
// certificate in CertFile and KeyFile, or with Auto, one the gateway makes
// itself.
type TLSConfig struct {
	// CertFile and KeyFile name the server certificate (PEM, any
	// intermediates after it) and its key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Auto makes the gateway its own CA: on first start it creates a CA
	// and a server certificate in Dir, and logs the CA certificate LAN
	// devices must trust (Dir/ca.pem). Not with CertFile and KeyFile.
	Auto bool `yaml:"auto"`
	// Hosts are the DNS names and IP addresses LAN devices connect to,
	// which Auto's server certificate is for (default: this machine's host
	// name, localhost, 127.0.0.1 and ::1). Changing them issues a new
	// server certificate under the same CA.
	Hosts []string `yaml:"hosts"`
	// Dir is where Auto keeps its CA and server certificate. The gateway
	// sets it to <state_dir>/lan-ca unless it is given.
	Dir string `yaml:"dir"`
	// ClientCAFile (PEM, one or more certificates) lets a LAN device
	// authenticate with a client certificate issued under one of these CAs
	// whose subject CN is its device id, instead of a password or SAS
	// token, as IoT Hub's CA-signed X.509 authentication does. See
	// User.X509Thumbprint for self-signed certificates.
	ClientCAFile string `yaml:"client_ca_file"`
}

// hostRE matches a DNS name: letters, digits and hyphens in dot-separated
// labels.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)

// validate checks t; paths are relative to the adapter's config.
func (t *TLSConfig) validate() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, edgegw.Errorf("tls."+path, format, args...))
	}
	if t.Auto {
		if t.CertFile != "" || t.KeyFile != "" {
			add("auto", "cannot be used with cert_file and key_file: use either")
		}
		if t.Dir == "" {
			add("dir", "must be set with auto")
		}
		for i, h := range t.Hosts {
			if net.ParseIP(h) == nil && (!hostRE.MatchString(h) || len(h) > 253) {
				add(fmt.Sprintf("hosts[%d]", i), "must be a DNS name or an IP address (got %q)", h)
			}
		}
	} else {
		if t.CertFile == "" {
			add("cert_file", "must be set (or auto: true)")
		}
		if t.KeyFile == "" {
			add("key_file", "must be set (or auto: true)")
		}
		if len(t.Hosts) > 0 {
			add("hosts", "needs auto: true (a certificate from files names its own hosts)")
		}
		if t.Dir != "" {
			add("dir", "needs auto: true")
		}
	}
	return errs
}

// serverTLS returns the listeners' TLS configuration: the certificate
// loaded from files, or Auto's (created or renewed as needed), and the
// client certificate authentication, whose CAs it loads. Run calls it
// before serving.
func (a *Adapter) serverTLS() (*tls.Config, error) {
	t := a.cfg.TLS
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.Auto {
		hosts := t.Hosts
		if len(hosts) == 0 {
			hosts = defaultHosts()
		}
		ac, err := openAutoCert(t.Dir, hosts, a.log, time.Now)
		if err != nil {
			return nil, fmt.Errorf("auto: %s: %w", t.Dir, err)
		}
		cfg.GetCertificate = ac.getCertificate
		a.log.Info("lanmqtt: LAN devices trust "+ac.caPath(), "ca", ac.caPath())
	} else {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	x, err := newCertAuth(&a.cfg)
	if err != nil {
		return nil, err
	}
	if x != nil {
		// Asked for, not required, and not checked by TLS: the connect hook
		// checks a certificate against the user's thumbprint or the client
		// CAs. Verifying against the CAs here would turn away self-signed
		// devices, and no CA names are sent, which would keep some clients
		// (Go's among them) from offering a self-signed certificate.
		cfg.ClientAuth = tls.RequestClientCert
		a.x509.Store(x)
	}
	return cfg, nil
}
