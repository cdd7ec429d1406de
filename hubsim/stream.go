package hubsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// serveTelemetry answers GET /edgegw/telemetry?device=ID&after=SEQ&follow=1
// with telemetry as JSON lines, one Telemetry per line (see
// Telemetry.MarshalJSON: a UTF-8 body as text, a binary one as base64 with
// "bodyEncoding":"base64", properties as an object). With follow=1 the
// response stays open and streams new messages.
func (h *Hub) serveTelemetry(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	device := q.Get("device")
	var after uint64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, "after must be a sequence number")
			return
		}
		after = n
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	for {
		msgs, changed := h.TelemetryAfter(device, after)
		for _, m := range msgs {
			if err := enc.Encode(m); err != nil {
				return
			}
			after = m.Seq
		}
		if fl != nil {
			fl.Flush()
		}
		if !follow {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-h.done():
			return
		}
	}
}

// TelemetryStreamURL returns an https URL that streams telemetry as JSON
// lines (GET /edgegw/telemetry?follow=1), for deviceID ("" = all devices),
// carrying its own service token valid for validFor, so a browser or a
// plain curl --cacert ca.pem can open it.
func (h *Hub) TelemetryStreamURL(deviceID string, validFor time.Duration) (string, error) {
	p, _ := h.policy("service")
	tok, err := NewSAS(h.HostName, p.Name, p.PrimaryKey, time.Now().Add(validFor))
	if err != nil {
		return "", err
	}
	q := url.Values{"follow": {"1"}, "access_token": {tok}}
	if deviceID != "" {
		q.Set("device", deviceID)
	}
	return "https://" + h.gatewayHost(h.HTTPAddress()) + "/edgegw/telemetry?" + q.Encode(), nil
}
