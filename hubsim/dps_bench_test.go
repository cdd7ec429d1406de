package hubsim

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDPSRegister measures whole registrations of enrollment group
// members across three hubs: TLS connect, subscribe, register (SAS with a
// derived key), one poll, disconnect, with 8 devices per CPU at once. It
// reports registrations per second; the hub-side connect of the assigned
// device is BenchmarkConnect.
func BenchmarkDPSRegister(b *testing.B) {
	d, _ := startFleet(b, 3)
	if _, err := d.PutEnrollment(Enrollment{GroupID: "bench", Attestation: Attestation{Type: AttestationSymmetricKey,
		SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: groupKey}}}, ""); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(8)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			reg := fmt.Sprintf("bench-%d", n.Add(1))
			c, err := tryDialDPS(b, d, d.IDScope, reg, mustDerive(b, groupKey, reg), nil)
			if err != nil {
				b.Error(err)
				return
			}
			if r := c.register(b); r.status != 200 {
				b.Errorf("%s: %d %s", reg, r.status, r.raw)
				return
			}
			c.Disconnect(0)
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "registrations/s")
}
