package mqtt3

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// readLoop is the connection's one goroutine: it reads packets until the
// connection ends, then fails what is pending and closes done.
func (c *Conn) readLoop() {
	defer c.finish()
	var ack [2]byte // PUBACK bodies, done with before the next read
	for {
		p, err := readPacketInto(c.br, c.br, c.o.MaxPacket, ack[:])
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				err = errors.New("server closed the connection")
			case errors.Is(err, net.ErrClosed):
				err = ErrClosed // fail or Close already recorded the reason
			default:
				err = fmt.Errorf("read: %w", err)
			}
			c.fail(err)
			return
		}
		if err := c.handle(p); err != nil {
			c.fail(err)
			return
		}
	}
}

// handle acts on one inbound packet. An error ends the connection.
func (c *Conn) handle(p packet) error {
	switch p.typ {
	case typePublish:
		pub, err := parsePublish(p)
		if err != nil {
			return err
		}
		if pub.qos == 2 {
			return protocolErr("PUBLISH at QoS 2: this client subscribes at QoS 1 at most")
		}
		if c.o.OnMessage != nil {
			c.o.OnMessage(&Message{Topic: pub.topic, Payload: pub.payload, QoS: pub.qos, id: pub.id, c: c})
		} else if pub.qos == 1 {
			return c.write(pubackPacket(pub.id))
		}
		return nil
	case typePuback:
		id, err := packetID(p, "PUBACK", true)
		if err != nil {
			return err
		}
		c.complete(id, nil) // an unknown identifier is a late duplicate: nothing to do
		return nil
	case typeSuback:
		id, err := packetID(p, "SUBACK", false)
		if err != nil {
			return err
		}
		c.complete(id, p.body[2:])
		return nil
	case typeUnsuback:
		id, err := packetID(p, "UNSUBACK", true)
		if err != nil {
			return err
		}
		c.complete(id, nil)
		return nil
	case typeDisconnect:
		// Not a 3.1.1 server packet, but brokers shutting down send it
		// (MQTT 5 habit): read it as the close it announces.
		return errors.New("server closed the connection (DISCONNECT)")
	case typePingresp:
		c.mu.Lock()
		c.pingSent = time.Time{}
		c.mu.Unlock()
		return nil
	}
	return protocolErr("unexpected packet type %d from the server", p.typ)
}

// complete resolves the Token waiting for id.
func (c *Conn) complete(id uint16, codes []byte) {
	c.mu.Lock()
	if t := c.pending[id]; t != nil {
		c.drop(id)
		t.fire(nil, codes) // SUBACK bodies are allocated per packet: safe to keep
	}
	c.mu.Unlock()
}

// finish runs when the reader exits: every pending Token fails with the
// reason the connection ended.
func (c *Conn) finish() {
	c.mu.Lock()
	reason := c.err
	for _, t := range c.pending {
		t.fire(reason, nil)
	}
	c.pending = nil
	c.mu.Unlock()
	if c.o.OnLost != nil && !errors.Is(reason, ErrClosed) {
		c.o.OnLost(reason)
	}
	close(c.done)
}
