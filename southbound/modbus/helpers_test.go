package modbus

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	sv "github.com/simonvetter/modbus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// waitFor waits until cond holds, checking after every reading, or fails
// the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

func newAdapter(t testing.TB, cfg Config) *Adapter {
	t.Helper()
	cfg.SetDefaults()
	a, err := New("mb", cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// point returns the value of a point in a reading.
func pointValue(rd edgegw.Reading, name string) (edgegw.Value, bool) {
	for _, p := range rd.Points {
		if p.Name == name {
			return p.Value, true
		}
	}
	return edgegw.Value{}, false
}

// unitData is the memory of one unit of the test slave.
type unitData struct {
	coils, discrete [65536]bool
	input, holding  [65536]uint16
}

// fault is injected by the test slave into the answer to one request.
type fault struct {
	delay time.Duration // answer late (past the client's timeout: a timeout)
	err   error         // sv.ErrIllegalDataAddress etc.: an exception; sv.ErrProtocolError: drop the connection
}

// slave is a third-party Modbus TCP slave (simonvetter/modbus) in-process,
// with per-request fault injection and request counting.
type slave struct {
	t      testing.TB
	srv    *sv.ModbusServer
	addr   string
	mu     sync.Mutex
	units  map[uint8]*unitData
	reqs   map[uint8]int // requests per unit
	writes map[uint8]int // write requests per unit
	// inject, when set, decides a fault per request (fc is 1-4 for reads,
	// 5/6/15/16 for writes).
	inject       func(unit uint8, fc int, addr, qty uint16) fault
	ignoreWrites bool
	quit         chan struct{} // closed when the test ends: injected delays end
}

func startSlave(t testing.TB, units ...uint8) *slave {
	t.Helper()
	s := newSlave(t)
	for _, u := range units {
		s.units[u] = &unitData{}
	}
	var lastErr error
	for range 10 {
		addr := freePort(t)
		srv, err := sv.NewServer(&sv.ServerConfiguration{
			URL: "tcp://" + addr, Timeout: 30 * time.Second, MaxClients: 8,
			Logger: log.New(io.Discard, "", 0),
		}, s)
		if err != nil {
			t.Fatal(err)
		}
		if lastErr = srv.Start(); lastErr == nil {
			s.srv, s.addr = srv, addr
			t.Cleanup(func() { close(s.quit); srv.Stop() })
			return s
		}
	}
	t.Fatalf("start slave: %v", lastErr)
	return nil
}

func newSlave(t testing.TB) *slave {
	return &slave{t: t, units: map[uint8]*unitData{}, reqs: map[uint8]int{}, writes: map[uint8]int{}, quit: make(chan struct{})}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *slave) unit(u uint8) *unitData {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.units[u]
}

// setRegs writes a register image into holding (or input) registers.
func (s *slave) setRegs(u uint8, input bool, addr uint16, img []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.units[u]
	for i := 0; i+1 < len(img); i += 2 {
		v := uint16(img[i])<<8 | uint16(img[i+1])
		if input {
			d.input[int(addr)+i/2] = v
		} else {
			d.holding[int(addr)+i/2] = v
		}
	}
}

func (s *slave) holding(u uint8, addr uint16) uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.units[u].holding[addr]
}

func (s *slave) requests(u uint8) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[u]
}

func (s *slave) writeCount(u uint8) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes[u]
}

func (s *slave) setInject(f func(unit uint8, fc int, addr, qty uint16) fault) {
	s.mu.Lock()
	s.inject = f
	s.mu.Unlock()
}

// begin counts a request and applies its fault; it returns the unit's
// memory, locked, or an error.
func (s *slave) begin(unit uint8, fc int, addr, qty uint16) (*unitData, error) {
	s.mu.Lock()
	s.reqs[unit]++
	if fc >= 5 {
		s.writes[unit]++
	}
	inject := s.inject
	d := s.units[unit]
	s.mu.Unlock()
	if inject != nil {
		f := inject(unit, fc, addr, qty)
		if f.delay > 0 { // the injected fault: a late answer
			t := time.NewTimer(f.delay)
			select {
			case <-t.C:
			case <-s.quit:
				t.Stop()
			}
		}
		if f.err != nil {
			return nil, f.err
		}
	}
	if d == nil {
		return nil, sv.ErrGWTargetFailedToRespond
	}
	s.mu.Lock()
	return d, nil
}

func (s *slave) HandleCoils(req *sv.CoilsRequest) ([]bool, error) {
	fc := 1
	if req.IsWrite {
		fc = 5
		if len(req.Args) > 1 || req.Quantity > 1 {
			fc = 15
		}
	}
	d, err := s.begin(req.UnitId, fc, req.Addr, req.Quantity)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if req.IsWrite {
		if !s.ignoreWrites {
			copy(d.coils[req.Addr:], req.Args)
		}
		return []bool{}, nil
	}
	return append([]bool(nil), d.coils[req.Addr:int(req.Addr)+int(req.Quantity)]...), nil
}

func (s *slave) HandleDiscreteInputs(req *sv.DiscreteInputsRequest) ([]bool, error) {
	d, err := s.begin(req.UnitId, 2, req.Addr, req.Quantity)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return append([]bool(nil), d.discrete[req.Addr:int(req.Addr)+int(req.Quantity)]...), nil
}

func (s *slave) HandleHoldingRegisters(req *sv.HoldingRegistersRequest) ([]uint16, error) {
	fc := 3
	if req.IsWrite {
		fc = 6
		if len(req.Args) > 1 {
			fc = 16
		}
	}
	d, err := s.begin(req.UnitId, fc, req.Addr, req.Quantity)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if req.IsWrite {
		if !s.ignoreWrites {
			copy(d.holding[req.Addr:], req.Args)
		}
		return []uint16{}, nil
	}
	return append([]uint16(nil), d.holding[req.Addr:int(req.Addr)+int(req.Quantity)]...), nil
}

func (s *slave) HandleInputRegisters(req *sv.InputRegistersRequest) ([]uint16, error) {
	d, err := s.begin(req.UnitId, 4, req.Addr, req.Quantity)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return append([]uint16(nil), d.input[req.Addr:int(req.Addr)+int(req.Quantity)]...), nil
}

func mustHex(s string) []byte {
	var b []byte
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		var v byte
		if _, err := fmt.Sscanf(s[i:i+2], "%02x", &v); err != nil {
			panic(err)
		}
		b = append(b, v)
		i += 2
	}
	return b
}
