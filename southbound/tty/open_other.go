//go:build !linux

package tty

import (
	"errors"
	"os"
)

// Open is implemented for Linux only, the platform the gateway ships on.
func Open(s Settings) (*os.File, error) {
	return nil, errors.New("open " + s.Device + ": serial ports are supported on linux only")
}
