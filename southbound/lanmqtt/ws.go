package lanmqtt

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgegw/edgegw/internal/wsconn"
)

// wsListener turns MQTT-over-websocket connections into net.Conns behind a
// net.Listener, so they go through the same trackedListener (CONNECT
// deadline, shutdown) as TCP clients. The upgrader accepts only the "mqtt"
// subprotocol; authentication is MQTT's, as on TCP.
type wsListener struct {
	ln    net.Listener
	srv   *http.Server
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// wsMaxHeaderBytes bounds the upgrade request's header: the port serves
// only upgrades, which need a few hundred bytes.
const wsMaxHeaderBytes = 8 << 10

// newWSListener serves upgrades on ln. timeout (connect_timeout) bounds
// reading the upgrade request; keep-alives are off, so a peer that does not
// upgrade is closed after its one request instead of idling.
func newWSListener(ln net.Listener, tlsCfg *tls.Config, timeout time.Duration) *wsListener {
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	l := &wsListener{ln: ln, conns: make(chan net.Conn), done: make(chan struct{})}
	up := &websocket.Upgrader{
		Subprotocols:    []string{"mqtt"},
		ReadBufferSize:  2048,
		WriteBufferSize: 2048,
		// MQTT clients (browsers included) authenticate in CONNECT, not
		// with cookies, so a cross-origin page gains nothing it could not
		// do with the credentials it needs anyway.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	l.srv = &http.Server{
		ReadHeaderTimeout: timeout,
		ReadTimeout:       timeout, // cleared on hijack, so it never limits MQTT
		IdleTimeout:       timeout,
		MaxHeaderBytes:    wsMaxHeaderBytes,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return // Upgrade answered with an HTTP error
			}
			select {
			case l.conns <- wsconn.New(c, r.TLS):
			case <-l.done:
				_ = c.Close()
			}
		}),
	}
	l.srv.SetKeepAlivesEnabled(false)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_ = l.srv.Serve(ln)
	}()
	return l
}

func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *wsListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		_ = l.srv.Close()
	})
	return nil
}

func (l *wsListener) Addr() net.Addr { return l.ln.Addr() }

// wait returns after the HTTP server goroutine has exited (after Close).
func (l *wsListener) wait() { l.wg.Wait() }
