package hubsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"golang.org/x/time/rate"
)

// DPS emulates Azure IoT Hub's Device Provisioning Service in front of one
// or more Hubs: the device API over MQTT/TLS (register, operation status
// polling, retry-after, 429 throttling), a subset of the provisioning
// service REST API over HTTPS (individual enrollments, enrollment groups,
// registration states), symmetric-key (individual and derived group keys)
// and X.509 attestation, and allocation across the linked hubs with DPS's
// policies. An assigned device is created (or updated, or moved) in the
// registry of its hub, with the same key or certificate it registered
// with. The device API is also served over WebSocket at /$iothub/websocket
// on the HTTPS port.
//
// Set the fields, call Start after the linked hubs have started, and Close
// when done; Close does not close the hubs. See the package documentation
// for the protocol details and the SDK settings.
type DPS struct {
	IDScope  string       // default DefaultIDScope
	HostName string       // name in certificates and service SAS audiences; default "localhost"
	MQTTAddr string       // MQTT/TLS listen address; default "127.0.0.1:0"
	HTTPAddr string       // HTTPS (service REST) listen address; default "127.0.0.1:0"
	Hubs     []LinkedHub  // the hubs devices are assigned to; at least one
	CA       *CA          // signs the server certificate; nil = DataDir's, or a new one
	DataDir  string       // "" = memory only; else enrollments and registrations persist here
	Logger   *slog.Logger // nil = discard

	// AllocationPolicy is the default for enrollments that set none:
	// AllocationHashed (default), AllocationGeoLatency or AllocationStatic.
	AllocationPolicy string
	// RetryAfter is the retry-after given with 202 and 429 answers, in
	// whole seconds (rounded up); 0 = 1 s.
	RetryAfter time.Duration
	// AssignDelay is how long an operation stays "assigning" before its
	// result shows; 0 = the first poll sees it.
	AssignDelay time.Duration
	// RequestsPerSecond limits register and poll requests across all
	// devices, as DPS's per-unit quota does; beyond it the answer is 429
	// with retry-after. 0 = unlimited.
	RequestsPerSecond float64
	ClockSkew         time.Duration // SAS expiry tolerance; 0 = 5 min; < 0 = none

	mu       sync.Mutex
	enroll   map[string]*Enrollment    // individual, by registration id (lower case)
	groups   map[string]*Enrollment    // by group id (lower case)
	regs     map[string]*registration  // by registration id (lower case)
	ops      map[string]*operation     // by operation id
	conns    map[*mqtt.Client]*dpsConn // live connections
	wsConns  map[net.Conn]struct{}     // websocket connections, closed on Close
	owner    Policy                    // provisioningserviceowner
	dirty    bool
	throttle int // requests still to answer 429 (ThrottleNext)
	limiter  *rate.Limiter
	stats    dpsCounters

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

// DefaultIDScope is the ID scope of a DPS that sets none.
const DefaultIDScope = "0ne00000001"

// LinkedHub is a hub linked to the DPS.
type LinkedHub struct {
	Hub *Hub
	// Name is what devices are told as assignedHub and what enrollments
	// list in iotHubs; default: the host:port of the hub's MQTT listener
	// with a name its certificate covers (such as "localhost:40123"),
	// which the hub accepts in usernames and SAS audiences. Devices
	// connect to it as given (port 8883 when it has none).
	Name string
	// Weight is the hub's allocationWeight (1-1000) for hashed allocation;
	// 0 = 1.
	Weight int
	// Exclude keeps the hub out of allocation unless an enrollment lists
	// it (applyAllocationPolicy = false).
	Exclude bool
}

type dpsCounters struct {
	registers, polls, assigned, refused, throttled uint64
}

// DPSStats are counters since Start.
type DPSStats struct {
	Connected  int    // connections open now
	Registers  uint64 // register requests
	Polls      uint64 // operation status requests
	Assigned   uint64 // registrations that ended assigned
	Refused    uint64 // requests answered 401 (bad key or certificate, unknown device)
	Throttled  uint64 // requests answered 429
	Operations int    // operations remembered now
}

// Stats returns the DPS counters.
func (d *DPS) Stats() DPSStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	return DPSStats{Connected: len(d.conns), Registers: s.registers, Polls: s.polls, Assigned: s.assigned,
		Refused: s.refused, Throttled: s.throttled, Operations: len(d.ops)}
}

