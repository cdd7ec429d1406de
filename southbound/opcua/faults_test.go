package opcua

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
)

// TestServerRestartMidSubscription: the server process is killed and
// started again on the same port; the adapter notices, opens a new session
// and subscription with back-off, and values flow again. No value the
// server did not hold is ever passed up (nothing missing becomes a zero).
// It restarts the shared server (tests of this package do not run in
// parallel), which comes back with its initial values.
func TestServerRestartMidSubscription(t *testing.T) {
	srv := boilerServer(t)
	a := newAdapter(t, "opc", Config{Endpoint: srv.Endpoint, Keepalive: 300 * time.Millisecond,
		BackoffMax: 500 * time.Millisecond, Timeout: 2 * time.Second,
		Devices: []DeviceConfig{{Name: "boiler", Interval: 50 * time.Millisecond, Points: []PointConfig{
			{Name: "temperature", Node: "ns=1;s=Boiler.Temperature", Type: "double"},
			{Name: "temps", Node: "ns=1;s=Boiler.Temps", Type: "double", Length: 4},
		}}}}, nil)
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	temp := func(want float64) func() (bool, string) {
		return func() (bool, string) {
			v := latest(up.Readings(), "boiler")["temperature"]
			return v == edgegw.Float(want), v.String()
		}
	}
	srv.Send(t, "set Boiler.Temperature 30")
	waitFor(t, 30*time.Second, "temperature 30", temp(30))

	srv.Stop()
	t.Cleanup(func() { // leave the shared server running for the next tests
		if !srv.Running() {
			if err := srv.Start(); err != nil {
				t.Error(err)
			}
		}
	})
	waitFor(t, 30*time.Second, "the session lost", func() (bool, string) {
		st := a.Stats()
		return !st.Connected && st.Disconnects >= 1, st.LastError
	})
	if err := a.Execute(t.Context(), edgegw.Action{Device: "boiler", Kind: edgegw.WritePoint, Point: "temperature",
		Value: edgegw.Float(1)}); !errors.Is(err, southbound.ErrRejected) {
		t.Errorf("write of a read-only point while down = %v, want ErrRejected", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "a new session", func() (bool, string) {
		st := a.Stats()
		return st.Connected && st.Connects >= 2, st.LastError
	})
	srv.Send(t, "set Boiler.Temperature 31")
	waitFor(t, 30*time.Second, "temperature 31 after the restart", temp(31))
	for _, v := range values(up.Readings(), "boiler", "temperature") {
		if f, _ := v.Float(); f != 20 && f != 30 && f != 31 {
			t.Errorf("temperature %s passed up: the server never held it", v)
		}
	}
	for _, v := range values(up.Readings(), "boiler", "temps[0]") {
		if v != edgegw.Float(20.5) {
			t.Errorf("temps[0] = %s, want 20.5", v)
		}
	}
}

// blackhole accepts TCP connections and never answers: a server that is
// there but hung.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// TestUnreachableServerDoesNotStallOthers: adapters for a hung server and
// for a closed port keep failing on their own, answer writes with
// ErrUnavailable at once, and an adapter for a working server delivers
// meanwhile.
func TestUnreachableServerDoesNotStallOthers(t *testing.T) {
	srv := boilerServer(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	dev := func() []DeviceConfig {
		return []DeviceConfig{{Name: "boiler", Interval: 50 * time.Millisecond, Points: []PointConfig{
			{Name: "firmware", Node: "ns=1;s=Boiler.Firmware", Type: "string"},
			{Name: "setpoint", Node: "ns=1;s=Boiler.Setpoint", Type: "double", Writable: true}}}}
	}
	hung := newAdapter(t, "hung", Config{Endpoint: "opc.tcp://" + blackhole(t) + "/UA", Timeout: time.Second,
		BackoffMax: time.Second, Devices: dev()}, nil)
	gone := newAdapter(t, "gone", Config{Endpoint: "opc.tcp://" + closedAddr, Timeout: time.Second,
		BackoffMax: time.Second, Devices: dev()}, nil)
	good := newAdapter(t, "good", Config{Endpoint: srv.Endpoint, Devices: dev()}, nil)
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, hung, up)
	testpeer.RunAdapter(t, gone, up)
	testpeer.RunAdapter(t, good, up)
	waitFor(t, 30*time.Second, "the working server's values", func() (bool, string) {
		for _, r := range up.Readings() {
			if r.Adapter == "good" {
				return true, ""
			}
		}
		return false, good.Stats().LastError
	})
	waitFor(t, 30*time.Second, "failed attempts on both dead servers", func() (bool, string) {
		h, g := hung.Stats(), gone.Stats()
		return h.ConnectErrs >= 1 && g.ConnectErrs >= 2, h.LastError + " / " + g.LastError
	})
	for _, a := range []*Adapter{hung, gone} {
		err := a.Execute(t.Context(), edgegw.Action{Device: "boiler", Kind: edgegw.WritePoint, Point: "setpoint", Value: edgegw.Float(50)})
		if !errors.Is(err, southbound.ErrUnavailable) {
			t.Errorf("%s: write = %v, want ErrUnavailable", a.name, err)
		}
	}
	for _, r := range up.Readings() {
		if r.Adapter != "good" {
			t.Errorf("reading from %s", r.Adapter)
		}
	}
}
