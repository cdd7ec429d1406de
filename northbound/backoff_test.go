package northbound

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"
)

func TestBackoffDelay(t *testing.T) {
	for _, j := range []float64{0, 0.5, 0.999} {
		b := backoff{min: time.Second, max: time.Minute, jitter: func() float64 { return j }}
		if d := b.delay(0, false); d != 0 {
			t.Fatalf("no failures: %v", d)
		}
		prevHi := time.Duration(0)
		for fails := 1; fails <= 12; fails++ {
			base := min(time.Second<<(fails-1), time.Minute)
			d := b.delay(fails, false)
			if d < base/2 || d > base {
				t.Fatalf("fails %d jitter %v: %v outside [%v, %v]", fails, j, d, base/2, base)
			}
			prevHi = max(prevHi, d)
		}
		if prevHi > time.Minute {
			t.Fatalf("above max: %v", prevHi)
		}
		if d := b.delay(1, true); d < 8*time.Second {
			t.Fatalf("refused credentials retried after %v", d)
		}
		if d := b.delay(1000, false); d > time.Minute || d < 30*time.Second {
			t.Fatalf("many failures: %v", d)
		}
	}
}

// TestSupervisorOutageRecovery runs 200 identities' connect loops against a
// hub that is down for 30 s (virtual time). The gateway-wide limiter keeps
// every second's attempts within the rate, the back-off spreads the
// retries, and everyone is connected soon after the hub returns.
func TestSupervisorOutageRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, perSecond = 200, 20
		start := time.Now()
		hubBack := start.Add(30 * time.Second)
		lim := rate.NewLimiter(perSecond, 1)
		var mu sync.Mutex
		var attempts []time.Duration
		connectedAt := make([]time.Duration, n)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := range n {
			dial := func(ctx context.Context) (func() error, error) {
				now := time.Now()
				mu.Lock()
				attempts = append(attempts, now.Sub(start))
				mu.Unlock()
				if now.Before(hubBack) {
					return nil, errors.New("connection refused")
				}
				return func() error {
					connectedAt[i] = time.Since(start)
					<-ctx.Done()
					return ctx.Err()
				}, nil
			}
			sv := &supervisor{
				lim:     lim,
				bo:      backoff{min: time.Second, max: 20 * time.Second},
				report:  func(error, int) {},
				refused: func(error) bool { return false },
			}
			wg.Go(func() { runSupervisor(ctx, sv, dial) })
		}
		time.Sleep(2 * time.Minute)
		cancel()
		wg.Wait()
		perSec := map[int]int{}
		for _, a := range attempts {
			perSec[int(a/time.Second)]++
		}
		for s, c := range perSec {
			if c > perSecond+1 {
				t.Errorf("second %d: %d attempts, limit %d/s", s, c, perSecond)
			}
		}
		last := time.Duration(0)
		for i, c := range connectedAt {
			if c == 0 {
				t.Fatalf("identity %d never connected", i)
			}
			last = max(last, c)
		}
		// Back-off max (20 s) plus n/rate (10 s) after the hub returns.
		if last > 30*time.Second+20*time.Second+10*time.Second {
			t.Errorf("last identity connected at %v", last)
		}
		t.Logf("%d attempts during a 30s outage of %d identities; all connected by %v", len(attempts), n, last)
	})
}

// TestSupervisorRenewal checks that planned renewals reconnect without
// back-off (only the rate limit) and do not count as failures.
func TestSupervisorRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var connects []time.Time
		var reports int
		ctx, cancel := context.WithCancel(context.Background())
		dial := func(ctx context.Context) (func() error, error) {
			connects = append(connects, time.Now())
			return func() error {
				select {
				case <-time.After(3 * time.Second):
					return errRenew
				case <-ctx.Done():
					return ctx.Err()
				}
			}, nil
		}
		sv := &supervisor{
			lim:     rate.NewLimiter(rate.Inf, 1),
			bo:      backoff{min: time.Minute, max: time.Hour},
			report:  func(error, int) { reports++ },
			refused: func(error) bool { return false },
		}
		done := make(chan struct{})
		go func() { runSupervisor(ctx, sv, dial); close(done) }()
		time.Sleep(10 * time.Second)
		cancel()
		<-done
		if len(connects) != 4 || reports != 0 {
			t.Fatalf("%d connects, %d failure reports in 10s of 3s renewals", len(connects), reports)
		}
	})
}

// runSupervisor drives sv as a caller that blocks for the life of each
// connection would: dial makes an attempt and returns the connection's
// serve, which returns why it ended.
func runSupervisor(ctx context.Context, sv *supervisor, dial func(context.Context) (func() error, error)) {
	var serve func() error
	sv.connect = func(ctx context.Context) (err error) {
		serve, err = dial(ctx)
		return err
	}
	for sv.next(ctx) {
		start := time.Now()
		err := serve()
		if ctx.Err() != nil {
			return
		}
		sv.ended(err, start)
	}
}
