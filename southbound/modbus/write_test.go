package modbus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
	sv "github.com/simonvetter/modbus"
)

var errIllegalValue = sv.ErrIllegalDataValue

func writableDevice() DeviceConfig {
	return DeviceConfig{Name: "plc", Unit: 1, Poll: 50 * time.Millisecond, Points: []PointConfig{
		{Name: "sp", Table: "holding", Address: 0, Type: "int16", Writable: true, Verify: true},
		{Name: "temp", Table: "holding", Address: 1, Type: "float32", Order: "CDAB", Scale: 0.5, Offset: 10, Writable: true},
		{Name: "raw", Table: "holding", Address: 3, Type: "uint16", Scale: 0.1, Writable: true, WriteMultiple: true, Verify: true},
		{Name: "label", Table: "holding", Address: 4, Type: "string", Length: 4, Writable: true},
		{Name: "flag", Table: "holding", Address: 10, Type: "bit", Bit: 3, Writable: true, Verify: true},
		{Name: "big", Table: "holding", Address: 11, Type: "int64", Order: "DCBA", Writable: true},
		{Name: "run", Table: "coil", Address: 5, Writable: true, Verify: true},
		{Name: "run2", Table: "coil", Address: 6, Writable: true, WriteMultiple: true},
		{Name: "ro", Table: "holding", Address: 20},
	}}
}

func write(a *Adapter, device, point string, v edgegw.Value) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.Execute(ctx, edgegw.Action{Adapter: "mb", Kind: edgegw.WritePoint, Device: device, Point: point, Value: v})
}

func TestExecuteBeforeRun(t *testing.T) {
	a := newAdapter(t, Config{TCP: "127.0.0.1:1", Devices: []DeviceConfig{writableDevice()}})
	if err := write(a, "plc", "sp", edgegw.Int(1)); !errors.Is(err, southbound.ErrUnavailable) {
		t.Errorf("before Run: %v", err)
	}
	if err := write(a, "nope", "sp", edgegw.Int(1)); !errors.Is(err, southbound.ErrUnknownTarget) {
		t.Errorf("unknown device: %v", err)
	}
	if err := write(a, "plc", "nope", edgegw.Int(1)); !errors.Is(err, southbound.ErrUnknownTarget) {
		t.Errorf("unknown point: %v", err)
	}
	if err := write(a, "plc", "ro", edgegw.Int(1)); !errors.Is(err, southbound.ErrRejected) {
		t.Errorf("read-only point: %v", err)
	}
	err := a.Execute(context.Background(), edgegw.Action{Kind: edgegw.SendFrame, Device: "plc"})
	if !errors.Is(err, southbound.ErrRejected) {
		t.Errorf("send frame: %v", err)
	}
}

