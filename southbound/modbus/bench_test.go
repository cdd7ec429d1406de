package modbus

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// BenchmarkRequestsPerCycle reports how many requests one poll cycle needs
// for n points in several layouts, and checks it at the slave.
//
//	go test -run=NONE -bench=RequestsPerCycle ./southbound/modbus/
func BenchmarkRequestsPerCycle(b *testing.B) {
	layouts := []struct {
		name  string
		step  int // address distance between points
		typ   string
		table string
		gap   int
	}{
		{"adjacent-uint16", 1, "uint16", "holding", 0},
		{"adjacent-float32", 2, "float32", "holding", 0},
		{"every-3rd-nogap", 3, "uint16", "holding", 0},
		{"every-3rd-gap2", 3, "uint16", "holding", 2},
		{"coils", 1, "bool", "coil", 0},
	}
	for _, n := range []int{10, 100, 1000} {
		for _, l := range layouts {
			b.Run(fmt.Sprintf("points=%d/%s", n, l.name), func(b *testing.B) {
				var pts []*point
				for i := range n {
					pts = append(pts, mkPoint(b, l.table, l.typ, uint16(i*l.step), 0))
				}
				var reqs []request
				for b.Loop() {
					reqs = plan(pts, l.gap, 125, 2000)
				}
				b.ReportMetric(float64(len(reqs)), "requests/cycle")
				b.ReportMetric(float64(n)/float64(len(reqs)), "points/request")
			})
		}
	}
}

// countingUplink counts readings and signals when a target is reached.
type countingUplink struct {
	n      atomic.Int64
	target atomic.Int64
	done   chan struct{}
}

func (u *countingUplink) Submit(ctx context.Context, r edgegw.Reading) error {
	if u.n.Add(1) == u.target.Load() {
		close(u.done)
	}
	return nil
}

// BenchmarkPollThroughput polls one device of `points` adjacent holding
// registers as fast as the in-process TCP slave answers, and reports
// readings (poll cycles) and requests per second.
//
//	go test -run=NONE -bench=PollThroughput -benchtime=3s ./southbound/modbus/
func BenchmarkPollThroughput(b *testing.B) {
	for _, n := range []int{10, 125, 500} {
		b.Run(fmt.Sprintf("points=%d", n), func(b *testing.B) {
			s := startSlave(b, 1)
			d := DeviceConfig{Name: "d", Unit: 1, Poll: time.Microsecond}
			for i := range n {
				d.Points = append(d.Points, PointConfig{Name: fmt.Sprint(i), Table: "holding", Address: uint16(i)})
			}
			a := newAdapter(b, Config{TCP: s.addr, Devices: []DeviceConfig{d}})
			up := &countingUplink{done: make(chan struct{})}
			up.target.Store(int64(b.N))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() { done <- a.Run(ctx, up) }()
			select {
			case <-up.done:
			case <-time.After(time.Minute):
				b.Fatal("too slow")
			}
			el := time.Since(start)
			b.StopTimer()
			cancel()
			<-done
			st := a.Stats().Devices[0]
			b.ReportMetric(float64(b.N)/el.Seconds(), "readings/s")
			b.ReportMetric(float64(st.Requests)/el.Seconds(), "requests/s")
			b.ReportMetric(float64(b.N*n)/el.Seconds(), "points/s")
		})
	}
}

// BenchmarkWriteLatency measures Execute (write -> response) on loopback
// while the bus polls 200 registers every 1ms, or back to back (poll=1µs),
// and reports p50/p99 in milliseconds.
// Goal: p99 <= 20ms.
//
//	go test -run=NONE -bench=WriteLatency -benchtime=2000x ./southbound/modbus/
func BenchmarkWriteLatency(b *testing.B) {
	for _, bc := range []struct {
		verify bool
		poll   time.Duration
	}{{false, time.Millisecond}, {true, time.Millisecond}, {false, time.Microsecond}} {
		verify := bc.verify
		b.Run(fmt.Sprintf("verify=%t/poll=%s", verify, bc.poll), func(b *testing.B) {
			s := startSlave(b, 1)
			d := DeviceConfig{Name: "d", Unit: 1, Poll: bc.poll, Points: []PointConfig{
				{Name: "sp", Table: "holding", Address: 0, Type: "float32", Writable: true, Verify: verify},
			}}
			for i := range 200 { // two read requests per cycle keep the bus busy
				d.Points = append(d.Points, PointConfig{Name: fmt.Sprint(i), Table: "holding", Address: uint16(10 + i)})
			}
			a := newAdapter(b, Config{TCP: s.addr, Devices: []DeviceConfig{d}})
			up := &countingUplink{done: make(chan struct{})}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx, up) }()
			defer func() { cancel(); <-done }()
			for range 1000 {
				if a.connected.Load() && up.n.Load() > 0 {
					break
				}
				time.Sleep(time.Millisecond) // wait for the first poll, bounded
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if err := write(a, "d", "sp", edgegw.Float(float64(i))); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
			b.ReportMetric(float64(up.n.Load()), "polls-meanwhile")
			if st := a.Stats(); st.Disconnects > 0 || st.Devices[0].Errors.Total() > 0 {
				b.Logf("stats: %+v", st)
			}
		})
	}
}

// BenchmarkDecode decodes one float32 (CDAB, scaled).
func BenchmarkDecode(b *testing.B) {
	c, _ := newCodec(PointConfig{Name: "p", Table: "holding", Type: "float32", Order: "CDAB", Scale: 0.1})
	img := mustHex("00003fc0")
	for b.Loop() {
		_, _ = c.decode(img)
	}
}
