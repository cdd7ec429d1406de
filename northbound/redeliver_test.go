package northbound

import (
	"context"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/hubsim"
)

// A C2D message the device could not take for now (503) is left
// unacknowledged; IoT Hub redelivers it only after a reconnect, so the
// pool reconnects on purpose after a back-off, the hub redelivers, and the
// message is carried out and completed. The planned reconnect is no
// failure: no error is recorded. Without it nothing would reconnect here
// (the token lives an hour).
func TestC2DRedeliveredByPlannedReconnect(t *testing.T) {
	h := startHub(t, nil)
	ids := register(t, h, "dev1")
	d := &funcDownlink{fn: func(_ context.Context, n int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.C2D && n <= 2 {
			return edgegw.Result{Status: 503, Payload: []byte(`{"error":"device busy"}`)}
		}
		return edgegw.Result{Status: 200}
	}}
	cfg := hubConfig(h)
	cfg.DesiredRetryMin, cfg.DesiredRetryMax = 200*time.Millisecond, 400*time.Millisecond
	p, err := New(cfg, ids, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "connected", func() bool { return connected(p) == 1 })
	if _, err := h.SendC2D("dev1", hubsim.C2DMessage{Body: []byte("open valve")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the message completed at the hub", func() bool {
		return len(d.of(edgegw.C2D)) == 3 && len(h.PendingC2D("dev1")) == 0
	})
	for i, c := range d.of(edgegw.C2D) {
		if string(c.Payload) != "open valve" {
			t.Fatalf("attempt %d carried %q", i+1, c.Payload)
		}
	}
	st := p.Status()[0]
	if st.Reconnects < 2 || st.LastError != "" {
		t.Fatalf("after two redeliveries: %d reconnects, last error %q; want 2 planned reconnects and no error", st.Reconnects, st.LastError)
	}
}
