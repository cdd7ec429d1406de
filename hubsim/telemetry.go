package hubsim

import (
	"context"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/iothub"
)

// Telemetry is one device-to-cloud message the hub accepted. Its JSON
// (MarshalJSON) has the body as text when it is UTF-8 and the properties
// as an object.
type Telemetry struct {
	Seq             uint64            `json:"seq"` // hub-wide arrival number, from 1
	DeviceID        string            `json:"deviceId"`
	ModuleID        string            `json:"moduleId,omitempty"`
	Body            []byte            `json:"body"`
	Properties      []edgegw.Property `json:"properties,omitempty"`      // application properties, in order
	MessageID       string            `json:"messageId,omitempty"`       // $.mid
	CorrelationID   string            `json:"correlationId,omitempty"`   // $.cid
	ContentType     string            `json:"contentType,omitempty"`     // $.ct
	ContentEncoding string            `json:"contentEncoding,omitempty"` // $.ce
	System          map[string]string `json:"system,omitempty"`          // every "$.x" property, by short name
	Received        time.Time         `json:"received"`
}

// Property returns the first application property named key.
func (t Telemetry) Property(key string) (string, bool) {
	for _, p := range t.Properties {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// acceptTelemetry records a telemetry publish (or a Will) and reports
// whether to acknowledge it.
func (h *Hub) acceptTelemetry(c *conn, t devTopic, payload []byte, retain, will bool) bool {
	sys, app := splitBag(t.bag)
	if retain {
		app = append(app, edgegw.Property{Key: "mqtt-retain", Value: "true"})
	}
	if will {
		app = append(app, edgegw.Property{Key: "iothub-MessageType", Value: "Will"})
	}
	m := Telemetry{
		DeviceID:        c.deviceID,
		ModuleID:        c.moduleID,
		Body:            append([]byte(nil), payload...),
		Properties:      app,
		MessageID:       sys[iothub.PropMessageID],
		CorrelationID:   sys[iothub.PropCorrelationID],
		ContentType:     sys[iothub.PropContentType],
		ContentEncoding: sys[iothub.PropContentEncoding],
		System:          sys,
	}
	if !h.pubackFault(m) {
		return false
	}
	m.Received = time.Now().UTC()
	h.stats.telemetry.Add(1)
	h.mu.Lock()
	h.teleSeq++
	m.Seq = h.teleSeq
	h.tele = append(h.tele, m)
	// Evict in chunks so the copy is amortised: between MaxTelemetry and
	// 9/8 of it are kept.
	if len(h.tele) > h.MaxTelemetry+h.MaxTelemetry/8 {
		h.tele = append(h.tele[:0:0], h.tele[len(h.tele)-h.MaxTelemetry:]...)
	}
	h.mu.Unlock()
	if h.OnTelemetry != nil {
		h.OnTelemetry(m)
	}
	h.mu.Lock()
	h.signalLocked()
	h.mu.Unlock()
	return true
}

// Telemetry returns the telemetry received from deviceID (all devices when
// deviceID is ""), in arrival order. Module messages are included for their
// device; filter on ModuleID if needed.
func (h *Hub) Telemetry(deviceID string) []Telemetry {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.telemetryLocked(deviceID, 0)
}

func (h *Hub) telemetryLocked(deviceID string, afterSeq uint64) []Telemetry {
	var out []Telemetry
	for _, m := range h.tele {
		if m.Seq > afterSeq && (deviceID == "" || m.DeviceID == deviceID) {
			out = append(out, m)
		}
	}
	return out
}

// WaitTelemetry blocks until at least n messages from deviceID ("" = any)
// have been received, and returns them all; or returns ctx's error with
// what arrived so far.
func (h *Hub) WaitTelemetry(ctx context.Context, deviceID string, n int) ([]Telemetry, error) {
	for {
		h.mu.Lock()
		got := h.telemetryLocked(deviceID, 0)
		ch := h.waitChangeLocked()
		closed := h.closed
		h.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		if closed {
			return got, errHubClosed
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-ch:
		}
	}
}

// TelemetryAfter returns messages with Seq > after from deviceID ("" = any)
// and a channel closed at the next hub state change, for followers.
func (h *Hub) TelemetryAfter(deviceID string, after uint64) ([]Telemetry, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.telemetryLocked(deviceID, after), h.waitChangeLocked()
}

// ResetTelemetry forgets all recorded telemetry.
func (h *Hub) ResetTelemetry() {
	h.mu.Lock()
	h.tele = nil
	h.mu.Unlock()
}
