//go:build linux

package modbus

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openTTY opens a serial device for RTU without select(2): the descriptor
// is non-blocking and wrapped by os.NewFile, so Go's poller (epoll) waits on
// it and read/write deadlines work at any descriptor number. (goburrow,
// grid-x and go.bug.st serial packages use select(2) and panic once a
// descriptor reaches 1024.) The line is set raw with the configured
// framing; RS-485 mode is switched on when configured.
func openTTY(cfg RTUConfig) (*os.File, error) {
	fd, err := unix.Open(cfg.Device, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.Device, err)
	}
	if err := setTermios(fd, cfg); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("configure %s: %w", cfg.Device, err)
	}
	if cfg.RS485 != nil {
		if err := setRS485(fd, cfg.RS485); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("rs485 mode on %s: %w", cfg.Device, err)
		}
	}
	_ = unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH)
	f := os.NewFile(uintptr(fd), cfg.Device)
	if f == nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: bad descriptor", cfg.Device)
	}
	return f, nil
}

var baudRates = map[int]uint32{
	1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800, 921600: unix.B921600,
}

// setTermios puts the line in raw mode (cfmakeraw) with the configured
// speed, parity, data and stop bits.
func setTermios(fd int, cfg RTUConfig) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	speed, ok := baudRates[cfg.Baud]
	if !ok {
		return fmt.Errorf("unsupported baud rate %d", cfg.Baud)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
	t.Cflag |= unix.CREAD | unix.CLOCAL | speed
	t.Ispeed, t.Ospeed = speed, speed
	if cfg.DataBits == 7 {
		t.Cflag |= unix.CS7
	} else {
		t.Cflag |= unix.CS8
	}
	switch cfg.Parity {
	case "E":
		t.Cflag |= unix.PARENB
	case "O":
		t.Cflag |= unix.PARENB | unix.PARODD
	}
	if cfg.Parity != "N" {
		t.Iflag |= unix.INPCK
	} else {
		t.Iflag &^= unix.INPCK
	}
	if cfg.StopBits == 2 {
		t.Cflag |= unix.CSTOPB
	}
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
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

func setRS485(fd int, c *RS485Config) error {
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
