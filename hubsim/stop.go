package hubsim

import (
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// netListener is mochi's Net listener without the client sweep its Close
// runs: mochi v2.7.9's sweep (closeListenerClients) read-locks the client
// map twice, and a client ending in between queues for the write lock and
// deadlocks it (mochi-mqtt/server issue 488). stopBroker stops the clients
// itself first.
type netListener struct{ *listeners.Net }

func newNetListener(id string, ln net.Listener) netListener {
	return netListener{listeners.NewNet(id, ln)}
}

func (l netListener) Close(listeners.CloseFn) { l.Net.Close(func(string) {}) }

// stopBroker stops every client of srv but the inline one, then srv; with
// no srv (a start that failed before it) it closes ln.
func stopBroker(srv *mqtt.Server, ln net.Listener) {
	if srv == nil {
		if ln != nil {
			_ = ln.Close()
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
