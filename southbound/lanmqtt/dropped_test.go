package lanmqtt

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// A subscriber that never acknowledges holds max_inflight QoS 1 messages;
// the broker drops what follows, and every drop is counted.
func TestSlowSubscriberDropsCounted(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxInflight = 10
	var logs lockedBuffer
	a, err := New("lan", cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	testpeer.RunAdapter(t, a, new(testpeer.Uplink))
	<-a.Ready()

	sub, err := rawConnect(a.Addr().String(), "historian", "watcher", "pw4")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	filter := "plant/#"
	body := append([]byte{0, 1, 0, byte(len(filter))}, filter...)
	body = append(body, 1) // QoS 1
	if _, err := sub.Write(append([]byte{0x82, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	var suback [5]byte
	_ = sub.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(sub, suback[:]); err != nil || suback[0] != 0x90 || suback[4] != 1 {
		t.Fatalf("SUBACK % x: %v", suback, err)
	}
	_ = sub.SetReadDeadline(time.Time{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer sub.Close()
	wg.Go(func() { _, _ = io.Copy(io.Discard, sub) }) // reads, never acknowledges

	pub := connect(t, pahoOpts(brokerURL(a), "sensor-a", "sensor", "pw3"))
	const n = 50
	for i := range n {
		publish(t, pub, "plant/hall/x", 1, fmt.Sprintf("%d", i))
	}
	eventually(t, "40 drops counted", func() bool { return a.Stats().Dropped == n-10 })
	time.Sleep(200 * time.Millisecond)
	if d := a.Stats().Dropped; d != n-10 {
		t.Fatalf("Dropped %d, want %d", d, n-10)
	}
	// One warning, the rest suppressed for the rate limit's interval.
	if got := strings.Count(logs.String(), "subscriber too slow"); got != 1 {
		t.Fatalf("%d warnings about the slow subscriber, want 1:\n%s", got, logs.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
