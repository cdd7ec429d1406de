package northbound

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/iothub"
)

func testLogger(t *testing.T) (*slog.Logger, *testpeer.Buffer) {
	lb := &testpeer.Buffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// runPool runs p until the returned stop is called; stop checks that Run
// returned nil.
func runPool(t *testing.T, p *Pool) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return within 30s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// received is one message a test peer got.
type received struct {
	topic string
	body  string
}

// subscriber is a paho test client collecting what it receives.
type subscriber struct {
	c  mqtt.Client
	mu sync.Mutex
	by map[string][]received // by identity
}

func newSubscriber(t *testing.T, url, filter string, idOf func(topic string) string) *subscriber {
	t.Helper()
	s := &subscriber{by: map[string][]received{}}
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID("test-sub").SetOrderMatters(true).SetAutoReconnect(false)
	s.c = mqtt.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := s.c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		id := idOf(m.Topic())
		s.by[id] = append(s.by[id], received{m.Topic(), string(m.Payload())})
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { s.c.Disconnect(100) })
	return s
}

func (s *subscriber) get(id string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.by[id]...)
}

// telemetry returns message i of identity id.
func telemetry(id string, i int) edgegw.Message {
	return edgegw.Message{Identity: edgegw.DeviceID(id), Kind: edgegw.Telemetry, Body: []byte(strconv.Itoa(i)),
		ContentType: "application/json", MessageID: fmt.Sprintf("m-%d", i),
		Properties: []edgegw.Property{{Key: "seq", Value: strconv.Itoa(i)}, {Key: "odd key&=", Value: "a b/c%"}}}
}

// checkInOrder checks that got holds bodies 1..n in order (each at least
// once, duplicates allowed only as re-sends of a window) and the
// properties survived.
func checkInOrder(t *testing.T, id string, got []string, props [][]edgegw.Property, n int) {
	t.Helper()
	next := 1
	for i, b := range got {
		v, err := strconv.Atoi(b)
		if err != nil {
			t.Fatalf("%s: body %q", id, b)
		}
		if v > next {
			t.Fatalf("%s: got %d before %d (message %d of %d)", id, v, next, i, len(got))
		}
		if v == next {
			next++
		}
		if props != nil {
			want := telemetry(id, v)
			if !hasProps(props[i], map[string]string{"$.mid": want.MessageID, "$.ct": "application/json", "seq": b, "odd key&=": "a b/c%"}) {
				t.Fatalf("%s: message %d properties %v", id, v, props[i])
			}
		}
	}
	if next != n+1 {
		t.Fatalf("%s: got up to %d of %d (%d messages)", id, next-1, n, len(got))
	}
}

func hasProps(got []edgegw.Property, want map[string]string) bool {
	for k, v := range want {
		if g, ok := bagValue(got, k); !ok || g != v {
			return false
		}
	}
	return true
}

func TestMQTTProfileTelemetryMosquitto(t *testing.T) {
	port := startMosquitto(t, "")
	url := "tcp://127.0.0.1:" + strconv.Itoa(port)
	sub := newSubscriber(t, url, "devices/#", func(topic string) string {
		id, _, _ := strings.Cut(strings.TrimPrefix(topic, "devices/"), "/telemetry/")
		return id
	})
	cfg := Config{Profile: ProfileMQTT, Host: "127.0.0.1", Port: port, Insecure: true, InFlight: 8,
		Topics: Topics{Telemetry: "devices/{id}/telemetry/{bag}"}}
	ids := []identity.Config{{ID: "d1"}, {ID: "d2/m1"}, {ID: "d3", Username: "u3", Password: "secret-pw"}}
	const n = 300
	q := newMemQueue()
	for _, ic := range ids {
		for i := 1; i <= n/2; i++ {
			q.append(ic.ID, telemetry(ic.ID, i))
		}
	}
	log, logs := testLogger(t)
	p, err := New(cfg, ids, q, newRecorder(), log)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	for _, ic := range ids {
		for i := n/2 + 1; i <= n; i++ {
			q.append(ic.ID, telemetry(ic.ID, i))
		}
	}
	for _, ic := range ids {
		eventually(t, 20*time.Second, ic.ID+" drained", func() bool { return q.pending(ic.ID) == 0 })
	}
	for _, ic := range ids { // the subscriber gets the identities' streams in any interleaving
		eventually(t, 10*time.Second, ic.ID+" at the subscriber", func() bool { return len(sub.get(ic.ID)) >= n })
	}
	for _, ic := range ids {
		got := sub.get(ic.ID)
		var bodies []string
		var props [][]edgegw.Property
		for _, r := range got {
			_, bag, _ := strings.Cut(r.topic, "/telemetry/")
			pp, err := iothub.ParseBag(bag)
			if err != nil {
				t.Fatal(err)
			}
			bodies, props = append(bodies, r.body), append(props, pp)
		}
		checkInOrder(t, ic.ID, bodies, props, n)
	}
	st := p.Status()
	for _, s := range st {
		if !s.Connected || s.Acked != n || s.InFlight != 0 || s.LastPUBACK.IsZero() || s.Sent < n {
			t.Errorf("status %+v", s)
		}
	}
	stop()
	for _, s := range p.Status() {
		if s.Connected {
			t.Errorf("%s still connected after Run returned", s.Identity)
		}
	}
	if strings.Contains(logs.String(), "secret-pw") {
		t.Fatal("password in logs")
	}
}

