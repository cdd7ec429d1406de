package hubsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Hub is an IoT Hub emulator. The zero value is usable: set the fields you
// need, call Start, and Close when done. Fields must not be changed after
// Start; runtime knobs (faults) have methods.
type Hub struct {
	HostName    string          // name in certificates, SAS resource URIs and usernames; default "localhost"
	MQTTAddr    string          // listen address for MQTT/TLS; default "127.0.0.1:0"
	HTTPAddr    string          // listen address for HTTPS (REST + /$iothub/websocket); default "127.0.0.1:0"
	DataDir     string          // "" = in memory only (tests); else CA/cert/registry/twins persisted here
	Logger      *slog.Logger    // nil = discard
	OnTelemetry func(Telemetry) // optional, called for each accepted telemetry message (must not block long)

	CertNames     []string       // extra names (DNS or IP) for the server certificate
	CA            *CA            // signs the server certificate; nil = DataDir's ca.pem (created on first start), or a new one
	DeviceCAs     *x509.CertPool // CAs trusted for AuthCA devices, besides the hub's own CA
	ClockSkew     time.Duration  // SAS expiry tolerance; 0 = 5 min; < 0 = none
	SessionExpiry time.Duration  // how long CleanSession=0 sessions outlive their connection; 0 = 24 h
	MaxTelemetry  int            // telemetry messages kept in memory (up to 9/8 of it), oldest dropped; 0 = 100000
	C2DQueueLimit int            // pending C2D messages per device; 0 = 50
	C2DTTL        time.Duration  // default C2D expiry; 0 = 1 h

	// BeforeConnack, if set, is called for every authenticated CONNECT on
	// the client's goroutine; it may block. A non-zero result refuses the
	// connection with that CONNACK code (3 = server unavailable, 5 = not
	// authorized).
	BeforeConnack func(ConnectInfo) byte
	// BeforePuback, if set, is called for every telemetry message before it
	// is recorded and acknowledged; it may block (delaying the PUBACK).
	// Returning false drops the message without a PUBACK.
	BeforePuback func(Telemetry) bool

	mu       sync.Mutex
	idents   map[string]*ident      // registry + state, by "device" or "device/module"
	conns    map[*mqtt.Client]*conn // live and authenticating connections
	wsConns  map[net.Conn]struct{}  // websocket connections, closed on Close
	changed  chan struct{}          // closed and replaced on every state change
	tele     []Telemetry            // recent telemetry, oldest first
	teleSeq  uint64                 // sequence number of the next telemetry
	policies map[string]*Policy
	aliases  []string // other host names accepted (DPS assignedHub names)
	dirty    bool
	faults   faultState
	stats    counters
	twinMu   sync.Mutex // serialises service twin changes and their pushes

	started   bool
	closed    bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	log       *slog.Logger
	certs     *certs
	srv       *mqtt.Server
	mqttLn    net.Listener
	httpLn    net.Listener
	httpSrv   *http.Server
	closeOnce sync.Once
	stopLog   sync.Once
}

// ConnectInfo describes a CONNECT that passed authentication.
type ConnectInfo struct {
	DeviceID, ModuleID string
	ClientID           string
	Auth               string // "sas" or "x509"
	Remote             string
}

// initLocked creates the maps; the zero Hub is usable before Start for
// registry calls.
func (h *Hub) initLocked() {
	if h.idents == nil {
		h.idents = map[string]*ident{}
		h.conns = map[*mqtt.Client]*conn{}
		h.wsConns = map[net.Conn]struct{}{}
		h.changed = make(chan struct{})
		h.policies = defaultPolicies()
	}
}

// Start loads or creates the CA, server certificate and registry, and
// listens. It returns once both listeners accept connections. The hub stops
// when ctx ends or Close is called.
func (h *Hub) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.started {
		h.mu.Unlock()
		return errors.New("hubsim: already started")
	}
	h.started = true
	h.initLocked()
	h.mu.Unlock()
	h.setDefaults()
	if err := h.start(ctx); err != nil {
		h.shutdown()
		return err
	}
	return nil
}

func (h *Hub) setDefaults() {
	if h.HostName == "" {
		h.HostName = "localhost"
	}
	if h.MQTTAddr == "" {
		h.MQTTAddr = "127.0.0.1:0"
	}
	if h.HTTPAddr == "" {
		h.HTTPAddr = "127.0.0.1:0"
	}
	h.log = h.Logger
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.ClockSkew == 0 {
		h.ClockSkew = DefaultClockSkew
	} else if h.ClockSkew < 0 {
		h.ClockSkew = 0
	}
	if h.SessionExpiry <= 0 {
		h.SessionExpiry = 24 * time.Hour
	}
	if h.MaxTelemetry <= 0 {
		h.MaxTelemetry = 100000
	}
	if h.C2DQueueLimit <= 0 {
		h.C2DQueueLimit = 50
	}
	if h.C2DTTL <= 0 {
		h.C2DTTL = time.Hour
	}
}

