package mqtt3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mpackets "github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// QoS 1 publishes complete with nil once the broker acknowledged them; a
// paho subscriber receives them in order with their payloads, including
// an empty one and one too large for the buffer pool.
func TestBrokerPublishQoS1(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		sub := subscribePaho(t, b, "mqtt3/q1/#")
		c := dial(t, b.addr, Options{ClientID: "mqtt3-q1"})
		big := make([]byte, 100<<10)
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range big {
			big[i] = byte(rnd.Uint32())
		}
		var want []got
		for i := range 100 {
			want = append(want, got{fmt.Sprintf("mqtt3/q1/%d", i%3), fmt.Sprintf("m-%03d", i), 1})
		}
		want = append(want, got{"mqtt3/q1/empty", "", 1}, got{"mqtt3/q1/big", string(big), 1}, got{"mqtt3/q1/after", "after", 1})
		var toks []*Token
		for _, w := range want {
			tok, err := c.Publish(w.topic, 1, []byte(w.payload))
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, tok)
		}
		for i, tok := range toks {
			if err := waitToken(t, tok); err != nil {
				t.Fatalf("Token %d: %v", i, err)
			}
		}
		gotMsgs := sub.wait(t, len(want))
		if len(gotMsgs) != len(want) {
			t.Fatalf("subscriber got %d messages, want %d", len(gotMsgs), len(want))
		}
		for i := range want {
			if gotMsgs[i] != want[i] {
				t.Fatalf("message %d: got %q %.20q, want %q %.20q", i, gotMsgs[i].topic, gotMsgs[i].payload, want[i].topic, want[i].payload)
			}
		}
	})
}

// A QoS 1 Token stays pending while the broker holds the PUBACK back.
func TestBrokerPublishWaitsForPuback(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		sub := subscribePaho(t, b, "mqtt3/held")
		c := dial(t, b.addr, Options{ClientID: "mqtt3-held"})
		release := b.hold()
		tok, err := c.Publish("mqtt3/held", 1, []byte("h"))
		if err != nil {
			t.Fatal(err)
		}
		if b.mochi != nil {
			select { // mochi has the PUBLISH and has not acknowledged it
			case <-b.mochi.held:
			case <-time.After(wait):
				t.Fatal("mochi did not receive the PUBLISH")
			}
		}
		if isClosed(tok.Done()) {
			t.Fatalf("Token completed (%v) without a PUBACK", tok.Err())
		}
		release()
		if err := waitToken(t, tok); err != nil {
			t.Fatal(err)
		}
		if g := sub.wait(t, 1); g[0].payload != "h" {
			t.Fatalf("subscriber got %v", g)
		}
	})
}

// QoS 0 publishes return a nil Token and arrive in order.
func TestBrokerPublishQoS0(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		sub := subscribePaho(t, b, "mqtt3/q0")
		c := dial(t, b.addr, Options{ClientID: "mqtt3-q0"})
		for i := range 10 {
			tok, err := c.Publish("mqtt3/q0", 0, []byte(itoa(i)))
			if err != nil || tok != nil {
				t.Fatalf("QoS 0 publish: Token %v, err %v", tok, err)
			}
		}
		publish1(t, c, "mqtt3/q0", []byte("last"))
		g := sub.wait(t, 11)
		for i := range 10 {
			if g[i].payload != itoa(i) || g[i].qos != 0 {
				t.Fatalf("message %d: %+v", i, g[i])
			}
		}
		if g[10].payload != "last" || g[10].qos != 1 {
			t.Fatalf("message 10: %+v", g[10])
		}
	})
}

func itoa(i int) string { return fmt.Sprint(i) }

// Subscribe returns the granted codes; messages another client publishes
// arrive through OnMessage at the granted QoS.
func TestBrokerSubscribe(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		r := newRecorder()
		c := dial(t, b.addr, r.options("mqtt3-sub"))
		codes, err := c.Subscribe(context.Background(), []Subscription{{"mqtt3/cmd/#", 1}, {"mqtt3/c0", 0}})
		if err != nil || !bytes.Equal(codes, []byte{1, 0}) {
			t.Fatalf("Subscribe: %v %v", codes, err)
		}
		peer := pahoClient(t, b, "paho-pub")
		pahoPublish(t, peer, "mqtt3/cmd/reboot", 1, "now")
		pahoPublish(t, peer, "mqtt3/c0", 1, "downgraded")
		pahoPublish(t, peer, "mqtt3/other", 1, "not subscribed")
		pahoPublish(t, peer, "mqtt3/cmd/a/b", 0, "zero")
		want := []struct {
			topic, payload string
			qos            byte
		}{{"mqtt3/cmd/reboot", "now", 1}, {"mqtt3/c0", "downgraded", 0}, {"mqtt3/cmd/a/b", "zero", 0}}
		for _, w := range want {
			m := r.next(t)
			if m.Topic != w.topic || string(m.Payload) != w.payload || m.QoS != w.qos {
				t.Fatalf("got %q %q QoS %d, want %q %q QoS %d", m.Topic, m.Payload, m.QoS, w.topic, w.payload, w.qos)
			}
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		publish1(t, c, "mqtt3/barrier", nil) // everything the broker sent before is handled
		r.none(t)
	})
}

