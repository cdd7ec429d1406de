package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDesiredAppliedAgainWhenAckCannotBeQueued: the buffer refuses every
// append (its free-space reserve is larger than any disk), so the reported
// acknowledgement of a desired setpoint cannot be queued. The write is not
// forgotten as done: northbound applies the version again after its
// back-off, so once the buffer takes appends again the twin hears of it.
// Writing the same value again is what the retry costs.
func TestDesiredAppliedAgainWhenAckCannotBeQueued(t *testing.T) {
	s := startE2ESlave(t)
	y := fmt.Sprintf(modbusE2EConfig, t.TempDir(), s.addr)
	y = strings.Replace(y, "hub: {host: localhost}",
		"hub: {host: localhost, desired_retry_min: 200ms, desired_retry_max: 400ms}\nbuffer: {min_free_bytes: 4611686018427387904}", 1)
	cfg, err := Parse("disk-full.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	svc := newServiceClient(t, gw.Hub())

	svc.patchDesired(t, "boiler-1", map[string]any{"setpoint": 55.5})
	waitCond(t, 20*time.Second, "the setpoint written again after its acknowledgement was refused", func() (bool, string) {
		n := s.regWrites(regSetpoint)
		return n >= 3, fmt.Sprintf("register 100 = %d after %d writes", s.holdingReg(regSetpoint), n)
	})
	if got := s.holdingReg(regSetpoint); got != 555 {
		t.Fatalf("register 100 = %d, want 555", got)
	}
	if _, ok := tryAck(svc.reported(t, "boiler-1"), "setpoint"); ok {
		t.Fatal("the twin has a setpoint acknowledgement although the buffer refused every append")
	}
}
