package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// printQuickstart tells a newcomer, once the quickstart gateway is ready,
// where to publish and how to watch what reaches the embedded hub.
func printQuickstart(ctx context.Context, gw *gateway.Gateway, cfg *gateway.Config, w io.Writer) {
	select {
	case <-gw.Ready():
	case <-ctx.Done():
		return
	}
	hub := gw.Hub()
	lan, _ := gw.Adapter("lan").(*lanmqtt.Adapter)
	if hub == nil || lan == nil {
		return
	}
	watch, err := hub.TelemetryStreamURL("", 24*time.Hour)
	if err != nil {
		watch = "(unavailable: " + err.Error() + ")"
	}
	fmt.Fprintf(w, `
edgegw quickstart is running. Telemetry from the simulated boiler reaches the
embedded hub every few seconds ("hub received telemetry" in the log).

Publish as a LAN device (needs mosquitto-clients):
  mosquitto_pub -h %[1]s -p %[2]d -i demo-sensor -u demo-sensor -P demo-password -q 1 \
    -t 'devices/demo-sensor/messages/events/room=lab' -m '{"temperature": 21.5}'

Watch what reaches the hub (JSON lines, follows new messages):
  curl -sN --cacert %[3]s/hubsim/ca.pem '%[4]s'

The gateway's own state (connections, queue, device values and plots):
  open http://%[5]s/ in a browser, or curl -s http://%[5]s/status

Send a command down (a method, a desired property, a C2D message): README.md,
"Commands down, in the quickstart"; the service token for the hub's REST API:
  go run ./cmd/edgegw sas-token -policy iothubowner

The queue is in %[3]s/queue. Stop with Ctrl-C (it drains in order).

`, hostOf(lan.Addr().String()), portOf(lan.Addr().String()), cfg.StateDir, watch, gw.StatusAddr())
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
