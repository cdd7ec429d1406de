package hubsim

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsPath is where IoT Hub serves MQTT over WebSocket.
const wsPath = "/$iothub/websocket"

var wsUpgrader = websocket.Upgrader{
	Subprotocols: []string{"mqtt"},
	CheckOrigin:  func(*http.Request) bool { return true }, // devices are not browsers; auth is in CONNECT
}

// serveWebsocket upgrades the request and runs the MQTT session on it until
// the client goes away.
func (h *Hub) serveWebsocket(w http.ResponseWriter, r *http.Request) {
	ws, err := wsUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &wsConn{ws: ws}
	if r.TLS != nil {
		c.state = *r.TLS
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = ws.Close()
		return
	}
	h.wsConns[c] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.wsConns, c)
		h.mu.Unlock()
		_ = c.Close()
	}()
	if err := h.srv.EstablishConnection("wss", c); err != nil {
		h.log.Debug("websocket client ended", "remote", r.RemoteAddr, "err", err)
	}
}

// wsConn adapts a WebSocket to net.Conn: MQTT bytes travel in binary
// messages, which may split packets anywhere.
type wsConn struct {
	ws    *websocket.Conn
	state tls.ConnectionState
	rmu   sync.Mutex
	r     io.Reader
	wmu   sync.Mutex
}

var _ net.Conn = (*wsConn)(nil)

// ConnectionState exposes the TLS state (client certificates) of the
// underlying HTTPS connection.
func (c *wsConn) ConnectionState() tls.ConnectionState { return c.state }

func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("websocket: text message on an mqtt connection")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}
