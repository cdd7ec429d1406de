package lanmqtt

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Stats are the adapter's counters since New.
type Stats struct {
	Clients  int64  // connected now
	Connects uint64 // connects accepted (authenticated)
	Received uint64 // intake publishes (IoT Hub surface or a topic rule)
	Stored   uint64 // intake publishes Submit stored (acknowledged)
	Rejected uint64 // refused for good: ErrRejected, too large, bad property bag
	// Rejected by reason.
	RejectedTooLarge   uint64 // payload above max_message_bytes
	RejectedBadBag     uint64 // property bag that does not decode
	RejectedUnroutable uint64 // refused by the gateway (no route, too large for the hub)
	// RefusedClosed counts MQTT 3.1.1 connections closed because a QoS>0
	// publish was refused (3.1.1 has no negative acknowledgement).
	RefusedClosed uint64
	Failed        uint64 // not stored (Submit failed); not acknowledged
	AuthFailures  uint64 // refused connects
	ACLDenied     uint64 // refused publishes, subscriptions and deliveries
	ConnErrors    uint64 // connections that ended with an error (incl. refused)
	// Dropped counts messages to slow LAN subscribers the broker dropped:
	// the subscriber's outbound queue was full (max_pending), or it had
	// max_inflight QoS 1/2 messages unacknowledged.
	Dropped   uint64
	Published uint64 // Execute publishes
}

type counters struct {
	received, stored, rejected, failed, authFailures, aclDenied, connErrors, dropped, published atomic.Uint64
	rejectedTooLarge, rejectedBadBag, rejectedUnroutable, refusedClosed, relayed, connects      atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (a *Adapter) Stats() Stats {
	s := Stats{
		Connects:           a.stats.connects.Load(),
		Received:           a.stats.received.Load(),
		Stored:             a.stats.stored.Load(),
		Rejected:           a.stats.rejected.Load(),
		RejectedTooLarge:   a.stats.rejectedTooLarge.Load(),
		RejectedBadBag:     a.stats.rejectedBadBag.Load(),
		RejectedUnroutable: a.stats.rejectedUnroutable.Load(),
		RefusedClosed:      a.stats.refusedClosed.Load(),
		Failed:             a.stats.failed.Load(),
		AuthFailures:       a.stats.authFailures.Load(),
		ACLDenied:          a.stats.aclDenied.Load(),
		ConnErrors:         a.stats.connErrors.Load(),
		Dropped:            a.stats.dropped.Load(),
		Published:          a.stats.published.Load(),
	}
	a.mu.Lock()
	if a.srv != nil {
		s.Clients = atomic.LoadInt64(&a.srv.Info.ClientsConnected)
		s.Dropped += uint64(atomic.LoadInt64(&a.srv.Info.InflightDropped))
	}
	a.mu.Unlock()
	return s
}

// rateLog logs one Warn line per interval for a kind of event, with the
// number of events suppressed since the previous line.
type rateLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const rateLogInterval = 10 * time.Second

func (r *rateLog) log(l *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < rateLogInterval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.Warn(msg, args...)
}

// quietHandler passes mochi's own log lines on at Debug, except errors:
// mochi logs per-client events (bad packets, short keep-alives) at Warn and
// Info, which would flood the gateway's log; our counters cover them.
//
// The one such event no hook reports, a message to a subscriber dropped
// because it has max_inflight unacknowledged (mochi counts it in
// Info.InflightDropped, which Stats adds to Dropped), is passed to
// dropped with the client's id, for a rate-limited warning.
type quietHandler struct {
	h       slog.Handler
	dropped func(client string) // may be nil
}

// mochi v2.7.9's messages for a QoS 1/2 delivery it gave up on.
var inflightDropMessages = map[string]bool{"client store quota reached": true, "packet ids exhausted": true}

func (q quietHandler) level(l slog.Level) slog.Level {
	if l >= slog.LevelError {
		return l
	}
	return slog.LevelDebug
}

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if q.dropped != nil && l >= slog.LevelWarn {
		return true // Handle looks for the drops among mochi's warnings
	}
	return q.h.Enabled(ctx, q.level(l))
}

// Handle passes mochi's record on at its new level, without the packets
// mochi attaches to some lines: a CONNECT packet carries the client's
// password (perhaps a SAS token), which must never reach a log.
func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if q.dropped != nil && inflightDropMessages[r.Message] {
		client := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "client" {
				client = a.Value.String()
				return false
			}
			return true
		})
		q.dropped(client)
	}
	if !q.h.Enabled(ctx, q.level(r.Level)) {
		return nil
	}
	out := slog.NewRecord(r.Time, q.level(r.Level), r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "pk" || a.Key == "packet" || a.Value.Kind() == slog.KindAny && isPacket(a.Value.Any()) {
			a = slog.String(a.Key, "[packet omitted]")
		}
		out.AddAttrs(a)
		return true
	})
	return q.h.Handle(ctx, out)
}

func isPacket(v any) bool {
	switch v.(type) {
	case packets.Packet, *packets.Packet:
		return true
	}
	return false
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{q.h.WithAttrs(as), q.dropped}
}

func (q quietHandler) WithGroup(n string) slog.Handler {
	return quietHandler{q.h.WithGroup(n), q.dropped}
}