// A refused CONNECT is a *RefusedError with the broker's return code.
func TestMochiRefused(t *testing.T) {
	b := startMochi(t, false) // no hook authenticates
	_, err := dialErr(t, b.addr, Options{ClientID: "mqtt3-refused", Username: "u", Password: "p"})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != 5 {
		t.Fatalf("got %v, want *RefusedError code 5", err)
	}
}

// mosquitto with a password file: the right password connects, a wrong
// one or an unknown user is refused.
func TestMosquittoPassword(t *testing.T) {
	passwd := testpeer.RequireTool(t, "mosquitto_passwd")
	file := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command(passwd, "-b", "-c", file, "dev1", "s3cret pw").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	b := startMosquitto(t, "allow_anonymous false\npassword_file "+file+"\n")
	c := dial(t, b.addr, Options{ClientID: "mqtt3-pw", Username: "dev1", Password: "s3cret pw"})
	publish1(t, c, "mqtt3/pw", []byte("in"))
	for _, o := range []Options{
		{ClientID: "mqtt3-wrong", Username: "dev1", Password: "wrong"},
		{ClientID: "mqtt3-nobody", Username: "nobody", Password: "s3cret pw"},
		{ClientID: "mqtt3-anon"},
	} {
		_, err := dialErr(t, b.addr, o)
		var re *RefusedError
		if !errors.As(err, &re) || re.Code != 5 && re.Code != 4 {
			t.Fatalf("%s: got %v, want *RefusedError code 4 or 5", o.ClientID, err)
		}
		t.Logf("%s: %v", o.ClientID, err)
	}
}

// Close fails pending Tokens with ErrClosed, closes Done and does not call
// OnLost.
func TestBrokerClose(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		r := newRecorder()
		c := dial(t, b.addr, r.options("mqtt3-close"))
		b.hold()
		var toks []*Token
		for i := range 3 {
			tok, err := c.Publish("mqtt3/close", 1, []byte(itoa(i)))
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, tok)
		}
		c.Close()
		if !isClosed(c.Done()) {
			t.Fatal("Done open after Close")
		}
		for i, tok := range toks {
			if err := waitToken(t, tok); !errors.Is(err, ErrClosed) {
				t.Fatalf("Token %d: %v, want ErrClosed", i, err)
			}
		}
		if lost := r.lostErrs(); len(lost) != 0 {
			t.Fatalf("OnLost on Close: %v", lost)
		}
	})
}

// The broker going away fails pending Tokens with the reason, closes Done
// and calls OnLost exactly once.
func TestBrokerGone(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		r := newRecorder()
		c := dial(t, b.addr, r.options("mqtt3-gone"))
		publish1(t, c, "mqtt3/gone", []byte("before"))
		b.hold()
		tok, err := c.Publish("mqtt3/gone", 1, []byte("pending"))
		if err != nil {
			t.Fatal(err)
		}
		b.kill()
		closed(t, c.Done(), "Done")
		reason := c.Err()
		if reason == nil || errors.Is(reason, ErrClosed) {
			t.Fatalf("Err() = %v", reason)
		}
		t.Logf("reason: %v", reason)
		if err := waitToken(t, tok); err != reason {
			t.Fatalf("pending Token: %v, want %v", err, reason)
		}
		lostOnce(t, r, reason)
		c.Close()
		lostOnce(t, r, reason)
	})
}

// KeepAlive sends a PINGREQ once the connection was idle for three
// quarters of the keep-alive; the broker's PINGRESP clears it and the
// connection stays up.
func TestBrokerKeepAlive(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		r := newRecorder()
		o := r.options("mqtt3-ka")
		o.KeepAlive, o.PingTimeout = 2*time.Second, 10*time.Second
		c := dial(t, b.addr, o)
		if d := c.KeepAlive(time.Now()); d <= 0 || d > 1500*time.Millisecond {
			t.Fatalf("KeepAlive right after CONNECT = %v", d)
		}
		wrote := c.lastWrite.Load()
		if d := c.KeepAlive(time.Now().Add(2 * time.Second)); d != 1500*time.Millisecond || c.lastWrite.Load() == wrote {
			t.Fatalf("KeepAlive after 2s idle = %v (wrote %v), want a PINGREQ written and 1.5s (3/4 of the period, less than PingTimeout)",
				d, c.lastWrite.Load() != wrote)
		}
		if b.mochi != nil {
			eventually(t, wait, "mochi to read the PINGREQ", func() bool {
				return len(b.mochi.read("mqtt3-ka", mpackets.Pingreq)) == 1
			})
		}
		eventually(t, wait, "the PINGRESP", func() bool { return !pingOutstanding(c) })
		publish1(t, c, "mqtt3/ka", []byte("still up"))
		if err := c.Err(); err != nil {
			t.Fatal(err)
		}
		if lost := r.lostErrs(); len(lost) != 0 {
			t.Fatalf("OnLost %v", lost)
		}
	})
}

