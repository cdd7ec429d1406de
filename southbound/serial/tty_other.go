//go:build !linux

package serial

import (
	"errors"
	"os"
)

var baudRates = map[int]uint32{
	1200: 0, 2400: 0, 4800: 0, 9600: 0, 19200: 0, 38400: 0, 57600: 0, 115200: 0, 230400: 0, 460800: 0, 921600: 0,
}

func openTTY(c *Config) (*os.File, error) {
	return nil, errors.New("serial ports are supported on Linux only")
}
