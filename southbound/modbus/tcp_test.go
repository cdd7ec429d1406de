package modbus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
	sv "github.com/simonvetter/modbus"
)

// allTypesDevice lays every decode case out in the holding and input
// registers of unit 1 of s, plus coils and discrete inputs, and returns a
// device config reading them all.
func allTypesDevice(t testing.TB, s *slave) DeviceConfig {
	d := DeviceConfig{Name: "meter", Unit: 1, Poll: time.Hour}
	addr := uint16(0)
	for i, tc := range decodeCases {
		p := tc.p
		p.Name, p.Address = fmt.Sprintf("h%d", i), addr
		s.setRegs(1, false, addr, mustHex(tc.img))
		d.Points = append(d.Points, p)
		p.Name, p.Table = fmt.Sprintf("i%d", i), "input"
		s.setRegs(1, true, addr, mustHex(tc.img))
		d.Points = append(d.Points, p)
		addr += uint16(len(mustHex(tc.img)) / 2)
	}
	u := s.unit(1)
	s.mu.Lock()
	for i := range 20 {
		u.coils[i] = i%3 == 0
		u.discrete[100+i] = i%2 == 1
	}
	s.mu.Unlock()
	for i := range 20 {
		d.Points = append(d.Points,
			PointConfig{Name: fmt.Sprintf("c%d", i), Table: "coil", Address: uint16(i)},
			PointConfig{Name: fmt.Sprintf("d%d", i), Table: "discrete", Address: uint16(100 + i)})
	}
	return d
}

// TestTCPDecodesEveryType reads every type and byte order from a
// third-party slave, in the fewest requests.
func TestTCPDecodesEveryType(t *testing.T) {
	s := startSlave(t, 1)
	dev := allTypesDevice(t, s)
	a := newAdapter(t, Config{TCP: s.addr, Devices: []DeviceConfig{dev}})
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 5*time.Second, "first reading", func() bool { return up.Count("meter") > 0 })

	rd, _ := up.Last("meter")
	if rd.Adapter != "mb" || rd.Time.IsZero() {
		t.Errorf("reading header: %+v", rd)
	}
	if len(rd.Points) != len(dev.Points) {
		t.Errorf("%d points, want %d", len(rd.Points), len(dev.Points))
	}
	for i, tc := range decodeCases {
		for _, name := range []string{fmt.Sprintf("h%d", i), fmt.Sprintf("i%d", i)} {
			got, ok := pointValue(rd, name)
			if !ok || !sameValue(got, tc.want, tc.approx) {
				t.Errorf("%s (%s): got %v, want %v", name, tc.name, got, tc.want)
			}
		}
	}
	for i := range 20 {
		if v, _ := pointValue(rd, fmt.Sprintf("c%d", i)); v != edgegw.Bool(i%3 == 0) {
			t.Errorf("coil %d = %v", i, v)
		}
		if v, _ := pointValue(rd, fmt.Sprintf("d%d", i)); v != edgegw.Bool(i%2 == 1) {
			t.Errorf("discrete %d = %v", 100+i, v)
		}
	}
	// Registers: the layout is contiguous, so ceil(regs/125) per table;
	// bits: one request per table.
	regs := 0
	for _, tc := range decodeCases {
		regs += len(mustHex(tc.img)) / 2
	}
	want := 2*((regs+124)/125) + 2
	if got := s.requests(1); got != want {
		t.Errorf("one poll cycle took %d requests, want %d (%d registers per table)", got, want, regs)
	}
	if st := a.Stats().Devices[0]; st.Polls != 1 || st.Requests != uint64(want) || st.State != "up" {
		t.Errorf("stats: %+v", st)
	}
}

