package modbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	gmodbus "github.com/grid-x/modbus"
)

func TestCRC16(t *testing.T) {
	// The reference frame of the Modbus serial line guide: read 10 holding
	// registers from unit 1 is 01 03 00 00 00 0A C5 CD.
	if got := crc16(mustHex("01030000000a")); got != 0xcdc5 {
		t.Errorf("crc16 = %04x, want cdc5 (C5 CD on the wire)", got)
	}
}

func withCRC(b []byte) []byte {
	c := crc16(b)
	return append(b, byte(c), byte(c>>8))
}

func TestCheckRTU(t *testing.T) {
	req := withCRC(mustHex("01 03 0000 0002"))
	cases := []struct {
		name string
		resp []byte
		want error
	}{
		{"ok", withCRC(mustHex("01 03 04 0001 0002")), nil},
		{"crc", append(mustHex("01 03 04 0001 0002"), 0, 0), ErrCRC},
		{"wrong unit", withCRC(mustHex("02 03 04 0001 0002")), ErrWrongUnit},
		{"short data", withCRC(mustHex("01 03 02 0001")), ErrShortFrame},
		{"count lies", withCRC(mustHex("01 03 06 0001 0002")), ErrShortFrame},
		{"wrong function", withCRC(mustHex("01 04 04 0001 0002")), ErrProtocol},
		{"too short", mustHex("01 03 00 00"), ErrShortFrame},
	}
	for _, tc := range cases {
		err := checkRTU(req, tc.resp)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	var ex *Exception
	if err := checkRTU(req, withCRC(mustHex("01 83 02"))); !errors.As(err, &ex) || ex.Code != 2 || ex.Function != 3 {
		t.Errorf("exception: %v", err)
	}
}

func TestCheckPDU(t *testing.T) {
	cases := []struct {
		name      string
		req, resp string
		want      error
	}{
		{"coils", "01 0000 000a", "01 02 ff03", nil},
		{"coils short", "01 0000 000a", "01 01 ff", ErrShortFrame},
		{"write single echo", "06 0010 1234", "06 0010 1234", nil},
		{"write single wrong echo", "06 0010 1234", "06 0010 1235", ErrProtocol},
		{"write multiple", "10 0010 0002 04 00010002", "10 0010 0002", nil},
		{"write cut", "05 0001 ff00", "05 0001", ErrShortFrame},
		{"exception no code", "03 0000 0001", "83", ErrShortFrame},
		{"empty", "03 0000 0001", "", ErrShortFrame},
	}
	for _, tc := range cases {
		err := checkPDU(mustHex(tc.req), mustHex(tc.resp))
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestCheckTCP(t *testing.T) {
	req := mustHex("0005 0000 0006 01 03 0000 0001")
	if err := checkTCP(req, mustHex("0005 0000 0005 01 03 02 abcd")); err != nil {
		t.Error(err)
	}
	if err := checkTCP(req, mustHex("0004 0000 0005 01 03 02 abcd")); err != errStale {
		t.Errorf("late answer: %v", err)
	}
	var le *linkError
	if err := checkTCP(req, mustHex("0105 0000 0005 01 03 02 abcd")); !errors.As(err, &le) {
		t.Errorf("future transaction id: %v", err)
	}
	if err := checkTCP(req, mustHex("0005 0000 0005 02 03 02 abcd")); !errors.Is(err, ErrWrongUnit) {
		t.Errorf("wrong unit: %v", err)
	}
}

// fixedTransport returns one canned answer: a seam for feeding grid-x's
// client in the fuzz tests.
type fixedTransport struct{ resp []byte }

func (f fixedTransport) Send([]byte) ([]byte, error) { return f.resp, nil }

// splitReader returns data in chunks cut at the given points.
type splitReader struct {
	data []byte
	cuts []byte
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.cuts) > 0 {
		n = min(n, int(r.cuts[0])%8+1)
		r.cuts = r.cuts[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// fuzzRequests are the requests the fuzzed answers are checked against.
var fuzzRequests = []struct {
	fc         byte
	addr, qty  uint16
	call       func(c gmodbus.Client) ([]byte, error)
	wantResult int
}{
	{1, 0, 10, func(c gmodbus.Client) ([]byte, error) { return c.ReadCoils(0, 10) }, 2},
	{2, 5, 3, func(c gmodbus.Client) ([]byte, error) { return c.ReadDiscreteInputs(5, 3) }, 1},
	{3, 0, 2, func(c gmodbus.Client) ([]byte, error) { return c.ReadHoldingRegisters(0, 2) }, 4},
	{4, 7, 1, func(c gmodbus.Client) ([]byte, error) { return c.ReadInputRegisters(7, 1) }, 2},
	{5, 1, 0xff00, func(c gmodbus.Client) ([]byte, error) { return c.WriteSingleCoil(1, 0xff00) }, 2},
	{6, 2, 0x1234, func(c gmodbus.Client) ([]byte, error) { return c.WriteSingleRegister(2, 0x1234) }, 2},
	{15, 3, 1, func(c gmodbus.Client) ([]byte, error) { return c.WriteMultipleCoils(3, 1, []byte{1}) }, 2},
	{16, 4, 1, func(c gmodbus.Client) ([]byte, error) { return c.WriteMultipleRegisters(4, 1, []byte{0, 9}) }, 2},
}

// FuzzRTUFrame feeds arbitrary bytes, split at arbitrary points, to the
// RTU frame reader and checker: no panic, and whatever passes the checks
// is accepted by grid-x's client as a well-formed answer.
func FuzzRTUFrame(f *testing.F) {
	f.Add(uint8(2), withCRC(mustHex("01 03 04 0001 0002")), []byte{1, 2})
	f.Add(uint8(0), withCRC(mustHex("01 01 02 ff03")), []byte{0})
	f.Add(uint8(5), withCRC(mustHex("01 06 0002 1234")), []byte{3})
	f.Add(uint8(3), withCRC(mustHex("01 84 02")), []byte{})
	f.Add(uint8(2), mustHex("01 03 ff 00"), []byte{7})
	f.Fuzz(func(t *testing.T, which uint8, stream, cuts []byte) {
		fr := fuzzRequests[int(which)%len(fuzzRequests)]
		pk := gmodbus.NewRTUClientHandler("")
		pk.SetSlave(1)
		req := rtuRequest(t, pk, fr.fc, fr.addr, fr.qty)
		l := &rtuLink{ctx: context.Background(), timeout: time.Second}
		frame, err := l.readFrame(&splitReader{data: stream, cuts: cuts})
		if err != nil {
			return
		}
		if len(frame) > rtuMaxADU || !bytes.HasPrefix(stream, frame) {
			t.Fatalf("frame % x from stream % x", frame, stream)
		}
		if err := checkRTU(req, frame); err != nil {
			return
		}
		res, err := fr.call(gmodbus.NewClient2(pk, fixedTransport{frame}))
		if err != nil || len(res) != fr.wantResult {
			t.Fatalf("checked answer % x to % x: grid-x says %v (% x)", frame, req, err, res)
		}
	})
}

// FuzzTCPFrame checks arbitrary answers to TCP requests the same way.
func FuzzTCPFrame(f *testing.F) {
	f.Add(uint8(2), mustHex("0001 0000 0007 01 03 04 0001 0002"))
	f.Add(uint8(4), mustHex("0001 0000 0006 01 05 0001 ff00"))
	f.Add(uint8(1), mustHex("0001 0000 0003 01 82 02"))
	f.Fuzz(func(t *testing.T, which uint8, resp []byte) {
		fr := fuzzRequests[int(which)%len(fuzzRequests)]
		pk := gmodbus.NewTCPClientHandler("")
		pk.SetSlave(1)
		pdu := tcpPDU(fr.fc, fr.addr, fr.qty)
		req, err := pk.Encode(&pdu) // transaction id 1
		if err != nil {
			t.Fatal(err)
		}
		if len(resp) < mbapHeader || int(binary.BigEndian.Uint16(resp[4:6])) != len(resp)-6 {
			return // the link reads exactly the MBAP length
		}
		if err := checkTCP(req, resp); err != nil {
			return
		}
		pk2 := gmodbus.NewTCPClientHandler("")
		pk2.SetSlave(1)
		res, err := fr.call(gmodbus.NewClient2(pk2, fixedTransport{resp}))
		if err != nil || len(res) != fr.wantResult {
			t.Fatalf("checked answer % x to % x: grid-x says %v", resp, req, err)
		}
	})
}

func tcpPDU(fc byte, addr, qty uint16) gmodbus.ProtocolDataUnit {
	data := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, addr), qty)
	switch fc {
	case 15:
		data = append(data, 1, 1)
	case 16:
		data = append(data, 2, 0, 9)
	}
	return gmodbus.ProtocolDataUnit{FunctionCode: fc, Data: data}
}

func rtuRequest(t *testing.T, pk gmodbus.Packager, fc byte, addr, qty uint16) []byte {
	pdu := tcpPDU(fc, addr, qty)
	adu, err := pk.Encode(&pdu)
	if err != nil {
		t.Fatal(err)
	}
	return adu
}
