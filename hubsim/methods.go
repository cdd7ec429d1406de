package hubsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Direct method errors (IoT Hub codes 404103 and 504101).
var (
	ErrDeviceNotOnline = errors.New("timed out waiting for device to connect")
	ErrMethodTimeout   = errors.New("timed out waiting for the response from device")
)

// MethodRequest is a direct method invocation.
type MethodRequest struct {
	Name            string
	Payload         json.RawMessage // nil = JSON null
	ResponseTimeout time.Duration   // 0 = 30 s
	ConnectTimeout  time.Duration   // how long to wait for the device to connect and subscribe; 0 = not at all
}

// MethodResult is the device's answer.
type MethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// InvokeMethod calls a direct method on a device (module "") or module and
// waits for its response. It fails with ErrDeviceNotFound, ErrDeviceNotOnline
// (not connected or not subscribed to $iothub/methods/POST/#), or
// ErrMethodTimeout.
func (h *Hub) InvokeMethod(ctx context.Context, deviceID, moduleID string, req MethodRequest) (MethodResult, error) {
	key := identityKey(deviceID, moduleID)
	if req.ResponseTimeout <= 0 {
		req.ResponseTimeout = 30 * time.Second
	}
	if req.Name == "" {
		return MethodResult{}, fmt.Errorf("%w: empty method name", ErrBadRequest)
	}
	payload := []byte(req.Payload)
	if len(payload) == 0 {
		payload = []byte("null")
	} else if !json.Valid(payload) {
		return MethodResult{}, fmt.Errorf("%w: method payload is not JSON", ErrBadRequest)
	}
	c, err := h.waitMethodConn(ctx, key, req.ConnectTimeout)
	if err != nil {
		return MethodResult{}, err
	}
	rid := c.nextRid()
	ch := make(chan MethodResult, 1)
	c.mu.Lock()
	if c.methods == nil {
		c.methods = map[string]chan MethodResult{}
	}
	c.methods[rid] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.methods, rid)
		c.mu.Unlock()
	}()
	if err := c.writeQoS0("$iothub/methods/POST/"+req.Name+"/?$rid="+rid, payload); err != nil {
		return MethodResult{}, fmt.Errorf("%w: %v", ErrDeviceNotOnline, err)
	}
	h.stats.methods.Add(1)
	t := time.NewTimer(req.ResponseTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-t.C:
		return MethodResult{}, ErrMethodTimeout
	case <-ctx.Done():
		return MethodResult{}, ctx.Err()
	case <-h.done():
		return MethodResult{}, errHubClosed
	}
}

// waitMethodConn returns the identity's connection once it is connected and
// subscribed to methods, waiting up to timeout.
func (h *Hub) waitMethodConn(ctx context.Context, key string, timeout time.Duration) (*conn, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		id, ok := h.idents[key]
		var c *conn
		if ok {
			c = id.conn
		}
		ch := h.waitChangeLocked()
		h.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrDeviceNotFound, key)
		}
		if c != nil && c.subscribed(filterMethods) {
			return c, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return nil, ErrDeviceNotOnline
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-h.done():
			return nil, errHubClosed
		}
	}
}

// methodResponse delivers a device's method response to the waiting call.
// Request ids are per connection, so a device can only answer its own calls.
func (c *conn) methodResponse(rid string, status int, body []byte) {
	var p json.RawMessage
	switch {
	case len(body) == 0:
		p = json.RawMessage("null")
	case json.Valid(body):
		p = append(json.RawMessage(nil), body...)
	default:
		p, _ = json.Marshal(string(body))
	}
	c.mu.Lock()
	ch := c.methods[rid]
	delete(c.methods, rid)
	c.mu.Unlock()
	if ch != nil {
		ch <- MethodResult{Status: status, Payload: p}
	}
}

// done returns a channel closed when the hub shuts down.
func (h *Hub) done() <-chan struct{} {
	if h.ctx == nil {
		return nil
	}
	return h.ctx.Done()
}
