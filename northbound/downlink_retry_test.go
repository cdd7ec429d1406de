package northbound

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// funcDownlink is a Downlink that records every command and answers with
// fn; n is the 1-based count of commands of that kind so far.
type funcDownlink struct {
	mu    sync.Mutex
	calls []edgegw.Command
	fn    func(ctx context.Context, n int, cmd edgegw.Command) edgegw.Result
}

func (d *funcDownlink) Handle(ctx context.Context, cmd edgegw.Command) edgegw.Result {
	d.mu.Lock()
	d.calls = append(d.calls, cmd)
	n := 0
	for _, c := range d.calls {
		if c.Kind == cmd.Kind {
			n++
		}
	}
	d.mu.Unlock()
	if d.fn == nil {
		return edgegw.Result{Status: 200}
	}
	return d.fn(ctx, n, cmd)
}

// of returns the commands of kind k so far.
func (d *funcDownlink) of(k edgegw.CommandKind) []edgegw.Command {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []edgegw.Command
	for _, c := range d.calls {
		if c.Kind == k {
			out = append(out, c)
		}
	}
	return out
}

// versions returns the versions of the desired commands so far.
func (d *funcDownlink) versions() []int64 {
	var vs []int64
	for _, c := range d.of(edgegw.Desired) {
		vs = append(vs, c.Version)
	}
	return vs
}

// goroutinesIn counts the goroutines whose stack holds fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), fn)
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Markers of goroutines in goroutine dumps: carrying out (or waiting to
// carry out) any command, a C2D message, a method call.
const (
	inCommand       = "northbound.(*link).handle("
	inC2DHandler    = "northbound.(*session).c2d("
	inMethodHandler = "northbound.(*session).method("
)

func desiredKeys(t *testing.T, c edgegw.Command) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(c.Payload, &m); err != nil {
		t.Fatalf("desired payload %s: %v", c.Payload, err)
	}
	return m
}

// A desired version whose write failed with 503 (device unavailable) is
// written again after a back-off until it succeeds; then it is done.
func TestDesiredRetriedWhileUnavailable(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	v, err := h.PatchDesired("dev1", "", map[string]any{"setpoint": 20})
	if err != nil {
		t.Fatal(err)
	}
	d := &funcDownlink{fn: func(_ context.Context, n int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.Desired && n <= 2 {
			return edgegw.Result{Status: 503, Payload: []byte(`{"error":"bus not connected"}`)}
		}
		return edgegw.Result{Status: 200}
	}}
	cfg := hubConfig(h)
	cfg.DesiredRetryMin, cfg.DesiredRetryMax = 50*time.Millisecond, 200*time.Millisecond
	p, err := New(cfg, ids, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "three attempts at the desired version", func() bool { return len(d.versions()) >= 3 })
	// Once written, the version is done: the next desired command is the
	// next version, not another retry.
	v2, err := h.PatchDesired("dev1", "", map[string]any{"setpoint": 21})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the next version", func() bool {
		vs := d.versions()
		return vs[len(vs)-1] == v2
	})
	if got, want := fmt.Sprint(d.versions()), fmt.Sprint([]int64{v, v, v, v2}); got != want {
		t.Fatalf("desired versions handed down %s, want %s", got, want)
	}
	for _, c := range d.of(edgegw.Desired)[:3] {
		if desiredKeys(t, c)["setpoint"] != float64(20) {
			t.Fatalf("retry carried %s", c.Payload)
		}
	}
}

