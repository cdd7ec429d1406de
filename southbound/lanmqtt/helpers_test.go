package lanmqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/edgegw/edgegw"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// needTool skips when a Debian tool is missing, or fails under CI.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (required under CI): %v", name, err)
		}
		t.Skipf("%s not installed (apt-get install mosquitto-clients); skipping", name)
	}
	return p
}

// testUplink is the seam between the adapter and the gateway: it records
// what Submit was given and answers with a programmable error.
type testUplink struct {
	mu       sync.Mutex
	readings []edgegw.Reading
	fail     func(n int) error // n counts Submit calls from 1; nil = accept
	calls    int
	gate     chan struct{} // when non-nil, Submit waits for it to close
	got      chan struct{} // signalled (non-blocking) after each Submit
}

func newTestUplink() *testUplink { return &testUplink{got: make(chan struct{}, 1)} }

func (u *testUplink) Submit(ctx context.Context, r edgegw.Reading) error {
	u.mu.Lock()
	u.calls++
	n, fail, gate := u.calls, u.fail, u.gate
	u.mu.Unlock()
	defer func() {
		select {
		case u.got <- struct{}{}:
		default:
		}
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(n); err != nil {
			return err
		}
	}
	u.mu.Lock()
	u.readings = append(u.readings, r)
	u.mu.Unlock()
	return nil
}

func (u *testUplink) setFail(f func(int) error) {
	u.mu.Lock()
	u.fail = f
	u.mu.Unlock()
}

func (u *testUplink) stored() []edgegw.Reading {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]edgegw.Reading(nil), u.readings...)
}

// waitStored waits until n readings are stored.
func (u *testUplink) waitStored(t *testing.T, n int) []edgegw.Reading {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if rs := u.stored(); len(rs) >= n {
			return rs
		}
		select {
		case <-u.got:
		case <-deadline:
			t.Fatalf("want %d stored readings, have %d", n, len(u.stored()))
		}
	}
}

var errDisk = errors.New("disk full")

// baseConfig has users dev1 and dev2 (IoT Hub identities), a sensor user on
// the topic surface and a watcher that may subscribe to everything.
func baseConfig() Config {
	return Config{
		Listen: "127.0.0.1:0",
		Users: []User{
			{Username: "dev1", Password: "pw1", Device: "dev1"},
			{Username: "dev2", Password: "pw2", Device: "dev2"},
			{Username: "sensor", Password: "pw3", Publish: []string{"plant/#"}},
			{Username: "watcher", Password: "pw4", Subscribe: []string{"#"}},
		},
		Topics: []TopicRule{
			{Filter: "plant/+/temp", Device: "line-{2}"},
			{Filter: "plant/hall/#", Device: "hall"},
		},
		ConnectTimeout: 10 * time.Second, // generous: the machine may be busy
	}
}

// start runs an adapter for cfg until the test ends.
func start(t *testing.T, cfg Config, up *testUplink) *Adapter {
	t.Helper()
	a, err := New("lan", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, up) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	return a
}

func brokerURL(a *Adapter) string { return "tcp://" + a.Addr().String() }

func port(a *Adapter) string {
	_, p, _ := net.SplitHostPort(a.Addr().String())
	return p
}

// pahoOpts are v3.1.1 client options without automatic reconnects.
func pahoOpts(url, clientID, user, pass string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker(url).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(pass).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second)
}

// connect connects and registers a disconnect at cleanup.
func connect(t *testing.T, o *paho.ClientOptions) paho.Client {
	t.Helper()
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("connect timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// connectErr tries to connect and returns the error (nil on success).
func connectErr(t *testing.T, o *paho.ClientOptions) error {
	t.Helper()
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("connect timed out")
	}
	if tok.Error() == nil {
		c.Disconnect(100)
	}
	return tok.Error()
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("publish %s: no PUBACK", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fmtReading(r edgegw.Reading) string {
	if r.Message == nil {
		return fmt.Sprintf("%s/%s points=%v", r.Adapter, r.Device, r.Points)
	}
	m := r.Message
	return fmt.Sprintf("%s/%s id=%q body=%q ct=%q ce=%q mid=%q cid=%q props=%v", r.Adapter, r.Device, m.Identity, m.Body, m.ContentType, m.ContentEncoding, m.MessageID, m.CorrelationID, m.Properties)
}
