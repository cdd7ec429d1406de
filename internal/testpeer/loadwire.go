package testpeer

import (
	"encoding/binary"
	"io"
)

// The load generator's MQTT 3.1.1 wire encoding.

// noEOF turns an EOF inside a packet into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendLength appends the MQTT remaining-length encoding of n.
func appendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session and a
// keep-alive of 60s (the publishes keep the connection alive).
func connectPacket(c LoadConn) []byte {
	flags := byte(0x02) // clean session
	var payload []byte
	payload = appendString(payload, c.ClientID)
	if c.Username != "" {
		flags |= 0x80
		payload = appendString(payload, c.Username)
		if c.Password != "" {
			flags |= 0x40
			payload = appendString(payload, c.Password)
		}
	}
	vh := appendString(nil, "MQTT")
	vh = append(vh, 4, flags, 0, 60) // level 4 (3.1.1), flags, keep-alive
	b := appendLength([]byte{pktConnect}, len(vh)+len(payload))
	b = append(b, vh...)
	return append(b, payload...)
}

// publishPacket is a QoS 1 PUBLISH of size payload bytes on topic, and the
// offset of its packet id.
func publishPacket(topic string, size int) ([]byte, int) {
	b := appendLength([]byte{pktPublishQ1}, 2+len(topic)+2+size)
	b = appendString(b, topic)
	idAt := len(b)
	b = append(b, 0, 0)
	for i := range size {
		b = append(b, 'a'+byte(i%26))
	}
	return b, idAt
}
