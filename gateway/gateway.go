package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/mapping"
	"github.com/edgegw/edgegw/northbound"
	"github.com/edgegw/edgegw/southbound"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
	"github.com/edgegw/edgegw/southbound/modbus"
	"github.com/edgegw/edgegw/southbound/opcua"
	"github.com/edgegw/edgegw/southbound/serial"
	"github.com/edgegw/edgegw/southbound/simulator"
)

// Gateway is one configured gateway. Build it with New, then call Run once.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	adapters []namedAdapter

	ready      chan struct{}
	mu         sync.Mutex
	hub        *hubsim.Hub // the embedded emulator, when enabled
	pool       *northbound.Pool
	queue      *buffer.Queue
	twins      *twinStore
	statusAddr string
	notifier   notifier
}

type namedAdapter struct {
	name string
	southbound.Adapter
}

// New builds the gateway's adapters from a validated config. It does no I/O.
func New(cfg *Config, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{cfg: *cfg, log: log, ready: make(chan struct{})}
	for _, s := range cfg.Southbound {
		var (
			a   southbound.Adapter
			err error
		)
		switch {
		case s.LANMQTT != nil:
			a, err = lanmqtt.New(s.Name, *s.LANMQTT, log)
		case s.Modbus != nil:
			a, err = modbus.New(s.Name, *s.Modbus, log)
		case s.OPCUA != nil:
			a, err = opcua.New(s.Name, *s.OPCUA, log)
		case s.Serial != nil:
			a, err = serial.New(s.Name, *s.Serial, log)
		case s.Simulator != nil:
			a, err = simulator.New(s.Name, *s.Simulator, log)
		default:
			err = errors.New("no adapter kind set")
		}
		if err != nil {
			return nil, fmt.Errorf("southbound %s: %w", s.Name, err)
		}
		g.adapters = append(g.adapters, namedAdapter{s.Name, a})
	}
	return g, nil
}

// Ready is closed once every room has started.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Hub returns the embedded hub emulator, or nil when none is configured.
// It is set once Ready is closed.
func (g *Gateway) Hub() *hubsim.Hub {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hub
}

// Adapter returns the adapter named name, or nil.
func (g *Gateway) Adapter(name string) southbound.Adapter {
	for _, a := range g.adapters {
		if a.name == name {
			return a.Adapter
		}
	}
	return nil
}

// Run starts the rooms in order, runs until ctx ends or a room fails, then
// stops them in reverse order. It returns nil after a clean stop on ctx.
func (g *Gateway) Run(ctx context.Context) error {
	cfg := g.cfg
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	if cfg.Hubsim != nil && cfg.Hubsim.Enabled {
		if err := g.startHub(hubCtx, &cfg); err != nil {
			return err
		}
		defer g.hub.Close()
	}

	q, err := buffer.Open(cfg.Buffer, g.log.With("room", "buffer"))
	if err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	defer q.Close()

	mapper, err := mapping.New(cfg.Mapping)
	if err != nil {
		return fmt.Errorf("mapping: %w", err)
	}
	executors := map[string]southbound.Executor{}
	var relayers []southbound.Relayer
	for _, a := range g.adapters {
		if ex, ok := a.Adapter.(southbound.Executor); ok {
			executors[a.name] = ex
		}
		if r, ok := a.Adapter.(southbound.Relayer); ok {
			relayers = append(relayers, r)
		}
	}
	twins := newTwinStore(filepath.Join(cfg.StateDir, "twins"), g.log.With("room", "twins"))
	down := &downlink{mapper: mapper, queue: q, executors: executors, relayers: relayers, twins: twins, log: g.log}
	pool, err := northbound.New(cfg.Hub, cfg.Identities, q, down, g.log.With("room", "northbound"))
	if err != nil { // a key, certificate or CA file named in the config is unusable
		return &ConfigError{File: cfg.File, Err: hubError(err)}
	}
	// A relayed identity subscribes to direct methods and C2D at the hub
	// only while its device does, as IoT Hub sees a device (methods get
	// 404103; C2D messages wait in the hub's queue).
	for _, id := range cfg.Identities {
		if did := edgegw.DeviceID(id.ID); down.relayer(did) != nil {
			pool.SetListening(did, edgegw.Method, false)
			pool.SetListening(did, edgegw.C2D, false)
		}
	}
	for _, r := range relayers {
		r.WatchListening(func(id edgegw.DeviceID, kind edgegw.CommandKind, on bool) {
			if down.relayer(id) != nil {
				pool.SetListening(id, kind, on)
			}
		})
	}
	g.mu.Lock()
	g.pool, g.queue, g.twins = pool, q, twins
	g.mu.Unlock()

	// Northbound and the adapters run under their own contexts so that the
	// stop order is ours, not the order in which goroutines notice ctx.
	nbCtx, stopNB := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNB()
	sbCtx, stopSB := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSB()
	failed := make(chan error, 1+len(g.adapters))

	var nbWG, sbWG sync.WaitGroup
	nbWG.Go(func() {
		if err := pool.Run(nbCtx); err != nil {
			failed <- fmt.Errorf("northbound: %w", err)
		}
	})
	up := &uplink{mapper: mapper, queue: q, log: g.log, twinStore: twins}
	for _, a := range g.adapters {
		sbWG.Go(func() {
			if err := a.Run(sbCtx, up); err != nil {
				failed <- fmt.Errorf("southbound %s: %w", a.name, err)
			}
		})
	}
	// Adapters that listen say when they do; ready means they all are.
	var runErr error
	for _, a := range g.adapters {
		r, ok := a.Adapter.(interface{ Ready() <-chan struct{} })
		if !ok || runErr != nil {
			continue
		}
		select {
		case <-r.Ready():
		case runErr = <-failed:
		case <-ctx.Done():
		}
	}
	if runErr == nil && ctx.Err() == nil && cfg.Status.Listen != "" {
		stopStatus, err := g.serveStatus(ctx, cfg.Status.Listen, g.log)
		if err != nil {
			runErr = err
		} else {
			defer stopStatus()
		}
	}
	if runErr == nil && ctx.Err() == nil {
		close(g.ready)
		g.notifier.ready(g.log, func() { g.Status() })
		runErr = g.wait(ctx, failed)
	}
	g.notifier.stopping()
	g.log.Info("stopping: adapters, then northbound, then the buffer")
	stopSB()
	sbWG.Wait()
	stopNB()
	nbWG.Wait()
	return runErr
}

