package lanmqtt

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw"
)

// nopUplink accepts everything at once: the benchmarks measure the broker,
// the hook and the property bag, not the disk.
type nopUplink struct{}

func (nopUplink) Submit(context.Context, edgegw.Reading) error { return nil }

// Start answers at once: the intake pipeline runs as with the gateway's
// uplink, without the disk.
func (nopUplink) Start(_ context.Context, _ edgegw.Reading, done chan error) { done <- nil }

// BenchmarkIntakeQoS1 publishes 200-byte QoS 1 messages with a property
// bag from N clients, each waiting for every PUBACK (w=1) or keeping up to
// 100 in flight (w=100).
func BenchmarkIntakeQoS1(b *testing.B) {
	for _, bc := range []struct{ clients, window int }{{1, 1}, {10, 1}, {10, 100}} {
		b.Run(fmt.Sprintf("clients=%d/window=%d", bc.clients, bc.window), func(b *testing.B) {
			cfg := baseConfig()
			cfg.Users = nil
			for i := range bc.clients {
				id := fmt.Sprintf("b%d", i)
				cfg.Users = append(cfg.Users, User{Username: id, Password: "pw", Device: id})
			}
			a, err := New("lan", cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx, nopUplink{}) }()
			defer func() { cancel(); <-done }()
			<-a.Ready()
			var clients []paho.Client
			for i := range bc.clients {
				id := fmt.Sprintf("b%d", i)
				c := paho.NewClient(pahoOpts(brokerURL(a), id, id, "pw").SetMaxResumePubInFlight(bc.window))
				if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					b.Fatal(tok.Error())
				}
				defer c.Disconnect(0)
				clients = append(clients, c)
			}
			payload := make([]byte, 200)
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/bc.clients + 1
			for i, c := range clients {
				topic := fmt.Sprintf("devices/b%d/messages/events/%%24.ct=application%%2Fjson&k=v", i)
				wg.Go(func() {
					window := make(chan paho.Token, bc.window)
					for range per {
						if len(window) == cap(window) {
							(<-window).Wait()
						}
						window <- c.Publish(topic, 1, false, payload)
					}
					for len(window) > 0 {
						(<-window).Wait()
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(per*bc.clients)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

func BenchmarkDecodePropertyBag(b *testing.B) {
	bag := "%24.mid=mid-1&%24.cid=cid%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&%24.sub=sub1"
	b.ReportAllocs()
	for b.Loop() {
		var m edgegw.Message
		if err := decodePropertyBag(bag, &m); err != nil {
			b.Fatal(err)
		}
	}
}
