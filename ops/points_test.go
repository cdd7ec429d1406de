package ops

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

func reading(dev string, t time.Time, pts ...edgegw.Point) edgegw.Reading {
	return edgegw.Reading{Adapter: "a", Device: dev, Time: t, Points: pts}
}

func TestPointsRingIsBounded(t *testing.T) {
	p := NewPoints(10 * time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	// Two hours of readings every 2 s: 3,600 readings, 720 steps.
	for i := range 3600 {
		p.Observe(reading("d", t0.Add(time.Duration(i)*2*time.Second), edgegw.Point{Name: "x", Value: edgegw.Int(int64(i)), Unit: "u"}))
	}
	now := t0.Add(2 * time.Hour)
	v := p.View(now, 0)
	if len(v.Points) != 1 {
		t.Fatalf("%d points, want 1", len(v.Points))
	}
	pv := v.Points[0]
	if n := len(pv.Samples); n != 360 {
		t.Fatalf("%d samples, want 360 (one per 10 s step over the last hour)", n)
	}
	if got := pv.Samples[len(pv.Samples)-1][1]; got != 3599 {
		t.Errorf("newest sample %v, want 3599 (the step's newest value)", got)
	}
	if first := int64(pv.Samples[0][0]); first <= now.Add(-PlotWindow).UnixMilli() {
		t.Errorf("oldest sample at %d, outside the window", first)
	}
	for i := 1; i < len(pv.Samples); i++ {
		if pv.Samples[i][0] <= pv.Samples[i-1][0] {
			t.Fatalf("samples out of order at %d: %v then %v", i, pv.Samples[i-1], pv.Samples[i])
		}
	}
	if pv.Unit != "u" || pv.Kind != "int" || pv.Value != edgegw.Int(3599) {
		t.Errorf("point = %+v", pv)
	}
	// Only what is newer than since.
	since := int64(pv.Samples[357][0])
	if got := p.View(now, since).Points[0].Samples; len(got) != 2 {
		t.Errorf("since the third newest: %d samples, want 2", len(got))
	}
}

func TestPointsKinds(t *testing.T) {
	p := NewPoints(time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	p.Observe(reading("d", t0,
		edgegw.Point{Name: "on", Value: edgegw.Bool(true)},
		edgegw.Point{Name: "s", Value: edgegw.String("<b>hi</b>")},
		edgegw.Point{Name: "nan", Value: edgegw.Float(math.NaN())},
		edgegw.Point{Name: "f", Value: edgegw.Float(1.5)}))
	p.Observe(reading("d", t0.Add(-time.Second), edgegw.Point{Name: "f", Value: edgegw.Float(9)})) // late: ignored
	p.Observe(edgegw.Reading{Adapter: "lan", Device: "x", Message: &edgegw.Message{}})             // a message: no points
	v := p.View(t0.Add(time.Second), 0)
	want := map[string]int{"f": 1, "nan": 0, "on": 1, "s": 0}
	if len(v.Points) != len(want) {
		t.Fatalf("points %+v", v.Points)
	}
	for _, pv := range v.Points {
		if n, ok := want[pv.Point]; !ok || len(pv.Samples) != n {
			t.Errorf("%s: %d samples, want %d", pv.Point, len(pv.Samples), n)
		}
		if pv.Point == "f" && pv.Value != edgegw.Float(1.5) {
			t.Errorf("f = %v, want 1.5 (a late reading does not replace it)", pv.Value)
		}
		if pv.Point == "on" && pv.Samples[0][1] != 1 {
			t.Errorf("true plotted as %v, want 1", pv.Samples[0][1])
		}
	}
}

func TestPointsLimit(t *testing.T) {
	p := NewPoints(time.Minute) // 60 samples a point: MaxSamples/60 points
	limit := MaxSamples / 60
	t0 := time.Unix(1_700_000_000, 0)
	pts := make([]edgegw.Point, 0, limit+10)
	for i := range limit + 10 {
		pts = append(pts, edgegw.Point{Name: "p" + strconv.Itoa(i), Value: edgegw.Int(1)})
	}
	p.Observe(reading("d", t0, pts...))
	p.Observe(reading("d", t0.Add(time.Second), pts...)) // the same untracked points count once
	v := p.View(t0, 0)
	if n, u := p.Counts(); len(v.Points) != limit || v.Untracked != 10 || n != limit || u != 10 {
		t.Errorf("%d points tracked, %d untracked; want %d and 10", len(v.Points), v.Untracked, limit)
	}
}

func BenchmarkPointsObserve(b *testing.B) {
	p := NewPoints(DefaultPlotResolution)
	pts := []edgegw.Point{{Name: "t", Value: edgegw.Float(1)}, {Name: "p", Value: edgegw.Float(2)}, {Name: "s", Value: edgegw.Int(3)}}
	t0 := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Observe(reading("d", t0.Add(time.Duration(i)*time.Millisecond), pts...))
	}
}

func TestPointsMessages(t *testing.T) {
	p := NewPoints(time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	long := strings.Repeat("é", 100) // two bytes each
	msg := func(dev string, body []byte) edgegw.Reading {
		return edgegw.Reading{Adapter: "lan", Device: dev, Time: t0, Message: &edgegw.Message{Body: body}}
	}
	p.Observe(msg("a", []byte(`{"t":1}`)))
	p.Observe(msg("a", []byte(`{"t":2}`)))
	p.Observe(msg("b", []byte{0xff, 0xfe, 0}))
	p.Observe(msg("c", []byte("x"+long))) // 201 bytes: the 160th byte splits a rune
	v := p.View(t0, 0)
	if len(v.Points) != 0 || len(v.Messages) != 3 {
		t.Fatalf("view %+v", v)
	}
	a, b, c := v.Messages[0], v.Messages[1], v.Messages[2]
	if a.Device != "a" || a.Count != 2 || a.Preview != `{"t":2}` || a.Bytes != 7 {
		t.Errorf("a = %+v", a)
	}
	if b.Preview != "" || b.Bytes != 3 {
		t.Errorf("binary body b = %+v, want no preview", b)
	}
	if !utf8.ValidString(c.Preview) || len(c.Preview) < previewBytes-utf8.UTFMax || len(c.Preview) > previewBytes || c.Bytes != 201 {
		t.Errorf("c preview of %d bytes (valid %v), body %d", len(c.Preview), utf8.ValidString(c.Preview), c.Bytes)
	}
}
