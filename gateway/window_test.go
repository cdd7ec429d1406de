package gateway

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/hubsim"
)

// seqDevice is a LAN device that publishes numbered QoS 1 messages
// (devices/{id}/messages/events/seq=N) with a window of them
// unacknowledged, as a device with a pipelined client does, and records
// which ones the gateway acknowledged. Its checks are the gateway's
// promise: every acknowledged message reaches the hub, in order of first
// arrival; duplicates are allowed (at-least-once).
type seqDevice struct {
	id, password string
	window       int

	mu       sync.Mutex
	acked    map[int]bool
	next     int
	sessions int // calls of publish that returned
}

func newSeqDevice(id, password string, window int) *seqDevice {
	return &seqDevice{id: id, password: password, window: window, acked: map[int]bool{}}
}

// publish connects to addr and publishes until stop closes or the
// connection breaks. Once a publish goes unacknowledged it stops: the
// gateway owes nothing for it or what follows, and the next call starts
// with new numbers, as a device that drops what it could not send.
func (d *seqDevice) publish(addr string, stop <-chan struct{}) {
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(d.id).
		SetUsername(d.id).SetPassword(d.password).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(2 * time.Second) // a Publish racing a lost connection otherwise blocks for 30 s
	defer func() {
		d.mu.Lock()
		d.sessions++
		d.mu.Unlock()
	}()
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return
	}
	defer c.Disconnect(0)
	type sent struct {
		seq int
		tok mqtt.Token
	}
	var inflight []sent
	// settle waits for the oldest publish; false when it was not
	// acknowledged.
	settle := func() bool {
		s := inflight[0]
		inflight = inflight[1:]
		if !s.tok.WaitTimeout(5*time.Second) || s.tok.Error() != nil {
			return false
		}
		d.mu.Lock()
		d.acked[s.seq] = true
		d.mu.Unlock()
		return true
	}
	for {
		select {
		case <-stop:
			for len(inflight) > 0 && settle() {
			}
			return
		default:
		}
		d.mu.Lock()
		seq := d.next
		d.next++
		d.mu.Unlock()
		tok := c.Publish("devices/"+d.id+"/messages/events/seq="+strconv.Itoa(seq), 1, false, fmt.Sprintf(`{"seq":%d}`, seq))
		inflight = append(inflight, sent{seq, tok})
		if len(inflight) == d.window && !settle() {
			return
		}
	}
}

// sessionsDone is how many calls of publish have returned. Acknowledgements
// are recorded when the window moves on, so a session's count is final
// once it has returned.
func (d *seqDevice) sessionsDone() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessions
}

// ackedCount is how many messages the gateway acknowledged so far.
func (d *seqDevice) ackedCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.acked)
}

// waitAllAtHub waits until every acknowledged message is in the hub's
// telemetry, failing on a message out of order of first arrival or when
// some are still missing after timeout.
func (d *seqDevice) waitAllAtHub(t *testing.T, hub *hubsim.Hub, timeout time.Duration) {
	t.Helper()
	d.mu.Lock()
	acked := make(map[int]bool, len(d.acked))
	for seq := range d.acked {
		acked[seq] = true
	}
	d.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		seen := map[int]bool{}
		last := -1
		for _, m := range hub.Telemetry(d.id) {
			seq, err := strconv.Atoi(propValue(m.Properties, "seq"))
			if err != nil {
				t.Fatalf("telemetry without a seq property: %+v", m)
			}
			if !seen[seq] {
				if seq < last {
					t.Fatalf("order lost: seq %d first arrived after seq %d", seq, last)
				}
				seen[seq], last = true, seq
			}
		}
		missing := 0
		for seq := range acked {
			if !seen[seq] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages never reached the hub", missing, len(acked))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