// Message.Ack sends the PUBACK (mochi reads exactly one, for the message's
// identifier); nothing acknowledges a QoS 1 message before Ack.
func TestMochiAck(t *testing.T) {
	b := startMochi(t, true)
	r := newRecorder()
	c := dial(t, b.addr, r.options("mqtt3-ack"))
	if _, err := c.Subscribe(context.Background(), []Subscription{{"mqtt3/cmd", 1}}); err != nil {
		t.Fatal(err)
	}
	pahoPublish(t, pahoClient(t, b, "paho-pub"), "mqtt3/cmd", 1, "do it")
	m := r.next(t)
	if m.QoS != 1 || m.id == 0 {
		t.Fatalf("message QoS %d id %d", m.QoS, m.id)
	}
	// mochi reads one client's packets in order: once the barrier's PUBACK
	// is back, any PUBACK sent before it has been read.
	publish1(t, c, "mqtt3/barrier", nil)
	if n := b.mochi.read("mqtt3-ack", mpackets.Puback); len(n) != 0 {
		t.Fatalf("PUBACK sent before Ack: %v", n)
	}
	for range 2 {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	publish1(t, c, "mqtt3/barrier", nil)
	if got := b.mochi.read("mqtt3-ack", mpackets.Puback); len(got) != 1 || got[0].id != m.id {
		t.Fatalf("mochi read PUBACKs %v, want one for id %d", got, m.id)
	}
}

// With one message in flight per client, mosquitto sends the next QoS 1
// message only after the PUBACK of the previous: Ack releases it, and
// nothing releases it before Ack.
func TestMosquittoAck(t *testing.T) {
	b := startMosquitto(t, "max_inflight_messages 1\n")
	r := newRecorder()
	c := dial(t, b.addr, r.options("mqtt3-ack"))
	if _, err := c.Subscribe(context.Background(), []Subscription{{"mqtt3/cmd", 1}}); err != nil {
		t.Fatal(err)
	}
	peer := pahoClient(t, b, "paho-pub")
	pahoPublish(t, peer, "mqtt3/cmd", 1, "first")
	pahoPublish(t, peer, "mqtt3/cmd", 1, "second")
	m1 := r.next(t)
	publish1(t, c, "mqtt3/barrier", nil) // mosquitto would have sent "second" before this PUBACK
	r.none(t)
	if err := m1.Ack(); err != nil {
		t.Fatal(err)
	}
	m2 := r.next(t)
	if string(m1.Payload) != "first" || string(m2.Payload) != "second" || m2.QoS != 1 {
		t.Fatalf("got %q then %q", m1.Payload, m2.Payload)
	}
	if err := m1.Ack(); err != nil { // a second Ack does nothing
		t.Fatal(err)
	}
	if err := m2.Ack(); err != nil {
		t.Fatal(err)
	}
	publish1(t, c, "mqtt3/barrier", nil)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

// Every method used at once from many goroutines (run with -race).
func TestMochiConcurrentUse(t *testing.T) {
	b := startMochi(t, true)
	sub := subscribePaho(t, b, "mqtt3/conc/#")
	r := newRecorder()
	o := r.options("mqtt3-conc")
	o.KeepAlive = 2 * time.Second
	c := dial(t, b.addr, o)
	peer := pahoClient(t, b, "paho-pub")
	const workers, each = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each+10)
	for w := range workers {
		wg.Go(func() {
			var toks []*Token
			for i := range each {
				tok, err := c.Publish(fmt.Sprintf("mqtt3/conc/%d", w), byte(i%2), []byte(itoa(i)))
				if err != nil {
					errs <- err
					return
				}
				if tok != nil {
					toks = append(toks, tok)
				}
			}
			for _, tok := range toks {
				select {
				case <-tok.Done():
					if tok.Err() != nil {
						errs <- tok.Err()
					}
				case <-time.After(wait):
					errs <- errors.New("Token not done")
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			c.KeepAlive(time.Now().Add(time.Duration(i) * 100 * time.Millisecond))
		}
	})
	wg.Go(func() {
		if _, err := c.Subscribe(context.Background(), []Subscription{{"mqtt3/in", 1}}); err != nil {
			errs <- err
			return
		}
		if tok := peer.Publish("mqtt3/in", 1, false, "x"); !tok.WaitTimeout(wait) || tok.Error() != nil {
			errs <- fmt.Errorf("paho publish: %v", tok.Error())
			return
		}
		select {
		case m := <-r.msgs:
			errs <- m.Ack()
		case <-time.After(wait):
			errs <- errors.New("no inbound message")
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	g := sub.wait(t, workers*each)
	next := make(map[string]int)
	for _, m := range g {
		if m.payload != itoa(next[m.topic]) {
			t.Fatalf("%s: got %s, want %d", m.topic, m.payload, next[m.topic])
		}
		next[m.topic]++
	}
}
