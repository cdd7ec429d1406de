package northbound

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
)

// Method calls beyond MaxCommands are answered 429 at once instead of
// waiting, so calls from the hub cannot pile up goroutines.
func TestMethodCallsBeyondLimitThrottled(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	release := make(chan struct{})
	d := &funcDownlink{fn: func(ctx context.Context, _ int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.Method && cmd.Name == "block" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return edgegw.Result{Status: 200, Payload: []byte(`{}`)}
	}}
	cfg := hubConfig(h)
	cfg.MaxCommands = 2
	p, err := New(cfg, ids, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res, err := h.InvokeMethod(ctx, "dev1", "", hubsim.MethodRequest{Name: "echo", ConnectTimeout: 10 * time.Second}); err != nil || res.Status != 200 {
		t.Fatalf("echo: %+v %v", res, err)
	}
	const calls = 40
	results := make(chan int, calls)
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			res, err := h.InvokeMethod(ctx, "dev1", "", hubsim.MethodRequest{Name: "block", ResponseTimeout: 20 * time.Second})
			if err != nil {
				results <- 0
				return
			}
			results <- res.Status
		})
	}
	defer func() { wg.Wait() }()
	defer close(release)
	start := time.Now()
	throttled := 0
	deadline := time.After(10 * time.Second)
	for throttled < calls-cfg.MaxCommands {
		select {
		case s := <-results:
			if s != 429 {
				t.Fatalf("a call answered %d while %d were blocked; want 429", s, cfg.MaxCommands)
			}
			throttled++
		case <-deadline:
			t.Fatalf("only %d of %d calls answered 429 within 10s", throttled, calls-cfg.MaxCommands)
		}
	}
	t.Logf("%d calls throttled in %v", throttled, time.Since(start).Round(time.Millisecond))
	// The handlers that answered 429 return as soon as their response is
	// written; only the two running calls stay.
	eventually(t, 5*time.Second, fmt.Sprintf("at most %d goroutines in method calls", cfg.MaxCommands), func() bool {
		return goroutinesIn(inMethodHandler) <= cfg.MaxCommands
	})
	if s := p.Status()[0]; s.Throttled != uint64(throttled) {
		t.Errorf("status counts %d throttled, want %d", s.Throttled, throttled)
	}
}

// Desired patches that arrive while one is being applied do not each
// hold a goroutine: they collapse into one pending document, applied
// next as the hub's full desired state.
func TestDesiredPatchesCollapse(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	release := make(chan struct{})
	d := &funcDownlink{fn: func(ctx context.Context, n int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.Desired && n == 2 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return edgegw.Result{Status: 200, Payload: cmd.Payload}
	}}
	p, err := New(hubConfig(h), ids, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "the reconcile after connect", func() bool { return len(d.versions()) == 1 })
	if _, err := h.PatchDesired("dev1", "", map[string]any{"k0": 0}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the first patch to be held", func() bool { return len(d.versions()) == 2 })
	const patches = 30
	var last int64
	for i := 1; i <= patches; i++ {
		if last, err = h.PatchDesired("dev1", "", map[string]any{fmt.Sprintf("k%d", i): i}); err != nil {
			t.Fatal(err)
		}
	}
	// The method call comes after the patches on the connection, so the
	// reader has offered them all by the time it is answered.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := h.InvokeMethod(ctx, "dev1", "", hubsim.MethodRequest{Name: "echo"}); err != nil || res.Status != 200 {
		t.Fatalf("echo: %+v %v", res, err)
	}
	eventually(t, 5*time.Second, "one goroutine in a command: the held patch", func() bool { return goroutinesIn(inCommand) == 1 })
	close(release)
	eventually(t, 10*time.Second, "the newest version", func() bool {
		vs := d.versions()
		return vs[len(vs)-1] == last
	})
	got := d.of(edgegw.Desired)
	if len(got) != 3 {
		t.Fatalf("desired versions handed down %v, want 3 (reconcile, held patch, the rest in one)", d.versions())
	}
	keys := desiredKeys(t, got[2])
	for i := 0; i <= patches; i++ {
		if keys[fmt.Sprintf("k%d", i)] != float64(i) {
			t.Fatalf("the collapsed document %s lacks k%d", got[2].Payload, i)
		}
	}
}
