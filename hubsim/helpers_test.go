package hubsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startHub starts an in-memory hub for one test.
func startHub(t testing.TB, mods ...func(*Hub)) *Hub {
	t.Helper()
	h := &Hub{}
	for _, m := range mods {
		m(h)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return h
}

func mustDevice(t testing.TB, h *Hub, id string) Device {
	t.Helper()
	d, err := h.CreateDevice(id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// devClient is a paho client speaking as an IoT Hub device.
type devClient struct {
	paho.Client
	mu   sync.Mutex
	msgs []paho.Message
	lost chan error
}

type dialOpts struct {
	clientID string // default: device id
	username string // default: IoT Hub form
	password string // default: SAS from key
	key      string
	module   string
	clean    bool
	cert     *tls.Certificate
	will     *willOpt
	noPass   bool
	noAck    bool // do not PUBACK received messages
	timeout  time.Duration
}

type willOpt struct {
	topic   string
	payload string
}

func tlsFor(h *Hub, cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: h.CACertPool(), ServerName: "localhost"}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// dial connects as device id; it returns the client and the connect error.
func dial(t testing.TB, h *Hub, id string, o dialOpts) (*devClient, error) {
	t.Helper()
	ident := id
	if o.module != "" {
		ident = id + "/" + o.module
	}
	if o.clientID == "" {
		o.clientID = ident
	}
	if o.username == "" {
		o.username = h.HostName + "/" + ident + "/?api-version=2021-04-12&DeviceClientType=go-test"
	}
	if o.password == "" && !o.noPass && o.cert == nil {
		res := h.HostName + "/devices/" + id
		if o.module != "" {
			res += "/modules/" + o.module
		}
		tok, err := NewSAS(res, "", o.key, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		o.password = tok
	}
	if o.timeout == 0 {
		o.timeout = 5 * time.Second
	}
	dc := &devClient{lost: make(chan error, 1)}
	opts := paho.NewClientOptions().
		AddBroker("ssl://" + h.MQTTAddress()).
		SetClientID(o.clientID).
		SetUsername(o.username).
		SetProtocolVersion(4).
		SetCleanSession(o.clean).
		SetAutoReconnect(false).
		SetOrderMatters(false).
		SetConnectTimeout(o.timeout).
		SetWriteTimeout(5 * time.Second).
		SetTLSConfig(tlsFor(h, o.cert)).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			dc.mu.Lock()
			dc.msgs = append(dc.msgs, m)
			dc.mu.Unlock()
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case dc.lost <- err:
			default:
			}
		})
	opts.SetAutoAckDisabled(o.noAck)
	if o.password != "" {
		opts.SetPassword(o.password)
	}
	if o.will != nil {
		opts.SetWill(o.will.topic, o.will.payload, 1, false)
	}
	dc.Client = paho.NewClient(opts)
	tok := dc.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { dc.Disconnect(0) })
	return dc, nil
}

func mustDial(t testing.TB, h *Hub, id string, o dialOpts) *devClient {
	t.Helper()
	c, err := dial(t, h, id, o)
	if err != nil {
		t.Fatalf("dial %s: %v", id, err)
	}
	return c
}

func (c *devClient) pub(t testing.TB, topic string, qos byte, payload string) error {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return errors.New("publish timed out")
	}
	return tok.Error()
}

func (c *devClient) sub(t testing.TB, filter string, qos byte) {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
}

// waitMsg waits for a received message whose topic satisfies match.
func (c *devClient) waitMsg(t testing.TB, what string, match func(paho.Message) bool) paho.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, m := range c.msgs {
			if match(m) {
				c.mu.Unlock()
				return m
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no message: %s", what)
	return nil
}

func (c *devClient) received() []paho.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]paho.Message(nil), c.msgs...)
}

// waitLost waits for the connection to drop.
func (c *devClient) waitLost(t testing.TB) error {
	t.Helper()
	select {
	case err := <-c.lost:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("connection not lost")
		return nil
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var _ = fmt.Sprintf
