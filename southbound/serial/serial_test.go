package serial

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
)

func pointsOf(r edgegw.Reading) string {
	var s []string
	for _, p := range r.Points {
		s = append(s, fmt.Sprintf("%s=%s%s", p.Name, p.Value, p.Unit))
	}
	return r.Device + ":" + strings.Join(s, ",")
}

func TestLinesToReadings(t *testing.T) {
	pp := startSocat(t, t.TempDir())
	cfg := testConfig(pp.linkA)
	cfg.MaxLine = 64
	rec := &testpeer.Uplink{}
	a := run(t, cfg, rec)
	eventually(t, "port open", a.isOpen)
	peer := pp.peer()
	peer.write("T=21.5\r\n")
	peer.write("garbage line\n\n")
	peer.write("H=40% on\nH=4")                     // a line split across writes
	peer.write("1% maybe\n")                        // rh parses, ok does not: partial reading
	peer.write(strings.Repeat("T=9.9 ", 30) + "\n") // too long: garbage, resynchronised
	peer.write("T=x\n")                             // matches nothing
	peer.write("T=-3.25\n")
	rs := rec.Wait(t, 4)
	var got []string
	for _, r := range rs {
		got = append(got, pointsOf(r))
		if r.Adapter != "ser" || r.Time.IsZero() || r.Message != nil {
			t.Errorf("reading %+v", r)
		}
	}
	want := []string{"thermo:temp=21.5degC", "hygro:rh=40%,ok=true", "hygro:rh=41%", "thermo:temp=-3.25degC"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	eventually(t, "counters", func() bool { return a.Stats().Lines == 6 })
	if s := a.Stats(); s.Garbage != 3 || s.Overlong != 1 || s.BadValues != 1 || s.Readings != 4 {
		t.Errorf("stats %+v", s)
	}
}

func TestSendFrameAndPoll(t *testing.T) {
	pp := startSocat(t, t.TempDir())
	cfg := testConfig(pp.linkA)
	cfg.Poll = "READ?\r\n"
	cfg.PollInterval = 50 * time.Millisecond
	rec := &testpeer.Uplink{}
	a, err := New("ser", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	send := edgegw.Action{Kind: edgegw.SendFrame, Device: "thermo", Payload: []byte("SET 5")}
	if err := a.Execute(context.Background(), send); !errors.Is(err, southbound.ErrUnavailable) {
		t.Errorf("before Run: %v, want ErrUnavailable", err)
	}
	a = run(t, cfg, rec)
	eventually(t, "port open", a.isOpen)
	peer := pp.peer()
	// The poll request arrives; the sensor answers it.
	if l := peer.readLine(); l != "READ?\r\n" {
		t.Fatalf("peer got %q, want the poll", l)
	}
	peer.write("T=1.5\n")
	rec.Wait(t, 1)
	if err := a.Execute(context.Background(), send); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		l := peer.readLine()
		if l == "READ?\r\n" {
			continue
		}
		if l != "SET 5\r\n" {
			t.Fatalf("peer got %q", l)
		}
		break
	}
	for _, bad := range []edgegw.Action{
		{Kind: edgegw.SendFrame, Device: "nope"},
		{Kind: edgegw.WritePoint, Device: "thermo"},
	} {
		if err := a.Execute(context.Background(), bad); !errors.Is(err, southbound.ErrUnknownTarget) {
			t.Errorf("%v: %v, want ErrUnknownTarget", bad, err)
		}
	}
}

// The port works with a descriptor above 1023, where select(2)-based
// serial libraries panic.
func TestHighDescriptor(t *testing.T) {
	pp := startSocat(t, t.TempDir())
	testpeer.FillDescriptors(t, 1100)
	rec := &testpeer.Uplink{}
	a := run(t, testConfig(pp.linkA), rec)
	eventually(t, "port open", a.isOpen)
	fd := portFD(t, pp.ptsA)
	if fd < 1024 {
		t.Fatalf("port has descriptor %d, want >= 1024 for this test", fd)
	}
	peer := pp.peer()
	peer.write("T=7.5\n")
	if rs := rec.Wait(t, 1); pointsOf(rs[0]) != "thermo:temp=7.5degC" {
		t.Errorf("got %s", pointsOf(rs[0]))
	}
	if err := a.Execute(context.Background(), edgegw.Action{Kind: edgegw.SendFrame, Device: "thermo", Payload: []byte("X")}); err != nil {
		t.Fatal(err)
	}
	if l := peer.readLine(); l != "X\r\n" {
		t.Errorf("peer got %q", l)
	}
	t.Logf("port descriptor %d", fd)
}

// portFD finds our descriptor for the pty path in /proc/self/fd.
func portFD(t *testing.T, pts string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	best := -1
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == pts {
			n, _ := strconv.Atoi(e.Name())
			best = max(best, n)
		}
	}
	if best < 0 {
		t.Fatalf("no descriptor for %s", pts)
	}
	return best
}

// The port is missing at start, appears, vanishes (socat ends) and
// returns: the adapter keeps reopening and reads again.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	rec := &testpeer.Uplink{}
	a := run(t, testConfig(filepath.Join(dir, "ttyA")), rec)
	eventually(t, "failed opens", func() bool { return a.Stats().OpenFails >= 2 })
	if a.isOpen() {
		t.Fatal("open without a port")
	}
	pp := startSocat(t, dir)
	eventually(t, "port open", a.isOpen)
	pp.peer().write("T=1.0\n")
	rec.Wait(t, 1)

	pp.stop()
	eventually(t, "port loss noticed", func() bool { return a.Stats().Reopens >= 1 })
	pp2 := startSocat(t, dir)
	eventually(t, "port reopened", a.isOpen)
	peer := pp2.peer()
	// The adapter may have reopened just before the new socat's links
	// existed; keep writing until a reading arrives.
	eventually(t, "reading after reopen", func() bool {
		peer.write("T=2.0\n")
		return len(rec.Readings()) >= 2
	})
	if rs := rec.Readings(); pointsOf(rs[1]) != "thermo:temp=2degC" {
		t.Errorf("got %s", pointsOf(rs[1]))
	}
}
