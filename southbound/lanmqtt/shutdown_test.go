package lanmqtt

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// rawConnect opens a TCP connection and completes an MQTT 3.1.1 CONNECT
// with a clean session.
func rawConnect(addr, clientID, user, pass string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 4, 0xC2, 0, 60) // level 4; username, password, clean session; keepalive 60 s
	body = append(body, str(clientID)...)
	body = append(body, str(user)...)
	body = append(body, str(pass)...)
	pkt := append([]byte{0x10, byte(len(body))}, body...) // bodies here stay under 128 bytes
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		c.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("CONNACK % x", ack)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// Shutdown while clients are leaving returns: the broker's client map is
// written by each ending connection while shutdown reads it to disconnect
// the rest (in mochi v2.7.9 its own way of doing so could deadlock there).
// A few rounds of clients leaving at the moment Run is cancelled.
func TestShutdownWhileClientsLeave(t *testing.T) {
	const rounds, clients = 6, 30
	for round := range rounds {
		cfg := baseConfig()
		a, err := New("lan", cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx, new(testpeer.Uplink)) }()
		select {
		case <-a.Ready():
		case <-time.After(10 * time.Second):
			cancel()
			t.Fatal("not ready")
		}
		var conns []net.Conn
		for i := range clients {
			c, err := rawConnect(a.Addr().String(), fmt.Sprintf("s-%d-%d", round, i), "sensor", "pw3")
			if err != nil {
				cancel()
				<-done
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() { _ = c.Close() })
		}
		cancel()
		wg.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Run: %v", round, err)
			}
		case <-time.After(30 * time.Second):
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("round %d: Run did not return within 30s of cancel; goroutines:\n%s", round, stacks.String())
		}
	}
}
