package northbound

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/identity"
	"github.com/edgegw/edgegw/northbound/dps"
)

// TestHubFailedReprovision: a DPS identity registers again at once when
// its hub refuses it, after reprovisionAfter of unbroken failures when the
// hub is unreachable, and never for DPS's own failures or for an identity
// whose hub is configured. Time is virtual.
func TestHubFailedReprovision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := slog.New(slog.DiscardHandler)
		p := &Pool{log: log, note: newFloodLog(log, time.Second, 5)}
		id, err := identity.Load(identity.Config{ID: "d1", Key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
			DPS: &identity.DPSConfig{IDScope: "s"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := &link{p: p, id: id, stream: "d1", hub: &hubTarget{host: "hub-1"}}
		unreachable := errors.New("connect mqtts://hub-1:8883: connection refused")
		l.hubFailed(unreachable)
		time.Sleep(reprovisionAfter - time.Second)
		l.hubFailed(unreachable)
		if l.reprovision {
			t.Fatal("registers again before reprovisionAfter")
		}
		time.Sleep(time.Second)
		l.hubFailed(unreachable)
		if !l.reprovision {
			t.Fatal("an unreachable hub did not lead to a new registration")
		}

		l.reprovision, l.hubFailSince = false, time.Time{}
		l.hubFailed(fmt.Errorf("connect: %w (CONNACK 5)", ErrRefused))
		if !l.reprovision {
			t.Fatal("a refusal did not lead to a new registration")
		}

		l.reprovision, l.hubFailSince = false, time.Time{}
		l.hubFailed(fmt.Errorf("%w: %w", ErrRefused, &dps.Error{RegistrationID: "d1", Err: dps.ErrUnauthorized}))
		if l.reprovision {
			t.Fatal("DPS's own refusal counted as the hub's")
		}

		static := &link{p: p, id: &identity.Identity{ID: "s1"}, hub: &hubTarget{host: "h"}}
		static.hubFailed(fmt.Errorf("%w", ErrRefused))
		if static.reprovision {
			t.Fatal("an identity without DPS registers")
		}
	})
}
