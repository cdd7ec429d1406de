package northbound

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
)

func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv(benchHubEnv)); err == nil {
		runBenchHub(n) // a benchmark's hub process; never returns
	}
	goleak.VerifyTestMain(m)
}

// memQueue is an in-memory Queue with the buffer's contract, for tests
// that need no disk.
type memQueue struct {
	mu      sync.Mutex
	wake    chan struct{} // closed and replaced on every append
	streams map[string]*memStream
}

type memStream struct {
	recs   []buffer.Record
	next   uint64
	acked  uint64
	acks   int
	waiter func() // Notify's callback
}

func newMemQueue() *memQueue {
	return &memQueue{wake: make(chan struct{}), streams: map[string]*memStream{}}
}

func (q *memQueue) stream(name string) *memStream {
	s := q.streams[name]
	if s == nil {
		s = &memStream{}
		q.streams[name] = s
	}
	return s
}

func (q *memQueue) append(name string, msgs ...edgegw.Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stream(name)
	for i := range msgs {
		b, _ := msgs[i].MarshalBinary()
		s.next++
		s.recs = append(s.recs, buffer.Record{Seq: s.next, Data: b, Time: time.Now()})
	}
	close(q.wake)
	q.wake = make(chan struct{})
	s.wakeLocked()
}

func (q *memQueue) appendRaw(name string, data []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stream(name)
	s.next++
	s.recs = append(s.recs, buffer.Record{Seq: s.next, Data: data, Time: time.Now()})
	close(q.wake)
	q.wake = make(chan struct{})
	s.wakeLocked()
}

func (q *memQueue) Read(ctx context.Context, name string, after uint64, max int) ([]buffer.Record, error) {
	for {
		q.mu.Lock()
		s := q.stream(name)
		var out []buffer.Record
		i := sort.Search(len(s.recs), func(i int) bool { return s.recs[i].Seq > after })
		for _, r := range s.recs[i:] {
			if len(out) == max {
				break
			}
			out = append(out, r)
		}
		wake := q.wake
		q.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		}
	}
}

func (q *memQueue) Notify(name string, after uint64, fn func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stream(name)
	if len(s.recs) > 0 && s.recs[len(s.recs)-1].Seq > after {
		return false // a record after `after` is still stored
	}
	s.waiter = fn
	return true
}

// wakeLocked calls and clears s's Notify callback; q.mu is held.
func (s *memStream) wakeLocked() {
	if fn := s.waiter; fn != nil {
		s.waiter = nil
		fn()
	}
}

func (q *memQueue) Ack(name string, upto uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stream(name)
	if upto < s.acked {
		return fmt.Errorf("ack %d below %d", upto, s.acked)
	}
	s.acked = upto
	s.acks++
	i := sort.Search(len(s.recs), func(i int) bool { return s.recs[i].Seq > upto })
	s.recs = s.recs[i:]
	return nil
}

// pending returns how many records of the stream are not acked.
func (q *memQueue) pending(name string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.stream(name).recs)
}

// recorder is a Downlink that records commands and answers methods by a
// table.
type recorder struct {
	mu   sync.Mutex
	cmds []edgegw.Command
	got  chan edgegw.Command
}

func newRecorder() *recorder { return &recorder{got: make(chan edgegw.Command, 1000)} }

func (r *recorder) Handle(ctx context.Context, cmd edgegw.Command) edgegw.Result {
	r.mu.Lock()
	r.cmds = append(r.cmds, cmd)
	r.mu.Unlock()
	select {
	case r.got <- cmd:
	default:
	}
	switch {
	case cmd.Kind == edgegw.Method && cmd.Name == "echo":
		return edgegw.Result{Status: 200, Payload: cmd.Payload}
	case cmd.Kind == edgegw.Method:
		return edgegw.Result{Status: 501, Payload: []byte(`{"error":"unknown method"}`)}
	}
	return edgegw.Result{Status: 200}
}

// next waits for the next command of kind k.
func (r *recorder) next(t *testing.T, k edgegw.CommandKind) edgegw.Command {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-r.got:
			if c.Kind == k {
				return c
			}
		case <-deadline:
			t.Fatalf("no %v command within 10s", k)
		}
	}
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startMosquitto runs Debian's mosquitto on 127.0.0.1 with a generated
// plaintext config (extra lines appended) and returns its port.
func startMosquitto(t *testing.T, extra string) int {
	t.Helper()
	return startMosquittoConf(t, func(port int) string {
		return "listener " + strconv.Itoa(port) + " 127.0.0.1\nallow_anonymous true\npersistence false\n" +
			"max_inflight_messages 0\nmax_queued_messages 100000\n" + extra
	})
}