func (d *DPS) initLocked() {
	if d.enroll == nil {
		d.enroll = map[string]*Enrollment{}
		d.groups = map[string]*Enrollment{}
		d.regs = map[string]*registration{}
		d.ops = map[string]*operation{}
		d.conns = map[*mqtt.Client]*dpsConn{}
		d.wsConns = map[net.Conn]struct{}{}
		d.owner = Policy{Name: "provisioningserviceowner", PrimaryKey: NewKey(), SecondaryKey: NewKey()}
	}
}

// Start checks the linked hubs, loads the saved state (with a data dir)
// and listens. The DPS stops when ctx ends or Close is called.
func (d *DPS) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return errors.New("hubsim dps: already started")
	}
	d.started = true
	d.initLocked()
	d.mu.Unlock()
	if err := d.setDefaults(); err != nil {
		d.shutdown()
		return err
	}
	if err := d.start(ctx); err != nil {
		d.shutdown()
		return err
	}
	return nil
}

func (d *DPS) setDefaults() error {
	if d.IDScope == "" {
		d.IDScope = DefaultIDScope
	}
	if d.HostName == "" {
		d.HostName = "localhost"
	}
	if d.MQTTAddr == "" {
		d.MQTTAddr = "127.0.0.1:0"
	}
	if d.HTTPAddr == "" {
		d.HTTPAddr = "127.0.0.1:0"
	}
	d.log = d.Logger
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.ClockSkew == 0 {
		d.ClockSkew = DefaultClockSkew
	} else if d.ClockSkew < 0 {
		d.ClockSkew = 0
	}
	if d.RetryAfter <= 0 {
		d.RetryAfter = time.Second
	}
	switch d.AllocationPolicy {
	case "":
		d.AllocationPolicy = AllocationHashed
	case AllocationHashed, AllocationGeoLatency, AllocationStatic:
	default:
		return fmt.Errorf("hubsim dps: allocation policy must be hashed, geoLatency or static (got %q)", d.AllocationPolicy)
	}
	if d.RequestsPerSecond > 0 {
		d.limiter = rate.NewLimiter(rate.Limit(d.RequestsPerSecond), max(1, int(d.RequestsPerSecond)))
	}
	if len(d.Hubs) == 0 {
		return errors.New("hubsim dps: no linked hubs")
	}
	seen := map[string]bool{}
	for i := range d.Hubs {
		lh := &d.Hubs[i]
		if lh.Hub == nil || lh.Hub.MQTTAddress() == "" {
			return fmt.Errorf("hubsim dps: hubs[%d] is not a started hub", i)
		}
		if lh.Name == "" {
			lh.Name = lh.Hub.gatewayHost(lh.Hub.MQTTAddress())
		}
		if seen[strings.ToLower(lh.Name)] {
			return fmt.Errorf("hubsim dps: hubs[%d]: name %q used twice", i, lh.Name)
		}
		seen[strings.ToLower(lh.Name)] = true
		if lh.Weight == 0 {
			lh.Weight = 1
		}
		if lh.Weight < 1 || lh.Weight > 1000 {
			return fmt.Errorf("hubsim dps: hubs[%d]: weight must be 1-1000 (got %d)", i, lh.Weight)
		}
		lh.Hub.addAlias(lh.Name)
	}
	return nil
}

