//go:build linux

package tty

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Open opens s.Device without select(2): the descriptor is non-blocking and
// wrapped by os.NewFile, so reads and writes honour deadlines at any
// descriptor number. The line is set raw with s's framing, RS-485 mode is
// switched on when s.RS485 is set, and whatever arrived before (or was
// queued for sending) is discarded. Open does not call Validate.
func Open(s Settings) (*os.File, error) {
	fd, err := unix.Open(s.Device, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: s.Device, Err: err}
	}
	if err := setTermios(fd, s); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("configure %s: %w", s.Device, err)
	}
	if s.RS485 != nil {
		if err := setRS485(fd, s.RS485); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("rs485 mode on %s: %w", s.Device, err)
		}
	}
	_ = unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH)
	f := os.NewFile(uintptr(fd), s.Device) // non-blocking fd: pollable
	if f == nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: bad descriptor", s.Device)
	}
	return f, nil
}

var speeds = map[int]uint32{
	1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800, 921600: unix.B921600,
}

var charSizes = map[int]uint32{5: unix.CS5, 6: unix.CS6, 7: unix.CS7, 8: unix.CS8}

// setTermios puts the line in raw mode (cfmakeraw) with s's speed, parity,
// data and stop bits.
func setTermios(fd int, s Settings) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("not a terminal: %w", err)
	}
	speed, ok := speeds[s.Baud]
	if !ok {
		return fmt.Errorf("unsupported baud rate %d", s.Baud)
	}
	size, ok := charSizes[s.DataBits]
	if !ok {
		return fmt.Errorf("unsupported data bits %d", s.DataBits)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR |
		unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
	t.Cflag |= unix.CREAD | unix.CLOCAL | speed | size
	t.Ispeed, t.Ospeed = speed, speed
	switch s.Parity {
	case ParityNone:
	case ParityEven:
		t.Cflag |= unix.PARENB
		t.Iflag |= unix.INPCK
	case ParityOdd:
		t.Cflag |= unix.PARENB | unix.PARODD
		t.Iflag |= unix.INPCK
	default:
		return fmt.Errorf("unsupported parity %v", s.Parity)
	}
	if s.StopBits == 2 {
		t.Cflag |= unix.CSTOPB
	}
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	return nil
}

// serialRS485 is the kernel's struct serial_rs485.
type serialRS485 struct {
	Flags              uint32
	DelayRTSBeforeSend uint32 // ms
	DelayRTSAfterSend  uint32 // ms
	padding            [5]uint32
}

const (
	rs485Enabled      = 1 << 0
	rs485RTSOnSend    = 1 << 1
	rs485RTSAfterSend = 1 << 2
	rs485RXDuringTX   = 1 << 4
)

func setRS485(fd int, c *RS485) error {
	rs := serialRS485{
		Flags:              rs485Enabled,
		DelayRTSBeforeSend: uint32(c.DelayRTSBeforeSend.Milliseconds()),
		DelayRTSAfterSend:  uint32(c.DelayRTSAfterSend.Milliseconds()),
	}
	if c.RTSOnSend {
		rs.Flags |= rs485RTSOnSend
	}
	if c.RTSAfterSend {
		rs.Flags |= rs485RTSAfterSend
	}
	if c.RXDuringTX {
		rs.Flags |= rs485RXDuringTX
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSRS485, uintptr(unsafe.Pointer(&rs)))
	if errno != 0 {
		return errno
	}
	return nil
}
