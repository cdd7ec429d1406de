package wsconn

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pair returns both ends of a real WebSocket over loopback: the server
// end as a Conn, the client end raw, so the test controls the framing.
func pair(t *testing.T) (*Conn, *websocket.Conn) {
	t.Helper()
	got := make(chan *Conn, 1)
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		got <- New(ws, r.TLS)
	}))
	t.Cleanup(srv.Close)
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	cl, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	select {
	case c := <-got:
		t.Cleanup(func() { c.Close() })
		return c, cl
	case <-time.After(5 * time.Second):
		t.Fatal("no server connection")
	}
	return nil, nil
}

// The stream is the binary messages' bytes in order, however they are
// split, and reads may cut across message boundaries.
func TestStreamAcrossMessages(t *testing.T) {
	c, cl := pair(t)
	for _, m := range []string{"he", "", "llo, ", "world"} {
		if err := cl.WriteMessage(websocket.BinaryMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "hello, world" {
		t.Fatalf("read %q", buf)
	}

	// Each Write is one binary message.
	if n, err := c.Write([]byte("packet")); err != nil || n != 6 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	cl.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := cl.ReadMessage()
	if err != nil || typ != websocket.BinaryMessage || !bytes.Equal(b, []byte("packet")) {
		t.Fatalf("client read type %d %q %v", typ, b, err)
	}
}

// A text message is not MQTT: Read fails.
func TestTextMessageRefused(t *testing.T) {
	c, cl := pair(t)
	if err := cl.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 4)); err == nil || !strings.Contains(err.Error(), "text message") {
		t.Fatalf("Read = %v, want a text message error", err)
	}
}

// A broker refreshes a client's deadlines on its reading goroutine while
// another writes to it: under -race this must be clean.
func TestDeadlinesWhileWriting(t *testing.T) {
	c, cl := pair(t)
	const n = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	read := make(chan error, 1)
	go func() {
		cl.SetReadDeadline(time.Now().Add(10 * time.Second))
		for range n {
			if _, _, err := cl.ReadMessage(); err != nil {
				read <- err
				return
			}
		}
		read <- nil
	}()
	for range n {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if err := <-read; err != nil {
		t.Fatal(err)
	}
}
