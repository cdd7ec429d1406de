package gateway

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/iothub"
)

// Side-by-side benchmarks: edgegw measured as an outsider would, from
// outside its process, against a well-known peer in the same run. The load
// is testpeer.RunLoad, a raw MQTT 3.1.1 publisher: QoS 1, 200-byte
// payloads, 10 publishes in flight per connection. The peers take turns
// (ABBA), sbsRounds turns each, so that drift in the machine hits both.
const (
	sbsPayload = 200
	sbsWindow  = 10
	sbsRounds  = 2
	sbsTurn    = 2 * time.Second // one peer's turn at one size (intake)
	sbsE2ETurn = 3 * time.Second // one peer's turn (end to end)
	sbsDevices = 100             // identities end to end
)

// BenchmarkIntakeSideBySide: the durable LAN intake of edgegw (its own
// process, built from ./cmd/edgegw, state on the disk of the temporary
// directory, its hub stopped: the hub address is a closed port) against
// mosquitto 2 with a default config (a listener and allow_anonymous), with
// 1, 10 and 100 publishers. It reports the acknowledged messages per second
// of each, the ratio edgegw/mosquitto, and PUBACK latency p50 and p99
// (from writing a PUBLISH to reading its PUBACK).
//
//	EDGEGW_BENCH_LONG=1 go test -run=NONE -bench=IntakeSideBySide -benchtime=1x -timeout 30m ./gateway/
func BenchmarkIntakeSideBySide(b *testing.B) {
	sbsLong(b)
	avg := sbsLoadAvg()
	sizes := []int{1, 10, 100}
	bin := sbsBuild(b)
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	cfg := "state_dir: STATE\nstatus: {listen: \"STATUS\"}\n" +
		"hub: {host: localhost, address: \"" + sbsAddr(b) + "\"}\n" + // nothing listens there
		"southbound:\n  - name: lan\n    lanmqtt:\n      listen: \"LAN\"\n      users:\n"
	ids := "identities:\n"
	for i := range sizes[len(sizes)-1] {
		cfg += fmt.Sprintf("        - {username: dev-%d, password: pw, device: dev-%d}\n", i, i)
		ids += fmt.Sprintf("  - {id: dev-%d, key: %s}\n", i, key)
	}
	gw := sbsStartEdgegw(b, bin, cfg+ids)
	mosq := testpeer.StartMosquitto(b, func(port int) string {
		return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)
	})
	conns := func(addr string, n int) []testpeer.LoadConn {
		cs := make([]testpeer.LoadConn, n)
		for i := range cs {
			id := fmt.Sprintf("dev-%d", i)
			cs[i] = testpeer.LoadConn{Addr: addr, ClientID: id, Username: id, Password: "pw",
				Topic: "devices/" + id + "/messages/events/"}
		}
		return cs
	}

	type row struct {
		n       int
		gw, mos testpeer.LoadResult
	}
	var rows []row
	for _, n := range sizes {
		b.Run(fmt.Sprintf("publishers=%d", n), func(b *testing.B) {
			r := row{n: n}
			for b.Loop() {
				for round := range sbsRounds {
					gwTurn := func() { r.gw.Add(sbsLoad(b, conns(gw.lan, n), sbsTurn)) }
					mosTurn := func() { r.mos.Add(sbsLoad(b, conns(mosq, n), sbsTurn)) }
					if round%2 == 0 {
						gwTurn()
						mosTurn()
					} else {
						mosTurn()
						gwTurn()
					}
				}
			}
			b.ReportMetric(r.gw.Rate, "edgegw-msg/s")
			b.ReportMetric(r.mos.Rate, "mosquitto-msg/s")
			b.ReportMetric(r.gw.Rate/r.mos.Rate, "edgegw/mosquitto")
			b.ReportMetric(ms(r.gw.P50), "edgegw-p50-ms")
			b.ReportMetric(ms(r.gw.P99), "edgegw-p99-ms")
			b.ReportMetric(ms(r.mos.P50), "mosquitto-p50-ms")
			b.ReportMetric(ms(r.mos.P99), "mosquitto-p99-ms")
			rows = append(rows, r)
			if n != sizes[len(sizes)-1] {
				return
			}
			// The whole table goes with the last size: a benchmark that has
			// sub-benchmarks prints its own log only under -v. Nine lines at
			// most: the testing package cuts a benchmark's log after ten.
			var t strings.Builder
			fmt.Fprintf(&t, "durable LAN intake: QoS 1, %d B, window %d, %d turns of %v per peer and size, alternating; edgegw's hub stopped\n",
				sbsPayload, sbsWindow, sbsRounds, sbsTurn)
			fmt.Fprintf(&t, "%-11s %12s %15s %17s %17s %20s\n", "publishers", "edgegw msg/s", "mosquitto msg/s",
				"edgegw/mosquitto", "edgegw p50/p99", "mosquitto p50/p99")
			for _, r := range rows {
				fmt.Fprintf(&t, "%-11d %12.0f %15.0f %16.3fx %17s %20s\n", r.n, r.gw.Rate, r.mos.Rate, r.gw.Rate/r.mos.Rate,
					p50p99(r.gw), p50p99(r.mos))
			}
			fmt.Fprintf(&t, "edgegw: %v\n%s\n%s", gw.counters(b), gw.logSummary(), sbsMachine(avg))
			b.Log(t.String())
		})
	}
}

