package opcua

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/southbound"
)

// boilerPoints are points of every type the boiler server has.
func boilerPoints() []PointConfig {
	return []PointConfig{
		{Name: "running", Node: "ns=1;s=Boiler.Running", Type: "boolean"},
		{Name: "mode", Node: "ns=1;s=Boiler.Mode", Type: "sbyte"},
		{Name: "stage", Node: "ns=1;s=Boiler.Stage", Type: "byte"},
		{Name: "offset", Node: "ns=1;s=Boiler.Offset", Type: "int16", Scale: 0.1},
		{Name: "hours", Node: "ns=1;s=Boiler.Hours", Type: "uint16"},
		{Name: "delta", Node: "ns=1;s=Boiler.Delta", Type: "int32"},
		{Name: "starts", Node: "ns=1;s=Boiler.Starts", Type: "uint32"},
		{Name: "energy", Node: "ns=1;s=Boiler.Energy", Type: "int64"},
		{Name: "counter", Node: "ns=1;s=Boiler.Counter", Type: "uint64"},
		{Name: "flow", Node: "ns=1;s=Boiler.Flow", Type: "float", Unit: "m3/h"},
		{Name: "firmware", Node: "ns=1;s=Boiler.Firmware", Type: "string"},
		{Name: "service", Node: "ns=1;s=Boiler.LastService", Type: "datetime"},
		{Name: "temps", Node: "ns=1;s=Boiler.Temps", Type: "double", Length: 4},
		{Name: "valves", Node: "ns=1;s=Boiler.Valves", Type: "boolean", Length: 3},
		{Name: "pressure", Node: "ns=1;i=1001", Type: "double", Scale: 100, Offset: 1},
		{Name: "serial", Node: "ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63", Type: "string"},
		{Name: "tag", Node: "ns=1;b=Ym9pbGVyLXRhZw==", Type: "uint32"},
	}
}

// wantBoiler are the server's initial values of boilerPoints.
var wantBoiler = map[string]edgegw.Value{
	"running":   edgegw.Bool(true),
	"mode":      edgegw.Int(-3),
	"stage":     edgegw.Uint(200),
	"offset":    edgegw.Float(-120),
	"hours":     edgegw.Uint(60000),
	"delta":     edgegw.Int(-70000),
	"starts":    edgegw.Uint(4000000000),
	"energy":    edgegw.Int(0x12<<32 | 0x34567890),
	"counter":   edgegw.Uint(7),
	"flow":      edgegw.Float(12.25),
	"firmware":  edgegw.String("V1.2"),
	"service":   edgegw.String("2026-01-02T03:04:05.678Z"),
	"temps[0]":  edgegw.Float(20.5),
	"temps[1]":  edgegw.Float(21.5),
	"temps[2]":  edgegw.Float(22.5),
	"temps[3]":  edgegw.Float(23.5),
	"valves[0]": edgegw.Bool(true),
	"valves[1]": edgegw.Bool(false),
	"valves[2]": edgegw.Bool(true),
	"pressure":  edgegw.Float(126),
	"serial":    edgegw.String("SN-42"),
	"tag":       edgegw.Uint(77),
}

func checkBoiler(t *testing.T, got map[string]edgegw.Value) {
	t.Helper()
	for k, want := range wantBoiler {
		if g := got[k]; g != want {
			t.Errorf("%s = %s, want %s", k, g, want)
		}
	}
}

// TestSubscribeEveryType: a subscription delivers the value of every
// built-in type, of 1-D arrays element by element, of numeric, GUID and
// opaque NodeIds, scaled where configured, with the source timestamp.
func TestSubscribeEveryType(t *testing.T) {
	srv := boilerServer(t)
	a := newAdapter(t, "opc", Config{Endpoint: srv.Endpoint, Devices: []DeviceConfig{
		{Name: "boiler", Interval: 50 * time.Millisecond, Points: boilerPoints()}}}, nil)
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 30*time.Second, "every point", func() (bool, string) {
		got := latest(up.Readings(), "boiler")
		return len(got) >= len(wantBoiler), describe(got)
	})
	rs := up.Readings()
	checkBoiler(t, latest(rs, "boiler"))
	for _, r := range rs {
		if r.Adapter != "opc" || r.Time.IsZero() || time.Since(r.Time) > time.Hour {
			t.Errorf("reading %+v: want adapter opc and a source time", r)
		}
		for _, p := range r.Points {
			if p.Name == "flow" && p.Unit != "m3/h" {
				t.Errorf("flow unit %q", p.Unit)
			}
		}
	}
	if st := a.Stats(); !st.Connected || st.Connects != 1 || st.Devices[0].Values < uint64(len(wantBoiler)) {
		t.Errorf("stats %+v", st)
	}
}

