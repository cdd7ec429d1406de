package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/hubsim"
	"github.com/edgegw/edgegw/ops"
	"github.com/edgegw/edgegw/southbound/lanmqtt"
)

// dpsGroupKey is the group enrollment's key: the gateway's config holds it
// and no device key.
const dpsGroupKey = "ZWRnZWd3LXRlc3QtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY="

// dpsWorld is a DPS emulator in front of several emulated hubs that share
// one CA, and the CA file a gateway trusts them by.
type dpsWorld struct {
	hubs   []*hubsim.Hub
	ca     *hubsim.CA
	caFile string
	dir    string
	dpsAt  string // host:port of DPS's MQTT listener, kept across restarts
	dps    *hubsim.DPS
}

// newDPSWorld starts nHubs hubs and a DPS linking them, with a group
// enrollment "plant" that allocates evenly (hashed).
func newDPSWorld(t testing.TB, nHubs int) *dpsWorld {
	t.Helper()
	ca, err := hubsim.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	w := &dpsWorld{ca: ca, dir: t.TempDir()}
	for range nHubs {
		h := &hubsim.Hub{CA: ca, Logger: testLogger(t), MaxTelemetry: 1 << 20}
		if err := h.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		w.hubs = append(w.hubs, h)
	}
	w.caFile = filepath.Join(w.dir, "ca.pem")
	if err := os.WriteFile(w.caFile, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.dpsAt = ln.Addr().String()
	ln.Close()
	w.startDPS(t)
	if _, err := w.dps.PutEnrollment(hubsim.Enrollment{GroupID: "plant", AllocationPolicy: hubsim.AllocationHashed,
		Attestation: hubsim.Attestation{Type: hubsim.AttestationSymmetricKey,
			SymmetricKey: &hubsim.SymmetricKeyAttestation{PrimaryKey: dpsGroupKey}}}, ""); err != nil {
		t.Fatal(err)
	}
	return w
}

// startDPS starts the DPS on its address, with its state (enrollments,
// registrations) in the world's directory.
func (w *dpsWorld) startDPS(t testing.TB) {
	t.Helper()
	d := &hubsim.DPS{CA: w.ca, MQTTAddr: w.dpsAt, DataDir: filepath.Join(w.dir, "dps"), Logger: testLogger(t)}
	for _, h := range w.hubs {
		d.Hubs = append(d.Hubs, hubsim.LinkedHub{Hub: h})
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	w.dps = d
}

// hubOf returns the index of the hub whose registry holds device, or -1.
func (w *dpsWorld) hubOf(device string) int {
	for i, h := range w.hubs {
		if h.HasDevice(device) {
			return i
		}
	}
	return -1
}

// fleetConfig is a gateway with a fleet of n identities in the group
// enrollment, no hub host and no device key, and an anonymous LAN broker
// whose devices publish as those identities.
func (w *dpsWorld) fleetConfig(t testing.TB, stateDir string, n int, rate int) *Config {
	t.Helper()
	cfg, err := Parse("fleet.yaml", []byte(w.fleetYAML(stateDir, n, rate)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fleetYAML is fleetConfig's file.
func (w *dpsWorld) fleetYAML(stateDir string, n int, rate int) string {
	host, port, _ := net.SplitHostPort(w.dpsAt)
	if host == "127.0.0.1" {
		host = "localhost" // the name DPS's certificate covers
	}
	return fmt.Sprintf(`
state_dir: %s
log: {level: warn}
hub: {ca_file: %s, connect_rate: %d, connect_burst: 10, backoff_min: 100ms, backoff_max: 2s}
identities:
  - id: sensor-{n:03}
    count: %d
    dps: {host: %s, port: %s, id_scope: %s, group_key: %s}
southbound:
  - name: lan
    lanmqtt: {listen: "127.0.0.1:0", allow_anonymous: true}
mapping:
  methods:
    - {identity: sensor-007, name: ping, response: '{"pong":true}'}
`, stateDir, w.caFile, rate, n, host, port, hubsim.DefaultIDScope, dpsGroupKey)
}

// waitConnected waits until every identity of gw is connected and returns
// their status.
func waitConnected(t testing.TB, gw *Gateway, n int, within time.Duration) []ops.Identity {
	t.Helper()
	end := time.Now().Add(within)
	for {
		st := gw.Status().Identities
		up := 0
		for _, s := range st {
			if s.Connected {
				up++
			}
		}
		if up == n && len(st) == n {
			return st
		}
		if time.Now().After(end) {
			var bad []string
			for _, s := range st {
				if !s.Connected && len(bad) < 5 {
					msg := ""
					if s.LastError != nil {
						msg = s.LastError.Message
					}
					bad = append(bad, s.ID+": "+msg)
				}
			}
			t.Fatalf("%d of %d identities connected after %v; e.g. %v", up, n, within, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishAll has an anonymous LAN device publish one message for each of
// ids, tagged with round, and waits for the PUBACKs (the messages are on
// disk).
func publishAll(t *testing.T, gw *Gateway, ids []string, round int) {
	t.Helper()
	lan := gw.Adapter("lan").(*lanmqtt.Adapter)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + lan.Addr().String()).
		SetClientID(fmt.Sprintf("lan-%d", round)).SetAutoReconnect(false).SetOrderMatters(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("LAN connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	var toks []mqtt.Token
	for _, id := range ids {
		toks = append(toks, c.Publish("devices/"+id+"/messages/events/round="+strconv.Itoa(round), 1, false,
			fmt.Sprintf(`{"id":%q,"round":%d}`, id, round)))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", ids[i], tok.Error())
		}
	}
}

// waitDelivered waits until the hub each identity is assigned to has its
// message of round.
func (w *dpsWorld) waitDelivered(t *testing.T, ids []string, round int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, id := range ids {
		h := w.hubOf(id)
		if h < 0 {
			t.Fatalf("%s is in no hub's registry", id)
		}
		for {
			got, err := w.hubs[h].WaitTelemetry(ctx, id, 1)
			if err != nil {
				t.Fatalf("%s: no telemetry of round %d at hub %d: %v", id, round, h, err)
			}
			if hasRound(got, round) {
				break
			}
			n := len(got)
			if got, err = w.hubs[h].WaitTelemetry(ctx, id, n+1); err != nil || !hasRound(got, round) {
				t.Fatalf("%s: no telemetry of round %d at hub %d: %v", id, round, h, err)
			}
			break
		}
	}
}

func hasRound(got []hubsim.Telemetry, round int) bool {
	for _, m := range got {
		if propValue(m.Properties, "round") == strconv.Itoa(round) {
			return true
		}
	}
	return false
}

// TestDPSFleetEndToEnd: a gateway with 200 identities of one group
// enrollment and no device key in its config registers through the DPS
// emulator, lands on 3 hubs by even distribution, delivers telemetry and
// a direct method through each identity's own hub; restarted while DPS is
// down, it connects from its kept assignments; an identity that DPS moves
// to another hub is refused by its old hub, registers again and follows.
func TestDPSFleetEndToEnd(t *testing.T) {
	const n = 200
	w := newDPSWorld(t, 3)
	state := t.TempDir()
	gw, stop := runGateway(t, w.fleetConfig(t, state, n, 400))
	st := waitConnected(t, gw, n, 90*time.Second)

	ids := make([]string, n)
	perHub := make([]int, len(w.hubs))
	for i := range ids {
		ids[i] = fmt.Sprintf("sensor-%03d", i+1)
		h := w.hubOf(ids[i])
		if h < 0 {
			t.Fatalf("%s registered in no hub", ids[i])
		}
		perHub[h]++
		if s := st[i]; s.ID != "" && s.Hub != w.dps.Hubs[h].Name {
			t.Fatalf("%s: status says hub %q, the registry %q", ids[i], s.Hub, w.dps.Hubs[h].Name)
		}
	}
	for h, c := range perHub { // hashed over 3 hubs: 200/3 each, give or take a few standard deviations
		if c < 40 || c > 95 {
			t.Fatalf("hub %d got %d of %d identities (%v): not an even distribution", h, c, n, perHub)
		}
	}
	if s := w.dps.Stats(); s.Assigned != n {
		t.Fatalf("DPS assigned %d registrations, want %d", s.Assigned, n)
	}
	publishAll(t, gw, ids, 1)
	w.waitDelivered(t, ids, 1)

	// A direct method reaches the gateway through the identity's own hub.
	invoke := func(id, name string) hubsim.MethodResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := w.hubs[w.hubOf(id)].InvokeMethod(ctx, id, "", hubsim.MethodRequest{Name: name, ConnectTimeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("method %s on %s: %v", name, id, err)
		}
		return res
	}
	if res := invoke("sensor-007", "ping"); res.Status != 200 || string(res.Payload) != `{"pong":true}` {
		t.Fatalf("ping: %d %s", res.Status, res.Payload)
	}
	if res := invoke("sensor-150", "ping"); res.Status != 501 {
		t.Fatalf("ping on an identity without the method: %d %s", res.Status, res.Payload)
	}

	// Restart while DPS is down: every identity connects from its kept
	// assignment.
	stop()
	w.dps.Close()
	registers := w.dps.Stats().Registers
	gw, stop = runGateway(t, w.fleetConfig(t, state, n, 400))
	waitConnected(t, gw, n, 90*time.Second)
	publishAll(t, gw, ids, 2)
	w.waitDelivered(t, ids, 2)

	// Move sensor-042 to another hub at DPS (its device and twin go along):
	// the old hub refuses the identity; the gateway registers again and
	// follows.
	w.startDPS(t)
	const moved = "sensor-042"
	from := w.hubOf(moved)
	to := (from + 1) % len(w.hubs)
	if err := w.dps.Move(moved, w.dps.Hubs[to].Name); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(60 * time.Second)
	for w.hubOf(moved) != to || !identityOf(gw, moved).Connected || identityOf(gw, moved).Hub != w.dps.Hubs[to].Name {
		if time.Now().After(end) {
			t.Fatalf("%s not moved to hub %d: registry hub %d, status %+v", moved, to, w.hubOf(moved), identityOf(gw, moved))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := w.dps.Stats().Registers; got != 1 {
		t.Errorf("DPS saw %d registrations after the restart (%d before), want 1: only the moved identity registers", got, registers)
	}
	publishAll(t, gw, ids, 3)
	w.waitDelivered(t, ids, 3)
	// The new assignment is kept for the next start.
	b, err := os.ReadFile(filepath.Join(state, "dps", moved+".json"))
	if err != nil || !strings.Contains(string(b), w.dps.Hubs[to].Name) {
		t.Fatalf("kept assignment %s %v", b, err)
	}
	var kept struct {
		Hub string `json:"assigned_hub"`
	}
	if json.Unmarshal(b, &kept); kept.Hub != w.dps.Hubs[to].Name {
		t.Fatalf("kept hub %q", kept.Hub)
	}
	stop()
}

func identityOf(gw *Gateway, id string) ops.Identity {
	for _, s := range gw.Status().Identities {
		if s.ID == id {
			return s
		}
	}
	return ops.Identity{}
}
