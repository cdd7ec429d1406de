package opcua

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
)

var (
	_ southbound.Adapter  = (*Adapter)(nil)
	_ southbound.Executor = (*Adapter)(nil)
	_ southbound.Caller   = (*Adapter)(nil)
)

// Adapter reads, writes and calls the nodes of one OPC UA server.
type Adapter struct {
	name   string
	cfg    Config
	log    *slog.Logger
	devs   []*device
	byName map[string]*device
	items  []*item // by client handle (index)
	trust  *trustList

	mu     sync.Mutex
	client *opcua.Client // the open session; nil while disconnected

	started atomic.Bool
	stopped chan struct{} // closed when Run returns
	st      stats
}

// device is one configured device.
type device struct {
	idx     int
	name    string
	cfg     DeviceConfig
	items   []*item
	points  map[string]*item
	methods map[string]*method
}

// item is one point: a node read as one value or one array.
type item struct {
	handle   uint32
	dev      *device
	name     string
	unit     string
	node     *ua.NodeID
	nodeText string
	conv     conv
	length   int
	writable bool
	cfg      PointConfig
	lastSrc  time.Time // source timestamp of the last value passed up (owner goroutine only)
}

// method is one configured OPC UA method.
type method struct {
	name           string
	object, method *ua.NodeID
	inputs         []conv
	inputNames     []string
	outputs        []string
}

// New builds an adapter from a config that passed SetDefaults and
// Validate. It does no I/O. A nil log discards.
func New(name string, cfg Config, log *slog.Logger) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("opcua %s: %w", name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{name: name, cfg: cfg, log: log.With("adapter", name), byName: map[string]*device{},
		trust: newTrustList(cfg.PKIDir, cfg.Trusted), stopped: make(chan struct{})}
	a.st.s.Endpoint = cfg.Endpoint
	a.st.s.Security = cfg.Security.Policy + "/" + cfg.Security.Mode
	for i, dc := range cfg.Devices {
		d := &device{idx: i, name: dc.Name, cfg: dc, points: map[string]*item{}, methods: map[string]*method{}}
		for _, pc := range dc.Points {
			node, _ := ParseNodeID(pc.Node) // checked by Validate
			it := &item{handle: uint32(len(a.items)), dev: d, name: pc.Name, unit: pc.Unit, node: node,
				nodeText: pc.Node, conv: newConv(pc), length: pc.Length, writable: pc.Writable, cfg: pc}
			a.items = append(a.items, it)
			d.items = append(d.items, it)
			d.points[pc.Name] = it
		}
		for _, mc := range dc.Methods {
			obj, _ := ParseNodeID(mc.Object)
			mid, _ := ParseNodeID(mc.Method)
			m := &method{name: mc.Name, object: obj, method: mid, outputs: mc.Outputs}
			for _, in := range mc.Inputs {
				m.inputs = append(m.inputs, conv{t: types[in]})
				m.inputNames = append(m.inputNames, in)
			}
			d.methods[mc.Name] = m
		}
		a.devs = append(a.devs, d)
		a.byName[d.name] = d
		a.st.s.Devices = append(a.st.s.Devices, DeviceStats{Name: d.name, Mode: dc.Mode})
	}
	return a, nil
}

// Stats returns a snapshot of the adapter's counters.
func (a *Adapter) Stats() Stats { return a.st.snapshot() }

// Run connects to the server, subscribes and polls, and hands readings to
// up until ctx ends, reconnecting forever with back-off. It returns nil
// after every goroutine it started has exited; it is called once. A PKI
// directory that cannot hold the application certificate, and a user
// certificate or key that cannot be read, are the errors that stop it:
// retrying cannot help.
func (a *Adapter) Run(ctx context.Context, up southbound.Uplink) error {
	if !a.started.CompareAndSwap(false, true) {
		return fmt.Errorf("opcua %s: Run called twice", a.name)
	}
	defer close(a.stopped)
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	uri := a.cfg.ApplicationURI
	if uri == "" {
		uri = "urn:edgegw:" + host
	}
	app, err := loadOrCreateAppCert(a.cfg.PKIDir, uri, host)
	if err != nil {
		return fmt.Errorf("opcua %s: %w", a.name, err)
	}
	s := &session{a: a, app: app}
	if err := s.loadUser(); err != nil {
		return fmt.Errorf("opcua %s: %w", a.name, err)
	}
	readings := make(chan edgegw.Reading, 64)
	s.out = readings
	var wg sync.WaitGroup
	wg.Go(func() { a.submit(ctx, up, readings) })
	s.loop(ctx)
	wg.Wait()
	return nil
}

// submit hands readings to the uplink in order. The channel is bounded: a
// slow uplink holds up the session goroutine, and with it the server's
// publish responses, so that values wait in the server's queues instead
// of being dropped here.
func (a *Adapter) submit(ctx context.Context, up southbound.Uplink, in <-chan edgegw.Reading) {
	southbound.SubmitAll(ctx, up, in, a.log, "opcua", func(r edgegw.Reading, err error) {
		a.st.device(a.byName[r.Device].idx, func(s *DeviceStats) {
			if err != nil {
				s.SubmitErrors++
			} else {
				s.Readings++
			}
		})
	})
}

// current returns the open session's client, or nil.
func (a *Adapter) current() *opcua.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.client
}

func (a *Adapter) setCurrent(c *opcua.Client) {
	a.mu.Lock()
	a.client = c
	a.mu.Unlock()
	a.st.update(func(s *Stats) { s.Connected = c != nil })
}