// TestBadStatusLeftOut: a value that turns Bad is left out of the readings
// (never sent as zero) and counted by status; its next Good value flows.
// A value of another type than configured is left out, counted and logged.
func TestBadStatusLeftOut(t *testing.T) {
	srv := boilerServer(t)
	var logs logBuffer
	a := newAdapter(t, "opc", Config{Endpoint: srv.Endpoint, Devices: []DeviceConfig{
		{Name: "sensor", Interval: 50 * time.Millisecond, Points: []PointConfig{
			{Name: "sensor", Node: "ns=1;s=Boiler.Sensor", Type: "double"},
			{Name: "flow", Node: "ns=1;s=Boiler.Flow", Type: "double"}, // a Float on the server
		}}}}, logs.logger())
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	srv.Send(t, "set Boiler.Sensor 2.5")
	waitFor(t, 30*time.Second, "sensor 2.5", func() (bool, string) {
		v := latest(up.Readings(), "sensor")["sensor"]
		return v == edgegw.Float(2.5), v.String()
	})
	srv.Send(t, "bad Boiler.Sensor")
	waitFor(t, 30*time.Second, "a BadSensorFailure counted", func() (bool, string) {
		st := a.Stats().Devices[0]
		return st.Bad["BadSensorFailure"] >= 1, describeStats(st)
	})
	srv.Send(t, "set Boiler.Sensor 3.5")
	waitFor(t, 30*time.Second, "sensor 3.5", func() (bool, string) {
		v := latest(up.Readings(), "sensor")["sensor"]
		return v == edgegw.Float(3.5), v.String()
	})
	for _, v := range values(up.Readings(), "sensor", "sensor") {
		if f, _ := v.Float(); f != 1.5 && f != 2.5 && f != 3.5 {
			t.Errorf("sensor passed up %s, a value the server never held good", v)
		}
	}
	if vs := values(up.Readings(), "sensor", "flow"); len(vs) != 0 || a.Stats().Devices[0].TypeErrors == 0 {
		t.Errorf("flow of the wrong type: values %v, stats %s", vs, describeStats(a.Stats().Devices[0]))
	}
	if !strings.Contains(logs.String(), "values left out") || !strings.Contains(logs.String(), "got float, want double") {
		t.Errorf("no log line for the left-out values:\n%s", logs.String())
	}
}

func describeStats(st DeviceStats) string {
	b, _ := json.Marshal(st)
	return string(b)
}

// TestPollMode: a polled device reads its points each interval; a changed
// value shows in a later poll.
func TestPollMode(t *testing.T) {
	srv := boilerServer(t)
	a := newAdapter(t, "opc", Config{Endpoint: srv.Endpoint, Devices: []DeviceConfig{
		{Name: "boiler", Mode: "poll", Interval: 50 * time.Millisecond, Points: boilerPoints()},
		{Name: "level", Mode: "poll", Interval: 50 * time.Millisecond, Points: []PointConfig{
			{Name: "hours", Node: "ns=1;s=Boiler.Hours", Type: "uint16", Scale: 2}}},
	}}, nil)
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 30*time.Second, "every point polled", func() (bool, string) {
		got := latest(up.Readings(), "boiler")
		return len(got) >= len(wantBoiler), describe(got)
	})
	checkBoiler(t, latest(up.Readings(), "boiler"))
	waitFor(t, 30*time.Second, "the second device polled", func() (bool, string) {
		return up.Count("level") > 0, ""
	})
	if v := latest(up.Readings(), "level")["hours"]; v != edgegw.Float(120000) {
		t.Errorf("scaled hours = %s, want 120000", v)
	}
	waitFor(t, 30*time.Second, "a few polls", func() (bool, string) {
		st := a.Stats().Devices[0]
		return st.Polls >= 3, describeStats(st)
	})
}

