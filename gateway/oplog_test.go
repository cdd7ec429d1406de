package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/internal/testpeer"
)

// The operator's record: every command's outcome is logged at info with
// identity, kind, name or version, status and latency, and the last line
// says the gateway stopped and what it left queued.
func TestCommandAndStopLogLines(t *testing.T) {
	s := startE2ESlave(t)
	cfg, err := Parse("oplog.yaml", fmt.Appendf(nil, modbusE2EConfig, t.TempDir(), s.addr))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testpeer.Buffer{}
	gw, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	select {
	case <-gw.Ready():
	case err := <-done:
		t.Fatalf("gateway failed to start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("gateway not ready within 30s")
	}
	r := &modbusRig{gw: gw, hub: gw.Hub(), slave: s, svc: newServiceClient(t, gw.Hub())}
	if res := r.svc.invoke(t, "boiler-1", "start", `{}`); res.Status != 200 {
		t.Fatalf("start: %+v", res)
	}
	if res := r.svc.invoke(t, "boiler-1", "setSpeed", `{"rpm": 9999}`); res.Status != 400 {
		t.Fatalf("setSpeed out of range: %+v", res)
	}
	v := r.svc.patchDesired(t, "boiler-1", map[string]any{"setpoint": 55.5})
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "msg=command ") {
				out = append(out, l)
			}
		}
		return out
	}
	wantCmd := []string{
		"level=INFO msg=command identity=boiler-1 kind=method name=start status=200 latency=",
		"level=INFO msg=command identity=boiler-1 kind=method name=setSpeed status=400 latency=",
		fmt.Sprintf("level=INFO msg=command identity=boiler-1 kind=desired version=%d status=200 latency=", v),
	}
	waitCond(t, 20*time.Second, "a log line for each command", func() (bool, string) {
		got := strings.Join(lines(), "\n")
		for _, w := range wantCmd {
			if !strings.Contains(got, w) {
				return false, got
			}
		}
		return true, ""
	})

	// The whole desired section read at connect asked for nothing: debug.
	if v == 1 || strings.Contains(strings.Join(lines(), "\n"), "kind=desired version=1 ") {
		t.Errorf("the connect's twin read (version 1) logged at info, or the patch got version 1:\n%s", strings.Join(lines(), "\n"))
	}

	// The hub stops taking telemetry; what the PLC reports then stays queued.
	r.hub.SetFaults(hubsim.Faults{WithholdPuback: true})
	r.hub.DropConnections()
	waitCond(t, 20*time.Second, "messages queued while the hub withholds PUBACKs", func() (bool, string) {
		s.bumpInput(5) // a change for the next poll to report
		st := gw.Status().Buffer
		return st.Records >= 3, fmt.Sprintf("%d records", st.Records)
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not stop within 30s")
	}
	// The stop line is the gateway's last; only the embedded hub emulator,
	// which stops after it, may log after it.
	all := strings.Split(strings.TrimSpace(logs.String()), "\n")
	for len(all) > 1 && strings.Contains(all[len(all)-1], "room=hubsim") {
		all = all[:len(all)-1]
	}
	last := all[len(all)-1]
	if !strings.Contains(last, "level=INFO msg=\"gateway stopped\" queued=") ||
		!strings.Contains(last, " identities_with_queue=1 queued_by_identity.boiler-1=") {
		t.Fatalf("last log line %q, want the stop line with what is queued", last)
	}
	var queued, byID int
	fmt.Sscanf(last[strings.Index(last, "queued="):], "queued=%d", &queued)
	fmt.Sscanf(last[strings.Index(last, "boiler-1="):], "boiler-1=%d", &byID)
	if queued < 3 || byID != queued {
		t.Errorf("queued=%d, boiler-1=%d; want the same, at least 3: %s", queued, byID, last)
	}
}
