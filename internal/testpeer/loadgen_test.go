package testpeer

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/iothub"
)

// TestLoadMosquitto runs loads against Debian's mosquitto and checks, with
// a paho subscriber, that every acknowledged publish arrived whole on its
// connection's topic.
func TestLoadMosquitto(t *testing.T) {
	addr := StartMosquitto(t, func(port int) string {
		// An unbounded queue, so the subscriber below misses nothing.
		return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n", port)
	})
	sub := newCounter(t, addr)
	for _, tc := range []struct {
		name           string
		conns, window  int
		count          int
		duration       time.Duration
		wantAcked      int64 // 0: any, but more than nothing
		user, password string
	}{
		{name: "count", conns: 3, window: 10, count: 500, wantAcked: 1500},
		{name: "window 1", conns: 1, window: 1, count: 200, wantAcked: 200, user: "u", password: "p"},
		{name: "duration", conns: 2, window: 5, duration: 300 * time.Millisecond},
		{name: "duration and count", conns: 2, window: 5, duration: 20 * time.Second, count: 300, wantAcked: 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub.reset()
			l := Load{Window: tc.window, Payload: 200, Count: tc.count, Duration: tc.duration}
			for i := range tc.conns {
				l.Conns = append(l.Conns, LoadConn{Addr: addr, ClientID: fmt.Sprintf("load-%d", i),
					Username: tc.user, Password: tc.password, Topic: fmt.Sprintf("load/%d", i)})
			}
			start := time.Now()
			r, err := RunLoad(context.Background(), l)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(r)
			if tc.wantAcked != 0 && r.Acked != tc.wantAcked || r.Acked == 0 {
				t.Errorf("acked %d, want %d", r.Acked, tc.wantAcked)
			}
			if r.Sent != r.Acked || r.OutOfOrder != 0 || r.Conns != tc.conns {
				t.Errorf("sent %d, acked %d, out of order %d, conns %d", r.Sent, r.Acked, r.OutOfOrder, r.Conns)
			}
			if r.Elapsed <= 0 || r.Elapsed > time.Since(start) || r.Rate <= 0 {
				t.Errorf("elapsed %v, rate %v", r.Elapsed, r.Rate)
			}
			if !(0 < r.P50 && r.P50 <= r.P90 && r.P90 <= r.P99) {
				t.Errorf("percentiles p50 %v p90 %v p99 %v", r.P50, r.P90, r.P99)
			}
			got := sub.wait(t, r.Acked)
			for i := range tc.conns {
				topic := fmt.Sprintf("load/%d", i)
				if got[topic] == 0 {
					t.Errorf("nothing arrived on %s: %v", topic, got)
				}
			}
		})
	}
}

// counter is a paho subscriber to load/# that counts the messages of each
// topic that carry the load's 200-byte payload, and the others as "bad".
type counter struct {
	mu  sync.Mutex
	got map[string]int64
}

