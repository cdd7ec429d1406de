package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// TestTransientFailureLeavesAckState: a desired write that failed for a
// passing reason (503 device unavailable, 504 timeout) will be retried, so
// it is not a version the device has dealt with: the property's reports
// keep the last version actually applied (or refused) until the retry
// succeeds, instead of claiming the failed version with ac 203.
func TestTransientFailureLeavesAckState(t *testing.T) {
	m, err := loadRules("testdata/desired_write_failure/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	step := 0
	type ack struct {
		Value any    `json:"value"`
		AC    int    `json:"ac"`
		AV    int64  `json:"av"`
		AD    string `json:"ad"`
	}
	desired := func(v int64, payload string, errs ...error) (edgegw.Result, map[string]ack) {
		t.Helper()
		p := m.Down(edgegw.Command{Identity: "plc-3", Kind: edgegw.Desired, Version: v, Payload: []byte(payload)})
		if p.Rejected != nil {
			t.Fatalf("v%d rejected: %s", v, p.Rejected.Payload)
		}
		res, msg := m.Complete(p, errs)
		var body map[string]ack
		if err := json.Unmarshal(msg.Body, &body); err != nil {
			t.Fatal(err)
		}
		return res, body
	}
	reported := func(setpoint float64) (ack, bool) {
		t.Helper()
		step++
		msgs, err := m.Up(edgegw.Reading{Adapter: "plc", Device: "plc-3", Time: t0.Add(time.Duration(step) * time.Second),
			Points: []edgegw.Point{{Name: "setpoint", Value: edgegw.Float(setpoint)}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			if msg.Kind == edgegw.Reported {
				var body map[string]ack
				if err := json.Unmarshal(msg.Body, &body); err != nil {
					t.Fatal(err)
				}
				return body["setpoint"], true
			}
		}
		return ack{}, false
	}
	report := func(setpoint float64) ack {
		t.Helper()
		a, ok := reported(setpoint)
		if !ok {
			t.Fatalf("no reported patch for setpoint %v", setpoint)
		}
		return a
	}
	// unreported: the device reads the value just acknowledged, which the
	// acknowledgement reported already.
	unreported := func(what string, setpoint float64) {
		t.Helper()
		if a, ok := reported(setpoint); ok {
			t.Errorf("%s: reported %+v again", what, a)
		}
	}
	check := func(what string, got ack, ac int, av int64) {
		t.Helper()
		if got.AC != ac || got.AV != av {
			t.Errorf("%s: reported %+v, want ac %d av %d", what, got, ac, av)
		}
	}

	if res, _ := desired(10, `{"setpoint": 20}`, nil); res.Status != 200 {
		t.Fatalf("v10: %d", res.Status)
	}
	unreported("v10 applied", 20)

	unavailable := WithStatus(errors.New("bus not connected: device unavailable"), 503)
	res, body := desired(12, `{"setpoint": 25}`, unavailable)
	if res.Status != 503 || body["setpoint"].AC != 503 || body["setpoint"].AV != 12 {
		t.Fatalf("v12 failed: result %d, ack %+v; want 503 and an ack with ac 503 av 12", res.Status, body["setpoint"])
	}
	check("changed on the device while v12 waits for its retry", report(19), 203, 10)
	check("back at the value v10 applied", report(20), 200, 10)

	if res, _ := desired(12, `{"setpoint": 25}`, nil); res.Status != 200 {
		t.Fatalf("v12 retry: %d", res.Status)
	}
	unreported("v12 applied by the retry", 25)

	// The property not run because an earlier action timed out (424) is
	// part of a plan that will be retried as a whole.
	timeout := fmt.Errorf("modbus plc: write: %w", errors.New("deadline")) // 502 unless marked
	res, body = desired(14, `{"speed": 50, "setpoint": 22}`, WithStatus(timeout, 504))
	if res.Status != 504 || body["setpoint"].AC != 424 {
		t.Fatalf("v14: result %d, setpoint ack %+v; want 504 and ac 424", res.Status, body["setpoint"])
	}
	check("changed on the device while v14 waits for its retry", report(24), 203, 12)
	check("back at the value v12 applied", report(25), 200, 12)

	// A permanent failure is still a version seen (see
	// TestModbusLocalChangeAfterRejectedDesired in the gateway).
	if res, _ := desired(15, `{"setpoint": 21}`, WithStatus(errors.New("exception 4"), 502)); res.Status != 502 {
		t.Fatalf("v15: %d", res.Status)
	}
	check("changed on the device after v15 failed for good", report(26), 203, 15)
}

func TestTransient(t *testing.T) {
	for status, want := range map[int]bool{200: false, 400: false, 404: false, 424: false, 429: false, 502: false, 503: true, 504: true} {
		if got := Transient(status); got != want {
			t.Errorf("Transient(%d) = %t, want %t", status, got, want)
		}
	}
}
