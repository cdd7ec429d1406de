package hubsim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/iothub"
)

// C2D limits of IoT Hub.
const MaxC2DSize = 64 << 10

// C2D errors.
var (
	ErrQueueFull       = errors.New("device message queue is full")   // 403004 DeviceMaximumQueueDepthExceeded
	ErrMessageTooLarge = errors.New("message exceeds the size limit") // 413 MessageTooLarge
)

// C2DMessage is a cloud-to-device message.
type C2DMessage struct {
	Body            []byte            `json:"body"`
	MessageID       string            `json:"messageId,omitempty"` // "" = generated
	CorrelationID   string            `json:"correlationId,omitempty"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	UserID          string            `json:"userId,omitempty"`
	Ack             string            `json:"ack,omitempty"` // iothub-ack: none, positive, negative, full
	Properties      []edgegw.Property `json:"properties,omitempty"`
	Expiry          time.Time         `json:"expiry,omitempty"` // zero = now + C2DTTL
}

type c2dMsg struct {
	C2DMessage
	Enqueued time.Time `json:"enqueued"`
}

// SendC2D queues a message for a device. It is delivered (QoS 1, on
// devices/{id}/messages/devicebound/{bag}) whenever the device is connected
// with that subscription, redelivered after each reconnect until the device
// PUBACKs it, and dropped at its expiry. It returns the message id.
func (h *Hub) SendC2D(deviceID string, m C2DMessage) (string, error) {
	size := len(m.Body)
	for _, p := range m.Properties {
		size += len(p.Key) + len(p.Value)
	}
	if size > MaxC2DSize {
		return "", fmt.Errorf("%w: %d bytes > %d", ErrMessageTooLarge, size, MaxC2DSize)
	}
	if m.MessageID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		m.MessageID = hex.EncodeToString(b[:])
	}
	now := time.Now().UTC()
	if m.Expiry.IsZero() {
		ttl := h.C2DTTL
		if ttl <= 0 {
			ttl = time.Hour
		}
		m.Expiry = now.Add(ttl)
	}
	m.Body = append([]byte(nil), m.Body...)
	h.mu.Lock()
	h.initLocked()
	id, ok := h.idents[deviceID]
	if !ok {
		h.mu.Unlock()
		return "", fmt.Errorf("%w: %s", ErrDeviceNotFound, deviceID)
	}
	id.dropExpiredC2D(now)
	limit := h.C2DQueueLimit
	if limit <= 0 {
		limit = 50
	}
	if len(id.c2d) >= limit {
		h.mu.Unlock()
		return "", fmt.Errorf("%w: %d messages pending for %s", ErrQueueFull, len(id.c2d), deviceID)
	}
	id.c2d = append(id.c2d, &c2dMsg{C2DMessage: m, Enqueued: now})
	c := id.conn
	h.dirtyLocked()
	h.mu.Unlock()
	if c != nil {
		h.deliverC2D(c)
	}
	return m.MessageID, nil
}

// PendingC2D returns the messages queued for a device and not yet completed.
func (h *Hub) PendingC2D(deviceID string) []C2DMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.idents[deviceID]
	if !ok {
		return nil
	}
	id.dropExpiredC2D(time.Now())
	out := make([]C2DMessage, 0, len(id.c2d))
	for _, m := range id.c2d {
		out = append(out, m.C2DMessage)
	}
	return out
}

func (id *ident) dropExpiredC2D(now time.Time) {
	kept := id.c2d[:0]
	for _, m := range id.c2d {
		if now.Before(m.Expiry) {
			kept = append(kept, m)
		}
	}
	clear(id.c2d[len(kept):])
	id.c2d = kept
}

// deliverC2D writes every pending message not yet written on c, if c is the
// identity's current connection and holds the devicebound subscription.
func (h *Hub) deliverC2D(c *conn) {
	if c.moduleID != "" || !c.subscribed(c.c2dFilter()) {
		return
	}
	h.mu.Lock()
	id, ok := h.idents[c.key]
	if !ok || id.conn != c {
		h.mu.Unlock()
		return
	}
	id.dropExpiredC2D(time.Now())
	var todo []*c2dMsg
	c.mu.Lock()
	if c.sent == nil {
		c.sent = map[string]bool{}
		c.inflight = map[uint16]string{}
	}
	for _, m := range id.c2d {
		if !c.sent[m.MessageID] {
			c.sent[m.MessageID] = true
			todo = append(todo, m)
		}
	}
	c.mu.Unlock()
	h.mu.Unlock()
	for _, m := range todo {
		// The id is recorded before the write: the PUBACK may come back
		// before writeQoS1 returns.
		pid := c.reservePID(m.MessageID)
		if err := c.writeQoS1(pid, c2dTopic(c.deviceID, m), m.Body); err != nil {
			h.log.Debug("c2d not written", "device", c.key, "err", err)
			return
		}
	}
}

// c2dTopic builds devices/{id}/messages/devicebound/{bag}.
func c2dTopic(deviceID string, m *c2dMsg) string {
	bag := []edgegw.Property{{Key: iothub.PropMessageID, Value: m.MessageID},
		{Key: iothub.PropTo, Value: "/devices/" + deviceID + "/messages/devicebound"}}
	add := func(k, v string) {
		if v != "" {
			bag = append(bag, edgegw.Property{Key: k, Value: v})
		}
	}
	add(iothub.PropCorrelationID, m.CorrelationID)
	add(iothub.PropContentType, m.ContentType)
	add(iothub.PropContentEncoding, m.ContentEncoding)
	add(iothub.PropUserID, m.UserID)
	add("iothub-ack", m.Ack)
	bag = append(bag, m.Properties...)
	return "devices/" + deviceID + "/messages/devicebound/" + iothub.EncodeBag(bag)
}

// c2dAcked completes the message a PUBACK acknowledges.
func (h *Hub) c2dAcked(c *conn, pid uint16) {
	c.mu.Lock()
	mid, ok := c.inflight[pid]
	delete(c.inflight, pid)
	c.mu.Unlock()
	if !ok {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.idents[c.key]
	if !ok {
		return
	}
	for i, m := range id.c2d {
		if m.MessageID == mid {
			id.c2d = append(id.c2d[:i], id.c2d[i+1:]...)
			h.stats.c2dDone.Add(1)
			h.dirtyLocked()
			h.signalLocked()
			return
		}
	}
}
