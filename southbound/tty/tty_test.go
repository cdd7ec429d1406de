package tty_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound/tty"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func line(dev string) tty.Settings {
	return tty.Settings{Device: dev, Baud: 115200, Parity: tty.ParityNone, DataBits: 8, StopBits: 1}
}

// TestOpenPtyPair sends bytes both ways between the two ends of a socat pty
// pair, and a read on a quiet line ends at its deadline.
func TestOpenPtyPair(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("tty.Open is implemented on linux only")
	}
	a, b, _ := testpeer.PtyPair(t)
	fa, err := tty.Open(line(a))
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	s := line(b)
	s.Parity, s.DataBits, s.StopBits = tty.ParityOdd, 7, 2 // framing is not carried over a pty
	fb, err := tty.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	deadline := time.Now().Add(5 * time.Second)
	for _, dir := range []struct{ w, r *os.File }{{fa, fb}, {fb, fa}} {
		_ = dir.w.SetWriteDeadline(deadline)
		_ = dir.r.SetReadDeadline(deadline)
		if _, err := dir.w.WriteString("ping\r\n"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := io.ReadFull(dir.r, buf); err != nil || string(buf) != "ping\r\n" { // raw: no CR/LF mapping
			t.Fatalf("read %q, %v", buf, err)
		}
	}
	_ = fa.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := fa.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read on a quiet line: %v, want a deadline error", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("tty.Open is implemented on linux only")
	}
	if _, err := tty.Open(line(filepath.Join(t.TempDir(), "ttyNone"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing device: %v", err)
	}
	if _, err := tty.Open(line(os.DevNull)); err == nil || !strings.Contains(err.Error(), "not a terminal") {
		t.Errorf("/dev/null: %v", err)
	}
	_, b, _ := testpeer.PtyPair(t)
	s := line(b)
	s.RS485 = &tty.RS485{RTSOnSend: true}
	if f, err := tty.Open(s); err == nil {
		f.Close()
		t.Error("rs485 mode accepted on a pty")
	} else if !strings.Contains(err.Error(), "rs485 mode on "+b) {
		t.Errorf("rs485 on a pty: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*tty.Settings)
		path string
		want string
	}{
		{func(s *tty.Settings) { s.Device = "" }, "device", "must be set"},
		{func(s *tty.Settings) { s.Baud = 1234 }, "baud", "unsupported baud rate (got 1234)"},
		{func(s *tty.Settings) { s.Parity = 'M' }, "parity", "must be none, even or odd"},
		{func(s *tty.Settings) { s.DataBits = 9 }, "data_bits", "must be 5..8 (got 9)"},
		{func(s *tty.Settings) { s.StopBits = 3 }, "stop_bits", "must be 1 or 2 (got 3)"},
		{func(s *tty.Settings) { s.RS485 = &tty.RS485{DelayRTSAfterSend: -time.Millisecond} }, "rs485", "delays must be >= 0"},
	} {
		s := line("/dev/ttyUSB0")
		tc.mod(&s)
		err := s.Validate()
		var fe *edgegw.FieldError
		if !errors.As(err, &fe) || fe.Path != tc.path || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.path, err, tc.want)
		}
	}
	s := line("/dev/ttyUSB0")
	s.DataBits, s.RS485 = 5, &tty.RS485{}
	if err := s.Validate(); err != nil {
		t.Errorf("valid settings: %v", err)
	}
}
