package tty

import (
	"errors"
	"fmt"
	"os"
)

// Check reports whether device exists, is a character device, and this
// process may read and write it, without opening it: opening a port can
// toggle its modem lines, which resets some devices (an Arduino on DTR).
// It is what `edgegw check` asks of a port marked required.
func Check(device string) error {
	st, err := os.Stat(device)
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeCharDevice == 0 {
		return fmt.Errorf("%s: not a character device (mode %s)", device, st.Mode())
	}
	if err := accessRW(device); err != nil {
		return fmt.Errorf("%s: %w", device, err)
	}
	return nil
}

var errNoAccess = errors.New("not readable and writable by this user (for a serial port: the dialout group)")
