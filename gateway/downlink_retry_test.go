package gateway

import (
	"fmt"
	"io"
	"log"
	"net"
	"testing"
	"time"

	sv "github.com/simonvetter/modbus"
)

// TestDesiredWrittenWhenPLCComesUp is the power cut: the gateway is up
// before the PLC, so the desired setpoint patched through the hub finds
// the bus not connected (503) and the twin says so (ac 503). When the PLC
// comes up the gateway writes the setpoint on its own, once, and the twin's
// acknowledgement becomes ac 200 with the same desired version. The retry
// runs on the default back-off (5 s doubling, jittered).
func TestDesiredWrittenWhenPLCComesUp(t *testing.T) {
	addr := freeLoopbackAddr(t)
	cfg, err := Parse("modbus-late.yaml", fmt.Appendf(nil, modbusE2EConfig, t.TempDir(), addr))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	r := &modbusRig{gw: gw, hub: gw.Hub(), svc: newServiceClient(t, gw.Hub())}

	v := r.svc.patchDesired(t, "boiler-1", map[string]any{"setpoint": 55.5})
	r.waitReported(t, fmt.Sprintf("setpoint ack 503 with av %d", v), func(rep map[string]any) bool {
		a, ok := tryAck(rep, "setpoint")
		return ok && a.AV == v && a.AC == 503
	})

	r.slave = startE2ESlaveAt(t, addr)
	start := time.Now()
	waitCond(t, 40*time.Second, "register 100 = 555 once the PLC is up", func() (bool, string) {
		got, n := r.slave.holdingReg(regSetpoint), r.slave.regWrites(regSetpoint)
		return got == 555, fmt.Sprintf("register %d after %d writes", got, n)
	})
	t.Logf("setpoint written %v after the PLC came up", time.Since(start).Round(time.Millisecond))
	r.waitReported(t, fmt.Sprintf("setpoint ack 200 with av %d", v), func(rep map[string]any) bool {
		a, ok := tryAck(rep, "setpoint")
		return ok && a.AV == v && a.AC == 200 && nearFloat(a.Value, 55.5)
	})
	r.settle(t)
	if a := ackOf(t, r.svc.reported(t, "boiler-1"), "setpoint"); a.AC != 200 || a.AV != v {
		t.Errorf("setpoint after the poll's report = %+v, want ac 200 av %d", a, v)
	}
	if n := r.slave.regWrites(regSetpoint); n != 1 {
		t.Errorf("register 100 written %d times, want once (no retry after success)", n)
	}
}

// freeLoopbackAddr returns a loopback TCP address that was free a moment
// ago, for a peer that starts later.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startE2ESlaveAt starts the test slave of startE2ESlave on a given
// address (the one the gateway was configured with).
func startE2ESlaveAt(t *testing.T, addr string) *e2eSlave {
	t.Helper()
	s := &e2eSlave{addr: addr, writes: map[string]int{}, writtenAt: map[string]time.Time{}, failCoil: map[uint16]error{}}
	srv, err := sv.NewServer(&sv.ServerConfiguration{
		URL: "tcp://" + addr, Timeout: 30 * time.Second, MaxClients: 4,
		Logger: log.New(io.Discard, "", 0),
	}, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start Modbus slave on %s: %v", addr, err)
	}
	s.srv = srv
	t.Cleanup(s.stop)
	return s
}