// TestTCPBatchingRequestCount counts the requests of one poll cycle at the
// slave for several layouts.
func TestTCPBatchingRequestCount(t *testing.T) {
	cases := []struct {
		name   string
		addrs  []uint16
		gap    int
		want   int
		points int
	}{
		{"200 adjacent", seq(0, 200, 1), 0, 2, 200},
		{"50 every 3rd, no bridging", seq(0, 50, 3), 0, 50, 50},
		{"50 every 3rd, gap 2", seq(0, 50, 3), 2, 2, 50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startSlave(t, 1)
			d := DeviceConfig{Name: "d", Unit: 1, Poll: time.Hour, MaxGap: tc.gap}
			for _, a := range tc.addrs {
				d.Points = append(d.Points, PointConfig{Name: fmt.Sprint(a), Table: "holding", Address: a})
			}
			a := newAdapter(t, Config{TCP: s.addr, Devices: []DeviceConfig{d}})
			up := new(testpeer.Uplink)
			testpeer.RunAdapter(t, a, up)
			waitFor(t, 5*time.Second, "reading", func() bool { return up.Count("d") > 0 })
			if got := s.requests(1); got != tc.want {
				t.Errorf("%d requests, want %d", got, tc.want)
			}
			if rd, _ := up.Last("d"); len(rd.Points) != tc.points {
				t.Errorf("%d points, want %d", len(rd.Points), tc.points)
			}
		})
	}
}

func seq(start, n, step int) []uint16 {
	var out []uint16
	for i := range n {
		out = append(out, uint16(start+i*step))
	}
	return out
}

func simpleDevice(name string, unit uint8, poll time.Duration) DeviceConfig {
	return DeviceConfig{Name: name, Unit: unit, Poll: poll, Points: []PointConfig{
		{Name: "a", Table: "holding", Address: 0},
		{Name: "b", Table: "holding", Address: 100, Type: "int32"},
	}}
}

// TestTCPDeadUnitDoesNotStallNeighbours: unit 2 answers too late on every
// request. It is backed off on its own while units 1 and 3 keep their
// cadence, and no reading of unit 2 is ever sent. (The slave serves one
// request at a time per connection, like a real gateway: unit 2's late
// answer delays the next request by 50ms, well inside its timeout.)
func TestTCPDeadUnitDoesNotStallNeighbours(t *testing.T) {
	s := startSlave(t, 1, 2, 3)
	s.setRegs(1, false, 0, mustHex("0007"))
	s.setInject(func(unit uint8, fc int, addr, qty uint16) fault {
		if unit == 2 {
			return fault{delay: 350 * time.Millisecond}
		}
		return fault{}
	})
	a := newAdapter(t, Config{TCP: s.addr, Timeout: 300 * time.Millisecond, BackoffMax: 600 * time.Millisecond,
		Devices: []DeviceConfig{simpleDevice("one", 1, 20*time.Millisecond), simpleDevice("two", 2, 20*time.Millisecond),
			simpleDevice("three", 3, 20*time.Millisecond)}})
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 20*time.Second, "60 readings from unit 1 and 3", func() bool {
		return up.Count("one") >= 60 && up.Count("three") >= 60
	})
	st := a.Stats()
	two := st.Devices[1]
	if up.Count("two") != 0 {
		t.Errorf("%d readings from the dead unit", up.Count("two"))
	}
	if two.State != "down" && two.Errors.Timeout == 0 {
		t.Errorf("dead unit stats: %+v", two)
	}
	if two.Errors.Timeout < 2 || two.Requests > uint64(up.Count("one"))/3 {
		t.Errorf("dead unit: %d timeouts in %d requests while unit 1 gave %d readings (want back-off)",
			two.Errors.Timeout, two.Requests, up.Count("one"))
	}
	for _, i := range []int{0, 2} {
		// Zero unless the machine stalls for a whole timeout.
		if d := st.Devices[i]; d.State != "up" || d.Errors.Total() > d.Requests/20 {
			t.Errorf("neighbour %s: state %s, %d errors in %d requests: %+v", d.Name, d.State, d.Errors.Total(), d.Requests, d.Errors)
		}
	}
	if st.Disconnects != 0 {
		t.Errorf("%d disconnects; a dead unit must not cost the connection", st.Disconnects)
	}
	rd, _ := up.Last("one")
	if v, _ := pointValue(rd, "a"); v != edgegw.Uint(7) {
		t.Errorf("unit 1 a = %v", v)
	}
	// Writes to a unit that does not answer fail fast.
	err := a.Execute(context.Background(), edgegw.Action{Kind: edgegw.WritePoint, Device: "two", Point: "a", Value: edgegw.Int(1)})
	if !errors.Is(err, southbound.ErrRejected) { // "a" is not writable: rejected before the bus is asked
		t.Errorf("write to non-writable point: %v", err)
	}
}

