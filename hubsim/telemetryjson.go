package hubsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

// telemetryJSON is the JSON shape of Telemetry: what the telemetry stream
// writes, one object per line.
type telemetryJSON struct {
	Seq             uint64            `json:"seq"`
	DeviceID        string            `json:"deviceId"`
	ModuleID        string            `json:"moduleId,omitempty"`
	Body            string            `json:"body"`
	BodyEncoding    string            `json:"bodyEncoding,omitempty"` // "base64" when the body is not UTF-8
	Properties      PropertyObject    `json:"properties,omitempty"`
	MessageID       string            `json:"messageId,omitempty"`
	CorrelationID   string            `json:"correlationId,omitempty"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	System          map[string]string `json:"system,omitempty"`
	Received        time.Time         `json:"received"`
}

// MarshalJSON writes t as people and scripts want to read it: a UTF-8 body
// as text ("body":"{\"t\":21.5}"), any other body as base64 with
// "bodyEncoding":"base64"; application properties as a JSON object in
// their order ({"alert":"high"}).
func (t Telemetry) MarshalJSON() ([]byte, error) {
	w := telemetryJSON{Seq: t.Seq, DeviceID: t.DeviceID, ModuleID: t.ModuleID, Properties: t.Properties,
		MessageID: t.MessageID, CorrelationID: t.CorrelationID, ContentType: t.ContentType,
		ContentEncoding: t.ContentEncoding, System: t.System, Received: t.Received}
	if utf8.Valid(t.Body) {
		w.Body = string(t.Body)
	} else {
		w.Body, w.BodyEncoding = base64.StdEncoding.EncodeToString(t.Body), "base64"
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes (a line of the telemetry
// stream).
func (t *Telemetry) UnmarshalJSON(b []byte) error {
	var w telemetryJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*t = Telemetry{Seq: w.Seq, DeviceID: w.DeviceID, ModuleID: w.ModuleID, Body: []byte(w.Body), Properties: w.Properties,
		MessageID: w.MessageID, CorrelationID: w.CorrelationID, ContentType: w.ContentType,
		ContentEncoding: w.ContentEncoding, System: w.System, Received: w.Received}
	switch w.BodyEncoding {
	case "":
	case "base64":
		body, err := base64.StdEncoding.DecodeString(w.Body)
		if err != nil {
			return fmt.Errorf("telemetry body: %w", err)
		}
		t.Body = body
	default:
		return fmt.Errorf("telemetry bodyEncoding %q: want base64 or none", w.BodyEncoding)
	}
	return nil
}

// PropertyObject is an ordered property list written as a JSON object.
// A repeated name keeps its first value, as Telemetry.Property reads it.
type PropertyObject []edgegw.Property

// MarshalJSON writes {"name":"value",...} in order.
func (p PropertyObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	seen := make(map[string]bool, len(p))
	for _, e := range p {
		if seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.Key)
		v, _ := json.Marshal(e.Value)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a JSON object of string values, keeping its order.
func (p *PropertyObject) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		if string(bytes.TrimSpace(b)) == "null" {
			*p = nil
			return nil
		}
		return errors.New("properties: want a JSON object")
	}
	var out PropertyObject
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return fmt.Errorf("properties: %w", err)
		}
		var v string
		if err := d.Decode(&v); err != nil {
			return fmt.Errorf("properties: %q: want a string value", k)
		}
		out = append(out, edgegw.Property{Key: k.(string), Value: v})
	}
	if _, err := d.Token(); err != nil {
		return fmt.Errorf("properties: %w", err)
	}
	*p = out
	return nil
}