// TestMQTTProfileCommandsMosquitto sends a method call, a desired patch and
// a C2D message through mosquitto and checks the method response.
func TestMQTTProfileCommandsMosquitto(t *testing.T) {
	port := startMosquitto(t, "")
	url := "tcp://127.0.0.1:" + strconv.Itoa(port)
	sub := newSubscriber(t, url, "devices/+/responses/#", func(string) string { return "r" })
	rec := newRecorder()
	cfg := Config{Profile: ProfileMQTT, Host: "127.0.0.1", Port: port, Insecure: true}
	q := newMemQueue()
	p, err := New(cfg, []identity.Config{{ID: "dev1"}}, q, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	eventually(t, 10*time.Second, "connected", func() bool { return p.Status()[0].Connected })
	publish := func(topic, body string) {
		tok := sub.c.Publish(topic, 1, false, body)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	publish("devices/dev1/commands/echo/42", `{"x":1}`)
	if c := rec.next(t, edgegw.Method); c.Name != "echo" || string(c.Payload) != `{"x":1}` || c.Identity != "dev1" {
		t.Fatalf("method %+v", c)
	}
	eventually(t, 5*time.Second, "method response", func() bool { return len(sub.get("r")) == 1 })
	r := sub.get("r")[0]
	var resp struct {
		Status  int
		Payload json.RawMessage
	}
	if err := json.Unmarshal([]byte(r.body), &resp); r.topic != "devices/dev1/responses/echo/42" || err != nil || resp.Status != 200 || string(resp.Payload) != `{"x":1}` {
		t.Fatalf("response %s %s", r.topic, r.body)
	}
	publish("devices/dev1/desired", `{"setpoint":21.5,"$version":3}`)
	if c := rec.next(t, edgegw.Desired); c.Version != 3 || !strings.Contains(string(c.Payload), "21.5") {
		t.Fatalf("desired %+v", c)
	}
	publish("devices/dev1/desired", `{"setpoint":20,"$version":2}`) // stale: skipped
	publish("devices/dev1/c2d", "hello")
	if c := rec.next(t, edgegw.C2D); string(c.Payload) != "hello" {
		t.Fatalf("c2d %+v", c)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, c := range rec.cmds {
		if c.Kind == edgegw.Desired && c.Version == 2 {
			t.Fatal("stale desired patch handed down")
		}
	}
}

// TestMQTTProfileAcksEveryQoS1Message: with auto-ack off every QoS 1
// message the gateway takes must still be acknowledged. mosquitto allows
// one message in flight per client here, so a missing PUBACK would hold
// back everything after it.
func TestMQTTProfileAcksEveryQoS1Message(t *testing.T) {
	port := startMosquitto(t, "max_inflight_messages 1\n")
	url := "tcp://127.0.0.1:" + strconv.Itoa(port)
	sub := newSubscriber(t, url, "devices/+/responses/#", func(string) string { return "r" })
	rec := newRecorder()
	cfg := Config{Profile: ProfileMQTT, Host: "127.0.0.1", Port: port, Insecure: true}
	p, err := New(cfg, []identity.Config{{ID: "dev1"}}, newMemQueue(), rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	eventually(t, 10*time.Second, "connected", func() bool { return p.Status()[0].Connected })
	publish := func(topic, body string) {
		tok := sub.c.Publish(topic, 1, false, body)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	const n = 5
	for i := 1; i <= n; i++ {
		publish("devices/dev1/desired", fmt.Sprintf(`{"k%d":%d,"$version":%d}`, i, i, i))
		publish("devices/dev1/c2d", fmt.Sprintf("m%d", i))
		publish("devices/dev1/desired", "not JSON: acked and ignored")
	}
	count := func(k edgegw.CommandKind) (int, int64) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		c, v := 0, int64(0)
		for _, cmd := range rec.cmds {
			if cmd.Kind == k {
				c, v = c+1, max(v, cmd.Version)
			}
		}
		return c, v
	}
	eventually(t, 10*time.Second, "every C2D message and the last desired version", func() bool {
		c2d, _ := count(edgegw.C2D)
		_, v := count(edgegw.Desired)
		return c2d == n && v == n
	})
}
