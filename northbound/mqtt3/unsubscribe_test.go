package mqtt3

import (
	"context"
	"testing"
)

// After Unsubscribe returns (the broker's UNSUBACK), nothing more arrives
// on the filter; another subscription goes on.
func TestBrokerUnsubscribe(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		r := newRecorder()
		c := dial(t, b.addr, r.options("mqtt3-unsub"))
		if _, err := c.Subscribe(context.Background(), []Subscription{{"mqtt3/m/#", 0}, {"mqtt3/keep", 0}}); err != nil {
			t.Fatal(err)
		}
		peer := pahoClient(t, b, "paho-unsub")
		pahoPublish(t, peer, "mqtt3/m/x", 1, "before")
		if m := r.next(t); m.Topic != "mqtt3/m/x" {
			t.Fatalf("got %q", m.Topic)
		}
		if err := c.Unsubscribe(context.Background(), []string{"mqtt3/m/#"}); err != nil {
			t.Fatal(err)
		}
		pahoPublish(t, peer, "mqtt3/m/x", 1, "after")
		pahoPublish(t, peer, "mqtt3/keep", 1, "kept")
		if m := r.next(t); m.Topic != "mqtt3/keep" {
			t.Fatalf("got %q %q after unsubscribing", m.Topic, m.Payload)
		}
		if err := c.Unsubscribe(context.Background(), nil); err == nil {
			t.Error("Unsubscribe with no filters succeeded")
		}
	})
}
