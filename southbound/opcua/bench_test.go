package opcua

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

// countingUplink counts values and readings; it stores nothing.
type countingUplink struct{ values, readings atomic.Int64 }

func (u *countingUplink) Submit(_ context.Context, r edgegw.Reading) error {
	u.values.Add(int64(len(r.Points)))
	u.readings.Add(1)
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSubscription5000 subscribes to 5,000 variables of a node-opcua
// server that changes all of them every second (sampling interval 500ms,
// publishing interval 1s). One op is one round of 5,000 value changes
// delivered to the uplink; it reports this process's CPU time (user +
// system, the adapter and gopcua; the server runs in its own process) per
// value change, and the values delivered per second.
func BenchmarkSubscription5000(b *testing.B) {
	const items = 5000
	srv := testpeer.StartOPCUAServer(b, b.TempDir(), "--bench", fmt.Sprint(items), "--bench-interval", "1000")
	pts := make([]PointConfig, items)
	for i := range pts {
		pts[i] = PointConfig{Name: fmt.Sprintf("v%d", i), Node: fmt.Sprintf("ns=1;s=Bench.%d", i), Type: "double"}
	}
	a := newAdapter(b, "opc", Config{Endpoint: srv.Endpoint, Timeout: 30 * time.Second, Devices: []DeviceConfig{{
		Name: "bench", Interval: time.Second, SamplingInterval: 500 * time.Millisecond, QueueSize: 2, Points: pts}}}, nil)
	up := &countingUplink{}
	testpeer.RunAdapter(b, a, up)
	wait := func(n int64, timeout time.Duration) {
		deadline := time.Now().Add(timeout)
		for up.values.Load() < n {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d values after %v; stats %+v", up.values.Load(), n, timeout, a.Stats())
			}
			time.Sleep(10 * time.Millisecond) // polling the counter, bounded by the deadline
		}
	}
	wait(items, 2*time.Minute) // the initial values of every item
	time.Sleep(1500 * time.Millisecond)
	start, cpu0, t0 := up.values.Load(), cpuTime(), time.Now()
	b.ResetTimer()
	wait(start+int64(b.N)*items, time.Duration(b.N)*10*time.Second+time.Minute)
	b.StopTimer()
	got := up.values.Load() - start
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(got)/1e3, "cpu-µs/value")
	b.ReportMetric(float64(got)/time.Since(t0).Seconds(), "values/s")
	b.ReportMetric(float64(up.readings.Load()), "readings")
	st := a.Stats().Devices[0]
	if len(st.Refused) > 0 || st.TypeErrors > 0 {
		b.Fatalf("stats %+v", st)
	}
}
