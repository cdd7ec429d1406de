package serial

import (
	"bytes"
	"testing"
	"time"
)

// BenchmarkLines splits and parses typical sensor lines fed in 64-byte
// chunks, as a tty delivers them.
func BenchmarkLines(b *testing.B) {
	cfg := testConfig("/dev/null")
	cfg.SetDefaults()
	p, err := newParser("ser", &cfg)
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("T=21.53\r\nH=40% on\r\nnoise\r\n"), 100)
	s := newSplitter("\n", 1024)
	now := time.Now()
	n := 0
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		for off := 0; off < len(data); off += 64 {
			s.feed(data[off:min(off+64, len(data))], func(l []byte) {
				if _, ok, _ := p.parse(l, now); ok {
					n++
				}
			}, func() {})
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}
