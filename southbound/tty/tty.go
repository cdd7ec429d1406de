// Package tty opens poller-backed serial ports that work at any descriptor
// number: the device is opened non-blocking, set raw with the configured
// framing (termios), optionally switched to kernel RS-485 mode, and wrapped
// by os.NewFile so Go's poller (epoll) waits on it and SetReadDeadline and
// SetWriteDeadline work.
//
// Why not a serial library: the select(2)-based ones (goburrow, grid-x,
// go.bug.st) panic once a descriptor reaches 1024, which a gateway with many
// connections reaches.
//
// Settings is protocol-neutral: each adapter keeps its own YAML spelling
// (modbus writes parity N/E/O, serial none/even/odd), converts it to a
// Parity and calls Validate for the checks the line shares. Open is
// implemented on Linux only; elsewhere it returns an error.
package tty

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/edgegw/edgegw"
)

// Settings is one serial line.
type Settings struct {
	Device   string // "/dev/ttyUSB0"
	Baud     int    // one of BaudRates
	Parity   Parity
	DataBits int    // 5-8
	StopBits int    // 1 or 2
	RS485    *RS485 // nil: leave the UART's RS-485 mode alone
}

// Parity is the parity bit of each character.
type Parity byte

// Parities. The zero Parity is invalid.
const (
	ParityNone Parity = 'N'
	ParityEven Parity = 'E'
	ParityOdd  Parity = 'O'
)

func (p Parity) String() string {
	switch p {
	case ParityNone:
		return "none"
	case ParityEven:
		return "even"
	case ParityOdd:
		return "odd"
	}
	return fmt.Sprintf("Parity(%d)", byte(p))
}

// RS485 is the kernel RS-485 mode of a UART (struct serial_rs485,
// TIOCSRS485). Leave it out for adapters that switch direction in hardware.
type RS485 struct {
	RTSOnSend          bool          `yaml:"rts_on_send"`    // RTS high while sending
	RTSAfterSend       bool          `yaml:"rts_after_send"` // RTS high after sending
	RXDuringTX         bool          `yaml:"rx_during_tx"`   // receive own frames
	DelayRTSBeforeSend time.Duration `yaml:"delay_rts_before_send"`
	DelayRTSAfterSend  time.Duration `yaml:"delay_rts_after_send"`
}

// BaudRates are the speeds Open supports.
var BaudRates = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600}

// Validate checks s. Error paths are the YAML keys both adapters use:
// device, baud, parity, data_bits, stop_bits, rs485.
func (s *Settings) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, edgegw.Errorf(path, format, args...)) }
	if s.Device == "" {
		add("device", "must be set (a serial device such as /dev/ttyUSB0)")
	}
	if !slices.Contains(BaudRates, s.Baud) {
		add("baud", "unsupported baud rate (got %d); standard rates are %v", s.Baud, BaudRates)
	}
	if s.Parity != ParityNone && s.Parity != ParityEven && s.Parity != ParityOdd {
		add("parity", "must be none, even or odd (got %v)", s.Parity)
	}
	if s.DataBits < 5 || s.DataBits > 8 {
		add("data_bits", "must be 5..8 (got %d)", s.DataBits)
	}
	if s.StopBits != 1 && s.StopBits != 2 {
		add("stop_bits", "must be 1 or 2 (got %d)", s.StopBits)
	}
	if r := s.RS485; r != nil && (r.DelayRTSBeforeSend < 0 || r.DelayRTSAfterSend < 0) {
		add("rs485", "delays must be >= 0")
	}
	return errors.Join(errs...)
}
