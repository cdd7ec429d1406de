package hubsim

import (
	"context"
	"net"
	"net/http"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// netListener is mochi's Net listener without the client sweep its Close
// runs: mochi v2.7.9's sweep (closeListenerClients) read-locks the client
// map twice, and a client ending in between queues for the write lock and
// deadlocks it (mochi-mqtt/server issue 488). stopEndpoints stops the
// clients itself first.
type netListener struct{ *listeners.Net }

func newNetListener(id string, ln net.Listener) netListener {
	return netListener{listeners.NewNet(id, ln)}
}

func (l netListener) Close(listeners.CloseFn) { l.Net.Close(func(string) {}) }

// stopEndpoints stops what a hub or the DPS serves, in order: its
// background work (cancel), the HTTPS listener (httpSrv, or httpLn when
// serving never began), the WebSocket connections, then every MQTT client
// but the inline one and the broker (or mqttLn when there is no broker,
// a start that failed before it).
func stopEndpoints(cancel context.CancelFunc, httpSrv *http.Server, httpLn net.Listener, ws []net.Conn, srv *mqtt.Server, mqttLn net.Listener) {
	if cancel != nil {
		cancel()
	}
	if httpSrv != nil {
		_ = httpSrv.Close()
	} else if httpLn != nil {
		_ = httpLn.Close()
	}
	for _, c := range ws {
		_ = c.Close()
	}
	if srv == nil {
		if mqttLn != nil {
			_ = mqttLn.Close()
		}
		return
	}
	for _, cl := range srv.Clients.GetAll() {
		if !cl.Net.Inline {
			cl.Stop(errHubClosed)
		}
	}
	_ = srv.Close()
}