// A desired version that failed with 504 is written again after the hub
// connection comes back, even when the back-off has not run out.
func TestDesiredRetriedAfterReconnect(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	v, err := h.PatchDesired("dev1", "", map[string]any{"setpoint": 20})
	if err != nil {
		t.Fatal(err)
	}
	d := &funcDownlink{fn: func(_ context.Context, n int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.Desired && n == 1 {
			return edgegw.Result{Status: 504, Payload: []byte(`{"error":"timeout"}`)}
		}
		return edgegw.Result{Status: 200}
	}}
	cfg := hubConfig(h)
	cfg.DesiredRetryMin, cfg.DesiredRetryMax = time.Hour, time.Hour
	p, err := New(cfg, ids, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "the first attempt", func() bool { return len(d.versions()) == 1 })
	eventually(t, 10*time.Second, "the hub to drop the connection", func() bool { return h.Disconnect("dev1", "") })
	eventually(t, 10*time.Second, "the attempt after the reconnect", func() bool { return len(d.versions()) == 2 })
	if got, want := fmt.Sprint(d.versions()), fmt.Sprint([]int64{v, v}); got != want {
		t.Fatalf("desired versions handed down %s, want %s", got, want)
	}
}

// A newer patch that arrives while a failed version waits for its retry
// is applied at once, together with the failed version's changes.
func TestDesiredNewerPatchCarriesFailedOne(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	if _, err := h.PatchDesired("dev1", "", map[string]any{"setpoint": 20}); err != nil {
		t.Fatal(err)
	}
	d := &funcDownlink{fn: func(_ context.Context, n int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.Desired && n == 1 {
			return edgegw.Result{Status: 503}
		}
		return edgegw.Result{Status: 200}
	}}
	cfg := hubConfig(h)
	cfg.DesiredRetryMin, cfg.DesiredRetryMax = time.Hour, time.Hour
	p, err := New(cfg, ids, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "the first attempt", func() bool { return len(d.versions()) == 1 })
	v, err := h.PatchDesired("dev1", "", map[string]any{"mode": "eco"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the newer version", func() bool { return len(d.versions()) == 2 })
	c := d.of(edgegw.Desired)[1]
	if got := desiredKeys(t, c); c.Version != v || got["setpoint"] != float64(20) || got["mode"] != "eco" {
		t.Fatalf("desired v%d %s, want v%d with setpoint 20 and mode eco", c.Version, c.Payload, v)
	}
}

func TestCombine(t *testing.T) {
	later := time.Now().Add(time.Hour)
	patch := func(v int64, doc string) *desiredDoc { return &desiredDoc{doc: []byte(doc), version: v} }
	full := func(v int64, doc string) *desiredDoc { return &desiredDoc{doc: []byte(doc), version: v, full: true} }
	for _, c := range []struct {
		name      string
		a, b      *desiredDoc
		want      string
		version   int64
		full      bool
		collapsed bool
	}{
		{"first", nil, patch(3, `{"a":1}`), `{"a":1}`, 3, false, false},
		{"newer patch merges", patch(3, `{"a":1,"$version":3}`), patch(4, `{"b":2,"$version":4}`), `{"$version":4,"a":1,"b":2}`, 4, false, true},
		{"older arriving later goes under", patch(4, `{"a":2}`), patch(3, `{"a":1,"b":1}`), `{"a":2,"b":1}`, 4, false, true},
		{"patch onto full stays full", &desiredDoc{doc: []byte(`{"a":1}`), version: 5, full: true, due: later}, patch(6, `{"a":null}`), `{"a":null}`, 6, true, true},
		{"full replaces", patch(6, `{"x":1}`), full(6, `{"a":1}`), `{"a":1}`, 6, true, false},
		{"no versions: arrival order", patch(0, `{"a":1}`), patch(0, `{"a":2}`), `{"a":2}`, 0, false, true},
		{"unmergeable: newest alone", patch(1, `{"a":1}`), patch(2, `{"a":{"b":1}}`), `{"a":{"b":1}}`, 2, false, true},
	} {
		got := combine(c.a, c.b)
		if string(got.doc) != c.want || got.version != c.version || got.full != c.full || got.collapsed != c.collapsed || !got.due.IsZero() {
			t.Errorf("%s: got %s v%d full %t collapsed %t due %v; want %s v%d full %t collapsed %t due now",
				c.name, got.doc, got.version, got.full, got.collapsed, got.due, c.want, c.version, c.full, c.collapsed)
		}
	}
}