// wait runs until ctx ends (nil) or a room fails (its error).
func (g *Gateway) wait(ctx context.Context, failed <-chan error) error {
	g.log.Info("gateway running", "identities", len(g.cfg.Identities), "adapters", len(g.adapters), "queue", g.cfg.Buffer.Dir)
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return err
	}
}

// startHub starts the embedded hub emulator and points the hub config and
// keyless identities at it.
func (g *Gateway) startHub(ctx context.Context, cfg *Config) error {
	h := &hubsim.Hub{
		HostName: cfg.Hub.Host, // its certificate and tokens carry the name the gateway expects
		MQTTAddr: cfg.Hubsim.MQTTAddr,
		HTTPAddr: cfg.Hubsim.HTTPAddr,
		DataDir:  cfg.StateDir + "/hubsim",
		Logger:   g.log.With("room", "hubsim"),
		OnTelemetry: func(t hubsim.Telemetry) {
			g.log.Info("hub received telemetry", "device", t.DeviceID, "body", string(t.Body))
		},
	}
	if err := h.Start(ctx); err != nil {
		return fmt.Errorf("embedded hub: %w", err)
	}
	for i := range cfg.Identities {
		id := &cfg.Identities[i]
		if id.Key != "" || id.KeyFile != "" || id.CertFile != "" {
			continue
		}
		devID, modID, _ := strings.Cut(id.ID, "/")
		dev, err := h.Device(devID, modID) // registered on an earlier run
		if err != nil && modID == "" {
			dev, err = h.CreateDevice(devID)
		} else if err != nil {
			dev, err = h.CreateModule(devID, modID)
		}
		if err != nil {
			h.Close()
			return fmt.Errorf("embedded hub: register %s: %w", id.ID, err)
		}
		id.Key = edgegw.Secret(dev.PrimaryKey)
	}
	cfg.Hub.RootCAs = h.CACertPool()
	cfg.Hub.Port = portOf(h.MQTTAddress())
	cfg.Hub.Address = h.MQTTAddress() // whatever hub.host says, dial the emulator
	g.mu.Lock()
	g.hub = h
	g.mu.Unlock()
	return nil
}

// hubError puts northbound's start errors at their config paths: identity
// errors already name "identities[i]"; the rest belong to "hub".
func hubError(err error) error {
	var out []error
	for _, e := range flatten(err) {
		var fe *edgegw.FieldError
		if errors.As(e, &fe) && strings.HasPrefix(fe.Path, "identities") {
			out = append(out, e)
			continue
		}
		out = append(out, edgegw.PrefixErrors("hub", e))
	}
	return errors.Join(out...)
}
