package tty

import "golang.org/x/sys/unix"

func accessRW(path string) error {
	if unix.Access(path, unix.R_OK|unix.W_OK) != nil {
		return errNoAccess
	}
	return nil
}
