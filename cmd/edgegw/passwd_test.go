package main

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// checkHash recomputes a $7$ hash for password.
func checkHash(t *testing.T, hash, password string) {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(hash), "$")
	if len(parts) != 5 || parts[1] != "7" || parts[2] != "1000" {
		t.Fatalf("hash %q: want $7$1000$<salt>$<key>", hash)
	}
	salt, _ := base64.StdEncoding.DecodeString(parts[3])
	key, _ := pbkdf2.Key(sha512.New, password, salt, 1000, 64)
	if base64.StdEncoding.EncodeToString(key) != parts[4] {
		t.Fatalf("hash %q is not of %q", hash, password)
	}
}

func withInput(t *testing.T, f *os.File) {
	old := passwdInput
	passwdInput = f
	t.Cleanup(func() { passwdInput = old })
}

// From a pipe, the first line is the password; nothing is prompted.
func TestPasswdFromPipe(t *testing.T) {
	for _, tc := range []struct{ in, pw string }{{"s3cret\nnext line\n", "s3cret"}, {"no newline", "no newline"}, {"crlf\r\n", "crlf"}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString(tc.in)
		w.Close()
		withInput(t, r)
		var out, errb bytes.Buffer
		if code := run([]string{"passwd", "-iterations", "1000"}, &out, &errb); code != 0 {
			t.Fatalf("%q: exit %d: %s", tc.in, code, errb.String())
		}
		checkHash(t, out.String(), tc.pw)
		if errb.Len() != 0 {
			t.Errorf("stderr %q", errb.String())
		}
		r.Close()
	}
	r, w, _ := os.Pipe()
	w.Close()
	withInput(t, r)
	var out, errb bytes.Buffer
	if code := run([]string{"passwd"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "empty password") || out.Len() != 0 {
		t.Errorf("empty input: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	r.Close()
	if code := run([]string{"passwd", "hunter2"}, &out, &errb); code != 2 {
		t.Errorf("password as an argument: exit %d, want 2", code)
	}
}

// On a terminal (a socat pty pair) the password is asked twice with echo
// off, and the terminal's settings are restored.
func TestPasswdFromTerminal(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "ttyA"), filepath.Join(dir, "ttyB")
	testpeer.PtyPair(t, a, b)
	for _, tc := range []struct {
		typed string
		code  int
		err   string
	}{
		{"s3cret\rs3cret\r", 0, ""},
		{"s3cret\ranother\r", 2, "the passwords differ"},
		{"\r\r", 2, "empty password"},
	} {
		term, err := os.OpenFile(a, os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			t.Fatal(err)
		}
		before, err := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		user, err := os.OpenFile(b, os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			t.Fatal(err)
		}
		user.WriteString(tc.typed)
		withInput(t, term)
		var out, errb bytes.Buffer
		code := run([]string{"passwd", "-iterations", "1000"}, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("typed %q: exit %d, stderr %q; want %d and %q", tc.typed, code, errb.String(), tc.code, tc.err)
		}
		if !strings.Contains(errb.String(), "Password: ") {
			t.Errorf("typed %q: no prompt in %q", tc.typed, errb.String())
		}
		if code == 0 {
			checkHash(t, out.String(), "s3cret")
		}
		after, _ := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS)
		if after.Lflag != before.Lflag {
			t.Errorf("terminal flags %#x after, %#x before", after.Lflag, before.Lflag)
		}
		term.Close()
		user.Close()
	}
}