// TestWriteAndCall: a write reaches the node typed (Double, Int16) and a
// value that does not fit the node's type is refused before anything is
// sent; a method call passes typed inputs and returns named outputs; a
// server refusal of the arguments is a rejection.
func TestWriteAndCall(t *testing.T) {
	srv := boilerServer(t)
	a := newAdapter(t, "opc", Config{Endpoint: srv.Endpoint, Devices: []DeviceConfig{
		{Name: "boiler", Interval: 50 * time.Millisecond, Points: []PointConfig{
			{Name: "setpoint", Node: "ns=1;s=Boiler.Setpoint", Type: "double", Writable: true},
			{Name: "level", Node: "ns=1;s=Boiler.Level", Type: "int16", Scale: 0.5, Writable: true},
			{Name: "enabled", Node: "ns=1;s=Boiler.Enabled", Type: "boolean", Writable: true},
			{Name: "firmware", Node: "ns=1;s=Boiler.Firmware", Type: "string"},
		}, Methods: []MethodConfig{
			{Name: "start", Object: "ns=1;s=Boiler", Method: "ns=1;s=Boiler.Start",
				Inputs: []string{"double", "uint32"}, Outputs: []string{"accepted", "message"}},
			{Name: "startRaw", Object: "ns=1;s=Boiler", Method: "ns=1;s=Boiler.Start", Inputs: []string{"double", "uint32"}},
		}}}}, nil)
	ctx := context.Background()
	write := func(point string, v edgegw.Value) error {
		return a.Execute(ctx, edgegw.Action{Adapter: "opc", Device: "boiler", Kind: edgegw.WritePoint, Point: point, Value: v})
	}
	if err := write("setpoint", edgegw.Float(55.5)); !errors.Is(err, southbound.ErrUnavailable) {
		t.Errorf("write before Run = %v, want ErrUnavailable", err)
	}
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	waitFor(t, 30*time.Second, "the session", func() (bool, string) { return a.current() != nil, "" })

	mark := srv.Mark()
	if err := write("setpoint", edgegw.Float(55.5)); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.WaitLine(mark, 10*time.Second, func(l string) bool { return l == "WRITE Boiler.Setpoint 55.5" }); !ok {
		t.Errorf("server did not see setpoint 55.5: %q", srv.Lines(mark, "WRITE"))
	}
	// Scaled back: 21 / 0.5 = raw 42.
	if err := write("level", edgegw.Int(21)); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.WaitLine(mark, 10*time.Second, func(l string) bool { return l == "WRITE Boiler.Level 42" }); !ok {
		t.Errorf("server did not see level 42: %q", srv.Lines(mark, "WRITE"))
	}
	if err := write("enabled", edgegw.Bool(true)); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.WaitLine(mark, 10*time.Second, func(l string) bool { return l == "WRITE Boiler.Enabled true" }); !ok {
		t.Errorf("server did not see enabled true: %q", srv.Lines(mark, "WRITE"))
	}
	for _, c := range []struct {
		point string
		v     edgegw.Value
		want  error
	}{
		{"level", edgegw.Int(20000), southbound.ErrRejected}, // raw 40000 > int16
		{"setpoint", edgegw.String("hot"), southbound.ErrRejected},
		{"enabled", edgegw.Int(1), southbound.ErrRejected},
		{"firmware", edgegw.String("V9"), southbound.ErrRejected}, // not writable
		{"nope", edgegw.Int(1), southbound.ErrUnknownTarget},
	} {
		if err := write(c.point, c.v); !errors.Is(err, c.want) {
			t.Errorf("write %s = %s: %v, want %v", c.point, c.v, err, c.want)
		}
	}

	call := func(name string, args ...edgegw.Value) ([]byte, error) {
		return a.Call(ctx, edgegw.Action{Adapter: "opc", Device: "boiler", Kind: edgegw.CallMethod, Method: name, Args: args})
	}
	out, err := call("start", edgegw.Float(50), edgegw.Uint(10))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil || got["accepted"] != true || got["message"] != "burner at 50% for 10s" {
		t.Errorf("start outputs %s (%v)", out, err)
	}
	out, err = call("startRaw", edgegw.Int(20), edgegw.Int(5))
	if err != nil || string(out) != `{"outputs":[true,"burner at 20% for 5s"]}` {
		t.Errorf("startRaw = %s, %v", out, err)
	}
	if _, err := call("start", edgegw.Float(150), edgegw.Uint(10)); !errors.Is(err, southbound.ErrRejected) {
		t.Errorf("start 150%% = %v, want the server's BadOutOfRange as ErrRejected", err)
	}
	before := len(srv.Lines(mark, "CALL"))
	for _, args := range [][]edgegw.Value{
		{edgegw.Float(50)},                       // too few
		{edgegw.Float(50), edgegw.Int(-1)},       // uint32 below 0
		{edgegw.String("x"), edgegw.Uint(1)},     // not a number
		{edgegw.Float(50), edgegw.Uint(1 << 40)}, // above uint32
	} {
		if _, err := call("start", args...); !errors.Is(err, southbound.ErrRejected) {
			t.Errorf("start%v = %v, want ErrRejected", args, err)
		}
	}
	if n := len(srv.Lines(mark, "CALL")); n != before {
		t.Errorf("%d calls reached the server for refused arguments", n-before)
	}
	if _, err := call("stop"); !errors.Is(err, southbound.ErrUnknownTarget) {
		t.Errorf("unknown method = %v", err)
	}
	st := a.Stats().Devices[0]
	if st.Writes != 3 || st.Calls != 2 || st.CallErrors != 5 {
		t.Errorf("stats %s", describeStats(st))
	}
	if strings.Contains(string(out), "null") {
		t.Errorf("outputs with null: %s", out)
	}
}