func newCounter(t *testing.T, addr string) *counter {
	t.Helper()
	s := &counter{got: map[string]int64{}}
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("load-counter").SetAutoReconnect(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe("load/#", 1, func(_ paho.Client, m paho.Message) {
		key := m.Topic()
		if len(m.Payload()) != 200 || m.Payload()[0] != 'a' || m.Payload()[199] != 'a'+199%26 {
			key = "bad"
		}
		s.mu.Lock()
		s.got[key]++
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho subscribe: %v", tok.Error())
	}
	return s
}

func (s *counter) reset() {
	s.mu.Lock()
	clear(s.got)
	s.mu.Unlock()
}

// wait waits up to 10s for n messages and returns the counts by topic.
func (s *counter) wait(t *testing.T, n int64) map[string]int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		var total int64
		for _, v := range s.got {
			total += v
		}
		got := maps.Clone(s.got)
		s.mu.Unlock()
		if got["bad"] != 0 {
			t.Fatalf("%d messages arrived with the wrong payload", got["bad"])
		}
		if total >= n {
			if total > n {
				t.Errorf("subscriber got %d messages, %d were acknowledged", total, n)
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber got %d of %d messages within 10s", total, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLoadMosquittoFailures: what mosquitto refuses or closes is reported.
func TestLoadMosquittoFailures(t *testing.T) {
	addr := StartMosquitto(t, func(port int) string {
		return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)
	})
	closed := StartMosquitto(t, func(port int) string {
		return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\n", port)
	})
	for _, tc := range []struct {
		name string
		conn LoadConn
		want error
	}{
		// A wildcard in a PUBLISH topic breaks the protocol: mosquitto
		// closes the connection.
		{"wildcard topic", LoadConn{Addr: addr, ClientID: "bad-topic", Topic: "load/#"}, ErrPeerClosed},
		{"anonymous refused", LoadConn{Addr: closed, ClientID: "anon", Topic: "load/x"}, ErrRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := RunLoad(context.Background(), Load{Conns: []LoadConn{tc.conn}, Window: 10, Payload: 200, Count: 100})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
			if r.Acked != 0 {
				t.Errorf("acked %d", r.Acked)
			}
		})
	}
}

// TestLoadHubsimTLS publishes over TLS with an IoT Hub username and SAS
// token to the hub emulator, which must record every message.
func TestLoadHubsimTLS(t *testing.T) {
	hub := &hubsim.Hub{}
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	const devices, count = 3, 300
	var conns []LoadConn
	for i := range devices {
		id := "load-" + strconv.Itoa(i)
		dev, err := hub.CreateDevice(id)
		if err != nil {
			t.Fatal(err)
		}
		key, err := base64.StdEncoding.DecodeString(dev.PrimaryKey)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, LoadConn{
			Addr: hub.MQTTAddress(), TLS: &tls.Config{RootCAs: hub.CACertPool(), ServerName: hub.HostName},
			ClientID: id, Username: hub.HostName + "/" + id + "/?api-version=2021-04-12",
			Password: iothub.SASToken(iothub.ResourceURI(hub.HostName, id, ""), key, "", time.Now().Add(time.Hour)),
			Topic:    "devices/" + id + "/messages/events/",
		})
	}
	r, err := RunLoad(context.Background(), Load{Conns: conns, Window: 10, Payload: 200, Count: count})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Acked != devices*count {
		t.Errorf("acked %d, want %d", r.Acked, devices*count)
	}
	for _, c := range conns {
		got := hub.Telemetry(c.ClientID)
		if len(got) != count || len(got[0].Body) != 200 {
			t.Errorf("%s: hub has %d messages", c.ClientID, len(got))
		}
	}

	bad := conns[0]
	bad.Password = "SharedAccessSignature sr=x&sig=y&se=1"
	if _, err := RunLoad(context.Background(), Load{Conns: []LoadConn{bad, conns[1]}, Window: 1, Count: 1}); !errors.Is(err, ErrRefused) {
		t.Errorf("a wrong token: got %v, want %v", err, ErrRefused)
	}
}

// TestLoadDetects runs the load generator against a scripted peer that
// breaks the rules a real broker keeps: PUBACKs out of order, a PUBACK for
// nothing in flight, a connection closed mid-run, PUBACKs withheld.
func TestLoadDetects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		window  int
		count   int
		ack     func(batch []uint16) (acks []uint16, close bool)
		want    error
		acked   int64
		ooo     int64
		timeout bool
	}{
		{
			name: "in order", window: 4, count: 8,
			ack:   func(b []uint16) ([]uint16, bool) { return b, false },
			acked: 8,
		},
		{
			name: "out of order", window: 4, count: 8,
			ack: func(b []uint16) ([]uint16, bool) {
				r := slices.Clone(b)
				slices.Reverse(r)
				return r, false
			},
			want: ErrPubackOrder, acked: 8, ooo: 6, // 4, 3 and 2 before 1, twice
		},
		{
			name: "unknown packet id", window: 4, count: 8,
			ack:   func(b []uint16) ([]uint16, bool) { return []uint16{b[0], 999}, false },
			want:  ErrProtocol,
			acked: 1,
		},
		{
			name: "closed by the peer", window: 4, count: 100,
			ack:   func(b []uint16) ([]uint16, bool) { return b[:3], true },
			want:  ErrPeerClosed,
			acked: 3,
		},
		{
			name: "no PUBACKs", window: 4, count: 100,
			ack:     func(b []uint16) ([]uint16, bool) { return nil, false },
			want:    ErrStalled,
			timeout: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := scriptedPeer(t, tc.window, tc.ack)
			l := Load{Conns: []LoadConn{{Addr: addr, ClientID: "c", Topic: "t"}}, Window: tc.window, Payload: 10, Count: tc.count}
			if tc.timeout {
				l.Duration, l.DrainTimeout = 100*time.Millisecond, 200*time.Millisecond
			}
			r, err := RunLoad(context.Background(), l)
			if tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
			if r.Acked != tc.acked || r.OutOfOrder != tc.ooo {
				t.Errorf("acked %d, out of order %d; want %d, %d", r.Acked, r.OutOfOrder, tc.acked, tc.ooo)
			}
			if len(r.Errs) > 1 {
				t.Errorf("one connection, errors %v", r.Errs)
			}
		})
	}
}

// scriptedPeer accepts one MQTT connection on loopback, accepts its
// CONNECT, then reads publishes a window at a time and answers each batch
// with the PUBACKs ack returns, closing the connection when it says so.
func scriptedPeer(t *testing.T, window int, ack func([]uint16) ([]uint16, bool)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		if typ, _, err := readPacket(br); err != nil || typ != pktConnect {
			t.Errorf("scripted peer: CONNECT: 0x%02x %v", typ, err)
			return
		}
		if _, err := c.Write([]byte{pktConnack, 2, 0, 0}); err != nil {
			return
		}
		for range 1000 { // batches; the load ends long before
			var batch []uint16
			for len(batch) < window {
				typ, body, err := readPacket(br)
				if err != nil || typ == pktDisconnect {
					return
				}
				n := binary.BigEndian.Uint16(body) // topic length
				batch = append(batch, binary.BigEndian.Uint16(body[2+n:]))
			}
			acks, closeNow := ack(batch)
			var out []byte
			for _, id := range acks {
				out = append(out, pktPuback, 2, byte(id>>8), byte(id))
			}
			if _, err := c.Write(out); err != nil || closeNow {
				return
			}
		}
	})
	return ln.Addr().String()
}

func TestLatencyQuantiles(t *testing.T) {
	var l latencies
	for i := 1; i <= 1000; i++ {
		l.add(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := l.quantile(tc.q)
		if got < tc.want || float64(got) > 1.0101*float64(tc.want) {
			t.Errorf("quantile %v = %v, want %v to 1%% above", tc.q, got, tc.want)
		}
	}
	var empty latencies
	if empty.quantile(0.5) != 0 {
		t.Error("an empty histogram has a median")
	}
	if !strings.Contains(fmt.Sprint(LoadResult{}), "0 conns") {
		t.Error("String")
	}
}
