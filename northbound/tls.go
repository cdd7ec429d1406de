package northbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/gorilla/websocket"

	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/internal/wsconn"
)

// endpoint is where and how the pool dials.
type endpoint struct {
	url        string // for logs and errors: mqtts://, wss://, tcp://, ws://
	addr       string // host:port
	ws         bool   // MQTT over WebSocket at wsPath
	wsPath     string
	serverName string // TLS server name
	roots      *x509.CertPool
	// sessions is shared by identities that authenticate in MQTT CONNECT
	// (SAS, password): resuming a TLS session then skips the full
	// handshake on reconnects. Identities with client certificates never
	// share it, since a resumed session carries the certificate of the
	// session it resumes.
	sessions tls.ClientSessionCache
	shared   *tls.Config // for identities without a client certificate
}

// loadRoots returns the CA pool hubs' certificates are verified against:
// RootCAs, the CAFile's certificates, or nil for the system roots.
func loadRoots(c *Config) (*x509.CertPool, error) {
	switch {
	case c.Insecure:
		return nil, nil
	case c.RootCAs != nil:
		return c.RootCAs, nil
	case c.CAFile != "":
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificates in it", c.CAFile)
		}
		return roots, nil
	}
	return nil, nil
}

// newEndpoint returns the endpoint of the configured hub (Host, or the
// Address dialled in its place).
func newEndpoint(c *Config, roots *x509.CertPool) (*endpoint, error) {
	addr := c.Address
	if addr == "" {
		addr = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	}
	return makeEndpoint(c, addr, roots)
}

// makeEndpoint returns an endpoint that dials addr and verifies the
// certificate of addr's host against roots. Each hub has its own endpoint
// (and TLS session cache): identities that DPS assigned to different hubs
// verify each hub by its own name.
func makeEndpoint(c *Config, addr string, roots *x509.CertPool) (*endpoint, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	e := &endpoint{serverName: host, addr: addr, ws: c.Transport == TransportWebSocket, wsPath: c.WebSocketPath}
	scheme := map[[2]bool]string{{false, false}: "mqtts", {false, true}: "wss", {true, false}: "tcp", {true, true}: "ws"}[[2]bool{c.Insecure, c.Transport == TransportWebSocket}]
	e.url = scheme + "://" + addr
	if c.Transport == TransportWebSocket {
		e.url += c.WebSocketPath
	}
	if c.Insecure {
		return e, nil
	}
	e.roots = roots
	e.sessions = tls.NewLRUClientSessionCache(64)
	e.shared = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: e.roots, ServerName: e.serverName, ClientSessionCache: e.sessions}
	return e, nil
}

// tlsConfig returns the TLS configuration for one identity, or nil for
// plaintext. TLS 1.2 is the floor; the hub's certificate is verified
// against the configured CAs or the system roots.
func (e *endpoint) tlsConfig(id *identity.Identity) *tls.Config {
	if e.sessions == nil {
		return nil
	}
	cert := id.Certificate()
	if cert == nil {
		return e.shared // tls.Dial does not modify it
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: e.roots, ServerName: e.serverName,
		Certificates: []tls.Certificate{*cert}}
}

// dial opens the transport for id (TCP, TLS, or a WebSocket over either)
// until ctx ends; MQTT runs on what it returns.
func (e *endpoint) dial(ctx context.Context, id *identity.Identity) (net.Conn, error) {
	cfg := e.tlsConfig(id)
	if e.ws {
		scheme := "wss"
		if cfg == nil {
			scheme = "ws"
		}
		d := websocket.Dialer{TLSClientConfig: cfg, Subprotocols: []string{"mqtt"},
			ReadBufferSize: 512, WriteBufferSize: 512, HandshakeTimeout: 0}
		ws, resp, err := d.DialContext(ctx, scheme+"://"+e.addr+e.wsPath, nil)
		if err != nil {
			if resp != nil {
				return nil, fmt.Errorf("websocket upgrade: %s: %w", resp.Status, err)
			}
			return nil, err
		}
		return wsconn.New(ws, nil), nil
	}
	var d net.Dialer
	if cfg == nil {
		return d.DialContext(ctx, "tcp", e.addr)
	}
	return (&tls.Dialer{NetDialer: &d, Config: cfg}).DialContext(ctx, "tcp", e.addr)
}
