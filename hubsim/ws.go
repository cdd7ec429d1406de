package hubsim

import (
	"net/http"

	"github.com/gorilla/websocket"

	"github.com/edgegw/edgegw/internal/wsconn"
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
	c := wsconn.New(ws, r.TLS)
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

// serveWebsocket runs a DPS device session over WebSocket until the client
// goes away.
func (d *DPS) serveWebsocket(w http.ResponseWriter, r *http.Request) {
	ws, err := wsUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := wsconn.New(ws, r.TLS)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		_ = ws.Close()
		return
	}
	d.wsConns[c] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.wsConns, c)
		d.mu.Unlock()
		_ = c.Close()
	}()
	if err := d.srv.EstablishConnection("wss", c); err != nil {
		d.log.Debug("dps websocket client ended", "remote", r.RemoteAddr, "err", err)
	}
}