// BenchmarkEndToEndSideBySide: 100 identities from the LAN to the hub
// (hubsim in this process, over TLS), three ways, taking turns:
//
//   - edgegw: its own process; devices publish to its LAN broker on
//     loopback, it stores and forwards over one TLS connection per identity;
//   - bridge: mosquitto 2 with one bridge connection per identity to the
//     hub (TLS verified against the hub's CA, IoT Hub username, SAS token
//     as password, client id = device id, MQTT 3.1.1, clean session, no
//     notifications, no try_private as IoT Hub requires), devices
//     publishing to its listener on loopback;
//   - direct: the devices publish straight to the hub (TLS, IoT Hub
//     username and SAS token).
//
// Each way has its own 100 device identities (gw-N, br-N, dir-N) so that
// the connections of one do not take over those of another. The rate is
// counted at the hub: a way's messages that reached it, over the time from
// the first to the last of them; after each turn the hub is given until
// every acknowledged message has arrived (at most 20s, or 2s without one).
// It reports each rate, the ratios edgegw/bridge and edgegw/direct, and how
// many acknowledged messages did not reach the hub.
//
//	EDGEGW_BENCH_LONG=1 go test -run=NONE -bench=EndToEndSideBySide -benchtime=1x -timeout 30m ./gateway/
func BenchmarkEndToEndSideBySide(b *testing.B) {
	sbsLong(b)
	avg := sbsLoadAvg()
	bin := sbsBuild(b)
	meter := &sbsMeter{}
	hub := &hubsim.Hub{
		MaxTelemetry: 1 << 20, // above a run: trimming the record copies it
		OnTelemetry:  func(t hubsim.Telemetry) { meter.seen(t.DeviceID, t.Received) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	if err := hub.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hub.Close() })
	caFile := filepath.Join(b.TempDir(), "hub-ca.pem")
	if err := os.WriteFile(caFile, hub.CACertPEM(), 0o600); err != nil {
		b.Fatal(err)
	}
	keys := map[string][]byte{}
	for _, prefix := range []string{"gw-", "br-", "dir-"} {
		for i := range sbsDevices {
			id := fmt.Sprintf("%s%d", prefix, i)
			dev, err := hub.CreateDevice(id)
			if err != nil {
				b.Fatal(err)
			}
			if keys[id], err = base64.StdEncoding.DecodeString(dev.PrimaryKey); err != nil {
				b.Fatal(err)
			}
		}
	}
	token := func(id string) string {
		return iothub.SASToken(iothub.ResourceURI(hub.HostName, id, ""), keys[id], "", time.Now().Add(2*time.Hour))
	}
	username := func(id string) string { return hub.HostName + "/" + id + "/?api-version=2021-04-12" }

	// edgegw, with the hub's address and CA.
	cfg := fmt.Sprintf("state_dir: STATE\nstatus: {listen: \"STATUS\"}\nhub: {host: %s, address: \"%s\", ca_file: %s}\n",
		hub.HostName, hub.MQTTAddress(), caFile)
	cfg += "southbound:\n  - name: lan\n    lanmqtt:\n      listen: \"LAN\"\n      users:\n"
	ids := "identities:\n"
	for i := range sbsDevices {
		id := fmt.Sprintf("gw-%d", i)
		cfg += fmt.Sprintf("        - {username: %s, password: pw, device: %s}\n", id, id)
		ids += fmt.Sprintf("  - {id: %s, key: %s}\n", id, base64.StdEncoding.EncodeToString(keys[id]))
	}
	gw := sbsStartEdgegw(b, bin, cfg+ids)
	if !sbsWait(ctx, 60*time.Second, func() bool { return hub.Stats().Connected >= sbsDevices }) {
		b.Fatalf("edgegw's identities not connected to the hub within 60s: %d connections", hub.Stats().Connected)
	}

	// mosquitto with one bridge per identity.
	bridge := testpeer.StartMosquitto(b, func(port int) string {
		var c strings.Builder
		fmt.Fprintf(&c, "listener %d 127.0.0.1\nallow_anonymous true\n", port)
		for i := range sbsDevices {
			id := fmt.Sprintf("br-%d", i)
			fmt.Fprintf(&c, "\nconnection %s\naddress %s\nbridge_cafile %s\nremote_username %s\nremote_password %s\n"+
				"remote_clientid %s\ntry_private false\nnotifications false\ncleansession true\n"+
				"bridge_protocol_version mqttv311\ntopic devices/%s/messages/events/# out 1\n",
				id, hub.MQTTAddress(), caFile, username(id), token(id), id, id)
		}
		return c.String()
	})
	if !sbsWait(ctx, 60*time.Second, func() bool { return hub.Stats().Connected >= 2*sbsDevices }) {
		b.Fatalf("mosquitto's bridges not connected to the hub within 60s: %d connections", hub.Stats().Connected)
	}

	hubTLS := &tls.Config{RootCAs: hub.CACertPool(), ServerName: hub.HostName}
	type way struct {
		name, prefix string
		conns        []testpeer.LoadConn
		lan          testpeer.LoadResult // as the publishers saw it
		hub          int64               // messages that reached the hub
		hubTime      time.Duration       // first to last of them, summed over turns
		cpu          time.Duration       // edgegw's CPU time during its turns
	}
	ways := []*way{{name: "edgegw", prefix: "gw-"}, {name: "bridge", prefix: "br-"}, {name: "direct", prefix: "dir-"}}
	for i := range sbsDevices {
		for _, w := range ways {
			id := fmt.Sprintf("%s%d", w.prefix, i)
			c := testpeer.LoadConn{ClientID: id, Topic: "devices/" + id + "/messages/events/"}
			switch w.name {
			case "edgegw":
				c.Addr, c.Username, c.Password = gw.lan, id, "pw"
			case "bridge":
				c.Addr = bridge
			case "direct":
				c.Addr, c.TLS, c.Username, c.Password = hub.MQTTAddress(), hubTLS, username(id), token(id)
			}
			w.conns = append(w.conns, c)
		}
	}

	turn := func(w *way) {
		meter.reset(w.prefix)
		cpu0 := gw.cpu()
		defer func() {
			if w.name == "edgegw" {
				w.cpu += gw.cpu() - cpu0
			}
		}()
		r := sbsLoad(b, w.conns, sbsE2ETurn)
		w.lan.Add(r)
		quiet := func() bool { _, _, last := meter.get(); return time.Since(last) > 2*time.Second }
		sbsWait(ctx, 20*time.Second, func() bool { n, _, _ := meter.get(); return n >= r.Acked || quiet() })
		n, first, last := meter.get()
		w.hub += n
		w.hubTime += last.Sub(first)
	}
	for b.Loop() {
		for round := range sbsRounds {
			order := []*way{ways[0], ways[1], ways[2]}
			if round%2 == 1 {
				order = []*way{ways[2], ways[1], ways[0]}
			}
			for _, w := range order {
				turn(w)
			}
		}
	}

	rate := func(w *way) float64 {
		if w.hubTime <= 0 {
			return 0
		}
		return float64(w.hub) / w.hubTime.Seconds()
	}
	gwRate, brRate, dirRate := rate(ways[0]), rate(ways[1]), rate(ways[2])
	b.ReportMetric(gwRate, "edgegw-msg/s")
	b.ReportMetric(brRate, "bridge-msg/s")
	b.ReportMetric(dirRate, "direct-msg/s")
	b.ReportMetric(gwRate/brRate, "edgegw/bridge")
	b.ReportMetric(gwRate/dirRate, "edgegw/direct")
	for _, w := range ways {
		b.ReportMetric(float64(w.lan.Acked-w.hub), w.name+"-acked-not-at-hub")
	}
	gwCPU := 0.0
	if ways[0].hub > 0 {
		gwCPU = float64(ways[0].cpu.Microseconds()) / float64(ways[0].hub)
		b.ReportMetric(gwCPU, "edgegw-cpu-us/msg")
	}

	var t strings.Builder
	fmt.Fprintf(&t, "end to end, %d identities: QoS 1, %d B, window %d, %d turns of %v per way, alternating; rate counted at the hub\n",
		sbsDevices, sbsPayload, sbsWindow, sbsRounds, sbsE2ETurn)
	fmt.Fprintf(&t, "%-7s %11s %12s %13s %14s %12s %18s\n", "way", "hub msg/s", "edgegw/way", "LAN acked/s",
		"LAN p50/p99", "acked", "not at the hub")
	for _, w := range ways {
		fmt.Fprintf(&t, "%-7s %11.0f %11.3fx %13.0f %14s %12d %18d\n", w.name, rate(w), gwRate/rate(w),
			w.lan.Rate, p50p99(w.lan), w.lan.Acked, w.lan.Acked-w.hub)
	}
	fmt.Fprintf(&t, "edgegw: %.1f us of CPU per message delivered (its process, LAN to hub); %v\n%s\n%s", gwCPU, gw.counters(b), gw.logSummary(), sbsMachine(avg))
	b.Log(t.String()) // nine lines at most: the testing package cuts a benchmark's log after ten
}

// sbsLoad runs the side-by-side load on conns for d and fails the
// benchmark on any error: a connection closed, a PUBACK out of order, a
// publish never acknowledged.
func sbsLoad(b *testing.B, conns []testpeer.LoadConn, d time.Duration) testpeer.LoadResult {
	b.Helper()
	r, err := testpeer.RunLoad(context.Background(), testpeer.Load{
		Conns: conns, Window: sbsWindow, Payload: sbsPayload, Duration: d,
		ConnectTimeout: 30 * time.Second, DrainTimeout: 30 * time.Second,
	})
	if err != nil {
		b.Fatalf("load on %s: %v", conns[0].Addr, err)
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func p50p99(r testpeer.LoadResult) string {
	return fmt.Sprintf("%.2f/%.2f ms", ms(r.P50), ms(r.P99))
}
