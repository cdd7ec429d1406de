package gateway

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkDPSProvision provisions a fleet from one group enrollment
// through hubsim's DPS onto 3 emulated hubs on loopback: from the
// gateway's start until DPS has assigned every identity, and until every
// identity is connected to its hub. It reports the seconds for both,
// registrations per second, connections per second (each identity makes
// two: DPS, then its hub) and the most DPS connections open at once (the
// connect rate keeps that bounded). The gateway runs as a child process:
// with the hubs in this one, each process holds one end of every
// connection (a process here may open 20,000 descriptors).
//
// 500 identities by default; with EDGEGW_BENCH_LONG=1, 10,000 (make bench):
//
//	EDGEGW_BENCH_LONG=1 go test -run=NONE -bench=DPSProvision -benchtime=1x -timeout 30m ./gateway/
//
// EDGEGW_BENCH_IDENTITIES sets another count; EDGEGW_BENCH_CONNECT_RATE
// sets hub.connect_rate (default 200 per second, twice IoT Hub's connect
// quota per unit; the gateway's default is 50).
func BenchmarkDPSProvision(b *testing.B) {
	n := 500
	if os.Getenv("EDGEGW_BENCH_LONG") != "" {
		n = 10000
	}
	if v, err := strconv.Atoi(os.Getenv("EDGEGW_BENCH_IDENTITIES")); err == nil && v > 0 {
		n = v
	}
	rate := 200
	if v, err := strconv.Atoi(os.Getenv("EDGEGW_BENCH_CONNECT_RATE")); err == nil && v > 0 {
		rate = v
	}
	for range b.N {
		w := newDPSWorld(b, 3)
		cfgPath := filepath.Join(b.TempDir(), "fleet.yaml")
		if err := os.WriteFile(cfgPath, []byte(w.fleetYAML(b.TempDir(), n, rate)), 0o600); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		c := startChild(b, cfgPath)
		peak := 0
		var registered, connected time.Duration
		end := start.Add(20 * time.Minute)
		for connected == 0 {
			s := w.dps.Stats()
			peak = max(peak, s.Connected)
			if registered == 0 && int(s.Assigned) >= n {
				registered = time.Since(start)
			}
			up := 0
			for _, h := range w.hubs {
				up += h.Stats().Connected
			}
			if registered != 0 && up >= n {
				connected = time.Since(start)
			}
			if time.Now().After(end) {
				c.kill9()
				b.Fatalf("after 20 min: %d of %d assigned, %d connected", s.Assigned, n, up)
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.StopTimer()
		c.kill9()
		b.StartTimer()
		b.ReportMetric(float64(n), "identities")
		b.ReportMetric(registered.Seconds(), "s_registered")
		b.ReportMetric(connected.Seconds(), "s_connected")
		b.ReportMetric(float64(n)/registered.Seconds(), "registrations/s")
		b.ReportMetric(float64(2*n)/connected.Seconds(), "connects/s")
		b.ReportMetric(float64(peak), "peak_dps_conns")
	}
}
