package hubsim

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkTelemetryQoS1 measures sequential QoS 1 publishes of 200 bytes
// from one device over TLS (publish to PUBACK, recorded by the hub).
func BenchmarkTelemetryQoS1(b *testing.B) {
	h := startHub(b, func(h *Hub) { h.MaxTelemetry = 1000 })
	d := mustDevice(b, h, "bench")
	c := mustDial(b, h, "bench", dialOpts{key: d.PrimaryKey, clean: true})
	body := string(make([]byte, 200))
	b.ResetTimer()
	for b.Loop() {
		tok := c.Publish("devices/bench/messages/events/%24.ct=application%2Fjson&k=v", 1, false, body)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
	}
}

// BenchmarkConnect measures CONNECT+CONNACK with SAS verification over TLS.
func BenchmarkConnect(b *testing.B) {
	h := startHub(b)
	d := mustDevice(b, h, "bench")
	i := 0
	for b.Loop() {
		c, err := dial(b, h, "bench", dialOpts{key: d.PrimaryKey, clean: true})
		if err != nil {
			b.Fatal(fmt.Errorf("connect %d: %w", i, err))
		}
		c.Disconnect(0)
		i++
	}
}
