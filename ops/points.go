package ops

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

// Points keeps, for each point the adapters read, its latest value and a
// ring of samples over the last PlotWindow, one per resolution step (the
// newest value of the step). Memory is bounded: each ring holds at most
// PlotWindow/resolution samples, and at most MaxSamples samples are kept
// in all; points beyond that show no value and are counted as untracked.
// It is safe for concurrent use.
type Points struct {
	step      int64 // resolution in ms
	capacity  int   // samples per ring
	maxPoints int

	mu        sync.Mutex
	points    map[pointKey]*series
	messages  map[pointKey]*lastMessage // by adapter and device (point "")
	untracked map[pointKey]struct{}     // bounded: at most maxPoints entries, then only counted
	overflow  uint64                    // untracked points beyond that set
}

type pointKey struct{ adapter, device, point string }

type series struct {
	unit   string
	latest edgegw.Value
	at     int64    // latest's time, unix ms
	ring   []sample // grows to capacity, then wraps
	head   int      // index of the oldest sample once full
}

type sample struct {
	t int64 // unix ms
	v float64
}

// NewPoints returns a store with samples res apart (DefaultPlotResolution
// when res is not between 1s and 1m).
func NewPoints(res time.Duration) *Points {
	if res < time.Second || res > time.Minute {
		res = DefaultPlotResolution
	}
	return &Points{
		step:      res.Milliseconds(),
		capacity:  samplesPerPoint(res),
		maxPoints: maxPoints(res),
		points:    map[pointKey]*series{},
		messages:  map[pointKey]*lastMessage{},
		untracked: map[pointKey]struct{}{},
	}
}

// Observe takes a reading's point values, or, for a reading that carries a
// ready message (a LAN publish), the message's size and the start of its
// body.
func (p *Points) Observe(r edgegw.Reading) {
	if r.Message != nil {
		p.observeMessage(r)
		return
	}
	if len(r.Points) == 0 {
		return
	}
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	ms := t.UnixMilli()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pt := range r.Points {
		k := pointKey{r.Adapter, r.Device, pt.Name}
		s := p.points[k]
		if s == nil {
			if len(p.points) >= p.maxPoints {
				if _, ok := p.untracked[k]; !ok {
					if len(p.untracked) < p.maxPoints {
						p.untracked[k] = struct{}{}
					} else {
						p.overflow++
					}
				}
				continue
			}
			s = &series{}
			p.points[k] = s
		}
		if ms < s.at {
			continue // older than what we show: a late reading
		}
		s.unit, s.latest, s.at = pt.Unit, pt.Value, ms
		if v, ok := plotValue(pt.Value); ok {
			s.add(sample{ms, v}, p.step, p.capacity)
		}
	}
}

// lastMessage is the newest message of a device that sends ready
// messages, and how many it sent.
type lastMessage struct {
	count   uint64
	at      int64 // unix ms
	size    int
	head    [previewBytes]byte
	headLen int
}

// previewBytes is how much of a message body the page shows.
const previewBytes = 160

func (p *Points) observeMessage(r edgegw.Reading) {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	k := pointKey{adapter: r.Adapter, device: r.Device}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.messages[k]
	if m == nil {
		if len(p.messages) >= p.maxPoints {
			p.overflow++
			return
		}
		m = &lastMessage{}
		p.messages[k] = m
	}
	m.count++
	m.at, m.size = t.UnixMilli(), len(r.Message.Body)
	m.headLen = copy(m.head[:], r.Message.Body)
}

// plotValue is v as a number to plot: finite numbers, and booleans as 0
// and 1.
func plotValue(v edgegw.Value) (float64, bool) {
	if b, ok := v.Bool(); ok {
		if b {
			return 1, true
		}
		return 0, true
	}
	f, ok := v.Float()
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false // JSON has no such numbers, and a plot no place for them
	}
	return f, ok
}

// add appends x, or replaces the newest sample when x falls in its step.
func (s *series) add(x sample, step int64, capacity int) {
	n := len(s.ring)
	if n > 0 {
		last := (s.head + n - 1) % n
		if s.ring[last].t/step == x.t/step {
			s.ring[last] = x
			return
		}
	}
	if n < capacity {
		if n == cap(s.ring) { // grow, but never past capacity: append would
			grown := make([]sample, n, min(max(2*n, 16), capacity))
			copy(grown, s.ring)
			s.ring = grown
		}
		s.ring = append(s.ring, x)
		return
	}
	s.ring[s.head] = x
	s.head = (s.head + 1) % n
}

