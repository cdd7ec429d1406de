package gateway

import (
	"cmp"
	"log/slog"
	"slices"

	"github.com/edgegw/edgegw/buffer"
)

// maxStoppedStreams bounds the identities named in the final log line.
const maxStoppedStreams = 10

// logStopped logs, once the adapters and northbound have stopped, that the
// gateway stopped and what it left queued on disk for the next start: the
// records and bytes in all, and the identities holding the most.
func (g *Gateway) logStopped(q *buffer.Queue) {
	st := q.Stats()
	var left []buffer.StreamStats
	for _, s := range st.Streams {
		if s.Depth > 0 {
			left = append(left, s)
		}
	}
	slices.SortFunc(left, func(a, b buffer.StreamStats) int {
		return cmp.Or(cmp.Compare(b.Depth, a.Depth), cmp.Compare(a.Stream, b.Stream))
	})
	var most []any
	for _, s := range left[:min(len(left), maxStoppedStreams)] {
		most = append(most, s.Stream, s.Depth)
	}
	g.log.Info("gateway stopped", "queued", st.Records, "queued_bytes", st.Bytes,
		"identities_with_queue", len(left), slog.Group("queued_by_identity", most...))
}
