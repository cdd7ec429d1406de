package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/northbound"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
	"github.com/edgegw/edgegw/southbound/modbus"
	"github.com/edgegw/edgegw/southbound/opcua"
	"github.com/edgegw/edgegw/southbound/serial"
	"github.com/edgegw/edgegw/southbound/simulator"
)

// StatusConfig enables a small read-only HTTP endpoint for operations:
// GET /status (JSON: every identity's connection state, the queue's depth
// and drops, each adapter's counters) and GET /healthz (200 once running).
type StatusConfig struct {
	Listen string `yaml:"listen"` // e.g. 127.0.0.1:9470; empty = off
}

// Status is what GET /status returns.
type Status struct {
	Time       time.Time           `json:"time"`
	Identities []northbound.Status `json:"identities"`
	Buffer     buffer.Stats        `json:"buffer"`
	Adapters   map[string]any      `json:"adapters"`
}

// Status returns a snapshot of every room's state for operations. It is
// valid once Ready is closed.
func (g *Gateway) Status() Status {
	g.mu.Lock()
	pool, q := g.pool, g.queue
	g.mu.Unlock()
	st := Status{Time: time.Now().UTC(), Adapters: map[string]any{}}
	if pool != nil {
		st.Identities = pool.Status()
	}
	if q != nil {
		st.Buffer = q.Stats()
	}
	for _, a := range g.adapters {
		if s, ok := statsOf(a.Adapter); ok {
			st.Adapters[a.name] = s
		}
	}
	return st
}

// statsOf returns the counters of an adapter of a kind the gateway knows.
func statsOf(a any) (any, bool) {
	switch a := a.(type) {
	case *lanmqtt.Adapter:
		return a.Stats(), true
	case *modbus.Adapter:
		return a.Stats(), true
	case *opcua.Adapter:
		return a.Stats(), true
	case *serial.Adapter:
		return a.Stats(), true
	case *simulator.Simulator:
		return a.Stats(), true
	}
	return nil, false
}

// serveStatus runs the status endpoint until ctx ends.
func (g *Gateway) serveStatus(ctx context.Context, addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("status endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(g.Status())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-g.ready:
			fmt.Fprintln(w, "ok")
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("status endpoint stopped", "err", err)
		}
	})
	log.Info("status endpoint listening", "addr", ln.Addr().String())
	g.mu.Lock()
	g.statusAddr = ln.Addr().String()
	g.mu.Unlock()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		wg.Wait()
	}, nil
}

// StatusAddr returns the status endpoint's address, or "" when it is off.
func (g *Gateway) StatusAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.statusAddr
}
