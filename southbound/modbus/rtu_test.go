package modbus

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
	"github.com/edgegw/edgegw/southbound/tty"
)

// rtuSlave compiles testdata/rtuslave.c (libmodbus) and runs it on dev as
// unit. It is killed when the test ends.
func rtuSlave(t testing.TB, dev string, unit int) {
	t.Helper()
	testpeer.RequireTool(t, "gcc")
	bin := filepath.Join(t.TempDir(), "rtuslave")
	out, err := exec.Command("gcc", "-O2", "-o", bin, "testdata/rtuslave.c",
		"-I/usr/include/modbus", "-lmodbus").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "modbus.h") {
			testpeer.Missing(t, "libmodbus-dev not installed: %s", out)
		}
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, dev, strconv.Itoa(unit))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
		io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("rtuslave did not start")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("rtuslave not ready within 5s")
	}
}

func rtuConfig(dev string, devices ...DeviceConfig) Config {
	return Config{RTU: &RTUConfig{Device: dev, Baud: 115200, Parity: "N"}, Timeout: 500 * time.Millisecond,
		BackoffMax: time.Second, Devices: devices}
}

func plcDevice(poll time.Duration) DeviceConfig {
	return DeviceConfig{Name: "plc", Unit: 1, Poll: poll, Points: []PointConfig{
		{Name: "h3", Table: "holding", Address: 3},
		{Name: "h4", Table: "holding", Address: 4, Type: "int16"},
		{Name: "in7", Table: "input", Address: 7},
		{Name: "f", Table: "holding", Address: 200, Type: "float32"},
		{Name: "u", Table: "holding", Address: 202, Type: "uint32", Order: "CDAB"},
		{Name: "c3", Table: "coil", Address: 3},
		{Name: "c4", Table: "coil", Address: 4},
		{Name: "d5", Table: "discrete", Address: 5},
		{Name: "sp", Table: "holding", Address: 50, Writable: true, Verify: true, Scale: 0.1},
		{Name: "pump", Table: "coil", Address: 40, Writable: true, Verify: true},
		{Name: "flag", Table: "holding", Address: 60, Type: "bit", Bit: 2, Writable: true, Verify: true},
	}}
}

func checkPLC(t testing.TB, rd edgegw.Reading) {
	t.Helper()
	want := map[string]edgegw.Value{
		"h3": edgegw.Uint(3), "h4": edgegw.Int(4), "in7": edgegw.Uint(1007), "f": edgegw.Float(1.5),
		"u": edgegw.Uint(0x12345678), "c3": edgegw.Bool(true), "c4": edgegw.Bool(false), "d5": edgegw.Bool(true),
	}
	for name, w := range want {
		if got, ok := pointValue(rd, name); !ok || got != w {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
}

// TestRTUAgainstLibmodbus polls and writes a libmodbus RTU slave over a
// socat pty pair, with a second, absent unit on the same line that must
// not stall it.
func TestRTUAgainstLibmodbus(t *testing.T) {
	a1, a2, _ := testpeer.PtyPair(t)
	rtuSlave(t, a1, 1)
	ghost := simpleDevice("ghost", 2, 20*time.Millisecond)
	a := newAdapter(t, rtuConfig(a2, plcDevice(20*time.Millisecond), ghost))
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 10*time.Second, "a reading", func() bool { return up.Count("plc") > 0 })
	rd, _ := up.Last("plc")
	checkPLC(t, rd)

	for _, w := range []struct {
		point string
		v     edgegw.Value
	}{{"sp", edgegw.Float(123.4)}, {"pump", edgegw.Bool(true)}, {"flag", edgegw.Bool(true)}} {
		if err := write(a, "plc", w.point, w.v); err != nil {
			t.Fatalf("write %s: %v", w.point, err)
		}
	}
	waitFor(t, 10*time.Second, "the written values read back", func() bool {
		rd, _ := up.Last("plc")
		sp, _ := pointValue(rd, "sp")
		f, _ := sp.Float()
		pump, _ := pointValue(rd, "pump")
		flag, _ := pointValue(rd, "flag")
		return f > 123.39 && f < 123.41 && pump == edgegw.Bool(true) && flag == edgegw.Bool(true)
	})
	waitFor(t, 20*time.Second, "40 readings while the ghost unit times out", func() bool {
		return up.Count("plc") >= 40 && a.Stats().Devices[1].Errors.Timeout >= 2
	})
	st := a.Stats()
	if up.Count("ghost") != 0 || st.Devices[1].State != "down" {
		t.Errorf("ghost: %d readings, stats %+v", up.Count("ghost"), st.Devices[1])
	}
	if n := st.Devices[0].Errors.Total(); n != 0 {
		t.Errorf("plc had %d errors: %+v (last %s)", n, st.Devices[0].Errors, st.Devices[0].LastError)
	}
}

// TestRTUAbove1024Descriptors opens 1,100 descriptors first, so the serial
// port gets a descriptor above 1023 (where select(2)-based serial packages
// panic), then talks RTU.
func TestRTUAbove1024Descriptors(t *testing.T) {
	a1, a2, _ := testpeer.PtyPair(t)
	rtuSlave(t, a1, 1)
	testpeer.FillDescriptors(t, 1100)
	a := newAdapter(t, rtuConfig(a2, plcDevice(10*time.Millisecond)))
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 10*time.Second, "5 readings", func() bool { return up.Count("plc") >= 5 })
	rd, _ := up.Last("plc")
	checkPLC(t, rd)
	if err := write(a, "plc", "sp", edgegw.Int(7)); err != nil {
		t.Fatal(err)
	}
	fd := descriptorOf(t, a2)
	if fd < 1024 {
		t.Fatalf("the serial port has descriptor %d; the test needs one above 1023", fd)
	}
	t.Logf("serial port at descriptor %d", fd)
}