// TestDeadbands: absolute and percent (of the EURange 0-200) deadbands
// are filtered by the server; a percent deadband on a variable without an
// EURange is refused by the server and the item is monitored without it.
func TestDeadbands(t *testing.T) {
	srv := boilerServer(t)
	var logs logBuffer
	a := newAdapter(t, "opc", Config{Endpoint: srv.Endpoint, Devices: []DeviceConfig{
		{Name: "boiler", Interval: 50 * time.Millisecond, SamplingInterval: 10 * time.Millisecond, Points: []PointConfig{
			{Name: "abs", Node: "ns=1;s=Boiler.Temperature", Type: "double", Deadband: 5},
			{Name: "pct", Node: "ns=1;s=Boiler.Temperature", Type: "double", Deadband: 10, DeadbandType: "percent"},
			{Name: "sensor", Node: "ns=1;s=Boiler.Sensor", Type: "double", Deadband: 10, DeadbandType: "percent"},
			{Name: "marker", Node: "ns=1;s=Boiler.Enabled", Type: "boolean"},
		}}}}, logs.logger())
	up := &testpeer.Uplink{}
	testpeer.RunAdapter(t, a, up)
	both := func(want float64) func() (bool, string) {
		return func() (bool, string) {
			l := latest(up.Readings(), "boiler")
			return l["abs"] == edgegw.Float(want) && l["pct"] == edgegw.Float(want), describe(l)
		}
	}
	srv.Send(t, "set Boiler.Temperature 100")
	waitFor(t, 30*time.Second, "the baseline 100", both(100))
	srv.Send(t, "set Boiler.Temperature 103") // within both deadbands
	// A marker change in the same subscription: once it arrives, 103 was
	// sampled (every 10ms) and published, had it passed a deadband.
	marker := !(latest(up.Readings(), "boiler")["marker"] == edgegw.Bool(true))
	srv.Send(t, fmt.Sprintf("set Boiler.Enabled %t", marker))
	waitFor(t, 30*time.Second, "the marker", func() (bool, string) {
		v := latest(up.Readings(), "boiler")["marker"]
		return v == edgegw.Bool(marker), v.String()
	})
	time.Sleep(100 * time.Millisecond)        // two more publishing intervals, for a late 103 to show up and fail the test
	srv.Send(t, "set Boiler.Temperature 110") // beyond the absolute one only
	waitFor(t, 30*time.Second, "abs 110", func() (bool, string) {
		v := latest(up.Readings(), "boiler")["abs"]
		return v == edgegw.Float(110), v.String()
	})
	srv.Send(t, "set Boiler.Temperature 125") // beyond both
	waitFor(t, 30*time.Second, "both 125", both(125))
	for _, v := range values(up.Readings(), "boiler", "abs") {
		if v == edgegw.Float(103) {
			t.Errorf("abs passed 103 up, inside its deadband of 5")
		}
	}
	for _, v := range values(up.Readings(), "boiler", "pct") {
		if v == edgegw.Float(103) || v == edgegw.Float(110) {
			t.Errorf("pct passed %s up, inside its deadband of 10%% of 200", v)
		}
	}
	if l := latest(up.Readings(), "boiler")["sensor"]; !l.IsValid() {
		t.Errorf("sensor without an EURange delivers nothing")
	}
	if !strings.Contains(logs.String(), "refused the deadband filter") || !strings.Contains(logs.String(), "point=sensor") {
		t.Errorf("no log line for the refused filter:\n%s", logs.String())
	}
}
