package modbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// writeReq is one write queued to the bus goroutine. The value is already
// encoded (and range-checked) by Execute.
type writeReq struct {
	ctx  context.Context
	dev  *device
	p    *point
	img  []byte // register image (register types)
	bit  bool   // coil or bit-in-register value
	done chan error
}

// write runs w on the bus and answers on w.done.
func (b *bus) write(w *writeReq) {
	if err := w.ctx.Err(); err != nil {
		w.done <- err
		return
	}
	if !b.a.connected.Load() {
		w.done <- errUnavailable("bus not connected")
		return
	}
	err := b.doWrite(w)
	d := w.dev
	if err == nil && w.p.verify {
		if err = b.verify(w); errors.Is(err, ErrVerify) {
			now := time.Now()
			b.a.st.device(d.idx, func(s *DeviceStats) { s.countError(err, now) })
		}
	}
	if err != nil {
		b.a.st.device(d.idx, func(s *DeviceStats) { s.WriteErrors++ })
		w.done <- err
		return
	}
	b.a.st.device(d.idx, func(s *DeviceStats) { s.Writes++ })
	w.done <- nil
}

// request runs one client call for d with the bookkeeping of afterRequest.
func (b *bus) request(d *device, what string, call func() ([]byte, error)) ([]byte, error) {
	b.pk.SetSlave(d.unit)
	start := time.Now()
	data, err := call()
	took := time.Since(start)
	b.a.st.device(d.idx, func(s *DeviceStats) { s.Requests++; s.Latency.observe(took) })
	if err != nil {
		err = fmt.Errorf("%s: %w", what, fromClient(err))
	}
	b.afterRequest(d, err)
	return data, err
}

func (b *bus) doWrite(w *writeReq) error {
	d, p, c := w.dev, w.p, w.p.codec
	switch {
	case c.table == tableCoil:
		what := fmt.Sprintf("write coil %d", p.addr)
		if p.multiple {
			var v byte
			if w.bit {
				v = 1
			}
			_, err := b.request(d, what, func() ([]byte, error) { return b.cl.WriteMultipleCoils(p.addr, 1, []byte{v}) })
			return err
		}
		var v uint16
		if w.bit {
			v = 0xff00
		}
		_, err := b.request(d, what, func() ([]byte, error) { return b.cl.WriteSingleCoil(p.addr, v) })
		return err
	case c.typ == typeBit:
		// Read-modify-write, atomic with respect to this bus only.
		img, err := b.request(d, fmt.Sprintf("read holding %d for bit %d", p.addr, c.bit),
			func() ([]byte, error) { return b.cl.ReadHoldingRegisters(p.addr, 1) })
		if err != nil {
			return err
		}
		reg := binary.BigEndian.Uint16(c.reorder(img))
		if w.bit {
			reg |= 1 << c.bit
		} else {
			reg &^= 1 << c.bit
		}
		return b.writeRegs(d, p, c.reorder(binary.BigEndian.AppendUint16(nil, reg)))
	}
	return b.writeRegs(d, p, w.img)
}

func (b *bus) writeRegs(d *device, p *point, img []byte) error {
	n := uint16(len(img) / 2)
	what := fmt.Sprintf("write holding %d+%d", p.addr, n)
	if n == 1 && !p.multiple {
		_, err := b.request(d, what, func() ([]byte, error) {
			return b.cl.WriteSingleRegister(p.addr, binary.BigEndian.Uint16(img))
		})
		return err
	}
	_, err := b.request(d, what, func() ([]byte, error) { return b.cl.WriteMultipleRegisters(p.addr, n, img) })
	return err
}

// verify reads the point back and compares it with what was written.
func (b *bus) verify(w *writeReq) error {
	d, p, c := w.dev, w.p, w.p.codec
	what := "read back"
	if c.table == tableCoil {
		data, err := b.request(d, what, func() ([]byte, error) { return b.cl.ReadCoils(p.addr, 1) })
		if err != nil {
			return err
		}
		if got := data[0]&1 == 1; got != w.bit {
			return fmt.Errorf("%w: coil %d is %t, wrote %t", ErrVerify, p.addr, got, w.bit)
		}
		return nil
	}
	data, err := b.request(d, what, func() ([]byte, error) { return b.cl.ReadHoldingRegisters(p.addr, uint16(c.width())) })
	if err != nil {
		return err
	}
	if c.typ == typeBit {
		got := binary.BigEndian.Uint16(c.reorder(data))>>c.bit&1 == 1
		if got != w.bit {
			return fmt.Errorf("%w: bit %d of holding %d is %t, wrote %t", ErrVerify, c.bit, p.addr, got, w.bit)
		}
		return nil
	}
	if !bytes.Equal(data, w.img) {
		return fmt.Errorf("%w: holding %d holds % x, wrote % x", ErrVerify, p.addr, data, w.img)
	}
	return nil
}
