package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	gmodbus "github.com/grid-x/modbus"

	"github.com/edgegw/edgegw/southbound/tty"
)

const (
	rtuMaxADU = 256
	rtuHeader = 3 // unit, function, byte count or first data byte
)

// rtuLink is a Modbus RTU serial line, opened through the poller-backed
// tty of tty.go (so it keeps working with descriptors above 1023). Requests
// are strictly serialised by the bus goroutine, with the silent frame gap
// (t3.5) kept between the end of one frame and the start of the next.
type rtuLink struct {
	cfg     RTUConfig
	timeout time.Duration
	gap     time.Duration
	ctx     context.Context
	f       *os.File
	lastIO  time.Time
	dirty   bool // unread garbage may be waiting: drain before sending
	buf     [rtuMaxADU]byte
}

func newRTULink(ctx context.Context, cfg RTUConfig, timeout time.Duration) *rtuLink {
	return &rtuLink{cfg: cfg, timeout: timeout, gap: frameGap(cfg), ctx: ctx}
}

// frameGap is t3.5: 3.5 characters of 11 bits, at least 1.75ms.
func frameGap(cfg RTUConfig) time.Duration {
	if cfg.FrameGap > 0 {
		return cfg.FrameGap
	}
	gap := time.Duration(float64(time.Second) * 3.5 * 11 / float64(max(cfg.Baud, 1)))
	return max(gap, 1750*time.Microsecond)
}

// charTime is the time one 11-bit character takes on the wire.
func charTime(cfg RTUConfig) time.Duration {
	return time.Duration(float64(time.Second) * 11 / float64(max(cfg.Baud, 1)))
}

func (l *rtuLink) packager() gmodbus.Packager { return gmodbus.NewRTUClientHandler(l.cfg.Device) }

func (l *rtuLink) open(ctx context.Context) error {
	f, err := tty.Open(l.cfg.settings())
	if err != nil {
		return err
	}
	l.f = f
	l.dirty = true
	return nil
}

func (l *rtuLink) close() {
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}

// Send writes one request frame and reads its answer.
func (l *rtuLink) Send(req []byte) ([]byte, error) {
	f := l.f
	if f == nil {
		return nil, errNotConnected
	}
	if len(req) < 4 {
		return nil, fmt.Errorf("request of %d bytes", len(req))
	}
	stop := context.AfterFunc(l.ctx, func() { _ = f.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := l.waitGap(); err != nil {
		return nil, err
	}
	if l.dirty {
		if err := l.drain(); err != nil {
			return nil, err
		}
	}
	if err := l.setDeadline(f.SetWriteDeadline, time.Now().Add(l.timeout)); err != nil {
		return nil, err
	}
	if _, err := f.Write(req); err != nil {
		return nil, l.ioError(err, true)
	}
	// The answer cannot start before our frame has left the UART.
	sent := time.Now().Add(time.Duration(len(req)) * charTime(l.cfg))
	l.lastIO = sent
	if err := l.setDeadline(f.SetReadDeadline, sent.Add(l.timeout)); err != nil {
		return nil, err
	}
	resp, err := l.readFrame(f)
	l.lastIO = time.Now()
	if err != nil {
		return nil, err
	}
	if err := checkRTU(req, resp); err != nil {
		l.dirty = true
		return nil, err
	}
	return append([]byte(nil), resp...), nil
}

func (l *rtuLink) readFrame(f io.Reader) ([]byte, error) {
	n, err := io.ReadFull(f, l.buf[:rtuHeader])
	if err != nil {
		return nil, l.ioError(err, n == 0)
	}
	size, err := rtuFrameLen(l.buf[:rtuHeader])
	if err != nil {
		l.dirty = true
		return nil, err
	}
	if _, err := io.ReadFull(f, l.buf[rtuHeader:size]); err != nil {
		if isTimeout(err) && l.ctx.Err() == nil {
			l.dirty = true
			return nil, fmt.Errorf("%w: frame cut after %d bytes", ErrShortFrame, rtuHeader)
		}
		return nil, l.ioError(err, false)
	}
	return l.buf[:size], nil
}

// setDeadline sets a deadline, then checks that the adapter was not
// stopped before it was set (stopping sets a deadline in the past, which
// this one would override).
func (l *rtuLink) setDeadline(set func(time.Time) error, t time.Time) error {
	if err := set(t); err != nil {
		return broken(err)
	}
	if err := l.ctx.Err(); err != nil {
		return broken(err)
	}
	return nil
}

// waitGap keeps the bus silent for t3.5 after the last frame.
func (l *rtuLink) waitGap() error {
	d := time.Until(l.lastIO.Add(l.gap))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-l.ctx.Done():
		return broken(l.ctx.Err())
	}
}

// drain discards input until the line has been silent for a frame gap, so
// a late or garbled answer cannot be taken for the next one. Bounded by
// the request timeout.
func (l *rtuLink) drain() error {
	end := time.Now().Add(l.timeout)
	for time.Now().Before(end) {
		if err := l.setDeadline(l.f.SetReadDeadline, time.Now().Add(l.gap)); err != nil {
			return err
		}
		_, err := l.f.Read(l.buf[:])
		if isTimeout(err) {
			break
		}
		if err != nil {
			return l.ioError(err, true)
		}
	}
	l.dirty = false
	l.lastIO = time.Now()
	return nil
}

func (l *rtuLink) ioError(err error, clean bool) error {
	if l.ctx.Err() != nil {
		return broken(l.ctx.Err())
	}
	if isTimeout(err) {
		l.dirty = true
		if clean {
			return fmt.Errorf("%w: no answer within %s", ErrTimeout, l.timeout)
		}
		return fmt.Errorf("%w: answer cut: %w", ErrShortFrame, err)
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("serial port closed: %w", err)
	}
	return broken(err)
}

// rtuFrameLen returns the length of the RTU frame that starts with hdr
// (unit, function and the next byte).
func rtuFrameLen(hdr []byte) (int, error) {
	if len(hdr) < rtuHeader {
		return 0, fmt.Errorf("%w: %d header bytes", ErrShortFrame, len(hdr))
	}
	fc := hdr[1]
	switch {
	case fc&0x80 != 0:
		return 5, nil // unit, function, exception code, crc
	case fc >= 1 && fc <= 4:
		if n := rtuHeader + int(hdr[2]) + 2; n <= rtuMaxADU {
			return n, nil
		}
		return 0, fmt.Errorf("%w: byte count %d", ErrProtocol, hdr[2])
	case fc == 5 || fc == 6 || fc == 15 || fc == 16:
		return 8, nil
	}
	return 0, fmt.Errorf("%w: function %d", ErrProtocol, fc)
}

// checkRTU checks a whole response frame against its request frame: CRC,
// unit id, then the PDU.
func checkRTU(req, resp []byte) error {
	if len(resp) < 5 {
		return fmt.Errorf("%w: %d bytes", ErrShortFrame, len(resp))
	}
	n := len(resp)
	if got, want := uint16(resp[n-2])|uint16(resp[n-1])<<8, crc16(resp[:n-2]); got != want {
		return fmt.Errorf("%w: got %04x, want %04x", ErrCRC, got, want)
	}
	if resp[0] != req[0] {
		return fmt.Errorf("%w: unit %d answered a request to %d", ErrWrongUnit, resp[0], req[0])
	}
	return checkPDU(req[1:len(req)-2], resp[1:n-2])
}

// crc16 is the Modbus CRC (polynomial 0xA001, initial 0xFFFF); it goes on
// the wire low byte first.
func crc16(b []byte) uint16 {
	crc := uint16(0xffff)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xa001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