// PointsView is what GET /points returns.
type PointsView struct {
	WindowSeconds     float64     `json:"window_seconds"`
	ResolutionSeconds float64     `json:"resolution_seconds"`
	Points            []PointView `json:"points"`
	// Messages lists the devices that send ready messages (LAN
	// publishes) with their newest one.
	Messages []MessageView `json:"messages"`
	// Untracked counts points that are read but not kept: MaxSamples is
	// reached.
	Untracked uint64 `json:"untracked"`
}

// PointView is one point: its latest value and its samples.
type PointView struct {
	Adapter string       `json:"adapter"`
	Device  string       `json:"device"`
	Point   string       `json:"point"`
	Unit    string       `json:"unit,omitempty"`
	Kind    string       `json:"kind"`
	Value   edgegw.Value `json:"value"`
	Time    time.Time    `json:"time"`
	// Samples are [unix ms, value] pairs, oldest first, within the window
	// and newer than the since the request gave. The newest one may be
	// replaced by a later value of the same step.
	Samples [][2]float64 `json:"samples"`
}

// MessageView is a device's newest message.
type MessageView struct {
	Adapter string    `json:"adapter"`
	Device  string    `json:"device"`
	Count   uint64    `json:"count"` // since the gateway started
	Time    time.Time `json:"time"`
	Bytes   int       `json:"bytes"`
	// Preview is the start of the body when it is UTF-8 text, cut at
	// previewBytes; empty for a binary body.
	Preview string `json:"preview,omitempty"`
}

func (m *lastMessage) view(k pointKey) MessageView {
	v := MessageView{Adapter: k.adapter, Device: k.device, Count: m.count, Time: time.UnixMilli(m.at).UTC(), Bytes: m.size}
	head := m.head[:m.headLen]
	if m.size > m.headLen { // cut: drop a rune split at the end
		for i := 0; i < utf8.UTFMax && len(head) > 0 && !utf8.Valid(head); i++ {
			head = head[:len(head)-1]
		}
	}
	if utf8.Valid(head) {
		v.Preview = string(head)
	}
	return v
}

// View returns every point, sorted by adapter, device and point, with its
// samples newer than since (unix ms; 0 for all) and within the window.
func (p *Points) View(now time.Time, since int64) PointsView {
	from := max(since, now.Add(-PlotWindow).UnixMilli())
	p.mu.Lock()
	out := PointsView{
		WindowSeconds:     PlotWindow.Seconds(),
		ResolutionSeconds: float64(p.step) / 1000,
		Points:            make([]PointView, 0, len(p.points)),
		Untracked:         uint64(len(p.untracked)) + p.overflow,
	}
	for k, s := range p.points {
		v := PointView{Adapter: k.adapter, Device: k.device, Point: k.point, Unit: s.unit,
			Kind: s.latest.Kind().String(), Value: s.latest, Time: time.UnixMilli(s.at).UTC(), Samples: [][2]float64{}}
		n := len(s.ring)
		for i := range n {
			x := s.ring[(s.head+i)%n]
			if x.t > from {
				v.Samples = append(v.Samples, [2]float64{float64(x.t), x.v})
			}
		}
		out.Points = append(out.Points, v)
	}
	out.Messages = make([]MessageView, 0, len(p.messages))
	for k, m := range p.messages {
		out.Messages = append(out.Messages, m.view(k))
	}
	p.mu.Unlock()
	slices.SortFunc(out.Messages, func(a, b MessageView) int {
		if c := strings.Compare(a.Adapter, b.Adapter); c != 0 {
			return c
		}
		return strings.Compare(a.Device, b.Device)
	})
	slices.SortFunc(out.Points, func(a, b PointView) int {
		if c := strings.Compare(a.Adapter, b.Adapter); c != 0 {
			return c
		}
		if c := strings.Compare(a.Device, b.Device); c != 0 {
			return c
		}
		return strings.Compare(a.Point, b.Point)
	})
	return out
}

// Counts returns how many points are tracked, and how many are read but
// not kept.
func (p *Points) Counts() (tracked int, untracked uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.points), uint64(len(p.untracked)) + p.overflow
}
