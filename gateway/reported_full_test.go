package gateway

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testpeer"
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

// TestReportedAckAfterDiskSpaceReturns is the same on a real full disk
// (a tmpfs filled with a ballast file below the buffer's reserve): the
// setpoint is written, its acknowledgement is refused with the disk, the
// write is repeated on the back-off, and once the ballast is removed the
// twin gets the acknowledgement, ac 200 with the desired version.
func TestReportedAckAfterDiskSpaceReturns(t *testing.T) {
	mnt := testpeer.Tmpfs(t, 64<<20)
	s := startE2ESlave(t)
	y := fmt.Sprintf(modbusE2EConfig, mnt, s.addr)
	y = strings.Replace(y, "hub: {host: localhost}",
		"hub: {host: localhost, desired_retry_min: 200ms, desired_retry_max: 400ms}\nbuffer: {min_free_bytes: 16777216}", 1)
	cfg, err := Parse("tmpfs.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	r := &modbusRig{gw: gw, hub: gw.Hub(), slave: s, svc: newServiceClient(t, gw.Hub())}
	r.waitReported(t, "the first report", func(rep map[string]any) bool { return rep["setpoint"] != nil })

	ballast := testpeer.FillTo(t, mnt, 8<<20) // below the 16 MiB reserve: appends refused
	v := r.svc.patchDesired(t, "boiler-1", map[string]any{"setpoint": 55.5})
	waitCond(t, 20*time.Second, "the setpoint written, and again after its acknowledgement was refused", func() (bool, string) {
		n := s.regWrites(regSetpoint)
		return n >= 2, fmt.Sprintf("register 100 = %d after %d writes", s.holdingReg(regSetpoint), n)
	})
	if a, ok := tryAck(r.svc.reported(t, "boiler-1"), "setpoint"); ok && a.AV == v {
		t.Fatalf("acknowledged %+v while the disk was full", a)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	r.waitReported(t, fmt.Sprintf("setpoint ack 200 with av %d once space returned", v), func(rep map[string]any) bool {
		a, ok := tryAck(rep, "setpoint")
		return ok && a.AV == v && a.AC == 200 && nearFloat(a.Value, 55.5)
	})
	if got := s.holdingReg(regSetpoint); got != 555 {
		t.Fatalf("register 100 = %d, want 555", got)
	}
}
