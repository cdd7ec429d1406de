package mqtt3

import (
	"context"
	"encoding/binary"
	"errors"
)

// Unsubscribe sends one UNSUBSCRIBE and waits for its UNSUBACK.
func (c *Conn) Unsubscribe(ctx context.Context, filters []string) error {
	if len(filters) == 0 {
		return errors.New("unsubscribe: no topic filters")
	}
	for _, f := range filters {
		if err := checkString("topic filter", f); err != nil {
			return err
		}
	}
	t, id, err := c.register()
	if err != nil {
		return err
	}
	if err := c.write(unsubscribePacket(id, filters)); err != nil {
		c.forget(id)
		return err
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		c.forget(id)
		return ctx.Err()
	}
	return t.err
}

func unsubscribePacket(id uint16, filters []string) []byte {
	n := 2
	for _, f := range filters {
		n += 2 + len(f)
	}
	b := appendHeader(make([]byte, 0, n+5), typeUnsubscribe<<4|0x02, n)
	b = binary.BigEndian.AppendUint16(b, id)
	for _, f := range filters {
		b = appendString(b, f)
	}
	return b
}