// TestTCPExceptionsCountedAndPointsOmitted: an exception on one request
// leaves its points out of the reading (never a zero) and is counted by
// code; the rest of the device is read.
func TestTCPExceptionsCountedAndPointsOmitted(t *testing.T) {
	s := startSlave(t, 1)
	s.setRegs(1, false, 0, mustHex("0005"))
	s.setInject(func(unit uint8, fc int, addr, qty uint16) fault {
		if fc == 3 && addr == 100 {
			return fault{err: sv.ErrServerDeviceFailure}
		}
		return fault{}
	})
	a := newAdapter(t, Config{TCP: s.addr, Devices: []DeviceConfig{simpleDevice("d", 1, 10*time.Millisecond)}})
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 5*time.Second, "3 readings", func() bool { return up.Count("d") >= 3 })
	for _, rd := range up.Readings() {
		if _, ok := pointValue(rd, "b"); ok {
			t.Fatalf("point b sent although its read failed: %+v", rd.Points)
		}
		if v, _ := pointValue(rd, "a"); v != edgegw.Uint(5) {
			t.Fatalf("a = %v", v)
		}
	}
	st := a.Stats().Devices[0]
	if st.Errors.Exceptions[4] == 0 || st.State != "up" {
		t.Errorf("stats: %+v", st)
	}
	if want := "exception 4 (server device failure) to function 3"; !contains(st.LastError, want) {
		t.Errorf("last error %q lacks %q", st.LastError, want)
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || len(s) >= len(sub) && index(s, sub) >= 0 }

func index(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestTCPSplitsOnIllegalAddress: a device that refuses a bridged range
// (exception 2) gets its points read singly from then on.
func TestTCPSplitsOnIllegalAddress(t *testing.T) {
	s := startSlave(t, 1)
	s.setRegs(1, false, 0, mustHex("0001 0000 0003"))
	s.setInject(func(unit uint8, fc int, addr, qty uint16) fault {
		if fc == 3 && addr <= 1 && int(addr)+int(qty) > 1 {
			return fault{err: sv.ErrIllegalDataAddress}
		}
		return fault{}
	})
	d := DeviceConfig{Name: "d", Unit: 1, Poll: 10 * time.Millisecond, MaxGap: 1, Points: []PointConfig{
		{Name: "x", Table: "holding", Address: 0}, {Name: "y", Table: "holding", Address: 2}}}
	a := newAdapter(t, Config{TCP: s.addr, Devices: []DeviceConfig{d}})
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 5*time.Second, "a reading", func() bool { return up.Count("d") >= 1 })
	rd, _ := up.Last("d")
	x, _ := pointValue(rd, "x")
	y, _ := pointValue(rd, "y")
	if x != edgegw.Uint(1) || y != edgegw.Uint(3) {
		t.Errorf("x=%v y=%v", x, y)
	}
	if n := a.Stats().Devices[0].Errors.Exceptions[2]; n != 1 {
		t.Errorf("%d illegal-address exceptions, want 1", n)
	}
}

// TestTCPDropReconnects: the slave drops the connection on some requests;
// the adapter reconnects and keeps reading.
func TestTCPDropReconnects(t *testing.T) {
	s := startSlave(t, 1)
	s.setRegs(1, false, 0, mustHex("0009"))
	n := 0
	s.setInject(func(unit uint8, fc int, addr, qty uint16) fault {
		n++ // the slave serves one connection at a time here
		if n%4 == 2 {
			return fault{err: sv.ErrProtocolError} // closes the link
		}
		return fault{}
	})
	a := newAdapter(t, Config{TCP: s.addr, BackoffMax: 50 * time.Millisecond,
		Devices: []DeviceConfig{simpleDevice("d", 1, 5*time.Millisecond)}})
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 10*time.Second, "3 disconnects and 10 readings", func() bool {
		return a.Stats().Disconnects >= 3 && up.Count("d") >= 10
	})
	st := a.Stats()
	if st.Connects < 3 || st.Devices[0].Errors.Link < 3 {
		t.Errorf("stats: %+v", st)
	}
}

