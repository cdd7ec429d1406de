package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// passwdInput is where `edgegw passwd` reads the password: a terminal
// (asked twice, not echoed) or the first line of a pipe. Never argv, which
// other users of the machine can read in the process list.
var passwdInput = os.Stdin

// printPasswordHash reads a password and prints its hash for a LAN user's
// password field.
func printPasswordHash(iterations int, stdout, stderr io.Writer) int {
	pw, err := readPassword(passwdInput, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "edgegw passwd:", err)
		return 2
	}
	h, err := lanmqtt.HashPassword(pw, iterations)
	if err != nil {
		fmt.Fprintln(stderr, "edgegw passwd:", err)
		return 2
	}
	fmt.Fprintln(stdout, h)
	return 0
}

// maxPasswordBytes bounds what is read for one password.
const maxPasswordBytes = 1024

func readPassword(f *os.File, prompt io.Writer) ([]byte, error) {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil { // not a terminal: the first line
		pw, err := readLine(f)
		if err == nil && len(pw) == 0 {
			err = errors.New("empty password on standard input")
		}
		return pw, err
	}
	old := *t
	t.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, &old)
	fmt.Fprint(prompt, "Password: ")
	pw, err := readLine(f)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(prompt, "Again: ")
	again, err := readLine(f)
	fmt.Fprintln(prompt)
	switch {
	case err != nil:
		return nil, err
	case len(pw) == 0:
		return nil, errors.New("empty password")
	case !bytes.Equal(pw, again):
		return nil, errors.New("the passwords differ")
	}
	return pw, nil
}

// readLine reads up to a line end (\n, or \r from a raw terminal) one byte
// at a time, so nothing after it is consumed.
func readLine(r io.Reader) ([]byte, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' || b[0] == '\r' {
				return line, nil
			}
			if len(line) == maxPasswordBytes {
				return nil, fmt.Errorf("password longer than %d bytes", maxPasswordBytes)
			}
			line = append(line, b[0])
		}
		if err == io.EOF && n == 0 {
			return line, nil // a last line without its end
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
	}
}
