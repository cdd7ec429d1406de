package serial

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// baudRates maps rates to termios speed constants.
var baudRates = map[int]uint32{
	1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600, 115200: unix.B115200,
	230400: unix.B230400, 460800: unix.B460800, 921600: unix.B921600,
}

// openTTY opens path as a raw serial port registered with Go's poller, so
// reads and writes honour deadlines and no descriptor limit applies (unlike
// select(2)-based libraries, which fail once a descriptor reaches 1024).
func openTTY(c *Config) (*os.File, error) {
	fd, err := unix.Open(c.Device, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: c.Device, Err: err}
	}
	if err := setRaw(fd, c); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", c.Device, err)
	}
	f := os.NewFile(uintptr(fd), c.Device) // non-blocking fd: pollable
	if f == nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: bad descriptor", c.Device)
	}
	return f, nil
}

func setRaw(fd int, c *Config) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("not a terminal: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR |
		unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
	t.Cflag |= unix.CREAD | unix.CLOCAL
	switch c.DataBits {
	case 5:
		t.Cflag |= unix.CS5
	case 6:
		t.Cflag |= unix.CS6
	case 7:
		t.Cflag |= unix.CS7
	default:
		t.Cflag |= unix.CS8
	}
	switch c.Parity {
	case "even":
		t.Cflag |= unix.PARENB
		t.Iflag |= unix.INPCK
	case "odd":
		t.Cflag |= unix.PARENB | unix.PARODD
		t.Iflag |= unix.INPCK
	}
	if c.StopBits == 2 {
		t.Cflag |= unix.CSTOPB
	}
	speed := baudRates[c.Baud]
	t.Cflag |= speed
	t.Ispeed, t.Ospeed = speed, speed
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	// Drop whatever arrived before we were listening.
	_ = unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)
	return nil
}