// TestTCPWrites writes every kind of point through the bus goroutine and
// checks the slave's memory.
func TestTCPWrites(t *testing.T) {
	s := startSlave(t, 1)
	s.setRegs(1, false, 10, mustHex("8001")) // other bits of the flag register must survive
	a := newAdapter(t, Config{TCP: s.addr, Devices: []DeviceConfig{writableDevice()}})
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 5*time.Second, "connected", func() bool { return up.Count("plc") > 0 })

	steps := []struct {
		point string
		v     edgegw.Value
		addr  uint16
		regs  string // holding registers from addr afterwards
	}{
		{"sp", edgegw.Int(-5), 0, "fffb"},
		{"temp", edgegw.Float(13), 1, "0000 40c0"}, // (13-10)/0.5 = 6 = 0x40c00000, words swapped
		{"raw", edgegw.Float(12.34), 3, "007b"},    // 123.4 rounds to 123
		{"label", edgegw.String("pump-7"), 4, "7075 6d70 2d37 0000"},
		{"flag", edgegw.Bool(true), 10, "8009"},
		{"flag", edgegw.Int(0), 10, "8001"},
		{"big", edgegw.Int(-2), 11, "feff ffff ffff ffff"},
	}
	for _, st := range steps {
		if err := write(a, "plc", st.point, st.v); err != nil {
			t.Fatalf("write %s = %v: %v", st.point, st.v, err)
		}
		want := mustHex(st.regs)
		for i := 0; i < len(want)/2; i++ {
			got := s.holding(1, st.addr+uint16(i))
			if w := uint16(want[2*i])<<8 | uint16(want[2*i+1]); got != w {
				t.Errorf("after %s = %v: holding %d = %04x, want %04x", st.point, st.v, st.addr+uint16(i), got, w)
			}
		}
	}
	for _, c := range []struct {
		point string
		addr  int
	}{{"run", 5}, {"run2", 6}} {
		if err := write(a, "plc", c.point, edgegw.Bool(true)); err != nil {
			t.Fatal(err)
		}
		if !s.unit(1).coils[c.addr] {
			t.Errorf("coil %d not set", c.addr)
		}
	}

	// Out of range for the raw type: an error, and nothing reaches the slave.
	before := s.writeCount(1)
	for _, c := range []struct {
		point string
		v     edgegw.Value
	}{
		{"sp", edgegw.Int(40000)}, {"raw", edgegw.Float(-1)}, {"raw", edgegw.Float(6553.6)},
		{"temp", edgegw.Float(1e40)}, {"label", edgegw.String("much too long")}, {"run", edgegw.Int(2)},
		{"sp", edgegw.String("5")},
	} {
		err := write(a, "plc", c.point, c.v)
		if !errors.Is(err, southbound.ErrRejected) {
			t.Errorf("write %s = %v: %v, want rejected", c.point, c.v, err)
		}
	}
	if n := s.writeCount(1); n != before {
		t.Errorf("%d writes reached the slave for rejected values", n-before)
	}
	st := a.Stats().Devices[0]
	if st.Writes != 9 || st.WriteErrors != 0 {
		t.Errorf("stats: %d writes, %d errors", st.Writes, st.WriteErrors)
	}
	waitFor(t, 5*time.Second, "a reading with the written values", func() bool {
		rd, _ := up.Last("plc")
		v, _ := pointValue(rd, "temp")
		return v == edgegw.Float(13)
	})
}

// TestTCPWriteVerifyFails: a slave that acknowledges writes but ignores
// them fails a verified write with ErrVerify.
func TestTCPWriteVerifyFails(t *testing.T) {
	s := startSlave(t, 1)
	s.ignoreWrites = true
	a := newAdapter(t, Config{TCP: s.addr, Devices: []DeviceConfig{writableDevice()}})
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 5*time.Second, "connected", func() bool { return up.Count("plc") > 0 })
	for _, p := range []string{"sp", "run", "flag"} {
		if err := write(a, "plc", p, edgegw.Int(1)); !errors.Is(err, ErrVerify) {
			t.Errorf("%s: %v, want ErrVerify", p, err)
		}
	}
	if err := write(a, "plc", "big", edgegw.Int(1)); err != nil { // no verify configured
		t.Errorf("unverified write: %v", err)
	}
	st := a.Stats().Devices[0]
	if st.Errors.Verify != 3 || st.WriteErrors != 3 {
		t.Errorf("stats: %+v", st)
	}
}

// TestTCPWriteException: an exception to a write is returned as *Exception.
func TestTCPWriteException(t *testing.T) {
	s := startSlave(t, 1)
	a := newAdapter(t, Config{TCP: s.addr, Devices: []DeviceConfig{writableDevice()}})
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 5*time.Second, "connected", func() bool { return up.Count("plc") > 0 })
	s.setInject(func(unit uint8, fc int, addr, qty uint16) fault {
		if fc >= 5 {
			return fault{err: errIllegalValue}
		}
		return fault{}
	})
	err := write(a, "plc", "sp", edgegw.Int(3))
	var ex *Exception
	if !errors.As(err, &ex) || ex.Code != 3 || ex.Function != 6 {
		t.Fatalf("err %v, want exception 3 to function 6", err)
	}
}