func (h *Hub) start(ctx context.Context) error {
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if h.DataDir != "" {
		if err := os.MkdirAll(h.DataDir, 0o700); err != nil {
			return fmt.Errorf("hubsim: %w", err)
		}
		if err := h.load(); err != nil {
			return fmt.Errorf("hubsim: %w", err)
		}
	}
	c, err := loadOrCreateCerts(h.DataDir, certNames(h.HostName, h.CertNames), h.CA)
	if err != nil {
		return fmt.Errorf("hubsim: certificates: %w", err)
	}
	h.certs = c
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{c.serverTL},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	h.mqttLn, err = tls.Listen("tcp", h.MQTTAddr, tlsCfg)
	if err != nil {
		return fmt.Errorf("hubsim: mqtt listener: %w", err)
	}
	h.httpLn, err = tls.Listen("tcp", h.HTTPAddr, tlsCfg)
	if err != nil {
		return fmt.Errorf("hubsim: https listener: %w", err)
	}
	h.srv = h.newBroker()
	if err := h.srv.AddListener(newNetListener("mqtts", h.mqttLn)); err != nil {
		return fmt.Errorf("hubsim: %w", err)
	}
	if err := h.srv.Serve(); err != nil {
		return fmt.Errorf("hubsim: serve mqtt: %w", err)
	}
	h.httpSrv = &http.Server{Handler: h.httpHandler(), ErrorLog: slogErrorLog(h.log)}
	h.wg.Go(func() { _ = h.httpSrv.Serve(h.httpLn) })
	h.wg.Go(h.persistLoop)
	h.wg.Go(func() {
		select {
		case <-ctx.Done():
			h.shutdown()
		case <-h.ctx.Done():
		}
	})
	h.log.Info("hubsim listening", "mqtt", h.MQTTAddress(), "https", h.HTTPAddress(), "host", h.HostName)
	return nil
}

// Close stops the listeners, closes every connection, saves state (with a
// data dir) and waits for all goroutines. It is safe to call more than once.
func (h *Hub) Close() error {
	h.shutdown()
	h.wg.Wait()
	var err error
	if h.DataDir != "" {
		err = h.save()
	}
	h.stopLog.Do(func() {
		if h.log != nil && h.mqttLn != nil {
			s := h.Stats()
			h.log.Info("hubsim stopped", "host", h.HostName, "mqtt", h.MQTTAddress(), "connects", s.Connects, "telemetry", s.Telemetry)
		}
	})
	return err
}

func (h *Hub) shutdown() {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.signalLocked()
		ws := slices.Collect(maps.Keys(h.wsConns))
		h.mu.Unlock()
		stopEndpoints(h.cancel, h.httpSrv, h.httpLn, ws, h.srv, h.mqttLn)
	})
}

var errHubClosed = errors.New("hub closed")

// MQTTAddress returns the host:port the MQTT/TLS listener is bound to.
func (h *Hub) MQTTAddress() string {
	if h.mqttLn == nil {
		return ""
	}
	return h.mqttLn.Addr().String()
}

// HTTPAddress returns the host:port of the HTTPS listener (REST and MQTT
// over WebSocket at /$iothub/websocket).
func (h *Hub) HTTPAddress() string {
	if h.httpLn == nil {
		return ""
	}
	return h.httpLn.Addr().String()
}

// CACertPEM returns the PEM of the CA that signed the server certificate.
func (h *Hub) CACertPEM() []byte {
	if h.certs == nil {
		return nil
	}
	return append([]byte(nil), h.certs.caPEM...)
}

// CACertPool returns a pool holding the hub's CA, for clients' RootCAs.
func (h *Hub) CACertPool() *x509.CertPool {
	if h.certs == nil {
		return nil
	}
	return h.certs.pool.Clone()
}

// signalLocked wakes everyone waiting for a state change.
func (h *Hub) signalLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// waitChange returns a channel closed at the next state change.
func (h *Hub) waitChangeLocked() <-chan struct{} { return h.changed }

func (h *Hub) sortedKeysLocked() []string {
	keys := make([]string, 0, len(h.idents))
	for k := range h.idents {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
