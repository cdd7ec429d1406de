// Package wsconn carries a byte stream (MQTT) over a WebSocket as a
// net.Conn: every Write is one binary message, and Read returns the bytes
// of the binary messages in order, however the peer split them. Text
// messages are a protocol error. The hub emulator serves MQTT over
// WebSocket with it and the northbound pool dials with it.
//
// Deadlines apply to the connection under the WebSocket. A read or write
// that timed out leaves the WebSocket unusable (as with gorilla/websocket
// itself): close it.
package wsconn

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Conn is a WebSocket seen as a net.Conn. Read and Write may be called
// concurrently with each other.
type Conn struct {
	ws    *websocket.Conn
	state tls.ConnectionState
	rmu   sync.Mutex
	r     io.Reader // the message being read
	wmu   sync.Mutex
}

var _ net.Conn = (*Conn)(nil)

// New wraps ws. state is the TLS state of the HTTPS connection under it
// (zero for plain HTTP); ConnectionState returns it, so a server can read
// the client certificate.
func New(ws *websocket.Conn, state *tls.ConnectionState) *Conn {
	c := &Conn{ws: ws}
	if state != nil {
		c.state = *state
	}
	return c
}

// ConnectionState returns the TLS state given to New.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.state }

// Read reads the next bytes of the stream.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("websocket: text message on an mqtt connection")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *Conn) Close() error         { return c.ws.Close() }
func (c *Conn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// Deadlines go to the connection under the WebSocket: gorilla's own write
// deadline is state its writer reads, so setting it while another
// goroutine writes (a broker refreshing a client's deadline as it sends)
// would race.
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.ws.NetConn().SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.ws.NetConn().SetWriteDeadline(t) }
func (c *Conn) SetDeadline(t time.Time) error      { return c.ws.NetConn().SetDeadline(t) }
