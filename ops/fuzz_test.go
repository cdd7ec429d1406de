package ops

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// FuzzPointsQuery feeds GET /points any query: it answers 200 with JSON or
// 400, never anything else, and a since it accepts filters the samples.
func FuzzPointsQuery(f *testing.F) {
	for _, s := range []string{"", "since=0", "since=1700000000000", "since=-1", "since=abc", "since=99999999999999999999", "since=1&since=2", "since=%zz", "x=1"} {
		f.Add(s)
	}
	p := NewPoints(time.Second)
	t0 := time.Now()
	for i := range 5 {
		p.Observe(edgegw.Reading{Adapter: "a", Device: "d", Time: t0.Add(time.Duration(i-5) * time.Second),
			Points: []edgegw.Point{{Name: "x", Value: edgegw.Float(float64(i))}}})
	}
	cfg := Config{}
	cfg.SetDefaults()
	h := NewServer(cfg, func() Status { return Status{} }, make(chan struct{}), p, nil).Handler()
	f.Fuzz(func(t *testing.T, q string) {
		req := httptest.NewRequest("GET", "/points", nil)
		req.URL.RawQuery = q
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 400:
			return
		case 200:
		default:
			t.Fatalf("%q: status %d", q, rec.Code)
		}
		var v PointsView
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		vals, _ := url.ParseQuery(q)
		if vals.Get("since") == "" && len(v.Points) == 1 && len(v.Points[0].Samples) != 5 {
			t.Fatalf("%q: %d samples, want all 5", q, len(v.Points[0].Samples))
		}
	})
}
