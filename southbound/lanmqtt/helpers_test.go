package lanmqtt

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
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
func start(t *testing.T, cfg Config, up *testpeer.Uplink) *Adapter {
	t.Helper()
	a, err := New("lan", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	testpeer.RunAdapter(t, a, up)
	select {
	case <-a.Ready():
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
