package ops

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Commands is the commands section of Status.
type Commands struct {
	// Counts counts commands by kind (method, desired, c2d) and status
	// (an HTTP-style code, or "other" for codes outside CommandStatuses).
	Counts []CommandCount `json:"counts"`
	// Seconds is the time from a command's arrival to its result, by kind.
	Seconds map[string]Histogram `json:"seconds"`
	// Recent lists the newest commands first, at most RecentCommands.
	Recent []CommandRecord `json:"recent"`
}

// CommandCount is one (kind, status) pair's count.
type CommandCount struct {
	Kind   string `json:"kind"`
	Status string `json:"status"`
	Count  uint64 `json:"count"`
}

// CommandRecord is one command that was carried out.
type CommandRecord struct {
	Time     time.Time `json:"time"` // when it arrived
	Identity string    `json:"identity"`
	Kind     string    `json:"kind"`
	Name     string    `json:"name,omitempty"` // the method's name
	Status   int       `json:"status"`
	Seconds  float64   `json:"seconds"`
}

// RecentCommands is how many commands Commands keeps for the page.
const RecentCommands = 50

// CommandStatuses are the status codes counted under their own label; any
// other code (a relayed device may answer with any) counts as "other", so
// the metric's labels stay few.
var CommandStatuses = []int{200, 204, 400, 404, 405, 409, 429, 500, 501, 502, 503, 504}

// CommandBounds are the upper bounds, in seconds, of the command duration
// buckets.
var CommandBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// CommandLog counts commands and keeps the recent ones. Its zero value is
// ready; it is safe for concurrent use. Memory is bounded: kinds and
// statuses are closed sets.
type CommandLog struct {
	mu     sync.Mutex
	counts map[[2]string]uint64
	hist   map[string]*histogram
	recent [RecentCommands]CommandRecord
	next   int // slot of the next record
	n      int // records held
}

// Record adds one command's outcome.
func (c *CommandLog) Record(r CommandRecord) {
	status := "other"
	if slices.Contains(CommandStatuses, r.Status) {
		status = strconv.Itoa(r.Status)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts, c.hist = map[[2]string]uint64{}, map[string]*histogram{}
	}
	c.counts[[2]string{r.Kind, status}]++
	h := c.hist[r.Kind]
	if h == nil {
		h = newHistogram(CommandBounds)
		c.hist[r.Kind] = h
	}
	h.observe(r.Seconds)
	c.recent[c.next] = r
	c.next = (c.next + 1) % len(c.recent)
	c.n = min(c.n+1, len(c.recent))
}

// Snapshot returns the counters and the recent commands.
func (c *CommandLog) Snapshot() Commands {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Commands{Counts: []CommandCount{}, Seconds: map[string]Histogram{}, Recent: []CommandRecord{}}
	for k, n := range c.counts {
		out.Counts = append(out.Counts, CommandCount{Kind: k[0], Status: k[1], Count: n})
	}
	slices.SortFunc(out.Counts, func(a, b CommandCount) int {
		if a.Kind != b.Kind {
			return strings.Compare(a.Kind, b.Kind)
		}
		return strings.Compare(a.Status, b.Status)
	})
	for k, h := range c.hist {
		out.Seconds[k] = h.snapshot()
	}
	for i := 1; i <= c.n; i++ {
		out.Recent = append(out.Recent, c.recent[(c.next-i+len(c.recent))%len(c.recent)])
	}
	return out
}

// histogram counts observations in buckets (not cumulative; the last one
// is the +Inf rest).
type histogram struct {
	bounds []float64
	counts []uint64
	sum    float64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
}

func (h *histogram) snapshot() Histogram {
	return NewHistogram(h.bounds, h.counts, h.sum)
}

// NewHistogram makes a Histogram from per-bucket counts: counts[i] counts
// observations at most bounds[i] and above bounds[i-1]; counts has one
// more entry than bounds, for the observations above the last bound.
func NewHistogram(bounds []float64, counts []uint64, sum float64) Histogram {
	out := Histogram{Sum: sum, Buckets: make([]Bucket, len(bounds))}
	for i, b := range bounds {
		out.Count += counts[i]
		out.Buckets[i] = Bucket{LE: b, Count: out.Count}
	}
	out.Count += counts[len(bounds)]
	return out
}
