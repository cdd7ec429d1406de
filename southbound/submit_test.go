package southbound

import (
	"testing"
	"time"
)

func TestLogLimit(t *testing.T) {
	l := LogLimit{Every: time.Minute}
	t0 := time.Unix(1000, 0)
	if !l.Allow(t0) || l.Allow(t0.Add(59*time.Second)) || !l.Allow(t0.Add(61*time.Second)) {
		t.Error("limiter lets the wrong lines through")
	}
}