func (d *DPS) start(ctx context.Context) error {
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if d.DataDir != "" {
		if err := os.MkdirAll(d.DataDir, 0o700); err != nil {
			return fmt.Errorf("hubsim dps: %w", err)
		}
		if err := d.load(); err != nil {
			return fmt.Errorf("hubsim dps: %w", err)
		}
	}
	c, err := loadOrCreateCerts(d.DataDir, certNames(d.HostName, nil), d.CA)
	if err != nil {
		return fmt.Errorf("hubsim dps: certificates: %w", err)
	}
	d.certs = c
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{c.serverTL},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	if d.mqttLn, err = tls.Listen("tcp", d.MQTTAddr, tlsCfg); err != nil {
		return fmt.Errorf("hubsim dps: mqtt listener: %w", err)
	}
	if d.httpLn, err = tls.Listen("tcp", d.HTTPAddr, tlsCfg); err != nil {
		return fmt.Errorf("hubsim dps: https listener: %w", err)
	}
	d.srv = d.newBroker()
	if err := d.srv.AddListener(newNetListener("dps", d.mqttLn)); err != nil {
		return fmt.Errorf("hubsim dps: %w", err)
	}
	if err := d.srv.Serve(); err != nil {
		return fmt.Errorf("hubsim dps: serve mqtt: %w", err)
	}
	d.httpSrv = &http.Server{Handler: d.httpHandler(), ErrorLog: slogErrorLog(d.log)}
	d.wg.Go(func() { _ = d.httpSrv.Serve(d.httpLn) })
	d.wg.Go(d.persistLoop)
	d.wg.Go(func() {
		select {
		case <-ctx.Done():
			d.shutdown()
		case <-d.ctx.Done():
		}
	})
	d.log.Info("hubsim dps listening", "mqtt", d.MQTTAddress(), "https", d.HTTPAddress(), "id_scope", d.IDScope, "hubs", len(d.Hubs))
	return nil
}

// Close stops the listeners, closes every connection, saves the state
// (with a data dir) and waits for all goroutines. The linked hubs keep
// running. It is safe to call more than once.
func (d *DPS) Close() error {
	d.shutdown()
	d.wg.Wait()
	var err error
	if d.DataDir != "" {
		err = d.save()
	}
	d.stopLog.Do(func() {
		if d.log != nil && d.mqttLn != nil {
			s := d.Stats()
			d.log.Info("hubsim dps stopped", "mqtt", d.MQTTAddress(), "registers", s.Registers, "assigned", s.Assigned)
		}
	})
	return err
}

func (d *DPS) shutdown() {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		ws := slices.Collect(maps.Keys(d.wsConns))
		d.mu.Unlock()
		stopEndpoints(d.cancel, d.httpSrv, d.httpLn, ws, d.srv, d.mqttLn)
	})
}

// MQTTAddress returns the host:port of the device (MQTT/TLS) listener.
func (d *DPS) MQTTAddress() string {
	if d.mqttLn == nil {
		return ""
	}
	return d.mqttLn.Addr().String()
}

// HTTPAddress returns the host:port of the service REST (HTTPS) listener.
func (d *DPS) HTTPAddress() string {
	if d.httpLn == nil {
		return ""
	}
	return d.httpLn.Addr().String()
}

// GlobalEndpoint returns the provisioning host devices dial, as
// host:port with a name the certificate covers ("localhost:40123"): the
// Node SDK's provisioningHost and the gateway's dps host.
func (d *DPS) GlobalEndpoint() string {
	return (&Hub{}).gatewayHost(d.MQTTAddress())
}

// CACertPEM returns the PEM of the CA that signed the server certificate.
func (d *DPS) CACertPEM() []byte {
	if d.certs == nil {
		return nil
	}
	return d.certs.CertPEM()
}

// ServiceConnectionString returns the provisioningserviceowner
// connection string (HostName without a port; see the package
// documentation).
func (d *DPS) ServiceConnectionString() string {
	p := d.Policy()
	return "HostName=" + d.HostName + ";SharedAccessKeyName=" + p.Name + ";SharedAccessKey=" + p.PrimaryKey
}

// Policy returns the provisioningserviceowner policy, which the service
// REST API requires.
func (d *DPS) Policy() Policy {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.initLocked()
	return d.owner
}

// hubByName returns the linked hub named name (case-insensitive).
func (d *DPS) hubByName(name string) (*LinkedHub, bool) {
	for i := range d.Hubs {
		if strings.EqualFold(d.Hubs[i].Name, name) {
			return &d.Hubs[i], true
		}
	}
	return nil, false
}