// TestTCPReconnectsForever: nothing listens at first; the adapter keeps
// trying with back-off and connects once a slave appears on the port.
func TestTCPReconnectsForever(t *testing.T) {
	addr := freePort(t)
	a := newAdapter(t, Config{TCP: addr, BackoffMax: 20 * time.Millisecond,
		Devices: []DeviceConfig{simpleDevice("d", 1, 10*time.Millisecond)}})
	up := new(testpeer.Uplink)
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 10*time.Second, "5 failed connects", func() bool { return a.Stats().ConnectErrs >= 5 })
	err := a.Execute(context.Background(), edgegw.Action{Kind: edgegw.WritePoint, Device: "d", Point: "zz"})
	if !errors.Is(err, southbound.ErrUnknownTarget) {
		t.Errorf("unknown point: %v", err)
	}

	s := newSlave(t)
	s.units[1] = &unitData{}
	srv, err := sv.NewServer(&sv.ServerConfiguration{URL: "tcp://" + addr, Timeout: time.Minute, MaxClients: 2}, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr, err)
	}
	defer srv.Stop()
	defer close(s.quit)
	waitFor(t, 10*time.Second, "a reading after the slave appeared", func() bool { return up.Count("d") > 0 })
	if !a.Stats().Connected {
		t.Error("not connected")
	}
}

// TestTCPSubmitErrorsCounted: readings the uplink refuses are counted and
// polling goes on.
func TestTCPSubmitErrorsCounted(t *testing.T) {
	s := startSlave(t, 1)
	a := newAdapter(t, Config{TCP: s.addr, Devices: []DeviceConfig{simpleDevice("d", 1, 5*time.Millisecond)}})
	up := new(testpeer.Uplink)
	up.SetFail(func(int) error { return errors.New("disk full") })
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 5*time.Second, "5 submit errors", func() bool { return a.Stats().Devices[0].SubmitErrors >= 5 })
}

// TestTCPStopsPromptly: Run returns soon after cancel even with a request
// in flight that the slave answers late.
func TestTCPStopsPromptly(t *testing.T) {
	s := startSlave(t, 1)
	started := make(chan struct{}, 1)
	s.setInject(func(unit uint8, fc int, addr, qty uint16) fault {
		select {
		case started <- struct{}{}:
		default:
		}
		return fault{delay: 2 * time.Second}
	})
	a := newAdapter(t, Config{TCP: s.addr, Timeout: 10 * time.Second, Devices: []DeviceConfig{simpleDevice("d", 1, time.Second)}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, new(testpeer.Uplink)) }()
	<-started
	t0 := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Run took %s to return after cancel", d)
	}
	if err := a.Run(context.Background(), new(testpeer.Uplink)); err == nil {
		t.Error("second Run succeeded")
	}
}

// blockingUplink never stores anything until the adapter stops.
type blockingUplink struct{}

func (blockingUplink) Submit(ctx context.Context, r edgegw.Reading) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestTCPSlowUplinkDoesNotHoldTheBus: with an uplink that never returns,
// polling goes on and the readings that do not fit the queue are dropped
// and counted.
func TestTCPSlowUplinkDoesNotHoldTheBus(t *testing.T) {
	s := startSlave(t, 1)
	a := newAdapter(t, Config{TCP: s.addr, Devices: []DeviceConfig{simpleDevice("d", 1, time.Millisecond)}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, blockingUplink{}) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "50 dropped readings", func() bool { return a.Stats().Devices[0].Dropped >= 50 })
	if st := a.Stats().Devices[0]; st.Polls < 50 || st.Readings != 0 {
		t.Errorf("stats: %+v", st)
	}
}
