package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A reload that grows a DPS fleet (count 8 to 11) registers and connects
// the three new identities and leaves the eight it had alone; one that
// shrinks it (to 7) removes the four past the new count.
func TestReloadGrowsAndShrinksFleet(t *testing.T) {
	w := newDPSWorld(t, 2)
	state := t.TempDir()
	gw, _ := runGateway(t, w.fleetConfig(t, state, 8, 400))
	waitConnected(t, gw, 8, 60*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := gw.Reload(ctx, w.fleetConfig(t, state, 11, 400)); err != nil {
		t.Fatal(err)
	}
	for _, s := range waitConnected(t, gw, 11, 60*time.Second) {
		if s.Reconnects != 0 {
			t.Errorf("%s reconnected %d times across the reload", s.ID, s.Reconnects)
		}
	}
	for i := 9; i <= 11; i++ {
		if id := fmt.Sprintf("sensor-%03d", i); w.hubOf(id) < 0 {
			t.Errorf("%s was not registered through DPS", id)
		}
	}

	if err := gw.Reload(ctx, w.fleetConfig(t, state, 7, 400)); err != nil {
		t.Fatal(err)
	}
	st := waitConnected(t, gw, 7, 60*time.Second)
	for i, s := range st {
		if want := fmt.Sprintf("sensor-%03d", i+1); s.ID != want {
			t.Errorf("identity %d is %s, want %s", i, s.ID, want)
		}
	}
}
