package gateway

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/iothub"
)

// BenchmarkEndToEnd measures the whole up road: devices publish QoS 1 to
// the LAN broker, each message is made durable (fsync, group commit) before
// its PUBACK, and northbound drains it over TLS to the hub emulator. The
// peer, measured in the same run against the same hub, is the same load
// published by the same number of paho clients straight to the hub: the
// ratio is what store-and-forward costs.
//
// EDGEGW_BENCH_DEVICES (default 10) and EDGEGW_BENCH_PER_DEVICE (default
// 2000; 20000 under make bench) size it.
func BenchmarkEndToEnd(b *testing.B) {
	devices := benchEnv("EDGEGW_BENCH_DEVICES", 10)
	perDevice := benchEnv("EDGEGW_BENCH_PER_DEVICE", 2000)
	if os.Getenv("EDGEGW_BENCH_LONG") != "" && os.Getenv("EDGEGW_BENCH_PER_DEVICE") == "" {
		perDevice = 20000
	}
	const window = 20 // QoS 1 publishes in flight per client

	y := fmt.Sprintf("state_dir: %s\nlog: {level: error}\nhubsim: {enabled: true, mqtt_listen: \"127.0.0.1:0\", http_listen: \"127.0.0.1:0\"}\nhub: {host: localhost}\nidentities:\n", b.TempDir())
	lan := "southbound:\n  - name: lan\n    lanmqtt:\n      listen: \"127.0.0.1:0\"\n      users:\n"
	for i := range devices {
		y += fmt.Sprintf("  - id: dev-%d\n", i)
		lan += fmt.Sprintf("        - {username: dev-%d, password: pw, device: dev-%d}\n", i, i)
	}
	cfg, err := Parse("bench.yaml", []byte(y+lan))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Hubsim.MQTTAddr, cfg.Hubsim.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	gw := startGateway(b, cfg)
	hub := gw.Hub()
	hub.MaxTelemetry = 4 * devices * perDevice

	for b.Loop() {
		hub.ResetTelemetry()
		viaGateway := run(b, devices, perDevice, window, func(i int) (mqtt.Client, string, string) {
			c := lanClientN(b, gw, fmt.Sprintf("dev-%d", i))
			return c, fmt.Sprintf("devices/dev-%d/messages/events/", i), fmt.Sprintf("dev-%d", i)
		}, hub)
		direct := run(b, devices, perDevice, window, func(i int) (mqtt.Client, string, string) {
			id := fmt.Sprintf("direct-%d", i)
			return hubClient(b, hub, id), "devices/" + id + "/messages/events/", id
		}, hub)
		total := float64(devices * perDevice)
		b.ReportMetric(total/viaGateway.Seconds(), "gateway-msg/s")
		b.ReportMetric(total/direct.Seconds(), "direct-msg/s")
		b.ReportMetric(direct.Seconds()/viaGateway.Seconds(), "gateway/direct")
	}
}

// run has every client publish n messages with w in flight and returns the
// time until the hub holds all of them.
func run(b *testing.B, clients, n, w int, dial func(int) (mqtt.Client, string, string), hub *hubsim.Hub) time.Duration {
	b.Helper()
	type conn struct {
		c      mqtt.Client
		topic  string
		device string
	}
	conns := make([]conn, clients)
	for i := range conns {
		c, topic, dev := dial(i)
		conns[i] = conn{c, topic, dev}
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for _, cn := range conns {
		wg.Go(func() {
			if err := pump(cn.c, cn.topic, n, w); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, cn := range conns {
		if _, err := hub.WaitTelemetry(ctx, cn.device, n); err != nil {
			b.Fatalf("%s: %v", cn.device, err)
		}
	}
	d := time.Since(start)
	for _, cn := range conns {
		cn.c.Disconnect(100)
	}
	return d
}

// pump publishes n QoS 1 messages of 200 bytes on topic, w in flight.
func pump(c mqtt.Client, topic string, n, w int) error {
	body := make([]byte, 200)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	toks := make(chan mqtt.Token, w)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for tok := range toks {
			if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
				errc <- fmt.Errorf("publish not acknowledged: %v", tok.Error())
				for range toks {
				}
				return
			}
		}
	}()
	for range n {
		toks <- c.Publish(topic, 1, false, body)
	}
	close(toks)
	return <-errc
}

func lanClientN(b *testing.B, gw *Gateway, id string) mqtt.Client {
	b.Helper()
	return lanClient(b, gw, id, "pw")
}

// hubClient connects straight to the hub as a newly registered device,
// signing its SAS token as IoT Hub expects.
func hubClient(b *testing.B, hub *hubsim.Hub, id string) mqtt.Client {
	b.Helper()
	dev, err := hub.Device(id, "")
	if err != nil {
		if dev, err = hub.CreateDevice(id); err != nil {
			b.Fatal(err)
		}
	}
	key, err := base64.StdEncoding.DecodeString(dev.PrimaryKey)
	if err != nil {
		b.Fatal(err)
	}
	tok := iothub.SASToken(iothub.ResourceURI(hub.HostName, id, ""), key, "", time.Now().Add(time.Hour))
	opts := mqtt.NewClientOptions().AddBroker("ssl://" + hub.MQTTAddress()).
		SetClientID(id).SetUsername(hub.HostName + "/" + id + "/?api-version=2021-04-12").SetPassword(tok).
		SetTLSConfig(&tls.Config{RootCAs: hub.CACertPool(), ServerName: hub.HostName}).
		SetAutoReconnect(false).SetCleanSession(true).SetOrderMatters(false)
	c := mqtt.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		b.Fatalf("connect %s: %v", id, t.Error())
	}
	return c
}

func benchEnv(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
