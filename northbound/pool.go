package northbound

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/northbound/dps"
	"golang.org/x/time/rate"
)

// Pool is the set of hub connections, one per identity.
type Pool struct {
	cfg      Config
	prof     profile
	ep       *endpoint // the configured hub; nil when DPS assigns every identity's
	roots    *x509.CertPool
	reg      *dps.Registrar // nil when no identity is provisioned by DPS
	cache    *dps.Cache     // nil: assignments are not kept
	hubsMu   sync.Mutex
	hubs     map[string]*endpoint // assigned hubs by host:port
	q        Queue
	down     Downlink
	log      *slog.Logger
	warn     *floodLog // connection failures, dropped messages
	note     *floodLog // connections restored
	limiter  *rate.Limiter
	schedule identity.Schedule

	mu      sync.Mutex // guards the fields below; links change on a reload (reload.go)
	running bool
	links   []*link
	byID    map[edgegw.DeviceID]*link
	runCtx  context.Context // Run's, while it starts links
	runWG   *sync.WaitGroup // Run's, while it starts links; nil otherwise
}

// New checks cfg (after filling its defaults) and the identities, loads
// their keys and certificates (reading key and certificate files) and
// returns a pool ready to Run. It does no network I/O. log nil discards.
func New(cfg Config, ids []identity.Config, q Queue, down Downlink, log *slog.Logger) (*Pool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if q == nil || down == nil {
		return nil, errors.New("northbound: a queue and a downlink are required")
	}
	cfg.SetDefaults()
	if err := errors.Join(cfg.Validate(), cfg.ValidateHost(ids), edgegw.PrefixErrors("identities", cfg.ValidateIdentities(ids))); err != nil {
		return nil, err
	}
	roots, err := loadRoots(&cfg)
	if err != nil {
		return nil, err
	}
	var ep *endpoint
	if cfg.Host != "" {
		if ep, err = newEndpoint(&cfg, roots); err != nil {
			return nil, err
		}
		if cfg.Insecure {
			log.Warn("hub connection is not encrypted (insecure: true); use only for local tests", "url", ep.url)
		}
	}
	p := &Pool{
		cfg:      cfg,
		prof:     newProfile(&cfg),
		ep:       ep,
		roots:    roots,
		hubs:     map[string]*endpoint{},
		q:        q,
		down:     down,
		log:      log,
		warn:     newFloodLog(log, 10*time.Second, 5),
		note:     newFloodLog(log, 10*time.Second, 5),
		limiter:  rate.NewLimiter(rate.Limit(cfg.ConnectRate), cfg.ConnectBurst),
		schedule: identity.Schedule{TTL: cfg.TokenTTL},
		byID:     make(map[edgegw.DeviceID]*link, len(ids)),
	}
	var errs []error
	for i, ic := range ids {
		loaded, err := identity.LoadAll(ic, log)
		if err != nil {
			errs = append(errs, edgegw.PrefixErrors(fmt.Sprintf("identities[%d]", i), err))
			continue
		}
		for _, id := range loaded {
			if id.DPS != nil && p.reg == nil {
				p.reg = &dps.Registrar{RootCAs: roots, ConnectTimeout: cfg.ConnectTimeout, RequestTimeout: cfg.AckTimeout, TokenTTL: cfg.TokenTTL}
				if cfg.ProvisioningDir != "" {
					p.cache = &dps.Cache{Dir: cfg.ProvisioningDir}
				}
			}
			l := newLink(p, id)
			p.links = append(p.links, l)
			p.byID[id.ID] = l
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Run connects every identity and keeps it connected until ctx ends. It
// returns nil after all connections are closed and all goroutines it
// started have exited. A per-identity failure (a refused key, an
// unreachable hub) is retried with back-off and shows in Status; it never
// stops the other identities.
func (p *Pool) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return errors.New("northbound: pool is already running")
	}
	p.running = true
	defer func() {
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()

	url := "(assigned by DPS)"
	if p.ep != nil {
		url = p.ep.url
	}
	p.log.Info("connecting identities", "count", len(p.links), "url", url,
		"profile", p.cfg.Profile, "connect_rate", p.cfg.ConnectRate)
	var wg sync.WaitGroup
	wg.Add(1) // Run's own count: Add may start links until ctx ends
	p.runCtx, p.runWG = ctx, &wg
	for _, l := range p.links {
		l.start(ctx, &wg)
	}
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	p.runCtx, p.runWG = nil, nil
	p.mu.Unlock()
	wg.Done()
	wg.Wait()
	return nil
}

// hasTwin reports whether the hub keeps a twin that can be read.
func (p *Pool) hasTwin() bool { return p.prof.twinGetTopic("0") != "" }
