package ops

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed web
var webFS embed.FS

// Server serves the status listener's endpoints. Build it with NewServer;
// Start listens.
type Server struct {
	cfg      Config
	snapshot func() Status
	started  <-chan struct{}
	points   *Points
	log      *slog.Logger
	handler  http.Handler

	mu       sync.Mutex
	cached   *Status
	cachedAt time.Time
}

// cacheFor is how long one snapshot answers requests: a page left open in
// a few browsers and a scraper share it instead of each measuring the
// buffer's directory.
const cacheFor = time.Second

// NewServer returns a server for cfg (after SetDefaults). snapshot returns
// the rooms' state without Ready, which the server fills in; it is called
// at most once per second. started is closed once every room runs: before
// that /healthz and /readyz answer 503. It does no I/O.
func NewServer(cfg Config, snapshot func() Status, started <-chan struct{}, points *Points, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, snapshot: snapshot, started: started, points: points, log: log}
	s.handler = s.routes()
	return s
}

// Status returns a snapshot with its readiness, at most cacheFor old.
func (s *Server) Status() *Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached != nil && time.Since(s.cachedAt) < cacheFor {
		return s.cached
	}
	st := s.snapshot()
	select {
	case <-s.started:
		st.Ready = Evaluate(&st, s.cfg.StallAfter)
	default:
		st.Ready = Readiness{Reasons: []Reason{{Kind: NotStarted, Detail: "the gateway is starting"}}}
	}
	s.cached, s.cachedAt = &st, time.Now()
	return s.cached
}

// Handler returns the server's routes, for tests.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Status())
	})
	mux.HandleFunc("GET /points", func(w http.ResponseWriter, r *http.Request) {
		var since int64
		if v := r.URL.Query().Get("since"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				http.Error(w, "since: want unix milliseconds", http.StatusBadRequest)
				return
			}
			since = n
		}
		writeJSON(w, http.StatusOK, s.points.View(time.Now(), since))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.started:
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_ = s.snapshot() // every room answers (a deadlocked room hangs the check)
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := s.Status().Ready
		code := http.StatusOK
		if !rd.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rd)
	})
	reg := newRegistry(&collector{snapshot: s.Status, points: s.points.Counts})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	web, _ := fs.Sub(webFS, "web")
	files := http.FileServerFS(web)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		http.ServeFileFS(w, r, web, "index.html")
	})
	mux.HandleFunc("GET /assets/", func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		http.StripPrefix("/assets", files).ServeHTTP(w, r)
	})
	return mux
}

// pageHeaders keep the page to its own scripts and styles: values shown on
// it come from devices.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Start listens on cfg.Listen and serves until stop is called. It logs the
// address, and warns when the listener is reachable beyond loopback
// without cfg.AllowRemote.
func (s *Server) Start(ctx context.Context) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return "", nil, fmt.Errorf("status listener: %w", err)
	}
	addr = ln.Addr().String()
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("status listener stopped", "err", err)
		}
	})
	s.log.Info("status listener: page, /status, /metrics, /healthz, /readyz", "addr", addr, "url", "http://"+addr+"/", "pprof", s.cfg.Pprof)
	warnExposure(s.log, ln.Addr(), s.cfg.AllowRemote)
	return addr, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		wg.Wait()
	}, nil
}

// warnExposure warns when the listener on addr is reachable beyond this
// host without allow saying that is meant.
func warnExposure(log *slog.Logger, addr net.Addr, allow bool) {
	if !Loopback(addr) && !allow {
		log.Warn("status listener is reachable beyond this host: its page and /status show device values without authentication; "+
			"bind it to 127.0.0.1, or set status.allow_remote: true if this is meant", "addr", addr.String())
	}
}

// Loopback reports whether addr is reachable only from this host.
func Loopback(addr net.Addr) bool {
	a, ok := addr.(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}
