package opcua

import (
	"errors"
	"io"
	"net"
	"net/url"
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
	if st := a.Stats(); st.LastError == "" || !st.LastErrorCleared.IsZero() {
		t.Errorf("while down: last error %q cleared at %v, want an error standing", st.LastError, st.LastErrorCleared)
	}
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
	if st := a.Stats(); st.LastErrorCleared.Before(st.LastErrorTime) {
		t.Errorf("after the new session: last error %q at %v cleared at %v", st.LastError, st.LastErrorTime, st.LastErrorCleared)
	}
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
	hung := newAdapter(t, "hung", Config{Endpoint: "opc.tcp://" + testpeer.HungServer(t) + "/UA", Timeout: time.Second,
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

// cutProxy forwards loopback TCP connections to target until cut closes
// the ones open: a network cut that the server does not see coming.
type cutProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l}
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(s, c); s.Close(); c.Close() })
			p.wg.Go(func() { io.Copy(c, s); s.Close(); c.Close() })
		}
	})
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestNetworkCutNoDuplicates: a cut connection to a server that stays up
// gives a new session whose subscription sends the current values again,
// with the source timestamps already passed up: they are counted as
// duplicates and not sent twice; a change after the cut flows.
func TestNetworkCutNoDuplicates(t *testing.T) {
	srv := boilerServer(t)
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, u.Host)
	a := newAdapter(t, "opc", Config{Endpoint: "opc.tcp://" + p.l.Addr().String() + u.Path, Keepalive: 300 * time.Millisecond,
		BackoffMax: 300 * time.Millisecond, Timeout: 2 * time.Second,
		Devices: []DeviceConfig{{Name: "boiler", Interval: 50 * time.Millisecond, Points: []PointConfig{
			{Name: "firmware", Node: "ns=1;s=Boiler.Firmware", Type: "string"},
			{Name: "level", Node: "ns=1;s=Boiler.Level", Type: "int16"},
		}}}}, nil)
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 30*time.Second, "firmware", func() (bool, string) {
		return len(values(up.Readings(), "boiler", "firmware")) == 1, ""
	})
	p.cut()
	waitFor(t, 30*time.Second, "a second session and its repeated values dropped", func() (bool, string) {
		st := a.Stats()
		return st.Connects >= 2 && st.Devices[0].Duplicates >= 2, describeStats(st.Devices[0])
	})
	srv.Send(t, "set Boiler.Level -7")
	waitFor(t, 30*time.Second, "the change after the cut", func() (bool, string) {
		v := latest(up.Readings(), "boiler")["level"]
		return v == edgegw.Int(-7), v.String()
	})
	if n := len(values(up.Readings(), "boiler", "firmware")); n != 1 {
		t.Errorf("firmware passed up %d times, want once", n)
	}
}

// TestCutSessionWritesUnavailable: writes in the moments after the
// connection broke, before the session noticed, fail as the session being
// gone (ErrUnavailable: 503), whatever the socket said (EOF, a broken pipe,
// a reset), not as a device fault.
func TestCutSessionWritesUnavailable(t *testing.T) {
	srv := boilerServer(t)
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, u.Host)
	a := newAdapter(t, "opc", Config{Endpoint: "opc.tcp://" + p.l.Addr().String() + u.Path, Keepalive: time.Minute,
		BackoffMax: time.Minute, Timeout: 5 * time.Second, Devices: firmwareDevice()}, nil)
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 30*time.Second, "firmware", func() (bool, string) {
		return latest(up.Readings(), "boiler")["firmware"] == edgegw.String("V1.2"), a.Stats().LastError
	})
	p.cut()
	for i := range 5 {
		err := a.Execute(t.Context(), edgegw.Action{Device: "boiler", Kind: edgegw.WritePoint, Point: "setpoint", Value: edgegw.Float(51)})
		if err != nil && !errors.Is(err, southbound.ErrUnavailable) {
			t.Errorf("write %d after the cut = %v, want ErrUnavailable", i, err)
		}
	}
}
