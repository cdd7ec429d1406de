package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/mapping"
	"github.com/edgegw/edgegw/northbound"
	"github.com/edgegw/edgegw/ops"
	"github.com/edgegw/edgegw/southbound"
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
	live       *live          // what a reload changes, while Run runs (reload.go)
	reloadMu   sync.Mutex     // one reload at a time; held by Run while it stops
	start      time.Time      // when Run began
	points     *ops.Points    // latest values and plots, for the page
	commands   ops.CommandLog // command outcomes, for /status and /metrics
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
	g := &Gateway{cfg: *cfg, log: log, ready: make(chan struct{}), points: ops.NewPoints(cfg.Status.PlotResolution)}
	for _, s := range cfg.Southbound {
		a, err := newAdapter(s, log) // reload.go
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
	g.mu.Lock()
	defer g.mu.Unlock()
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
	cfg.Identities = slices.Clone(cfg.Identities) // startHub fills in keys; g.cfg stays as the file says
	g.mu.Lock()
	g.start = time.Now().UTC()
	g.mu.Unlock()
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
	down := &downlink{mapper: mapper, queue: q, executors: executors, relayers: relayers, twins: twins, log: g.log, commands: &g.commands}
	pool, err := northbound.New(cfg.Hub, cfg.Identities, q, down, g.log.With("room", "northbound"))
	if err != nil { // a key, certificate or CA file named in the config is unusable
		return &ConfigError{File: cfg.File, Err: hubError(err)}
	}
	// A relayed identity subscribes to direct methods and C2D at the hub
	// only while its device does, as IoT Hub sees a device (methods get
	// 404103; C2D messages wait in the hub's queue).
	for _, did := range cfg.Mapping.Identities {
		if down.relayer(did) != nil {
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
	up := &uplink{mapper: mapper, queue: q, log: g.log, twinStore: twins, points: g.points}
	lv := &live{mapper: mapper, pool: pool, down: down, up: up, ctx: sbCtx, wg: &sbWG, running: map[string]*runningAdapter{}}
	for _, a := range g.adapters {
		lv.start(a, func(err error) { failed <- fmt.Errorf("southbound %s: %w", a.name, err) })
	}
	g.mu.Lock()
	g.live = lv
	g.mu.Unlock()
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
		stopStatus, err := g.serveStatus(ctx)
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
	g.reloadMu.Lock() // a reload in progress ends first; none starts after
	g.mu.Lock()
	g.live = nil
	g.mu.Unlock()
	g.reloadMu.Unlock()
	g.log.Info("stopping: adapters, then northbound, then the buffer")
	stopSB()
	sbWG.Wait()
	stopNB()
	nbWG.Wait()
	g.logStopped(q)
	return runErr
}

// wait runs until ctx ends (nil) or a room fails (its error).
func (g *Gateway) wait(ctx context.Context, failed <-chan error) error {
	g.mu.Lock() // a reload may change them from now on
	ids, adapters, queue := len(g.cfg.Mapping.Identities), len(g.adapters), g.cfg.Buffer.Dir
	g.mu.Unlock()
	g.log.Info("gateway running", "identities", ids, "adapters", adapters, "queue", queue)
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
	if err := register(h, cfg.Identities); err != nil {
		h.Close()
		return err
	}
	cfg.Hub.RootCAs = h.CACertPool()
	cfg.Hub.Port = portOf(h.MQTTAddress())
	cfg.Hub.Address = h.MQTTAddress() // whatever hub.host says, dial the emulator
	g.mu.Lock()
	g.hub = h
	g.mu.Unlock()
	return nil
}

// register registers the identities without credentials with the embedded
// hub and fills in their keys.
func register(h *hubsim.Hub, ids []identity.Config) error {
	for i := range ids {
		id := &ids[i]
		if id.Key != "" || id.KeyFile != "" || id.CertFile != "" || id.DPS != nil {
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
			return fmt.Errorf("embedded hub: register %s: %w", id.ID, err)
		}
		id.Key = edgegw.Secret(dev.PrimaryKey)
	}
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
