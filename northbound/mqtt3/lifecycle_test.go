package mqtt3

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// Close sends DISCONNECT, fails pending Tokens with ErrClosed, closes Done,
// does not call OnLost, and later calls fail with ErrClosed.
func TestCloseRaw(t *testing.T) {
	s := newRawServer(t)
	r := newRecorder()
	c, p := s.connect(r.options("closer"))
	var toks []*Token
	for range 3 {
		tok, err := c.Publish("pending", 1, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		p.readPublish()
		toks = append(toks, tok)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(c.Done()) {
		t.Fatal("Done not closed when Close returned")
	}
	for i, tok := range toks {
		if !isClosed(tok.Done()) || !errors.Is(tok.Err(), ErrClosed) {
			t.Fatalf("Token %d: done %v err %v, want ErrClosed", i, isClosed(tok.Done()), tok.Err())
		}
	}
	p.nc.SetReadDeadline(time.Now().Add(wait))
	if b, err := io.ReadAll(p.nc); err != nil || string(b) != string(disconnectPacket) {
		t.Fatalf("server read %x %v, want DISCONNECT then EOF", b, err)
	}
	if err := c.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err() = %v", err)
	}
	if _, err := c.Publish("t", 0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := c.Publish("t", 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish QoS 1 after Close: %v", err)
	}
	if _, err := c.Subscribe(context.Background(), []Subscription{{"t", 1}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if lost := r.lostErrs(); len(lost) != 0 {
		t.Fatalf("OnLost called on Close: %v", lost)
	}
}

// The server closing the connection fails pending Tokens, closes Done and
// calls OnLost once; a Close afterwards changes nothing.
func TestServerClosesRaw(t *testing.T) {
	s := newRawServer(t)
	r := newRecorder()
	c, p := s.connect(r.options("dropped"))
	tok, err := c.Publish("pending", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.readPublish()
	p.nc.Close()
	closed(t, c.Done(), "Done")
	reason := c.Err()
	if reason == nil || errors.Is(reason, ErrClosed) {
		t.Fatalf("Err() = %v", reason)
	}
	if err := waitToken(t, tok); err != reason {
		t.Fatalf("pending Token: %v, want %v", err, reason)
	}
	lostOnce(t, r, reason)
	c.Close()
	lostOnce(t, r, reason)
}

// stalledPublish connects to a server that reads the CONNECT and the first
// byte of a PUBLISH too big for the socket buffers, then stops reading; it
// returns once that write is under way, and a channel with Publish's error.
func stalledPublish(t *testing.T, o Options) (*Conn, <-chan error) {
	t.Helper()
	s := newRawServer(t)
	c, p := s.connect(o)
	res := make(chan error, 1)
	go func() {
		_, err := c.Publish("big", 0, make([]byte, 64<<20))
		res <- err
	}()
	p.nc.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(p.nc, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return c, res
}

// A write that cannot finish within WriteTimeout ends the connection.
func TestWriteTimeout(t *testing.T) {
	r := newRecorder()
	o := r.options("stuck")
	o.WriteTimeout = 300 * time.Millisecond
	c, res := stalledPublish(t, o)
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("Publish succeeded")
		}
	case <-time.After(wait):
		t.Fatal("Publish still blocked")
	}
	closed(t, c.Done(), "Done")
	lostOnce(t, r, c.Err())
}

// Close sends DISCONNECT "best effort, at most one second": a write stuck
// on a server that stopped reading must not hold Close for WriteTimeout.
func TestCloseDuringStuckWrite(t *testing.T) {
	o := Options{ClientID: "stuck-close", WriteTimeout: 3 * time.Second}
	c, res := stalledPublish(t, o)
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v behind a stuck write (WriteTimeout %v)", d.Round(time.Millisecond), o.WriteTimeout)
	}
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("Publish succeeded")
		}
	case <-time.After(wait):
		t.Fatal("Publish still blocked after Close")
	}
}
