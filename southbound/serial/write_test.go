package serial

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
)

// Frames longer than max_line, or too long to go out within write_timeout
// at the configured baud, are refused before a byte is written; the next
// frame arrives whole.
func TestSendFrameTooLong(t *testing.T) {
	pp := startSocat(t, t.TempDir())
	cfg := testConfig(pp.linkA)
	cfg.Baud = 9600
	cfg.MaxLine = 300
	cfg.WriteTimeout = 100 * time.Millisecond // 96 bytes at 9600 baud
	a := run(t, cfg, &testpeer.Uplink{})
	eventually(t, "port open", a.isOpen)
	peer := pp.peer()
	for _, n := range []int{301, 200} {
		act := edgegw.Action{Kind: edgegw.SendFrame, Device: "thermo", Payload: []byte(strings.Repeat("x", n))}
		if err := a.Execute(context.Background(), act); !errors.Is(err, southbound.ErrRejected) {
			t.Errorf("%d bytes: %v, want ErrRejected", n, err)
		}
	}
	ok := edgegw.Action{Kind: edgegw.SendFrame, Device: "thermo", Payload: []byte("SET 5")}
	if err := a.Execute(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	if l := peer.readLine(); l != "SET 5\r\n" {
		t.Fatalf("peer got %q, want the short frame alone", l)
	}
}

// flushOutput works on a tty and reports a closed one.
func TestFlushOutput(t *testing.T) {
	pp := startSocat(t, t.TempDir())
	f, err := os.OpenFile(pp.linkA, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := flushOutput(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := flushOutput(f); err == nil {
		t.Error("closed file: no error")
	}
}