// descriptorOf finds the descriptor this process holds for path.
func descriptorOf(t testing.TB, path string) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && target == path {
			n, _ := strconv.Atoi(e.Name())
			return n
		}
	}
	t.Fatalf("no descriptor for %s", path)
	return -1
}

// TestRTUFramingFaults answers requests with crafted frames (a narrow seam:
// raw bytes on the far pty): a CRC error, an answer from another unit, a
// cut frame, an exception, then good answers. Each is counted by kind and
// the device keeps being read.
func TestRTUFramingFaults(t *testing.T) {
	a1, a2, _ := testpeer.PtyPair(t)
	peer, err := tty.Open((&RTUConfig{Device: a1, Baud: 115200, Parity: "N", DataBits: 8, StopBits: 1}).settings())
	if err != nil {
		t.Fatal(err)
	}
	good := withCRC(mustHex("01 03 02 0007"))
	script := [][]byte{
		append(mustHex("01 03 02 0007"), 0x12, 0x34), // bad CRC
		withCRC(mustHex("09 03 02 0007")),            // wrong unit
		mustHex("01 03 02 00"),                       // cut short
		withCRC(mustHex("01 83 02")),                 // exception 2
		{0x01, 0x03, 0xff, 0x00},                     // byte count past any frame
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		req := make([]byte, 8)
		for i := 0; ; i++ {
			if _, err := io.ReadFull(peer, req); err != nil {
				return // closed at the end of the test
			}
			resp := good
			if i < len(script) {
				resp = script[i]
			}
			if _, err := peer.Write(resp); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { peer.Close(); <-done })

	d := DeviceConfig{Name: "d", Unit: 1, Poll: 10 * time.Millisecond, Points: []PointConfig{{Name: "v", Table: "holding", Address: 0}}}
	a := newAdapter(t, rtuConfig(a2, d))
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 10*time.Second, "3 good readings", func() bool { return up.Count("d") >= 3 })
	e := a.Stats().Devices[0].Errors
	if e.CRC != 1 || e.WrongUnit != 1 || e.Short != 1 || e.Exceptions[2] != 1 || e.Protocol != 1 {
		t.Errorf("errors: %+v", e)
	}
	for _, rd := range up.Readings() {
		if v, _ := pointValue(rd, "v"); v != edgegw.Uint(7) {
			t.Errorf("reading %v", rd.Points)
		}
	}
}

// TestRTUMissingPortRetries: a serial device that does not exist is
// retried with back-off, and Run still stops promptly.
func TestRTUMissingPortRetries(t *testing.T) {
	cfg := rtuConfig(filepath.Join(t.TempDir(), "ttyNone"), plcDevice(time.Second))
	cfg.BackoffMax = 20 * time.Millisecond
	a := newAdapter(t, cfg)
	testpeer.RunAdapter(t, a, new(testpeer.Uplink))
	waitFor(t, 5*time.Second, "3 failed opens", func() bool { return a.Stats().ConnectErrs >= 3 })
	if err := write(a, "plc", "sp", edgegw.Int(1)); !errors.Is(err, southbound.ErrUnavailable) {
		t.Errorf("write without a port: %v", err)
	}
}

// TestRTURS485OnPty: a pty has no RS-485 mode; asking for it fails the
// open with a clear error rather than silently ignoring the setting.
func TestRTURS485OnPty(t *testing.T) {
	_, a2, _ := testpeer.PtyPair(t)
	f, err := tty.Open((&RTUConfig{Device: a2, Baud: 9600, Parity: "E", DataBits: 8, StopBits: 1,
		RS485: &RS485Config{RTSOnSend: true}}).settings())
	if err == nil {
		f.Close()
		t.Fatal("rs485 mode accepted on a pty")
	}
	if !strings.Contains(err.Error(), "rs485 mode on "+a2) {
		t.Errorf("error %q", err)
	}
	f, err = tty.Open((&RTUConfig{Device: a2, Baud: 19200, Parity: "O", DataBits: 7, StopBits: 2}).settings())
	if err != nil {
		t.Fatalf("7O2 on a pty: %v", err)
	}
	f.Close()
}
