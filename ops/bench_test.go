package ops

import (
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// BenchmarkScrape measures one GET /metrics of a gateway with 1,000
// identities and 50 Modbus devices (the snapshot itself is the rooms'
// cost, not measured here).
func BenchmarkScrape(b *testing.B) {
	st := richStatus()
	base := st.Identities[0]
	st.Identities = st.Identities[:0]
	for i := range 1000 {
		id := base
		id.ID = fmt.Sprintf("dev-%04d", i)
		st.Identities = append(st.Identities, id)
	}
	mb := st.Adapters[1].Modbus
	dev := mb.Devices[0]
	for i := range 49 {
		d := dev
		d.Name = fmt.Sprintf("unit-%d", i)
		mb.Devices = append(mb.Devices, d)
	}
	cfg := Config{}
	cfg.SetDefaults()
	started := make(chan struct{})
	close(started)
	h := NewServer(cfg, func() Status { return st }, started, NewPoints(0), nil).Handler()
	b.ReportAllocs()
	var size int
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// BenchmarkPointsFull fills the store to its sample budget (1,000 points,
// an hour at 10 s) and reports the heap it holds.
func BenchmarkPointsFull(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p := NewPoints(DefaultPlotResolution)
		t0 := time.Unix(1_700_000_000, 0)
		pts := make([]edgegw.Point, 1000)
		for i := range pts {
			pts[i] = edgegw.Point{Name: fmt.Sprint("p", i), Value: edgegw.Float(1)}
		}
		for s := range samplesPerPoint(DefaultPlotResolution) {
			p.Observe(edgegw.Reading{Adapter: "a", Device: "d", Time: t0.Add(time.Duration(s) * DefaultPlotResolution), Points: pts})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-held")
		runtime.KeepAlive(p)
	}
}

// BenchmarkObserveMessage is the cost the page adds to each LAN publish,
// from all cores at once (one lock for the store).
func BenchmarkObserveMessage(b *testing.B) {
	p := NewPoints(DefaultPlotResolution)
	body := []byte(`{"temperature": 21.5, "humidity": 40, "pad": "` + string(make([]byte, 150)) + `"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := edgegw.Reading{Adapter: "lan", Device: "dev", Time: time.Now(), Message: &edgegw.Message{Body: body}}
		for pb.Next() {
			p.Observe(r)
		}
	})
}
