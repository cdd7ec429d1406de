package mqtt3

import (
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	mpackets "github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// broker is a real MQTT broker on loopback: mochi-mqtt in-process or
// Debian's mosquitto. Our clients use ids starting "mqtt3-"; paho peers
// use others.
type broker struct {
	name string
	addr string
	// hold makes the broker stop acknowledging our clients' publishes
	// until release is called (or the test ends).
	hold func() (release func())
	// kill ends the broker abruptly.
	kill func()
	// mochi is the inspection hook (nil for mosquitto).
	mochi *mochiHook
}

func (b *broker) url() string { return "tcp://" + b.addr }

// eachBroker runs fn as a subtest against mochi and against mosquitto.
func eachBroker(t *testing.T, fn func(t *testing.T, b *broker)) {
	t.Run("mochi", func(t *testing.T) { fn(t, startMochi(t, true)) })
	t.Run("mosquitto", func(t *testing.T) { fn(t, startMosquitto(t, "")) })
}

// mochiHook records the packets mochi reads from our clients and can hold
// their publishes before mochi acknowledges them.
type mochiHook struct {
	mochi.HookBase
	mu    sync.Mutex
	gate  chan struct{} // non-nil: our publishes wait for it to close
	held  chan struct{} // signalled when a publish starts waiting
	reads []readRec
}

type readRec struct {
	client string
	typ    byte
	id     uint16
}

func (h *mochiHook) ID() string { return "mqtt3-test" }

func (h *mochiHook) Provides(b byte) bool { return b == mochi.OnPacketRead || b == mochi.OnPublish }

func (h *mochiHook) OnPacketRead(cl *mochi.Client, pk mpackets.Packet) (mpackets.Packet, error) {
	h.mu.Lock()
	h.reads = append(h.reads, readRec{cl.ID, pk.FixedHeader.Type, pk.PacketID})
	h.mu.Unlock()
	return pk, nil
}

func (h *mochiHook) OnPublish(cl *mochi.Client, pk mpackets.Packet) (mpackets.Packet, error) {
	h.mu.Lock()
	gate := h.gate
	h.mu.Unlock()
	if gate != nil && strings.HasPrefix(cl.ID, "mqtt3-") {
		select {
		case h.held <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-time.After(4 * wait): // never hang the broker past a failed test
		}
	}
	return pk, nil
}

// read returns the packets of type typ mochi read from client.
func (h *mochiHook) read(client string, typ byte) []readRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []readRec
	for _, r := range h.reads {
		if r.client == client && r.typ == typ {
			out = append(out, r)
		}
	}
	return out
}

// startMochi runs mochi on 127.0.0.1:0. With allow, auth.AllowHook lets
// everyone in; without it, no hook authenticates and every CONNECT is
// refused.
func startMochi(t *testing.T, allow bool) *broker {
	t.Helper()
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if allow {
		if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
			t.Fatal(err)
		}
	}
	h := &mochiHook{held: make(chan struct{}, 16)}
	if err := srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(sweepTCP{ln, srv}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	// kill closes every connection at once; mochi's Close then waits for
	// its client goroutines, which a held publish keeps until the test
	// ends, so it runs on a goroutine the cleanup waits for.
	var once sync.Once
	stopped := make(chan struct{})
	kill := func() {
		once.Do(func() {
			go func() {
				srv.Close()
				close(stopped)
			}()
		})
	}
	t.Cleanup(func() {
		kill()
		select {
		case <-stopped:
		case <-time.After(wait):
			t.Error("mochi did not stop")
		}
	})
	hold := func() func() {
		gate := make(chan struct{})
		h.mu.Lock()
		h.gate = gate
		h.mu.Unlock()
		var once sync.Once
		release := func() {
			once.Do(func() {
				h.mu.Lock()
				h.gate = nil
				h.mu.Unlock()
				close(gate)
			})
		}
		t.Cleanup(release) // before the server closes
		return release
	}
	return &broker{name: "mochi", addr: ln.Address(), hold: hold, kill: kill, mochi: h}
}

// startMosquitto runs Debian's mosquitto on a free loopback port with a
// generated config (extra lines appended).
func startMosquitto(t *testing.T, extra string) *broker {
	t.Helper()
	bin := testpeer.RequireTool(t, "mosquitto")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := "listener " + strconv.Itoa(port) + " 127.0.0.1\npersistence false\n" + extra
	if !strings.Contains(extra, "allow_anonymous") {
		conf += "allow_anonymous true\n"
	}
	if os.Geteuid() == 0 {
		conf += "user root\n" // else it drops to "mosquitto" and cannot read the test's files
	}
	path := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path)
	var out testpeer.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(func() {
		kill()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	eventually(t, wait, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	hold := func() func() {
		cmd.Process.Signal(syscall.SIGSTOP)
		var once sync.Once
		release := func() { once.Do(func() { cmd.Process.Signal(syscall.SIGCONT) }) }
		t.Cleanup(release)
		return release
	}
	return &broker{name: "mosquitto", addr: addr, hold: hold, kill: kill}
}

// pahoClient is a paho.mqtt.golang peer, disconnected when the test ends.
func pahoClient(t *testing.T, b *broker, id string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(b.url()).SetClientID(id).SetOrderMatters(true).
		SetAutoReconnect(false).SetConnectRetry(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("paho connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// got is one message a paho subscriber received.
type got struct {
	topic   string
	payload string
	qos     byte
}

// pahoSub subscribes a paho peer to filter at QoS 1 and collects what it
// receives, in order.
type pahoSub struct {
	mu  sync.Mutex
	got []got
}

func subscribePaho(t *testing.T, b *broker, filter string) *pahoSub {
	t.Helper()
	s := &pahoSub{}
	c := pahoClient(t, b, "paho-sub")
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.got = append(s.got, got{m.Topic(), string(m.Payload()), m.Qos()})
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("paho subscribe: %v", tok.Error())
	}
	return s
}

// wait returns the first n messages once they arrived.
func (s *pahoSub) wait(t *testing.T, n int) []got {
	t.Helper()
	eventually(t, wait, strconv.Itoa(n)+" messages at the paho subscriber", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.got) >= n
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]got(nil), s.got...)
}

// pahoPublish publishes from a paho peer and waits for the broker's ack.
func pahoPublish(t *testing.T, c paho.Client, topic string, qos byte, payload string) {
	t.Helper()
	if tok := c.Publish(topic, qos, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("paho publish %s: %v", topic, tok.Error())
	}
}

// sweepTCP is mochi's TCP listener whose Close disconnects the clients
// from one copy of the client map: mochi v2.7.9's own sweep read-locks it
// twice and deadlocks when a client ends in between (mochi-mqtt/server
// issue 488).
type sweepTCP struct {
	*listeners.TCP
	srv *mochi.Server
}

func (l sweepTCP) Close(listeners.CloseFn) {
	l.TCP.Close(func(id string) {
		for _, cl := range l.srv.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Closed() {
				_ = l.srv.DisconnectClient(cl, mpackets.ErrServerShuttingDown)
			}
		}
	})
}
