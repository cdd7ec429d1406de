package modbus

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		base, limit time.Duration
		n           int
		want        time.Duration // the un-jittered delay
	}{
		{time.Second, time.Minute, 0, time.Second},
		{time.Second, time.Minute, 1, time.Second},
		{time.Second, time.Minute, 2, 2 * time.Second},
		{time.Second, time.Minute, 6, 32 * time.Second},
		{time.Second, time.Minute, 7, time.Minute},
		{time.Second, time.Minute, 1000, time.Minute},
		{2 * time.Second, time.Second, 1, time.Second},
	} {
		for range 100 {
			got := backoff(tc.base, tc.limit, tc.n)
			if got < tc.want/2 || got > tc.want {
				t.Fatalf("backoff(%s, %s, %d) = %s, want in [%s, %s]", tc.base, tc.limit, tc.n, got, tc.want/2, tc.want)
			}
		}
	}
}
