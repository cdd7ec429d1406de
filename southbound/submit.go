package southbound

import (
	"context"
	"log/slog"
	"time"

	"github.com/edgegw/edgegw"
)

// LogLimit lets one log line through per Every.
type LogLimit struct {
	Every time.Duration
	last  time.Time
}

// Allow reports whether a line may be logged at now, and if so counts it.
func (l *LogLimit) Allow(now time.Time) bool {
	if !l.last.IsZero() && now.Sub(l.last) < l.Every {
		return false
	}
	l.last = now
	return true
}

// SubmitAll hands the readings from in to up one at a time, in order,
// until ctx ends. counted hears each outcome (err nil: stored); a refusal is
// logged as "<kind> reading not stored", at most once a minute.
func SubmitAll(ctx context.Context, up Uplink, in <-chan edgegw.Reading, log *slog.Logger, kind string, counted func(r edgegw.Reading, err error)) {
	lim := LogLimit{Every: time.Minute}
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-in:
			err := up.Submit(ctx, r)
			if err != nil && ctx.Err() != nil {
				return
			}
			counted(r, err)
			if err != nil && lim.Allow(time.Now()) {
				log.Warn(kind+" reading not stored", "device", r.Device, "err", err)
			}
		}
	}
}
